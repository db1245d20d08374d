"""Fixtures shared by several test modules.

`one_thread` is not autouse: a module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`.
"""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from dance_any_beat.data.procedural import make_dataset
from dance_any_beat.diffusion import DiffusionConfig
from dance_any_beat.models.dabfusion import DabFusion, DabFusionConfig, DataConfig
from dance_any_beat.models.lfae import LFAEConfig
from dance_any_beat.models.unet3d import UNet3DConfig
from dance_any_beat.music.encoder import MusicEncoderConfig


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models are all per-op overhead: one intra-op thread is faster than two on a shared machine.

    Module-scoped, so the module's own module-scoped fixtures (data sets, checkpoints) run under it too.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def procedural_data(tmp_path_factory) -> Callable[[int], Path]:
    """Makes a tiny procedural data set (2 s clips, 64 px, train split) of `num_clips` clips; returns its folder."""

    def make(num_clips: int) -> Path:
        out = tmp_path_factory.mktemp("procedural")
        make_dataset(out, num_clips, seconds=2.0, size=64, workers=1)
        return out

    return make


@pytest.fixture(scope="module")
def tiny_dabfusion_config() -> DabFusionConfig:
    """A ~40 k-parameter DabFusion: 32 px frames, 8 x 8 latents, windows of 8 frames at 10 fps."""
    lfae = LFAEConfig(image_size=32, latent_size=8, latent_channels=8, base_channels=8, decoder_res_blocks=1,
                      num_regions=2, region_channels=8, region_max_channels=16, region_depth=2, motion_channels=8,
                      motion_max_channels=16, motion_depth=2)  # fmt: skip
    unet = UNet3DConfig(base_channels=8, channel_mults=(1,), num_res_blocks=1, spatial_attention=(False,),
                        temporal_attention=(True,), mid_attention=False, attention_heads=1, attention_head_dim=8,
                        cond_dim=16)  # fmt: skip
    music = MusicEncoderConfig(parts=("mel", "beats"), global_dim=8, frame_dim=8, part_dim=8, mel_channels=8,
                               mel_blocks=1, n_mels=16, beats_hidden=8)  # fmt: skip
    return DabFusionConfig.assemble(lfae, unet, DiffusionConfig(), music, DataConfig(fps=10.0, num_frames=8))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_dabfusion_config: DabFusionConfig) -> Path:
    """`tiny_dabfusion_config` with random weights (seed 0), saved as a DabFusion checkpoint folder."""
    torch.manual_seed(0)
    return DabFusion(tiny_dabfusion_config).save(tmp_path_factory.mktemp("tiny") / "checkpoint")
