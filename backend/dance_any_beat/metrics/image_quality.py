"""SSIM and PSNR for frames and batches of frames, numpy or torch.

SSIM follows Wang et al. 2004: an 11x11 Gaussian window (sigma 1.5), C1 = (0.01 L)^2, C2 = (0.03 L)^2, biased
(population) local moments, the map averaged over the 'valid' region (windows fully inside the image), per
channel, then over channels. L, the data range, is 255 for uint8 and 1 for floats (images in [0, 1]) unless
given.

Layout: numpy images are channels-last (..., H, W, C), like the project's frames; torch images are
channels-first (..., C, H, W). Override with channel_axis. Any leading axes are a batch: the result has their
shape (0-d for one image), and the type of the input.
"""

import numpy as np
import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03

Image = np.ndarray | torch.Tensor


def _data_range(x: Image, data_range: float | None) -> float:
    if data_range is not None:
        return float(data_range)
    return 255.0 if x.dtype in (np.uint8, torch.uint8) else 1.0


def _as_nchw(x: Image, y: Image, channel_axis: int | None) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Both images -> float (N, C, H, W) tensors, plus the leading (batch) shape to restore."""
    if type(x) is not type(y):
        raise TypeError(f"images must be both numpy or both torch, got {type(x).__name__} and {type(y).__name__}")
    if tuple(x.shape) != tuple(y.shape):
        raise ValueError(f"images must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.ndim < 3:
        raise ValueError(f"images need a channel axis and two spatial axes, got shape {tuple(x.shape)}")
    is_numpy = isinstance(x, np.ndarray)
    if channel_axis is None:
        channel_axis = -1 if is_numpy else -3
    tx = torch.from_numpy(np.ascontiguousarray(x)) if is_numpy else x
    ty = torch.from_numpy(np.ascontiguousarray(y)) if is_numpy else y
    dtype = torch.float64 if tx.device.type == "cpu" else torch.float32
    tx = torch.movedim(tx, channel_axis, -3).to(dtype)  # (..., C, H, W)
    ty = torch.movedim(ty, channel_axis, -3).to(dtype)
    lead = tuple(tx.shape[:-3])
    return tx.reshape(-1, *tx.shape[-3:]), ty.reshape(-1, *ty.shape[-3:]), lead


def _finish(values: torch.Tensor, lead: tuple[int, ...], like: Image) -> Image:
    values = values.reshape(lead)
    return values.cpu().numpy() if isinstance(like, np.ndarray) else values


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """(size,) normalised 1-D Gaussian; SSIM's 2-D window is its outer product."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    w = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return w / w.sum()


def _local_mean(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """(M, 1, H, W) -> (M, 1, H - k + 1, W - k + 1) Gaussian-weighted means over fully-inside windows."""
    k = window.numel()
    x = F.conv2d(x, window.view(1, 1, k, 1))
    return F.conv2d(x, window.view(1, 1, 1, k))


def ssim_per_image(
    a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA
) -> torch.Tensor:
    """SSIM (N,) of (N, C, H, W) tensors, in their own dtype and device and differentiable (the LFAE's SSIM loss
    is this too), averaged over channels and the window positions fully inside the image."""
    n, c, h, w = a.shape
    if h < window or w < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window}, got {h}x{w}")
    kernel = torch.as_tensor(gaussian_window(window, sigma), dtype=a.dtype, device=a.device)
    a = a.reshape(n * c, 1, h, w)
    b = b.reshape(n * c, 1, h, w)
    mu_a, mu_b = _local_mean(a, kernel), _local_mean(b, kernel)
    var_a = _local_mean(a * a, kernel) - mu_a**2
    var_b = _local_mean(b * b, kernel) - mu_b**2
    cov = _local_mean(a * b, kernel) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean(dim=(1, 2, 3)).reshape(n, c).mean(dim=1)  # (N,)


def ssim(x: Image, y: Image, *, data_range: float | None = None, channel_axis: int | None = None) -> Image:
    """Mean SSIM per image (1 = identical). See the module docstring for layout and data range."""
    L = _data_range(x, data_range)
    tx, ty, lead = _as_nchw(x, y, channel_axis)  # (N, C, H, W)
    return _finish(ssim_per_image(tx, ty, data_range=L), lead, x)


def psnr(x: Image, y: Image, *, data_range: float | None = None, channel_axis: int | None = None) -> Image:
    """PSNR in dB per image, 10 log10(L^2 / MSE) over all pixels and channels; identical images give inf."""
    L = _data_range(x, data_range)
    tx, ty, lead = _as_nchw(x, y, channel_axis)  # (N, C, H, W)
    mse = ((tx - ty) ** 2).mean(dim=(1, 2, 3))  # (N,)
    return _finish(10.0 * torch.log10(L**2 / mse), lead, x)
