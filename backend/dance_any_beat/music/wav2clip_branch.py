"""The Wav2CLIP audio tower, built offline from the installed wav2clip 0.1.0 code, with no torchaudio.

`wav2clip.get_model()` downloads its weights through torch.hub, and the package's model code calls torchaudio
once: `torchaudio.transforms.Spectrogram(n_fft=512, hop_length=353)` in `model/resnet.py`. torchaudio cannot be
installed here (its builds break on CPU and break transformers' imports), so this file imports
`wav2clip/model/resnet.py` and `encoder.py` by path (the package `__init__` is skipped) while a stand-in
`torchaudio` whose `transforms.Spectrogram` is `StftSpectrogram` (torch.stft) is present, only during that
import. The tower is what `get_model(pretrained=True)` builds: the ResNet encoder plus the 512-512-512
`audio_transform` MLP head (which `get_model(pretrained=False)` leaves out), both frozen.
"""

from __future__ import annotations

import importlib.util
import types
from collections.abc import Callable
from functools import cache
from pathlib import Path

import torch
from torch import nn

from dance_any_beat.music.encoder import (
    TOWER_DIM,
    WAV2CLIP_SAMPLE_RATE,
    FrozenTower,
    import_from_folder,
    read_tower_state,
    stand_in_modules,
    stub_module,
)
from dance_any_beat.weights import WeightsFile

WAV2CLIP_WEIGHTS = WeightsFile(
    what="Wav2CLIP weights",
    file_name="Wav2CLIP.pt",
    source=(
        "Download it from https://github.com/descriptinc/lyrebird-wav2clip/releases/download/v0.1.0-alpha/"
        "Wav2CLIP.pt (the descriptinc/lyrebird-wav2clip GitHub release v0.1.0-alpha)."
    ),
    option="music.wav2clip_checkpoint",
    has_default=True,
    otherwise="Or leave 'wav2clip' out of music.parts to use a model that needs no external weights.",
)


class StftSpectrogram(nn.Module):
    """torchaudio.transforms.Spectrogram's computation with torch.stft, for the arguments wav2clip uses.

    With torchaudio's defaults (win_length = n_fft, periodic Hann window, center=True with reflect padding,
    onesided, normalized=False, power=2) the output is
        S[f, m] = | sum_n w[n] x_pad[m * hop + n] exp(-2 pi i f n / n_fft) |^2,   f = 0 .. n_fft // 2
    with x_pad the input reflect-padded by n_fft // 2 on each side; shape (..., n_fft // 2 + 1, frames).
    The window is a persistent buffer named `window`, as torchaudio's, so Wav2CLIP.pt's
    `audio_encoder.spectrogram.window` loads into it.
    """

    def __init__(
        self,
        n_fft: int = 400,
        win_length: int | None = None,
        hop_length: int | None = None,
        pad: int = 0,
        window_fn: Callable[..., torch.Tensor] = torch.hann_window,
        power: float | None = 2.0,
        normalized: bool = False,
        center: bool = True,
        pad_mode: str = "reflect",
        onesided: bool = True,
    ):
        super().__init__()
        if pad != 0 or not onesided:
            raise NotImplementedError("StftSpectrogram covers wav2clip's use: pad=0, onesided=True")
        self.n_fft = n_fft
        self.win_length = win_length or n_fft
        self.hop_length = hop_length or self.win_length // 2
        self.power = power
        self.normalized = normalized  # True: divide by the window's L2 norm (torchaudio's "window" normalisation)
        self.center = center
        self.pad_mode = pad_mode
        self.register_buffer("window", window_fn(self.win_length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        spec = torch.stft(
            x.reshape(-1, shape[-1]), self.n_fft, self.hop_length, self.win_length, self.window, center=self.center,
            pad_mode=self.pad_mode, normalized=False, onesided=True, return_complex=True,
        )  # (prod(...), n_fft // 2 + 1, frames)
        spec = spec.reshape(*shape[:-1], *spec.shape[-2:])
        if self.normalized:
            spec = spec / self.window.pow(2).sum().sqrt()
        if self.power is None:
            return spec
        return spec.abs() if self.power == 1.0 else spec.abs().pow(self.power)


def _model_folder() -> Path:
    spec = importlib.util.find_spec("wav2clip")  # finds the package without running its __init__
    if spec is None or spec.origin is None:
        raise ImportError(
            "the 'wav2clip' music part needs the wav2clip package: pip install --no-deps wav2clip==0.1.0"
        )
    return Path(spec.origin).parent / "model"


@cache
def _wav2clip_model() -> tuple[types.ModuleType, types.ModuleType]:
    """wav2clip's model/resnet.py and model/encoder.py, with torchaudio's Spectrogram replaced by StftSpectrogram."""
    torchaudio = stub_module("torchaudio", package=True)
    transforms = stub_module("torchaudio.transforms", Spectrogram=StftSpectrogram)
    torchaudio.transforms = transforms
    with stand_in_modules({"torchaudio": torchaudio, "torchaudio.transforms": transforms}):
        resnet = import_from_folder("_dance_any_beat_wav2clip_model", _model_folder(), "resnet")
        encoder = import_from_folder("_dance_any_beat_wav2clip_model", _model_folder(), "encoder")
    return resnet, encoder


class Wav2ClipTower(FrozenTower):
    """16 kHz mono (B, N) -> (B, 512) Wav2CLIP embedding (encoder + audio_transform head, as get_model() returns).

    One change from wav2clip's ResNet.forward: it standardises the log-spectrogram with the mean and std of
    the whole batch, so a clip's embedding depends on the clips batched with it; here each clip is
    standardised on its own (identical for a batch of one, which is how `wav2clip.embed_audio` is used on a clip).
    """

    sample_rate = WAV2CLIP_SAMPLE_RATE
    embed_dim = TOWER_DIM

    def __init__(self) -> None:
        super().__init__()
        resnet, encoder = _wav2clip_model()
        # the arguments of wav2clip's ResNetExtractor
        self.encoder = resnet.ResNet(
            resnet.BasicBlock, [2, 2, 2, 2], pool="avgpool", zero_init_residual=False, groups=1,
            width_per_group=64, replace_stride_with_dilation=None, norm_layer=None,
        )
        assert isinstance(self.encoder.spectrogram, StftSpectrogram)
        self.transform = encoder.MLPLayers(units=[TOWER_DIM, TOWER_DIM, TOWER_DIM], dropout=0.1)
        self.freeze()

    # public Wav2CLIP.pt key prefix -> this module's
    PUBLIC_PREFIXES = {"audio_encoder.": "encoder.", "audio_transform.": "transform."}

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> Wav2ClipTower:
        """Load Wav2CLIP.pt: a flat dict with audio_encoder.* (the ResNet) and audio_transform.* (the head)."""
        path = Path(path)
        state = read_tower_state(path, WAV2CLIP_WEIGHTS, cls.PUBLIC_PREFIXES)
        tower = cls()
        # the Hann window is no learnt weight: take ours if a file lacks it
        state.setdefault("encoder.spectrogram.window", tower.encoder.spectrogram.window.clone())
        return tower.load_weights(state, path, WAV2CLIP_WEIGHTS)

    def public_state_dict(self) -> dict[str, torch.Tensor]:
        """The tower's weights under the public Wav2CLIP.pt keys (what `from_checkpoint` reads)."""
        with self.own_weights():
            own = self.state_dict()
        public = {ours: theirs for theirs, ours in self.PUBLIC_PREFIXES.items()}
        return {next(public[p] + k[len(p):] for p in public if k.startswith(p)): v.clone() for k, v in own.items()}

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        assert wave.ndim == 2, f"expected (B, N) audio at 16 kHz, got shape {tuple(wave.shape)}"
        enc = self.encoder
        x = enc.spectrogram(wave.unsqueeze(1))  # (B, 1, 257, frames)
        x = torch.log(x + 1e-7)
        # per clip, where wav2clip uses the whole batch (torch.std is unbiased in both)
        x = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / (x.std(dim=(1, 2, 3), keepdim=True) + 1e-9)
        x = enc.maxpool(enc.relu(enc.bn1(enc.conv1(x))))
        x = enc.layer4(enc.layer3(enc.layer2(enc.layer1(x))))
        x = enc.avgpool(x).flatten(1)  # (B, 512)
        return self.transform(x)  # (B, 512)
