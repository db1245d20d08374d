"""Back-warping by a dense flow: latent maps at flow resolution, and original stills at any resolution.

Flow convention (used by every model and file in this project):
- A flow is a **backward** displacement field, shape (B, 2, h, w), channel 0 = x (width), channel 1 = y (height).
- Output pixel p samples the source at p + flow(p): ``out(p) = src(p + flow(p))``. So a flow of +d everywhere
  moves the content by -d (it shows what lies d further right/down).
- Units are **normalised grid offsets**: the image spans [-1, 1] edge to edge on each axis
  (``grid_sample(align_corners=False)``), so one pixel of a w-wide map is 2 / w. In these units a flow means
  the same physical motion at every resolution, which is what lets a 32x32 latent flow warp a 1024x1024 still
  after plain bilinear upsampling, with no rescaling. ``pixel_to_normalized_flow`` converts from pixels.
- Zero flow is the identity: the identity grid puts every sample on a pixel centre. It is bit-exact when the
  size is a power of 2 (the latent's 32 and the model's 128); at other sizes float32 rounding in
  ``grid_sample``'s unnormalisation leaves errors of ~1e-5 of a pixel (far below 1/255 of intensity).
- An occlusion map (B, 1, h, w) in [0, 1] (1 = visible in the source) multiplies the warped result.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

PaddingMode = Literal["zeros", "border", "reflection"]
SampleMode = Literal["bilinear", "nearest", "bicubic"]

# align_corners=False everywhere: normalised coordinates then name the same physical point at every resolution.
ALIGN_CORNERS = False


def identity_grid(
    height: int, width: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """(1, 2, h, w) normalised coordinates of the pixel centres (x first), the sampling grid of zero flow."""
    dtype = dtype or torch.get_default_dtype()
    # Pixel centre i of n sits at (2i + 1) / n - 1 when the image spans [-1, 1] (align_corners=False).
    xs = (2.0 * torch.arange(width, device=device, dtype=torch.float64) + 1.0) / width - 1.0  # (w,)
    ys = (2.0 * torch.arange(height, device=device, dtype=torch.float64) + 1.0) / height - 1.0  # (h,)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (h, w) each
    return torch.stack([gx, gy], dim=0).unsqueeze(0).to(dtype)  # (1, 2, h, w)


def _check_flow(flow: Tensor, name: str = "flow") -> None:
    assert flow.ndim == 4 and flow.shape[1] == 2, f"{name} must be (B, 2, h, w) with x first, got {tuple(flow.shape)}"


def pixel_to_normalized_flow(flow_px: Tensor) -> Tensor:
    """(B, 2, h, w) flow in pixels of its own h x w grid -> normalised offsets (one pixel = 2 / size)."""
    _check_flow(flow_px)
    h, w = flow_px.shape[-2:]
    scale = flow_px.new_tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1)
    return flow_px * scale  # (B, 2, h, w)


def normalized_to_pixel_flow(flow: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    """(B, 2, h, w) normalised flow -> pixels of a (H, W) image (default: the flow's own h x w)."""
    _check_flow(flow)
    height, width = size if size is not None else flow.shape[-2:]
    scale = flow.new_tensor([width / 2.0, height / 2.0]).view(1, 2, 1, 1)
    return flow * scale  # (B, 2, h, w)


def flow_to_grid(flow: Tensor) -> Tensor:
    """(B, 2, h, w) normalised flow -> (B, h, w, 2) absolute sampling grid in ``grid_sample``'s layout."""
    _check_flow(flow)
    h, w = flow.shape[-2:]
    grid = identity_grid(h, w, device=flow.device, dtype=flow.dtype) + flow  # (B, 2, h, w)
    return grid.permute(0, 2, 3, 1)  # (B, h, w, 2)


def grid_to_flow(grid: Tensor) -> Tensor:
    """(B, h, w, 2) absolute sampling grid (FOMM's "deformation") -> (B, 2, h, w) normalised flow."""
    assert grid.ndim == 4 and grid.shape[-1] == 2, f"grid must be (B, h, w, 2), got {tuple(grid.shape)}"
    h, w = grid.shape[1:3]
    return grid.permute(0, 3, 1, 2) - identity_grid(h, w, device=grid.device, dtype=grid.dtype)  # (B, 2, h, w)


def _check_occlusion(occlusion: Tensor, x: Tensor | None = None) -> None:
    """(B, 1, h, w); with `x`, also its batch and size."""
    assert occlusion.ndim == 4 and occlusion.shape[1] == 1, (
        f"occlusion must be (B, 1, h, w), got {tuple(occlusion.shape)}"
    )
    if x is not None:
        assert occlusion.shape[0] == x.shape[0] and occlusion.shape[-2:] == x.shape[-2:], (
            f"occlusion {tuple(occlusion.shape)} does not match the warped tensor {tuple(x.shape)}"
        )


def warp(
    x: Tensor,
    flow: Tensor,
    occlusion: Tensor | None = None,
    *,
    padding_mode: PaddingMode = "zeros",
    mode: SampleMode = "bilinear",
) -> Tensor:
    """Back-warp (B, C, h, w) by a same-size normalised flow (B, 2, h, w), then multiply by occlusion (B, 1, h, w).

    Samples falling outside the source read zeros by default (what the occlusion-aware decoder expects to
    inpaint); "border" repeats the edge instead.
    """
    assert x.ndim == 4, f"x must be (B, C, h, w), got {tuple(x.shape)}"
    _check_flow(flow)
    assert flow.shape[0] == x.shape[0] and flow.shape[-2:] == x.shape[-2:], (
        f"flow {tuple(flow.shape)} must match x {tuple(x.shape)} in batch and size; "
        "use warp_full_res for a flow of another resolution"
    )
    out = F.grid_sample(
        x, flow_to_grid(flow.to(x.dtype)), mode=mode, padding_mode=padding_mode, align_corners=ALIGN_CORNERS
    )  # (B, C, h, w)
    if occlusion is not None:
        _check_occlusion(occlusion, out)
        out = out * occlusion.to(out.dtype)
    return out


def upsample_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, 2, h, w) normalised flow -> (B, 2, H, W); bilinear, no rescaling needed in normalised units."""
    _check_flow(flow)
    if tuple(flow.shape[-2:]) == tuple(size):
        return flow
    return F.interpolate(flow, size=size, mode="bilinear", align_corners=ALIGN_CORNERS)  # (B, 2, H, W)


def upsample_occlusion(occlusion: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, 1, h, w) occlusion in [0, 1] -> (B, 1, H, W); bilinear stays inside [0, 1]."""
    _check_occlusion(occlusion)
    if tuple(occlusion.shape[-2:]) == tuple(size):
        return occlusion
    return F.interpolate(occlusion, size=size, mode="bilinear", align_corners=ALIGN_CORNERS)  # (B, 1, H, W)


def warp_full_res(
    image: Tensor,
    flow: Tensor,
    occlusion: Tensor | None = None,
    *,
    padding_mode: PaddingMode = "border",
    mode: SampleMode = "bilinear",
) -> Tensor:
    """Warp an original still (B, C, H, W) of any size by a low-res flow (B, 2, h, w), keeping the still's detail.

    The flow (and occlusion (B, 1, h, w), if given) is upsampled to (H, W); in normalised units that needs no
    rescaling. Padding defaults to "border" so a still's edge is repeated rather than turned black.
    """
    assert image.ndim == 4, f"image must be (B, C, H, W), got {tuple(image.shape)}"
    _check_flow(flow)
    assert flow.shape[0] == image.shape[0], f"flow {tuple(flow.shape)} and image {tuple(image.shape)} batch differ"
    size = (image.shape[-2], image.shape[-1])
    occ = None if occlusion is None else upsample_occlusion(occlusion, size)  # (B, 1, H, W)
    return warp(image, upsample_flow(flow, size), occ, padding_mode=padding_mode, mode=mode)  # (B, C, H, W)
