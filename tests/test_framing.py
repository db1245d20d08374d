"""Full-resolution compositing (OpenCV remap) against a float torch reference built with grid_sample."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dance_any_beat.framing import OCCLUSION_HIDDEN, OCCLUSION_VISIBLE, Framing, FullResolution, cut_out, dancer_region
from dance_any_beat.warp import warp

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_frame(framing: Framing, still: np.ndarray, flow, occlusion, decoded) -> np.ndarray:
    """The same frame the slow way: every view map read at the still's pixel centres by grid_sample in float64."""
    width, height = framing.still_size
    x, y, w, h = framing.box
    s = framing.view
    us = (x + (np.arange(width) + 0.5) * w / width) * 2.0 / s - 1.0  # view-normalised, align_corners=False
    vs = (y + (np.arange(height) + 0.5) * h / height) * 2.0 / s - 1.0
    gy, gx = np.meshgrid(vs, us, indexing="ij")
    grid = torch.from_numpy(np.stack([gx, gy], -1))[None]  # (1, H, W, 2)

    def read(maps: np.ndarray) -> torch.Tensor:  # (C, m, m) -> (1, C, H, W)
        return F.grid_sample(torch.from_numpy(maps)[None].double(), grid, mode="bilinear", padding_mode="border",
                             align_corners=False)  # fmt: skip

    flow_still = read(flow) * torch.tensor([s / w, s / h], dtype=torch.float64).view(1, 2, 1, 1)
    visible = ((read(occlusion[None]) - OCCLUSION_HIDDEN) / (OCCLUSION_VISIBLE - OCCLUSION_HIDDEN)).clamp(0, 1)
    source = torch.from_numpy(np.round(still * 255.0) / 255.0).permute(2, 0, 1)[None].double()
    warped = warp(source, flow_still, padding_mode="border")
    painted = read(decoded.transpose(2, 0, 1).astype(np.float64) / 255.0)
    out = warped * visible + painted * (1.0 - visible)
    return (out[0].permute(1, 2, 0).clamp(0, 1) * 255.0).round().numpy().astype(np.uint8)


@pytest.mark.parametrize("width,height", [(97, 61), (40, 90), (64, 64)])
def test_remap_compositing_matches_grid_sample(width, height):
    rng = np.random.default_rng(width)
    framing = Framing.fit(width, height, 32)
    ys, xs = np.mgrid[0:height, 0:width]
    still = np.stack([np.sin(xs / 7.0), np.cos(ys / 5.0), np.sin((xs + ys) / 9.0)], -1) * 0.4 + 0.5  # smooth RGB
    flow = (rng.normal(size=(2, 4, 4)) * 0.08).astype(np.float32)
    flow = F.interpolate(torch.from_numpy(flow)[None], size=(8, 8), mode="bilinear")[0].numpy()  # smooth (2, 8, 8)
    occlusion = rng.uniform(0.0, 1.0, size=(8, 8)).astype(np.float32)  # hidden, blended and visible parts
    coarse = torch.from_numpy(rng.uniform(0.0, 255.0, size=(1, 3, 8, 8)))
    decoded = F.interpolate(coarse, size=(32, 32), mode="bilinear")[0].permute(1, 2, 0).round().byte().numpy()

    frame = FullResolution(framing, still.astype(np.float32), 8).frame(flow, occlusion, decoded)
    expected = reference_frame(framing, still, flow.astype(np.float64), occlusion.astype(np.float64), decoded)
    assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
    diff = np.abs(frame.astype(int) - expected.astype(int))
    # OpenCV reads the still and the decoder's frame at 1/32-pixel steps in fixed point: a level at most
    assert diff.max() <= 1 and diff.mean() < 0.25, (diff.max(), diff.mean())


def test_hidden_pixels_come_from_the_decoder_and_visible_ones_from_the_still():
    framing = Framing.fit(48, 32, 32)
    still = np.full((32, 48, 3), 0.2, np.float32)
    decoded = np.full((32, 32, 3), 200, np.uint8)
    full = FullResolution(framing, still, 8)
    flow = np.zeros((2, 8, 8), np.float32)
    hidden = full.frame(flow, np.zeros((8, 8), np.float32), decoded)
    visible = full.frame(flow, np.ones((8, 8), np.float32), decoded)
    assert np.all(hidden == 200) and np.all(visible == 51)


def test_a_bicubic_model_reads_the_still_bicubically_at_full_resolution():
    """As LFAEConfig.reference_warp = "bicubic" samples the view: a still moved by half a pixel keeps more of its
    fine texture than bilinearly, stays in range, and moves by whole pixels exactly as bilinear does."""
    framing = Framing.fit(64, 64, 32)
    rng = np.random.default_rng(0)
    still = np.repeat(rng.uniform(0.0, 1.0, size=(64, 32, 3)), 2, axis=1).astype(np.float32)  # 2-pixel stripes
    decoded = np.zeros((32, 32, 3), np.uint8)
    visible = np.ones((8, 8), np.float32)
    px = 2.0 / 64  # one still pixel in view-normalised units (the still fills the 32 px view at 2 still px each)

    def moved(sampling: str, pixels: float) -> np.ndarray:
        flow = np.zeros((2, 8, 8), np.float32)
        flow[0] = pixels * px
        return FullResolution(framing, still, 8, sampling=sampling).frame(flow, visible, decoded).astype(float)

    def contrast(frame: np.ndarray) -> float:
        return float((np.diff(frame[:, 4:-4], axis=1) ** 2).mean())

    assert contrast(moved("bicubic", 0.5)) > 1.3 * contrast(moved("bilinear", 0.5))
    np.testing.assert_array_equal(moved("bicubic", 2.0)[:, 4:-4], moved("bilinear", 2.0)[:, 4:-4])
    with pytest.raises(ValueError, match="sampling 'lanczos' is not one of bilinear, bicubic"):
        FullResolution(framing, still, 8, sampling="lanczos")


def test_dancer_region_frames_the_dancer_as_in_training():
    # a 100 px dancer in a 1000x600 still: a 167 px square, dancer centred across, feet near its bottom
    x, y, w, h = dancer_region((400, 300, 60, 100), (1000, 600))
    assert (w, h) == (167, 167) and abs((x + w / 2) - 430) <= 1
    assert 0.05 < (y + h - 400) / h < 0.1 and y <= 300 - 0.3 * h
    # near an edge the square moves inside rather than shrinking; a still smaller than it is cut to the still
    assert dancer_region((0, 0, 60, 100), (1000, 600))[:2] == (0, 0)
    assert dancer_region((10, 10, 300, 500), (400, 560)) == (0, 0, 400, 560)


def test_a_framed_region_maps_flows_back_in_still_pixels():
    """Framing a region of the still: one view-normalised unit of flow is S/2 view pixels = S/2 * rw/w still px."""
    framing = Framing.fit(400, 300, 32, region=(100, 50, 120, 160))
    assert framing.box == (4, 0, 24, 32)  # 120x160 letterboxed into 32: 24x32
    us, vs = framing.still_positions(32)
    # the region's left / top edges sit on the box's edges (pixel centres half a pixel inside)
    assert us[100] == pytest.approx(4 + 0.5 * 24 / 120 - 0.5) and vs[50] == pytest.approx(0.5 * 32 / 160 - 0.5)
    assert framing.pixels_per_unit() == pytest.approx((16 * 120 / 24, 16 * 160 / 32))
    still = np.zeros((300, 400, 3), np.float32)
    still[50:210, 100:220] = 1.0  # the region is white, the rest black
    assert framing.frame(still)[:, 4:28].min() == 1.0


def test_only_the_dancer_moves_over_the_set():
    """A person layer: a shifted dancer, the set outside their reach untouched, the dancer's old place filled."""
    rng = np.random.default_rng(0)
    set_ = cv2.GaussianBlur(rng.uniform(0.0, 1.0, (120, 160, 3)).astype(np.float32), (0, 0), 3)  # textured
    still = set_.copy()
    mask = np.zeros((120, 160), np.float32)
    mask[40:100, 70:90] = 1.0
    still[40:100, 70:90] = (0.9, 0.1, 0.1)  # a red dancer
    framing = Framing.fit(160, 120, 32, region=(40, 20, 80, 80))
    layer = cut_out(still, mask)
    full = FullResolution(framing, still, 8, layer)
    decoded = np.zeros((32, 32, 3), np.uint8)
    flow = np.zeros((2, 8, 8), np.float32)
    flow[0] = -10.0 / framing.pixels_per_unit()[0]  # out(p) = still(p - 10 px): the dancer moves 10 px right
    frame = full.frame(flow, np.ones((8, 8), np.float32), decoded).astype(int)
    expected = np.round(still * 255).astype(int)
    assert np.abs(frame[45:95, 82:98] - expected[45:95, 72:88]).max() <= 2  # the dancer, 10 px to the right
    far = np.ones((120, 160), bool)
    far[25:115, 55:115] = False  # beyond the dancer's reach (their box grown by 15 px)
    assert np.abs(frame[far] - expected[far]).max() <= 1  # the set, as it was
    assert frame[60:80, 70:75, 0].mean() < 150  # where the dancer stood, the set is filled in (not red)
