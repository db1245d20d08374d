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
    """Where the still (or the part of it around the dancer) sits in the model's square view: scaled to fit (all
    of it visible), centred, the rest padded with its edge pixels. Kept so that flows of the view can be mapped
    back onto the still."""

    still_size: tuple[int, int]  # (W, H) of the original still, pixels
    view: int  # S, side of the model's square view
    box: tuple[int, int, int, int]  # (x, y, w, h) where the region shows inside the view, view pixels
    region: tuple[int, int, int, int] | None = None  # (x, y, w, h) of the still that is framed; None: all of it

    @classmethod
    def fit(cls, width: int, height: int, view: int, region: tuple[int, int, int, int] | None = None) -> Framing:
        """The whole still, or `region` of it (still pixels, inside the still), letterboxed into the view."""
        rw, rh = (width, height) if region is None else region[2:]
        if rw >= rh:
            w, h = view, min(view, max(1, round(view * rh / rw)))
        else:
            w, h = min(view, max(1, round(view * rw / rh))), view
        box = ((view - w) // 2, (view - h) // 2, w, h)
        return cls(still_size=(width, height), view=view, box=box, region=region)

    @property
    def source(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the still that the view shows."""
        return self.region if self.region is not None else (0, 0, *self.still_size)

    def frame(self, still: np.ndarray) -> np.ndarray:
        """(H, W, 3) float still -> (S, S, 3) view: its region resized into the box, edges repeated outwards."""
        x, y, w, h = self.box
        rx, ry, rw, rh = self.source
        part = np.ascontiguousarray(still[ry : ry + rh, rx : rx + rw])
        small = cv2.resize(part, (w, h), interpolation=cv2.INTER_AREA if w <= rw else cv2.INTER_CUBIC)
        small = np.clip(small.reshape(h, w, 3), 0.0, 1.0)
        s = self.view
        return cv2.copyMakeBorder(small, y, s - y - h, x, s - x - w, cv2.BORDER_REPLICATE).reshape(s, s, 3)

    def crop(self, frames: Tensor) -> Tensor:
        """(B, C, S, S) view frames -> (B, C, h, w): the part showing the still's region."""
        x, y, w, h = self.box
        return frames[:, :, y : y + h, x : x + w]

    def still_positions(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(W,), (H,) float64: where the still's pixel centres fall on a size x size map of the view, in that map's
        pixels (pixel centres at integers, OpenCV's convention; grid_sample's with align_corners=False). Pixels
        outside the framed region fall outside the box (or the view), where maps are read at their edge."""
        width, height = self.still_size
        x, y, w, h = self.box
        rx, ry, rw, rh = self.source
        k = size / self.view
        us = x + (np.arange(width) - rx + 0.5) * w / rw  # view position of still pixel centre u, in view pixels
        vs = y + (np.arange(height) - ry + 0.5) * h / rh
        return us * k - 0.5, vs * k - 0.5

    def pixels_per_unit(self) -> tuple[float, float]:
        """Still pixels per unit of view-normalised flow (the view spans 2 units), x and y."""
        _, _, w, h = self.box
        _, _, rw, rh = self.source
        return self.view / 2.0 * rw / w, self.view / 2.0 * rh / h


# How big and where the dancer is in the model's training frames (procedural test clips, frame 0 of ten: height
# 0.41-0.65 of the frame, median 0.60; feet near the bottom): a dancer framed the same way is in familiar territory.
DANCER_SIZE_IN_VIEW = 0.6
DANCER_FEET_MARGIN = 0.08  # of the view, below the dancer's box


def dancer_region(box: tuple[int, int, int, int], still_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The square of the still (x, y, w, h) to frame for a dancer at `box`: the dancer DANCER_SIZE_IN_VIEW of its
    side, centred across, feet near the bottom as in training; moved (not shrunk) to stay inside the still, and
    cut to the still only where the still is smaller than the square (the view then letterboxes it)."""
    x, y, w, h = box
    width, height = still_size
    side = max(w, h) / DANCER_SIZE_IN_VIEW
    left = x + w / 2.0 - side / 2.0
    top = y + h + DANCER_FEET_MARGIN * side - side
    rw, rh = min(side, width), min(side, height)
    left = min(max(left, 0.0), width - rw)
    top = min(max(top, 0.0), height - rh)
    rx, ry = int(np.floor(left)), int(np.floor(top))
    return rx, ry, min(int(np.ceil(rw)), width - rx), min(int(np.ceil(rh)), height - ry)


@dataclass
class PersonLayer:
    """The dancer cut out of the still: only this layer moves; the set stays as it is."""

    mask: np.ndarray  # (H, W) float32 in [0, 1]: the dancer in the still (the layer's alpha)
    background: np.ndarray  # (H, W, 3) uint8 RGB: the still with the dancer removed (filled in)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, C) float in [0, 1] -> contiguous uint8, rounded (OpenCV's remap and inpainting work on these)."""
    return np.ascontiguousarray(np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8))


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def cut_out(still: np.ndarray, mask: np.ndarray) -> PersonLayer:
    """The person layer of `still` (H, W, 3) float in [0, 1] for a soft segmentation `mask` (H, W).

    The layer's alpha is the mask grown by ~0.5% of the still and feathered, so the dancer's anti-aliased edge
    and anything the segmentation shaved off move with them. The background behind them is filled by OpenCV's
    inpainting (Telea) over the mask grown by ~2% (no ghost of the dancer is left where they move away),
    computed at <= 512 px and pasted only inside that area: everywhere else it is the still itself."""
    height, width = mask.shape
    side = max(height, width)
    solid = (mask > 0.5).astype(np.uint8)
    edge = max(1, round(0.005 * side))
    alpha = cv2.GaussianBlur(cv2.dilate(solid, _disc(edge)).astype(np.float32), (0, 0), edge / 2.0)
    alpha = np.maximum(alpha, mask.astype(np.float32))
    hole = cv2.dilate((mask > 0.1).astype(np.uint8), _disc(max(2, round(0.02 * side))))  # 1: fill the background
    image = to_uint8(still)
    scale = min(1.0, 512.0 / side)
    if scale < 1.0:  # inpaint small, then upsample the fill: Telea is slow on big holes
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.inpaint(cv2.resize(image, size, interpolation=cv2.INTER_AREA),
                            cv2.resize(hole, size, interpolation=cv2.INTER_NEAREST), 3, cv2.INPAINT_TELEA)  # fmt: skip
        filled = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    else:
        filled = cv2.inpaint(image, hole, 3, cv2.INPAINT_TELEA)
    background = np.where(hole[..., None] > 0, filled, image)
    return PersonLayer(mask=np.ascontiguousarray(np.clip(alpha, 0.0, 1.0)), background=background)


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


STILL_SAMPLING = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}  # LFAEConfig.reference_warp -> OpenCV


class FullResolution:
    """Frames at the still's own size from the model's motion; built once per still, called once per frame."""

    def __init__(
        self, framing: Framing, still: np.ndarray, flow_size: int, person: PersonLayer | None = None,
        sampling: str = "bilinear",
    ) -> None:
        """framing: where `still` (H, W, 3) float in [0, 1] sits in the view; flow_size: h of the h x h flows;
        person: move only this layer over its background (None: the whole still moves); sampling: how the still
        is read between its pixels, the model's `LFAEConfig.reference_warp` ("bilinear" | "bicubic")."""
        width, height = framing.still_size
        assert still.shape[:2] == (height, width), f"still {still.shape} does not match framing {framing.still_size}"
        if sampling not in STILL_SAMPLING:
            raise ValueError(f"sampling {sampling!r} is not one of {', '.join(STILL_SAMPLING)}")
        self._sampling = STILL_SAMPLING[sampling]
        self._still = to_uint8(still)
        self._person = person
        us, vs = framing.still_positions(flow_size)
        self._rows, self._cols_t = _bilinear_matrix(vs, flow_size), _bilinear_matrix(us, flow_size).T.copy()
        us, vs = framing.still_positions(framing.view)
        map_x = np.broadcast_to(us.astype(np.float32)[None, :], (height, width))
        map_y = np.broadcast_to(vs.astype(np.float32)[:, None], (height, width))
        self._view_table = cv2.convertMaps(np.ascontiguousarray(map_x), np.ascontiguousarray(map_y), cv2.CV_16SC2)
        self._xs = np.ascontiguousarray(np.broadcast_to(np.arange(width, dtype=np.float32)[None, :], (height, width)))
        self._ys = np.ascontiguousarray(np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width)))
        self._to_pixels = framing.pixels_per_unit()

    def frame(self, flow: np.ndarray, occlusion: np.ndarray, decoded: np.ndarray) -> np.ndarray:
        """flow (2, h, h) view-normalised, occlusion (h, h) in [0, 1], decoded (S, S, 3) uint8 view frame ->
        (H, W, 3) uint8: out(p) = still(p + flow(p)) where visible, the decoder's frame where hidden; with a
        person layer, that only where the moved dancer's mask is, the background elsewhere."""
        small = np.concatenate([flow, occlusion[None]]).astype(np.float32)  # (3, h, h)
        flow_x, flow_y, visible = self._rows @ small @ self._cols_t  # 3 x (H, W), exact bilinear reads
        flow_x *= self._to_pixels[0]
        flow_x += self._xs  # the source pixel every still pixel reads
        flow_y *= self._to_pixels[1]
        flow_y += self._ys
        # uint8 in and out: bicubic overshoot is clipped
        warped = cv2.remap(self._still, flow_x, flow_y, self._sampling, borderMode=cv2.BORDER_REPLICATE)
        visible -= OCCLUSION_HIDDEN
        visible *= 1.0 / (OCCLUSION_VISIBLE - OCCLUSION_HIDDEN)
        np.clip(visible, 0.0, 1.0, out=visible)
        painted = cv2.remap(decoded, *self._view_table, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        dancer = cv2.blendLinear(warped, painted, visible, 1.0 - visible)  # (H, W, 3) uint8
        if self._person is None:
            return dancer
        # the dancer's mask moves with the dancer; where it is not, the set shows, as it was
        alpha = cv2.remap(self._person.mask, flow_x, flow_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return cv2.blendLinear(dancer, self._person.background, alpha, 1.0 - alpha)
