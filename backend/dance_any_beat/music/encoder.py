"""The DabFusion music encoder: the music embedding that conditions the 3D U-Net.

DabFusion's music embedding concatenates a CLAP audio embedding through a trained MLP adapter (dance style),
a Wav2CLIP embedding through a trained MLP adapter (movement) and librosa beat information (rhythm). Here each
of those is a *part*, chosen by `MusicEncoderConfig.parts` and recorded in the model checkpoint:

    clap      frozen LAION-CLAP HTSAT-tiny audio tower (48 kHz) -> 512-d, L2-normalised -> MLP adapter
    wav2clip  frozen Wav2CLIP ResNet audio tower (16 kHz) -> 512-d -> MLP adapter
    mel       a small trainable conv encoder over a log-mel spectrogram: a clip vector + per-video-frame features
    beats     the per-frame rhythm features of `music.beats.rhythm_features` through a small per-frame MLP

The clip-level (`global_`) vector is a projection of the concatenated part vectors; the per-frame features come
from `beats` and `mel` (with neither, the global vector is projected and repeated over the frames).

Audio goes in at each part's own sample rate. Resampling in torch (interpolation) aliases, so the rates are
prepared outside the module with soxr by `prepare_audio(samples, sr, config) -> MusicInputs`, once per clip;
all rates cover the same time span: the T video frames of the window (frame k at start + k / fps, the audio
from start to start + T / fps).

The frozen towers are loaded from the artist's local checkpoint files (paths in the config) and their weights
are left out of `state_dict()`: a DabFusion checkpoint holds only what was trained, and loading it re-reads
the towers from those files. A missing file raises `dance_any_beat.weights.MissingWeightsError` saying which
file, which config key and where to download it; a file of the wrong kind raises `WeightsFormatError`.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dance_any_beat.music.beats import RHYTHM_DIM
from dance_any_beat.weights import WeightsFile, WeightsFormatError, load_checked, read_state_dict, require_file

PartName = Literal["clap", "wav2clip", "mel", "beats"]
PARTS: tuple[str, ...] = get_args(PartName)
# Parts backed by a frozen pretrained tower read from a local file; the rest train from scratch.
TOWER_PARTS: tuple[str, ...] = ("clap", "wav2clip")
# Sample rates fixed by the pretrained towers' weights.
CLAP_SAMPLE_RATE = 48000
WAV2CLIP_SAMPLE_RATE = 16000
# Both towers embed a clip as a 512-d vector.
TOWER_DIM = 512


# ------------------------------------------------------------------------------------------ config and I/O types


@dataclass
class MusicEncoderConfig:
    """Architecture of the music encoder; stored in the checkpoint under the "music" key."""

    parts: tuple[str, ...] = ("mel", "beats")  # any of PARTS; "clap" / "wav2clip" need their checkpoint files
    global_dim: int = 256  # width of the clip-level music vector, MusicEmbedding.global_
    frame_dim: int = 64  # width of the per-video-frame features, MusicEmbedding.frames
    part_dim: int = 128  # width of each part's vector before the parts are fused
    adapter_hidden: int = 512  # hidden width of the CLAP / Wav2CLIP MLP adapters
    dropout: float = 0.1  # in the adapters and the global fusion MLP
    clap_checkpoint: str | None = None  # LAION-CLAP 630k-audioset-best.pt; None: <cache>/weights/630k-audioset-best.pt
    wav2clip_checkpoint: str | None = None  # Wav2CLIP.pt (lyrebird-wav2clip v0.1.0-alpha); None: <cache>/weights/
    mel_sample_rate: int = 22050  # rate of the mel branch's audio (CLAP is fixed at 48 kHz, Wav2CLIP at 16 kHz)
    n_mels: int = 64  # mel bands of the mel branch
    mel_n_fft: int = 1024  # its FFT size (46 ms at 22.05 kHz)
    mel_hop: int = 256  # its hop: ~86 mel frames per second at 22.05 kHz, more than any video frame rate
    mel_fmin: float = 30.0  # lowest mel band edge, Hz
    mel_fmax: float | None = None  # highest mel band edge, Hz; None = mel_sample_rate / 2
    mel_channels: int = 64  # width of the mel conv encoder
    mel_blocks: int = 3  # residual conv blocks in it, dilations 1, 2, 4, ...
    beats_hidden: int = 64  # hidden width of the per-frame rhythm MLP
    rhythm_dim: int = RHYTHM_DIM  # rhythm feature channels (music.beats.RHYTHM_DIM when the model was built)

    def __post_init__(self) -> None:
        self.parts = tuple(self.parts)  # JSON gives a list back
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise ValueError(f"music parts must be a non-empty subset of {list(PARTS)}, got {list(self.parts)}")
        if len(set(self.parts)) != len(self.parts):
            raise ValueError(f"music parts are listed twice: {list(self.parts)}")
        for name in ("global_dim", "frame_dim", "part_dim", "adapter_hidden", "mel_sample_rate", "n_mels",
                     "mel_n_fft", "mel_hop", "mel_channels", "mel_blocks", "beats_hidden", "rhythm_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"music.{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"music.dropout must be in [0, 1), got {self.dropout}")
        fmax = self.mel_sample_rate / 2 if self.mel_fmax is None else self.mel_fmax
        if not 0.0 <= self.mel_fmin < fmax <= self.mel_sample_rate / 2:
            raise ValueError(
                f"need 0 <= mel_fmin < mel_fmax <= mel_sample_rate / 2, got {self.mel_fmin}, {self.mel_fmax}, "
                f"{self.mel_sample_rate}"
            )

    def sample_rates(self) -> dict[str, int]:
        """Part -> the sample rate its audio must come at, for the parts that read audio."""
        rates = {"clap": CLAP_SAMPLE_RATE, "wav2clip": WAV2CLIP_SAMPLE_RATE, "mel": self.mel_sample_rate}
        return {p: rates[p] for p in self.parts if p in rates}


@dataclass
class MusicInputs:
    """A batch of audio at every rate the encoder's parts need, and optionally cached frozen-tower outputs."""

    waveforms: dict[int, torch.Tensor]  # sample rate -> (B, N_sr) float32 mono, all over the same time span
    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)  # "clap"/"wav2clip" -> (B, 512), skips the tower

    def to(self, device: torch.device | str) -> MusicInputs:
        return MusicInputs(
            waveforms={sr: w.to(device) for sr, w in self.waveforms.items()},
            embeddings={k: e.to(device) for k, e in self.embeddings.items()},
        )


@dataclass
class MusicEmbedding:
    global_: torch.Tensor  # (B, global_dim): the whole clip (style, movement, tempo)
    frames: torch.Tensor  # (B, T, frame_dim): one vector per video frame (beats, local loudness and timbre)


def prepare_audio(
    samples: np.ndarray | torch.Tensor, sr: int, config: MusicEncoderConfig | None = None
) -> MusicInputs:
    """Resample mono audio (N,) or a batch (B, N) at `sr` to every rate `config`'s parts read (all parts if None).

    soxr (through librosa) rather than torch interpolation: interpolating a waveform aliases everything above
    the new Nyquist frequency back into the band the towers listen to.
    """
    x = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"audio must be (N,) or (B, N) mono samples, got shape {tuple(x.shape)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite samples")
    x = x.astype(np.float32, copy=False)
    config = config or MusicEncoderConfig(parts=PARTS)
    waveforms: dict[int, torch.Tensor] = {}
    for rate in sorted(set(config.sample_rates().values())):
        if rate == sr:
            y = x
        else:
            import librosa  # deferred: slow to import, and not needed when no rate changes

            y = librosa.resample(x, orig_sr=sr, target_sr=rate, res_type="soxr_hq", axis=-1)
        waveforms[rate] = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    return MusicInputs(waveforms=waveforms)


# ------------------------------------------------------------------------------------------ pretrained weights


def read_tower_state(path: Path, spec: WeightsFile, renames: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """The tower's tensors in a public checkpoint: keys under the `renames` prefixes (old prefix -> new prefix).

    Everything else (text towers, logit scales...) is dropped. The public files are training checkpoints that may
    hold numpy scalars next to the tensors, and may be wrapped in 'module.' (DDP) or 'model.' (Lightning).
    """
    state = read_state_dict(path, spec, wrappers=("module.", "model."), unpickle_fallback=True)
    picked = {
        new + key[len(old):]: value
        for key, value in state.items()
        for old, new in renames.items()
        if key.startswith(old)
    }
    if not picked:
        sample = ", ".join(list(state)[:4])
        raise WeightsFormatError(
            f"'{path}' is not {spec.what}: it has no {' / '.join(k + '*' for k in renames)} weights (it has e.g. "
            f"{sample}). {spec.remedy()}"
        )
    return picked


class FrozenTower(nn.Module):
    """A pretrained audio encoder used as-is: always in eval mode, no gradients, weights not in `state_dict()`.

    Its weights come from a public file named by the config, so a DabFusion checkpoint leaves them out:
    `state_dict()` of any module holding a tower skips the tower's keys, and `load_state_dict()` keeps the
    tower's current weights for keys that are absent. `with tower.own_weights():` switches that off (used to
    read and write the tower's own file).
    """

    sample_rate: int
    embed_dim: int

    def __init__(self) -> None:
        super().__init__()
        self._skip_in_state_dict = True
        self.register_state_dict_post_hook(FrozenTower._drop_own_keys)
        self.register_load_state_dict_pre_hook(FrozenTower._keep_own_weights)

    @contextmanager
    def own_weights(self) -> Iterator[FrozenTower]:
        self._skip_in_state_dict = False
        try:
            yield self
        finally:
            self._skip_in_state_dict = True

    @staticmethod
    def _drop_own_keys(module: FrozenTower, state_dict: dict, prefix: str, local_metadata: dict) -> None:
        if module._skip_in_state_dict:
            for key in [k for k in state_dict if k.startswith(prefix)]:
                del state_dict[key]

    @staticmethod
    def _keep_own_weights(module: FrozenTower, state_dict: dict, prefix: str, *args: Any) -> None:
        if module._skip_in_state_dict:
            with module.own_weights():
                own = module.state_dict(keep_vars=True)
            for key, value in own.items():
                state_dict.setdefault(prefix + key, value.detach())

    def freeze(self) -> FrozenTower:
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> FrozenTower:
        """Always eval: dropout, batch-norm statistics and spec-augment stay as pretrained."""
        return super().train(False)

    def load_weights(self, state: Mapping[str, torch.Tensor], path: Path, spec: WeightsFile) -> FrozenTower:
        """Load strictly (keys and shapes checked first, see `load_checked`) and freeze."""
        with self.own_weights():
            load_checked(self, state, path, spec)
        return self.freeze()


@contextmanager
def stand_in_modules(modules: Mapping[str, types.ModuleType]) -> Iterator[None]:
    """Put modules in `sys.modules` for the duration of an import only, for names not already there.

    Used to import pretrained-model code whose unused imports are absent here (torchvision, torchaudio) without
    leaving a fake package behind where transformers or anyone else could find it later.
    """
    added = [name for name in modules if name not in sys.modules]
    for name in added:
        sys.modules[name] = modules[name]
    try:
        yield
    finally:
        for name in added:
            if sys.modules.get(name) is modules[name]:
                del sys.modules[name]


def stub_module(name: str, *, package: bool = False, **attrs: Any) -> types.ModuleType:
    """A module object with a real `__spec__` (importlib and transformers' availability checks read it)."""
    import importlib.machinery

    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=package)
    if package:
        module.__path__ = []
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def import_from_folder(alias: str, folder: Path, module: str) -> types.ModuleType:
    """Import `folder/module.py` as `alias.module`, `folder` acting as package `alias` without its __init__.py.

    The installed laion_clap and wav2clip packages run heavy or network-bound code in their `__init__`
    (transformers, tokenizers from the hub, torch.hub downloads); their model files need none of it.
    """
    import importlib
    import importlib.machinery

    if alias not in sys.modules:
        package = types.ModuleType(alias)
        package.__spec__ = importlib.machinery.ModuleSpec(alias, loader=None, is_package=True)
        package.__spec__.submodule_search_locations = [str(folder)]
        package.__path__ = [str(folder)]
        sys.modules[alias] = package
    return importlib.import_module(f"{alias}.{module}")


# ------------------------------------------------------------------------------------------ trainable blocks


class EmbeddingAdapter(nn.Module):
    """MLP from a frozen tower's embedding to a part vector; the trained half of DabFusion's CLAP/Wav2CLIP parts."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float):
        super().__init__()
        # LayerNorm first: CLAP's output is unit-norm, Wav2CLIP's is unnormalised; both arrive at one scale.
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, in_dim) -> (B, out_dim)


class LogMel(nn.Module):
    """Log-mel spectrogram in torch with librosa's filterbank (Slaney mel scale, as the rest of the project)."""

    def __init__(self, sr: int, n_fft: int, hop: int, n_mels: int, fmin: float, fmax: float | None):
        super().__init__()
        import librosa

        self.n_fft, self.hop = n_fft, hop
        mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)  # (n_mels, n_fft//2+1)
        # derived from the config, so not saved in checkpoints
        self.register_buffer("mel_basis", torch.from_numpy(mel).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        # (B, N) -> (B, n_mels, F), F = N // hop + 1
        pad_mode = "reflect" if wave.shape[-1] > self.n_fft // 2 else "constant"
        spec = torch.stft(wave, self.n_fft, self.hop, window=self.window, center=True, pad_mode=pad_mode,
                          return_complex=True).abs().pow(2)  # (B, n_fft//2+1, F)
        return torch.log(self.mel_basis @ spec + 1e-6)


class ConvBlock1d(nn.Module):
    """Pre-norm residual dilated conv over time."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(F.silu(self.norm(x)))  # (B, C, F)


class MelEncoder(nn.Module):
    """Trainable conv encoder over log-mel: a clip vector and one vector per video frame; needs no weights file."""

    def __init__(self, config: MusicEncoderConfig):
        super().__init__()
        c = config.mel_channels
        self.logmel = LogMel(config.mel_sample_rate, config.mel_n_fft, config.mel_hop, config.n_mels,
                             config.mel_fmin, config.mel_fmax)
        self.stem = nn.Conv1d(config.n_mels, c, 5, padding=2)
        self.blocks = nn.Sequential(*[ConvBlock1d(c, 2**i) for i in range(config.mel_blocks)])
        self.norm = nn.GroupNorm(min(8, c), c)
        self.to_frames = nn.Linear(c, config.part_dim)
        self.to_global = nn.Linear(2 * c, config.part_dim)

    def forward(self, wave: torch.Tensor, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        mel = self.logmel(wave)  # (B, n_mels, F)
        # per-clip standardisation: no data-set statistics to ship, and the level of the mix does not matter
        mel = (mel - mel.mean(dim=(1, 2), keepdim=True)) / (mel.std(dim=(1, 2), keepdim=True) + 1e-5)
        h = F.silu(self.norm(self.blocks(self.stem(mel))))  # (B, C, F)
        # video frame k covers audio [k, k+1) / T of the clip: average the mel frames falling in it
        frames = F.adaptive_avg_pool1d(h, n_frames).transpose(1, 2)  # (B, T, C)
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)  # (B, 2C)
        return self.to_global(pooled), self.to_frames(frames)  # (B, part_dim), (B, T, part_dim)


class RhythmMLP(nn.Module):
    """Per-frame MLP over the rhythm features (beat impulse, beat phase, downbeat, onset)."""

    def __init__(self, rhythm_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(rhythm_dim, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))

    def forward(self, rhythm: torch.Tensor) -> torch.Tensor:
        return self.net(rhythm)  # (B, T, rhythm_dim) -> (B, T, out_dim)


# ------------------------------------------------------------------------------------------ the encoder


class MusicEncoder(nn.Module):
    """Audio (+ rhythm features) -> MusicEmbedding(global_ (B, global_dim), frames (B, T, frame_dim)).

    Building it with "clap" or "wav2clip" in `config.parts` reads the towers' weight files named in the config.
    `state_dict()` holds only the trainable parts (see FrozenTower); `trainable_parameters()` is what the
    optimiser gets.
    """

    def __init__(self, config: MusicEncoderConfig, towers: Mapping[str, FrozenTower] | None = None):
        """towers: already loaded towers by part, used instead of reading the files (e.g. shared by encoders)."""
        super().__init__()
        self.config = config
        parts = config.parts
        given = dict(towers or {})
        tower_parts = [p for p in parts if p in TOWER_PARTS]
        if set(given) - set(tower_parts):
            raise ValueError(f"towers given for {sorted(set(given) - set(tower_parts))}, not in parts {list(parts)}")
        # find every file before building anything, so a missing one fails fast
        paths = {
            p: require_file(_configured_path(config, p), _tower_weights(p)) for p in tower_parts if p not in given
        }
        self.towers = nn.ModuleDict({p: given[p] if p in given else _load_tower(p, paths[p]) for p in tower_parts})
        self.adapters = nn.ModuleDict({
            p: EmbeddingAdapter(TOWER_DIM, config.adapter_hidden, config.part_dim, config.dropout) for p in tower_parts
        })
        self.mel = MelEncoder(config) if "mel" in parts else None
        self.beats = RhythmMLP(config.rhythm_dim, config.beats_hidden, config.part_dim) if "beats" in parts else None

        n_global = len(parts)  # every part gives a clip vector (beats: its frames averaged)
        self.global_proj = nn.Sequential(
            nn.LayerNorm(n_global * config.part_dim),
            nn.Linear(n_global * config.part_dim, config.global_dim),
            nn.SiLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.global_dim, config.global_dim),
        )
        n_frame_parts = sum(p in parts for p in ("mel", "beats"))
        # without frame parts the frames are the global vector, repeated
        frame_in = n_frame_parts * config.part_dim if n_frame_parts else config.global_dim
        self.frame_proj = nn.Linear(frame_in, config.frame_dim)

    # -- parameters and weights

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Everything but the frozen towers: what the optimiser gets."""
        return [p for name, p in self.named_parameters() if not name.startswith("towers.") and p.requires_grad]

    def frozen_parameters(self) -> list[nn.Parameter]:
        return list(self.towers.parameters())

    # -- inputs

    def _waveform(self, audio: MusicInputs, part: str) -> torch.Tensor:
        rate = self.config.sample_rates()[part]
        wave = audio.waveforms.get(rate)
        if wave is None:
            have = sorted(audio.waveforms)
            raise ValueError(
                f"the {part!r} part needs audio at {rate} Hz but the inputs have {have or 'no audio'}; "
                "build the inputs with music.encoder.prepare_audio(samples, sr, config)"
            )
        if wave.ndim != 2:
            raise ValueError(f"audio at {rate} Hz must be (B, N), got shape {tuple(wave.shape)}")
        return wave

    @torch.no_grad()
    def frozen_embeddings(self, audio: MusicInputs | Mapping[int, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The towers' outputs, part -> (B, 512); cache them in `MusicInputs.embeddings` to train without towers."""
        audio = _as_inputs(audio)
        return {p: tower(self._waveform(audio, p)) for p, tower in self.towers.items()}

    # -- forward

    def forward(
        self,
        audio: MusicInputs | Mapping[int, torch.Tensor] | None,
        rhythm: torch.Tensor | None = None,
        n_frames: int | None = None,
    ) -> MusicEmbedding:
        """audio: MusicInputs from `prepare_audio` (or {sample rate: (B, N)}); None for a beats-only encoder.

        rhythm: (B, T, rhythm_dim) from `music.beats.rhythm_features`, needed with the "beats" part.
        n_frames: T, the video frames the audio spans; defaults to rhythm's T.
        """
        cfg = self.config
        inputs = _as_inputs(audio) if audio is not None else MusicInputs(waveforms={})
        if rhythm is not None:
            if rhythm.ndim != 3 or rhythm.shape[-1] != cfg.rhythm_dim:
                raise ValueError(f"rhythm must be (B, T, {cfg.rhythm_dim}), got shape {tuple(rhythm.shape)}")
            if n_frames is not None and n_frames != rhythm.shape[1]:
                raise ValueError(f"n_frames={n_frames} but rhythm has {rhythm.shape[1]} frames")
            n_frames = rhythm.shape[1]
        elif self.beats is not None:
            raise ValueError("the 'beats' part needs rhythm features (B, T, rhythm_dim); see music.beats")
        if n_frames is None or n_frames <= 0:
            raise ValueError(f"give n_frames (the video frames the audio spans) > 0, got {n_frames}")

        vectors: list[torch.Tensor] = []  # (B, part_dim) each, in config.parts order
        frame_feats: list[torch.Tensor] = []  # (B, T, part_dim) each
        for part in cfg.parts:
            if part in TOWER_PARTS:
                emb = inputs.embeddings.get(part)
                if emb is None:
                    with torch.no_grad():
                        emb = self.towers[part](self._waveform(inputs, part))  # (B, 512)
                vectors.append(self.adapters[part](emb))
            elif part == "mel":
                g, fr = self.mel(self._waveform(inputs, "mel"), n_frames)
                vectors.append(g)
                frame_feats.append(fr)
            else:  # beats
                fr = self.beats(rhythm)  # (B, T, part_dim)
                vectors.append(fr.mean(dim=1))
                frame_feats.append(fr)
        batch = {v.shape[0] for v in vectors}
        if len(batch) != 1:
            raise ValueError(f"the parts got different batch sizes {sorted(batch)}; give every input the same B")

        global_ = self.global_proj(torch.cat(vectors, dim=-1))  # (B, global_dim)
        if frame_feats:
            frames = self.frame_proj(torch.cat(frame_feats, dim=-1))  # (B, T, frame_dim)
        else:
            frames = self.frame_proj(global_)[:, None].expand(-1, n_frames, -1)  # (B, T, frame_dim)
        return MusicEmbedding(global_=global_, frames=frames)


def _as_inputs(audio: MusicInputs | Mapping[int, torch.Tensor]) -> MusicInputs:
    return audio if isinstance(audio, MusicInputs) else MusicInputs(waveforms=dict(audio))


def _configured_path(config: MusicEncoderConfig, part: str) -> str | None:
    return config.clap_checkpoint if part == "clap" else config.wav2clip_checkpoint


def _tower_weights(part: str) -> WeightsFile:
    # deferred: the towers' modules import the pretrained models' code, needed only with those parts
    if part == "clap":
        from dance_any_beat.music.clap_branch import CLAP_WEIGHTS

        return CLAP_WEIGHTS
    from dance_any_beat.music.wav2clip_branch import WAV2CLIP_WEIGHTS

    return WAV2CLIP_WEIGHTS


def _load_tower(part: str, path: Path) -> FrozenTower:
    if part == "clap":
        from dance_any_beat.music.clap_branch import ClapAudioTower

        return ClapAudioTower.from_checkpoint(path)
    from dance_any_beat.music.wav2clip_branch import Wav2ClipTower

    return Wav2ClipTower.from_checkpoint(path)
