"""The LAION-CLAP audio tower (HTSAT-tiny, non-fusion), built offline from the installed laion_clap code.

`laion_clap.CLAP_Module(enable_fusion=False, amodel='HTSAT-tiny')` cannot be used here: `import laion_clap`
imports torchvision and transformers and fetches tokenizers from the HuggingFace hub, and building the module
calls `RobertaModel.from_pretrained` (a download). The music encoder needs only the audio half, so this file
imports laion_clap's `clap_module/htsat.py` by path (its package `__init__`s are skipped), with a stand-in for
the one torchvision name that `clap_module/utils.py` imports and never uses on this path, present only during
that import. Then it builds exactly what `CLAP.__init__` builds for audio: `audio_branch` =
`create_htsat_model(audio_cfg)` from the package's HTSAT-tiny.json, and `audio_projection` = Linear(768, 512),
ReLU, Linear(512, 512); the forward is `CLAP_Module.get_audio_embedding_from_data` for non-fusion models.
"""

from __future__ import annotations

import importlib.util
import json
import types
import warnings
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dance_any_beat.music.encoder import (
    CLAP_SAMPLE_RATE,
    TOWER_DIM,
    FrozenTower,
    import_from_folder,
    read_tower_state,
    stand_in_modules,
    stub_module,
)
from dance_any_beat.weights import WeightsFile

CLAP_WEIGHTS = WeightsFile(
    what="LAION-CLAP (HTSAT-tiny, non-fusion) weights",
    file_name="630k-audioset-best.pt",
    source=(
        "Download it from https://huggingface.co/lukewys/laion_clap/resolve/main/630k-audioset-best.pt (HuggingFace "
        "lukewys/laion_clap; also linked from the LAION-AI/CLAP GitHub README and release page); the fusion "
        "variant and the other model sizes do not fit."
    ),
    option="music.clap_checkpoint",
    has_default=True,
    otherwise="Or leave 'clap' out of music.parts to use a model that needs no external weights.",
)
CLIP_SAMPLES = 480_000  # HTSAT-tiny sees 10 s at 48 kHz (1024 mel frames); shorter clips are repeated to fill it
HTSAT_DIM = 768  # the audio branch's embedding width before the projection


def _clap_module_folder() -> Path:
    spec = importlib.util.find_spec("laion_clap")  # finds the package without running its __init__
    if spec is None or spec.origin is None:
        raise ImportError("the 'clap' music part needs the laion_clap package: pip install laion-clap==1.1.7")
    return Path(spec.origin).parent / "clap_module"


@cache
def _htsat() -> types.ModuleType:
    """laion_clap's htsat.py, imported without laion_clap's __init__ (no transformers, no hub)."""
    torchvision = {
        "torchvision": stub_module("torchvision", package=True),
        "torchvision.ops": stub_module("torchvision.ops", package=True),
        # clap_module/utils.py imports FrozenBatchNorm2d for freeze_batch_norm_2d, which the audio tower never calls
        "torchvision.ops.misc": stub_module("torchvision.ops.misc", FrozenBatchNorm2d=_NoFrozenBatchNorm2d),
    }
    with stand_in_modules(torchvision):
        return import_from_folder("_dance_any_beat_laion_clap_module", _clap_module_folder(), "htsat")


class _NoFrozenBatchNorm2d(nn.Module):
    def __init__(self, *args: object, **kwargs: object):
        raise RuntimeError("torchvision's FrozenBatchNorm2d is not available here (torchvision is not installed)")


def htsat_tiny_audio_cfg() -> types.SimpleNamespace:
    """The audio_cfg of laion_clap's HTSAT-tiny model config, as `create_htsat_model` reads it."""
    with open(_clap_module_folder() / "model_configs" / "HTSAT-tiny.json") as f:
        cfg = json.load(f)["audio_cfg"]
    return types.SimpleNamespace(**cfg)


class ClapAudioTower(FrozenTower):
    """48 kHz mono (B, N) -> (B, 512) L2-normalised LAION-CLAP audio embedding. Built with random weights;
    `from_checkpoint` loads the public file."""

    sample_rate = CLAP_SAMPLE_RATE
    embed_dim = TOWER_DIM

    def __init__(self) -> None:
        super().__init__()
        cfg = htsat_tiny_audio_cfg()
        assert cfg.sample_rate == CLAP_SAMPLE_RATE and cfg.clip_samples == CLIP_SAMPLES, cfg
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="torch.meshgrid")  # inside HTSAT's window attention
            self.audio_branch = _htsat().create_htsat_model(cfg, enable_fusion=False, fusion_type="None")
        # as CLAP.__init__ with mlp_act='relu', embed_dim=768, joint_embed_shape=512 (keys audio_projection.0/.2)
        self.audio_projection = nn.Sequential(
            nn.Linear(HTSAT_DIM, TOWER_DIM), nn.ReLU(), nn.Linear(TOWER_DIM, TOWER_DIM)
        )
        self.freeze()

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> ClapAudioTower:
        """Load a LAION-CLAP training checkpoint ({'state_dict': {'module.audio_branch...': ...}, ...}).

        Only audio_branch.* and audio_projection.* are read: the text tower's keys (including the
        `text_branch.embeddings.position_ids` buffer that newer transformers no longer expects, LAION-AI/CLAP
        issue 127), logit scales and the unused audio_transform are ignored.
        """
        path = Path(path)
        renames = {"audio_branch.": "audio_branch.", "audio_projection.": "audio_projection."}
        state = read_tower_state(path, CLAP_WEIGHTS, renames)
        tower = cls()
        return tower.load_weights(state, path, CLAP_WEIGHTS)

    def fit_length(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, 480000): laion_clap's 'repeatpad' for short clips; the middle 10 s of longer ones
        (laion_clap crops at random, which would make the embedding of a clip change between calls)."""
        n = wave.shape[-1]
        if n > CLIP_SAMPLES:
            start = (n - CLIP_SAMPLES) // 2
            return wave[:, start : start + CLIP_SAMPLES]
        if n < CLIP_SAMPLES:
            wave = wave.repeat(1, CLIP_SAMPLES // n)
            wave = F.pad(wave, (0, CLIP_SAMPLES - wave.shape[-1]))
        return wave

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        assert wave.ndim == 2, f"expected (B, N) audio at 48 kHz, got shape {tuple(wave.shape)}"
        # laion_clap quantises to int16 and back before embedding (float32_to_int16 truncates toward zero)
        q = (wave.clamp(-1.0, 1.0) * 32767.0).to(torch.int16)
        wave = (q.double() / 32767.0).to(wave.dtype)
        wave = self.fit_length(wave)  # (B, 480000)
        longer = torch.zeros(wave.shape[0], dtype=torch.bool, device=wave.device)
        emb = self.audio_branch({"waveform": wave, "longer": longer}, device=wave.device)["embedding"]  # (B, 768)
        return F.normalize(self.audio_projection(emb), dim=-1)  # (B, 512)
