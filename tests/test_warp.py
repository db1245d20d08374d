"""Back-warping: flow convention, identity, integer shifts, full-resolution warping, occlusion, shape checks."""

import pytest
import torch
import torch.nn.functional as F

from dance_any_beat.warp import (
    flow_to_grid,
    grid_to_flow,
    identity_grid,
    normalized_to_pixel_flow,
    pixel_to_normalized_flow,
    upsample_flow,
    upsample_occlusion,
    warp,
    warp_full_res,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _constant_pixel_flow(b: int, h: int, w: int, dx: float, dy: float) -> torch.Tensor:
    flow = torch.empty(b, 2, h, w)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow  # (B, 2, h, w) in pixels


def _smooth_image(b: int, size: int) -> torch.Tensor:
    """Low-frequency RGB pattern, so that resampling at different resolutions agrees."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    chans = [torch.sin(2.0 * xs + 1.0), torch.cos(1.5 * ys - 0.5 * xs), torch.sin(xs * ys * 3.0)]
    return (0.5 + 0.4 * torch.stack(chans)).unsqueeze(0).repeat(b, 1, 1, 1)  # (B, 3, size, size)


def test_identity_grid_is_pixel_centres_x_first():
    grid = identity_grid(4, 8)
    assert grid.shape == (1, 2, 4, 8)
    torch.testing.assert_close(grid[0, 0, 0], torch.tensor([-7, -5, -3, -1, 1, 3, 5, 7]) / 8.0)  # x varies along w
    torch.testing.assert_close(grid[0, 1, :, 0], torch.tensor([-3, -1, 1, 3]) / 4.0)  # y varies along h


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("size", [(32, 32), (128, 128), (16, 64)])
def test_zero_flow_is_exact_identity_at_power_of_two_sizes(padding_mode, size):
    torch.manual_seed(0)
    x = torch.randn(2, 5, *size)
    out = warp(x, torch.zeros(2, 2, *size), padding_mode=padding_mode)
    assert out.shape == x.shape
    assert torch.equal(out, x)


@pytest.mark.parametrize("size", [(7, 9), (48, 48), (100, 60)])
def test_zero_flow_is_identity_up_to_rounding_at_other_sizes(size):
    torch.manual_seed(0)
    x = torch.rand(1, 3, *size)  # image values in [0, 1]
    assert (warp(x, torch.zeros(1, 2, *size)) - x).abs().max() < 2e-5  # far below 1/255


def test_integer_pixel_shift_moves_content():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 10, 12)
    dx, dy = 2, -1  # out(p) = x(p + flow): reads 2 px right and 1 px up, so content moves 2 left and 1 down
    out = warp(x, pixel_to_normalized_flow(_constant_pixel_flow(1, 10, 12, dx, dy)))
    torch.testing.assert_close(out[:, :, 1:, :-2], x[:, :, :-1, 2:], atol=1e-5, rtol=0)
    assert out[:, :, :, -2:].abs().max() < 1e-6 and out[:, :, 0].abs().max() < 1e-6  # read from outside: zeros


def test_pixel_normalized_round_trip():
    flow_px = torch.randn(2, 2, 6, 10)
    flow = pixel_to_normalized_flow(flow_px)
    torch.testing.assert_close(flow[:, 0], flow_px[:, 0] * 2 / 10)  # one pixel of a w-wide map is 2 / w
    torch.testing.assert_close(flow[:, 1], flow_px[:, 1] * 2 / 6)
    torch.testing.assert_close(normalized_to_pixel_flow(flow), flow_px)
    torch.testing.assert_close(normalized_to_pixel_flow(flow, (60, 100)), flow_px * 10)  # pixels of a larger image


def test_grid_flow_round_trip():
    flow = torch.randn(2, 2, 5, 6) * 0.1
    grid = flow_to_grid(flow)
    assert grid.shape == (2, 5, 6, 2)
    torch.testing.assert_close(grid_to_flow(grid), flow)


def test_full_res_warp_scales_a_low_res_pixel_to_full_res_pixels():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 128, 128)
    flow = pixel_to_normalized_flow(_constant_pixel_flow(1, 32, 32, 1, 0))  # 1 px at 32 = 4 px at 128
    out = warp_full_res(image, flow)
    torch.testing.assert_close(out[..., :-4], image[..., 4:], atol=1e-5, rtol=0)


def test_full_res_warp_agrees_with_low_res_warp():
    image = _smooth_image(2, 128)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    flow = 0.08 * torch.stack([torch.sin(2 * yy), torch.cos(1.5 * xx)]).unsqueeze(0).repeat(2, 1, 1, 1)
    occlusion = torch.sigmoid(4 * xx).expand(2, 1, 32, 32)
    full = warp_full_res(image, flow, occlusion, padding_mode="border")  # (2, 3, 128, 128)
    low = warp(F.avg_pool2d(image, 4), flow, occlusion, padding_mode="border")  # (2, 3, 32, 32)
    assert full.shape == image.shape
    assert (F.avg_pool2d(full, 4) - low).abs().max() < 0.02


def test_occlusion_multiplies():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    occlusion = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(warp(x, torch.zeros(2, 2, 8, 8), occlusion), x * occlusion, atol=1e-6, rtol=0)
    assert warp(x, torch.zeros(2, 2, 8, 8), torch.zeros(2, 1, 8, 8)).abs().max() == 0


def test_full_res_occlusion_is_upsampled_and_stays_in_range():
    image = torch.ones(1, 3, 64, 48)
    occlusion = torch.rand(1, 1, 16, 12)
    out = warp_full_res(image, torch.zeros(1, 2, 16, 12), occlusion)
    up = upsample_occlusion(occlusion, (64, 48))
    assert up.shape == (1, 1, 64, 48) and up.min() >= 0 and up.max() <= 1
    torch.testing.assert_close(out, up.expand(1, 3, 64, 48), atol=1e-6, rtol=0)


def test_upsample_flow_keeps_normalised_values():
    flow = torch.full((1, 2, 8, 8), 0.25)
    assert upsample_flow(flow, (8, 8)) is flow
    torch.testing.assert_close(upsample_flow(flow, (32, 32)), torch.full((1, 2, 32, 32), 0.25))


def test_gradient_reaches_flow():
    x = _smooth_image(1, 16)
    flow = torch.zeros(1, 2, 16, 16, requires_grad=True)
    warp(x, flow).sum().backward()
    assert flow.grad is not None and flow.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("x_shape", "flow_shape", "occ_shape", "message"),
    [
        ((1, 3, 8, 8), (1, 3, 8, 8), None, r"flow must be \(B, 2, h, w\)"),
        ((1, 3, 8, 8), (1, 2, 4, 4), None, r"must match x \(1, 3, 8, 8\)"),
        ((2, 3, 8, 8), (1, 2, 8, 8), None, "must match x"),
        ((1, 3, 8, 8), (1, 2, 8, 8), (1, 2, 8, 8), r"occlusion must be \(B, 1, h, w\), got \(1, 2, 8, 8\)"),
        ((1, 3, 8, 8), (1, 2, 8, 8), (1, 1, 4, 4), "does not match"),
        ((3, 8, 8), (1, 2, 8, 8), None, r"x must be \(B, C, h, w\)"),
    ],
)
def test_shape_assertions(x_shape, flow_shape, occ_shape, message):
    occ = None if occ_shape is None else torch.ones(occ_shape)
    with pytest.raises(AssertionError, match=message):
        warp(torch.zeros(x_shape), torch.zeros(flow_shape), occ)


def test_full_res_shape_assertions():
    with pytest.raises(AssertionError, match="batch differ"):
        warp_full_res(torch.zeros(2, 3, 64, 64), torch.zeros(1, 2, 16, 16))
    with pytest.raises(AssertionError, match=r"flow must be \(B, 2, h, w\)"):
        warp_full_res(torch.zeros(1, 3, 64, 64), torch.zeros(1, 16, 16))
