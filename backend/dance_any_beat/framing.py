"""The still and the model's square view: framing the still in, and compositing frames at the still's own size.

`Framing` letterboxes a still of any size and aspect into the model's S x S view and remembers where it went.
`FullResolution` goes the other way for `--resolution full`: the model's view-sized motion (a flow and an
occlusion map at the latent's h x h, the decoder's S x S frame) read back at every still pixel, the ORIGINAL
still warped by the flow, the decoder's frame only where the occlusion map says the still is hidden.

It works per frame on the CPU in numpy and OpenCV: the 32 x 32 flow and occlusion are read at the still's pixels
exactly (bilinear interpolation is separable: two small matrix products), the still and the decoder's frame are
sampled by OpenCV's `remap` in uint8 (at 1/32-pixel steps; within one level of `grid_sample` in float). At 1080p
on 2 CPU cores this warps about 5x faster, in half the memory, than the float32 `grid_sample` version it
replaced (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from torch import Tensor

# Occlusion (1 = the reference shows this pixel) -> weight of the warped still at full resolution. The LFAE's
# occlusion is soft and rarely exactly 1, so values above VISIBLE take the sharp still alone and values below
# HIDDEN the decoder alone, with a linear blend between.
OCCLUSION_HIDDEN = 0.25
OCCLUSION_VISIBLE = 0.75


@dataclass(frozen=True)
class Framing:
    """Where the still sits in the model's square view: scaled to fit (all of it visible), centred, the rest
    padded with the still's edge pixels. Kept so that flows of the view can be mapped back onto the still."""

    still_size: tuple[int, int]  # (W, H) of the original still, pixels
    view: int  # S, side of the model's square view
    box: tuple[int, int, int, int]  # (x, y, w, h) of the still inside the view, view pixels

    @classmethod
    def fit(cls, width: int, height: int, view: int) -> Framing:
        if width >= height:
            w, h = view, min(view, max(1, round(view * height / width)))
        else:
            w, h = min(view, max(1, round(view * width / height))), view
        return cls(still_size=(width, height), view=view, box=((view - w) // 2, (view - h) // 2, w, h))

    def frame(self, still: np.ndarray) -> np.ndarray:
        """(H, W, 3) float still -> (S, S, 3) view: resized into the box, edges repeated outwards."""
        x, y, w, h = self.box
        shrink = w <= self.still_size[0]
        small = cv2.resize(still, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        small = np.clip(small.reshape(h, w, 3), 0.0, 1.0)
        s = self.view
        return cv2.copyMakeBorder(small, y, s - y - h, x, s - x - w, cv2.BORDER_REPLICATE).reshape(s, s, 3)

    def crop(self, frames: Tensor) -> Tensor:
        """(B, C, S, S) view frames -> (B, C, h, w): the part showing the still."""
        x, y, w, h = self.box
        return frames[:, :, y : y + h, x : x + w]

    def still_positions(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(W,), (H,) float64: where the still's pixel centres fall on a size x size map of the view, in that map's
        pixels (pixel centres at integers, OpenCV's convention; grid_sample's with align_corners=False)."""
        width, height = self.still_size
        x, y, w, h = self.box
        k = size / self.view
        us = x + (np.arange(width) + 0.5) * w / width  # view position of still pixel centre u, in view pixels
        vs = y + (np.arange(height) + 0.5) * h / height
        return us * k - 0.5, vs * k - 0.5


def _bilinear_matrix(positions: np.ndarray, size: int) -> np.ndarray:
    """(n, size) float32 R with (R @ v)[i] = v linearly interpolated at positions[i], edges repeated: bilinear
    resampling is separable, so R_y @ map @ R_x.T reads a map at a grid of positions exactly, in two matmuls."""
    p = np.clip(positions, 0.0, size - 1.0)
    lo = np.floor(p).astype(int)
    hi = np.minimum(lo + 1, size - 1)
    a = p - lo
    out = np.zeros((len(p), size), np.float64)
    rows = np.arange(len(p))
    np.add.at(out, (rows, lo), 1.0 - a)
    np.add.at(out, (rows, hi), a)
    return out.astype(np.float32)


class FullResolution:
    """Frames at the still's own size from the model's motion; built once per still, called once per frame."""

    def __init__(self, framing: Framing, still: np.ndarray, flow_size: int) -> None:
        """framing: where `still` (H, W, 3) float in [0, 1] sits in the view; flow_size: h of the h x h flows."""
        width, height = framing.still_size
        assert still.shape[:2] == (height, width), f"still {still.shape} does not match framing {framing.still_size}"
        self._still = np.ascontiguousarray(np.round(np.clip(still, 0.0, 1.0) * 255.0).astype(np.uint8))
        us, vs = framing.still_positions(flow_size)
        self._rows, self._cols_t = _bilinear_matrix(vs, flow_size), _bilinear_matrix(us, flow_size).T.copy()
        us, vs = framing.still_positions(framing.view)
        map_x = np.broadcast_to(us.astype(np.float32)[None, :], (height, width))
        map_y = np.broadcast_to(vs.astype(np.float32)[:, None], (height, width))
        self._view_table = cv2.convertMaps(np.ascontiguousarray(map_x), np.ascontiguousarray(map_y), cv2.CV_16SC2)
        self._xs = np.ascontiguousarray(np.broadcast_to(np.arange(width, dtype=np.float32)[None, :], (height, width)))
        self._ys = np.ascontiguousarray(np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width)))
        _, _, w, h = framing.box
        # view-normalised flow -> still pixels: x (S / w) still-normalised, then x W / 2 pixels (align_corners=False)
        self._to_pixels = (framing.view / w * width / 2.0, framing.view / h * height / 2.0)

    def frame(self, flow: np.ndarray, occlusion: np.ndarray, decoded: np.ndarray) -> np.ndarray:
        """flow (2, h, h) view-normalised, occlusion (h, h) in [0, 1], decoded (S, S, 3) uint8 view frame ->
        (H, W, 3) uint8: out(p) = still(p + flow(p)) where visible, the decoder's frame where hidden."""
        small = np.concatenate([flow, occlusion[None]]).astype(np.float32)  # (3, h, h)
        flow_x, flow_y, visible = self._rows @ small @ self._cols_t  # 3 x (H, W), exact bilinear reads
        flow_x *= self._to_pixels[0]
        flow_x += self._xs  # the source pixel every still pixel reads
        flow_y *= self._to_pixels[1]
        flow_y += self._ys
        warped = cv2.remap(self._still, flow_x, flow_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        visible -= OCCLUSION_HIDDEN
        visible *= 1.0 / (OCCLUSION_VISIBLE - OCCLUSION_HIDDEN)
        np.clip(visible, 0.0, 1.0, out=visible)
        painted = cv2.remap(decoded, *self._view_table, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return cv2.blendLinear(warped, painted, visible, 1.0 - visible)  # (H, W, 3) uint8
