"""Latent flow auto-encoder: config, shapes of every call, region maths, losses, VGG-19 loading, a tiny training run.

All on CPU with a tiny config (64 px frames, 16 x 16 latents, a few thousand parameters per part).
"""

import dataclasses
import json
import math
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dance_any_beat.models.keypoints import (
    RegionParams,
    heatmap_to_regions,
    region_motion,
    sparse_motions,
    sqrtm_2x2,
)
from dance_any_beat.models.lfae import LFAE, LFAEConfig, LFAEOutput
from dance_any_beat.models.losses import (
    VGG19_FILE,
    LFAELoss,
    LFAELossConfig,
    RandomTPS,
    VGG19Features,
    edge_loss,
    lfae_loss,
    load_vgg19,
    multiscale_l1,
    perceptual_loss,
    ssim,
    ssim_loss,
)
from dance_any_beat.weights import MissingWeightsError, WeightsFormatError


def tiny_config(**overrides) -> LFAEConfig:
    """A config small enough to train for a hundred steps in seconds on one CPU thread."""
    base = dict(
        image_size=64,
        latent_size=16,
        latent_channels=16,
        base_channels=8,
        encoder_res_blocks=1,
        decoder_res_blocks=1,
        num_regions=4,
        region_channels=8,
        region_max_channels=16,
        region_depth=2,
        motion_channels=8,
        motion_max_channels=16,
        motion_depth=2,
    )
    return LFAEConfig(**{**base, **overrides})


def tiny_model(seed: int = 0, **overrides) -> LFAE:
    torch.manual_seed(seed)
    return LFAE(tiny_config(**overrides))


def images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))  # (B, 3, S, S) in [0, 1]


@contextmanager
def cpu_threads(n: int):
    """Be polite on a shared machine; restore the thread count afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads, and on a shared machine extra threads mostly wait on each other."""
    with cpu_threads(1):
        yield


CONFIG_SWEEP = [
    {},
    {"use_affine": False},
    {"mask_logit_bound": 0.0},
    {"image_size": 64, "latent_size": 32, "region_depth": 3, "motion_depth": 1},
    {"image_size": 32, "latent_size": 8, "region_depth": 1, "motion_depth": 1, "num_regions": 1},
]


def check_over_configs(check) -> None:
    """Run `check(model, config)` for each architecture option in CONFIG_SWEEP."""
    for overrides in CONFIG_SWEEP:
        model = tiny_model(**overrides)
        check(model, model.config)


# ----------------------------------------------------------------------------------------------------------------
# Config


def test_config_round_trips_through_json():
    for config in (LFAEConfig(), tiny_config(use_affine=False)):
        d = json.loads(json.dumps(dataclasses.asdict(config)))
        assert LFAEConfig(**d) == config
    loss_config = LFAELossConfig(vgg19_weights="/x/vgg19.pth", l1_scales=(1.0, 0.5))
    d = json.loads(json.dumps(dataclasses.asdict(loss_config)))
    assert LFAELossConfig(**d) == loss_config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image_size": 96, "latent_size": 32}, "power of 2"),
        ({"latent_size": 12, "image_size": 48, "region_depth": 3}, "divisible by 2\\*\\*region_depth"),
        ({"num_regions": 0}, "num_regions"),
    ],
)
def test_bad_config_is_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        LFAEConfig(**overrides)


def test_loss_config_rejects_non_relu_layers():
    with pytest.raises(ValueError, match="not ReLU outputs"):
        LFAELossConfig(perceptual_layers=(0, 1), perceptual_layer_weights=(1.0, 1.0))


# ----------------------------------------------------------------------------------------------------------------
# Shapes and ranges


def test_shapes_of_every_call():
    def check(model: LFAE, cfg: LFAEConfig) -> None:
        b, s, h, c, k = 2, cfg.image_size, cfg.latent_size, cfg.latent_channels, cfg.num_regions
        ref, drive = images(b, s, 0), images(b, s, 1)
        with torch.no_grad():
            latent = model.encode(ref)
            assert latent.shape == (b, c, h, h)
            motion = model.predict_flow(ref, drive)
            assert motion.flow.shape == (b, 2, h, h)
            assert motion.occlusion.shape == (b, 1, h, h)
            assert motion.occlusion.min() >= 0 and motion.occlusion.max() <= 1
            assert motion.sparse_flows.shape == (b, k + 1, 2, h, h)
            assert motion.mask.shape == (b, k + 1, h, h)
            torch.testing.assert_close(motion.mask.sum(1), torch.ones(b, h, h))
            for regions in (motion.ref_regions, motion.drive_regions):
                assert regions.heatmap.shape == (b, k, h, h)
                torch.testing.assert_close(regions.heatmap.sum((2, 3)), torch.ones(b, k))
                assert regions.shift.shape == (b, k, 2) and regions.shift.abs().max() <= 1
                assert regions.covar.shape == (b, k, 2, 2)
            warped = model.warp(latent, motion.flow, motion.occlusion)
            assert warped.shape == (b, c, h, h)
            image = model.decode(warped)
            assert image.shape == (b, 3, s, s) and image.min() >= 0 and image.max() <= 1
            out = model(ref, drive)
            assert isinstance(out, LFAEOutput)
            assert out.reconstruction.shape == (b, 3, s, s)
            assert out.ref_latent.shape == out.warped_latent.shape == (b, c, h, h)

    check_over_configs(check)


def test_input_shape_assertions_show_shapes():
    model = tiny_model()
    with pytest.raises(AssertionError, match=r"image must be \(B, 3, 64, 64\) RGB in \[0, 1\], got \(1, 3, 32, 32\)"):
        model.encode(torch.zeros(1, 3, 32, 32))
    with pytest.raises(AssertionError, match=r"drive_image must be \(B, 3, 64, 64\)"):
        model.predict_flow(torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64))
    with pytest.raises(AssertionError, match=r"latent must be \(B, 16, 16, 16\), got \(1, 8, 16, 16\)"):
        model.decode(torch.zeros(1, 8, 16, 16))


def test_same_frame_gives_zero_flow():
    """ref == drive: every region's motion is the identity, so the flow is zero and the warp only masks."""

    def check(model: LFAE, cfg: LFAEConfig) -> None:
        ref = images(2, cfg.image_size)
        with torch.no_grad():
            out = model(ref, ref)
        assert out.motion.flow.abs().max() < 1e-5
        torch.testing.assert_close(out.warped_latent, out.ref_latent * out.motion.occlusion, atol=1e-5, rtol=1e-5)

    check_over_configs(check)


def test_compositing_keeps_visible_reference_pixels_and_decodes_hidden_ones():
    model = tiny_model(composite_reference=True).eval()
    cfg, s, h = model.config, model.config.image_size, model.config.latent_size
    ref = images(2, s, seed=1)
    with torch.no_grad():
        latent = model.encode(ref)
        still = torch.zeros(2, 2, h, h)
        visible, hidden = torch.ones(2, 1, h, h), torch.zeros(2, 1, h, h)
        decoded = model.decode(model.warp(latent, still, hidden))
        # zero flow, all visible: the reference's own pixels; all hidden: the decoder's frame alone
        torch.testing.assert_close(model.render(ref, latent, still, visible), ref, atol=1e-6, rtol=0)
        torch.testing.assert_close(model.render(ref, latent, still, hidden), decoded)
        # a flow of +2 pixels in x shows the reference's content 2 pixels further right (edges repeated)
        shifted = torch.zeros(2, 2, h, h)
        shifted[:, 0] = 2 * 2.0 / s
        moved = model.render(ref, latent, shifted, visible)
        torch.testing.assert_close(moved[..., : s - 2], ref[..., 2:], atol=1e-5, rtol=0)
        # forward composites the same way
        out = model(ref, ref)
        torch.testing.assert_close(
            out.reconstruction, model.render(ref, out.ref_latent, out.motion.flow, out.motion.occlusion)
        )
    with pytest.raises(ValueError, match="composites the reference image .composite_reference.: pass ref_image"):
        model.render(None, latent, still, visible)
    assert not LFAEConfig().composite_reference and cfg.composite_reference  # old checkpoints keep their meaning


def test_a_bicubic_reference_warp_keeps_the_stills_sharpness_between_pixels():
    """Moved by half a pixel, the bilinearly sampled still averages neighbours and loses most of its edges'
    contrast; bicubic keeps more of it, stays in [0, 1], and moves by whole pixels exactly as bilinear does."""
    bilinear = tiny_model(composite_reference=True).eval()
    bicubic = LFAE(dataclasses.replace(bilinear.config, reference_warp="bicubic")).eval()
    bicubic.load_state_dict(bilinear.state_dict())  # the same weights: only the sampling differs
    s, h = bilinear.config.image_size, bilinear.config.latent_size
    ref = torch.rand(1, 1, s, s // 2, generator=torch.Generator().manual_seed(3))
    ref = F.interpolate(ref, size=(s, s), mode="nearest").expand(1, 3, s, s)  # fine texture: 2-pixel stripes
    visible = torch.ones(1, 1, h, h)

    def moved(model: LFAE, pixels: float) -> torch.Tensor:
        flow = torch.zeros(1, 2, h, h)
        flow[:, 0] = pixels * 2.0 / s
        with torch.no_grad():
            return model.render(ref, model.encode(ref), flow, visible)

    def contrast(image: torch.Tensor) -> float:
        return float(image.diff(dim=-1).abs().pow(2).mean())

    half_bilinear, half_bicubic = moved(bilinear, 0.5), moved(bicubic, 0.5)
    assert contrast(half_bicubic) > 1.3 * contrast(half_bilinear)
    assert half_bicubic.min() >= 0.0 and half_bicubic.max() <= 1.0
    torch.testing.assert_close(moved(bicubic, 2.0), moved(bilinear, 2.0), atol=1e-5, rtol=0)
    assert LFAEConfig().reference_warp == "bilinear"  # old checkpoints keep their meaning
    with pytest.raises(ValueError, match="reference_warp 'lanczos' is not one of bilinear, bicubic"):
        LFAEConfig(reference_warp="lanczos")


def test_a_guided_decoder_starts_as_its_unguided_self_and_learns_from_the_stills_own_pixels():
    plain = tiny_model(composite_reference=True).eval()
    guided = LFAE(dataclasses.replace(plain.config, decoder_guide=True)).eval()
    result = guided.load_state_dict(plain.state_dict(), strict=False)
    assert result.missing_keys and all(k.startswith("decoder.guides.") for k in result.missing_keys)
    assert not result.unexpected_keys
    s, h = plain.config.image_size, plain.config.latent_size
    ref = images(2, s, seed=4)
    flow = 0.05 * torch.randn(2, 2, h, h, generator=torch.Generator().manual_seed(0))
    half = torch.full((2, 1, h, h), 0.5)
    with torch.no_grad():
        latent = plain.encode(ref)
        # zero-initialised guides: the same frames as before, so fine-tuning starts from the shipped decoder
        torch.testing.assert_close(guided.render(ref, latent, flow, half), plain.render(ref, latent, flow, half))
        torch.testing.assert_close(guided(ref, ref).reconstruction, plain(ref, ref).reconstruction)
        # once trained (here: any weights), the painted parts depend on the still's pixels, not only its latent
        for injection in guided.decoder.guides:
            torch.nn.init.normal_(injection.conv2.weight, std=0.1)
        other = ref.flip(-1)
        assert (guided.render(ref, latent, flow, half) - guided.render(other, latent, flow, half)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="guided by the reference image .decoder_guide.: pass its guide"):
        guided.decode(guided.warp(latent, flow, half))
    with pytest.raises(ValueError, match="decoder_guide needs composite_reference = true"):
        LFAEConfig(decoder_guide=True)
    assert not LFAEConfig().decoder_guide  # old checkpoints keep their meaning


def test_learned_upsampling_starts_bilinear_and_learns_to_put_a_motion_edge_on_the_stills_edge():
    from dance_any_beat.models.lfae import bilinear_neighbour_weights
    from dance_any_beat.warp import upsample_flow, upsample_occlusion

    torch.manual_seed(0)
    model = LFAE(tiny_config(composite_reference=True, decoder_guide=True, learned_upsampling=True))
    s, h = model.config.image_size, model.config.latent_size  # 64, 16: 4 fine pixels per latent pixel
    # the neighbour weights that stand for bilinear upsampling are bilinear upsampling, exactly
    smooth = F.interpolate(torch.randn(1, 2, 4, 4), size=(h, h), mode="bilinear")  # (1, 2, h, h)
    weights = bilinear_neighbour_weights(s // h)  # (9, r, r)
    torch.testing.assert_close(weights.sum(0), torch.ones(s // h, s // h))
    neighbours = F.unfold(F.pad(smooth, (1, 1, 1, 1), mode="replicate"), 3).reshape(1, 2, 9, 1, 1, h, h)
    by_weights = (weights[None, None, :, :, :, None, None] * neighbours).sum(2).permute(0, 1, 4, 2, 5, 3)
    torch.testing.assert_close(by_weights.reshape(1, 2, s, s), upsample_flow(smooth, (s, s)))

    # a bright bar (columns 26-37, not on the 4-pixel grid; soft edges, so the photometric loss has a gradient)
    # moves 3 pixels right over a still black background
    ref = torch.zeros(1, 3, s, s)
    ref[..., 26:38] = 1.0
    ref = F.avg_pool2d(ref, (1, 5), stride=1, padding=(0, 2), count_include_pad=False)
    drive = ref.roll(3, dims=-1)
    true_flow = torch.zeros(1, 2, s, s)
    true_flow[:, 0, :, 29:41] = -3 * 2.0 / s  # drive pixels on the bar read the reference 3 pixels to their left
    flow = F.avg_pool2d(true_flow, s // h)  # (1, 2, h, h): what a latent flow can say, edges blurred
    visible = torch.ones(1, 1, h, h)
    upsampler = model.decoder.upsampler
    with torch.no_grad():  # a new upsampler is bilinear upsampling (to ~1e-3 of a neighbour's difference)
        fine, occ = upsampler(ref, flow, visible)
        torch.testing.assert_close(fine, upsample_flow(flow, (s, s)), atol=5e-3 * flow.abs().max(), rtol=0)
        torch.testing.assert_close(occ, upsample_occlusion(visible, (s, s)))

    def error() -> torch.Tensor:
        return (model.image_guide(ref, flow, visible)[:, :3] - drive).abs().mean()

    with torch.no_grad():
        bilinear_error = error()
    optimiser = torch.optim.Adam(upsampler.parameters(), lr=1e-2)
    for _ in range(150):
        optimiser.zero_grad()
        error().backward()
        optimiser.step()
    with torch.no_grad():
        assert error() < 0.5 * bilinear_error, (float(error()), float(bilinear_error))
    with pytest.raises(ValueError, match="learned_upsampling needs decoder_guide = true"):
        LFAEConfig(composite_reference=True, learned_upsampling=True)
    assert not LFAEConfig().learned_upsampling  # old checkpoints keep their meaning


def test_mask_bound_keeps_every_motion_alive():
    """Even a net that has learned to pick the background everywhere leaves each region a gradient-carrying weight."""
    for bound, floor in ((3.0, 1e-4), (0.0, 0.0)):
        model = tiny_model(mask_logit_bound=bound)
        with torch.no_grad():
            model.dense_motion.mask.bias[0] = 100.0  # background logit far above the others
            mask = model.predict_flow(images(1, 64), images(1, 64, 1)).mask
        assert (mask[:, 1:].min() > floor) if floor else (mask[:, 1:].max() < 1e-30)


def test_affine_strength_zero_is_shift_only():
    ref, drive = images(2, 64, 0), images(2, 64, 1)
    shift_only = tiny_model(use_affine=False)
    affine = tiny_model(use_affine=True)
    affine.set_affine_strength(0.0)
    with torch.no_grad():
        # Same weights; with strength 0 only the Gaussians fed to the dense net differ (covariances vs a fixed one),
        # so compare the per-region flows, which depend on the motions alone.
        a = affine.predict_flow(ref, drive).sparse_flows
        b = shift_only.predict_flow(ref, drive).sparse_flows
    torch.testing.assert_close(a, b)
    with pytest.raises(AssertionError, match=r"affine strength must be in \[0, 1\], got 2"):
        affine.set_affine_strength(2.0)


def test_gradients_reach_every_parameter():
    model = tiny_model()
    ref, drive = images(2, 64, 0), images(2, 64, 1)
    out = model(ref, drive)
    total, parts = lfae_loss(out, drive, LFAELossConfig(), model=model, generator=torch.Generator().manual_seed(0))
    assert set(parts) == {"l1", "ssim", "equivariance_shift", "equivariance_affine"}
    total.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"no or non-finite gradient: {no_grad}"
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero, f"zero gradient: {zero}"


# ----------------------------------------------------------------------------------------------------------------
# Region maths


def _rotation(degrees: float) -> torch.Tensor:
    t = math.radians(degrees)
    return torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def _regions(covar: torch.Tensor) -> RegionParams:
    """(2, 2) covariance -> one region (B = K = 1) at the centre; the heat map is not used by the motion."""
    return RegionParams(
        heatmap=torch.full((1, 1, 4, 4), 1 / 16), shift=torch.zeros(1, 1, 2), covar=covar.view(1, 1, 2, 2)
    )


def test_sqrtm_2x2():
    covar = _rotation(30.0) @ torch.diag(torch.tensor([0.04, 0.01])) @ _rotation(30.0).T
    root, inv = sqrtm_2x2(covar)
    torch.testing.assert_close(root @ root, covar)
    torch.testing.assert_close(root, root.T)
    torch.testing.assert_close(root @ inv, torch.eye(2))


@pytest.mark.parametrize("turn", [0.0, 25.0, -70.0, 85.0])
def test_region_motion_recovers_rotation(turn):
    """An elongated region turned by `turn` degrees from reference to drive: the drive -> reference map turns it
    back."""
    base = _rotation(20.0) @ torch.diag(torch.tensor([0.05, 0.005])) @ _rotation(20.0).T
    rot = _rotation(turn)
    motion = region_motion(_regions(base), _regions(rot @ base @ rot.T), True, 0.3)[0, 0]
    torch.testing.assert_close(motion, rot.T, atol=1e-4, rtol=1e-4)


def test_region_motion_scales_and_ignores_the_turn_of_round_regions():
    base = torch.eye(2) * 0.01
    motion = region_motion(_regions(base), _regions(4 * base), True, 0.3)[0, 0]
    torch.testing.assert_close(motion, torch.eye(2) / 2)  # drive twice as big: halve to get back
    # Slightly elongated regions (anisotropy 0.05, far below 0.3): their orientations are noise and barely count.
    ref = torch.diag(torch.tensor([0.0105, 0.0095]))
    drive = _rotation(60.0) @ ref @ _rotation(60.0).T
    motion = region_motion(_regions(ref), _regions(drive), True, 0.3)[0, 0]
    assert abs(float(motion[1, 0] - motion[0, 1])) < 1e-3  # almost symmetric: no turn
    assert torch.equal(region_motion(_regions(ref), _regions(drive), False, 0.3)[0, 0], torch.eye(2))


def test_region_motion_gradient_is_finite_for_perfectly_round_regions():
    covar = (torch.eye(2) * 0.01).requires_grad_(True)
    region_motion(_regions(covar), _regions(covar * 2), True, 0.3).sum().backward()
    assert covar.grad is not None and torch.isfinite(covar.grad).all()


def test_point_heatmap_gives_pixel_centre_and_pixel_spread():
    heat = torch.zeros(1, 1, 8, 8)
    heat[0, 0, 2, 5] = 1.0  # row 2, column 5
    regions = heatmap_to_regions(heat)
    torch.testing.assert_close(regions.shift[0, 0], torch.tensor([(2 * 5 + 1) / 8 - 1, (2 * 2 + 1) / 8 - 1]))
    torch.testing.assert_close(regions.covar[0, 0], torch.eye(2) * (2 / 8) ** 2 / 12)


def test_sparse_motion_of_a_shifted_region_is_constant():
    heat_ref, heat_drive = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
    heat_ref[0, 0, 3, 3], heat_drive[0, 0, 4, 5] = 1.0, 1.0  # moved 2 px right, 1 px down
    ref, drive = heatmap_to_regions(heat_ref), heatmap_to_regions(heat_drive)
    flows = sparse_motions(ref, drive, (8, 8), region_motion(ref, drive, False, 0.3))  # (1, 2, 2, 8, 8)
    assert flows.shape == (1, 2, 2, 8, 8)
    assert flows[:, 0].abs().max() == 0  # background
    torch.testing.assert_close(flows[0, 1, 0], torch.full((8, 8), -2 * 2 / 8))  # reads back 2 px to the left
    torch.testing.assert_close(flows[0, 1, 1], torch.full((8, 8), -1 * 2 / 8))


# ----------------------------------------------------------------------------------------------------------------
# Losses


def test_pixel_losses():
    x = images(2, 32, 0)
    assert multiscale_l1(x, x) == 0
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    assert ssim_loss(x, x).abs() < 1e-6
    noisy = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    assert ssim_loss(noisy, x) > 0.05 and multiscale_l1(noisy, x) > 0.01
    pred = noisy.clone().requires_grad_(True)
    (ssim_loss(pred, x) + multiscale_l1(pred, x)).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_random_tps_jacobian_matches_autograd():
    tps = RandomTPS(2, sigma_affine=0.1, sigma_tps=0.05, generator=torch.Generator().manual_seed(0))
    points = torch.rand(2, 5, 2) * 1.6 - 0.8
    jac = tps.jacobian(points)  # (2, 5, 2, 2)
    for b in range(2):
        for n in range(5):
            auto = torch.autograd.functional.jacobian(
                lambda p, b=b: tps.transform_points(p.view(1, 1, 2).expand(2, 1, 2))[b, 0], points[b, n]
            )
            torch.testing.assert_close(jac[b, n], auto, atol=1e-4, rtol=1e-4)


def test_identity_tps_is_the_identity():
    tps = RandomTPS(1, sigma_affine=0.0, sigma_tps=0.0)
    x = images(1, 16)
    torch.testing.assert_close(tps.warp_image(x), x, atol=1e-5, rtol=0)


def one_term(**weight: float) -> tuple[LFAE, LFAEOutput, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """A tiny LFAE's reconstruction scored by lfae_loss with every term off but the one weighted here:
    the model, its output, the drive frames, the total and the parts."""
    model = tiny_model()
    drive = images(2, 64, 1)
    out = model(images(2, 64), drive)
    config = LFAELossConfig(**{"l1_weight": 0, "ssim_weight": 0, "equivariance_shift_weight": 0,
                               "equivariance_affine_weight": 0, **weight})  # fmt: skip
    return model, out, drive, *lfae_loss(out, drive, config)


def test_mse_term_is_what_psnr_measures():
    _, out, drive, total, parts = one_term(mse_weight=2.0)
    mse = ((out.reconstruction - drive) ** 2).mean()
    torch.testing.assert_close(parts["mse"], mse.detach())
    torch.testing.assert_close(total, 2.0 * mse)
    assert set(parts) == {"mse"}  # the other terms are off: not computed


def test_the_edge_term_prefers_a_sharp_guess_to_the_blurred_mean():
    """An edge that may be at any of 4 places: MSE prefers the blurred mean of the 4, the edge term a sharp edge at
    one of them (expected over where the edge truly is). In lfae_loss the term is edge_loss times its weight."""

    def step(at: int) -> torch.Tensor:
        image = torch.zeros(1, 3, 48, 48)
        image[..., 22 + at :] = 1.0
        return image

    places = [step(at) for at in range(4)]
    blurred = torch.stack(places).mean(dim=0)

    def expected(loss, guess: torch.Tensor) -> float:
        return sum(float(loss(guess, truth)) for truth in places) / len(places)

    sharp_edge, blur_edge = (sum(expected(edge_loss, guess) for guess in places) / 4, expected(edge_loss, blurred))
    sharp_mse, blur_mse = sum(expected(F.mse_loss, guess) for guess in places) / 4, expected(F.mse_loss, blurred)
    assert edge_loss(places[0], places[0]) == 0
    assert sharp_edge < 0.7 * blur_edge, (sharp_edge, blur_edge)
    assert sharp_mse > 1.5 * blur_mse, (sharp_mse, blur_mse)
    model, out, drive, total, parts = one_term(edge_weight=3.0)
    assert set(parts) == {"edge"}
    torch.testing.assert_close(total, 3.0 * edge_loss(out.reconstruction, drive))
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.decoder.parameters() if p.grad is not None)


def test_loss_needs_model_and_vgg_when_configured():
    model = tiny_model()
    out = model(images(1, 64), images(1, 64, 1))
    with pytest.raises(ValueError, match="need model="):
        lfae_loss(out, images(1, 64, 1), LFAELossConfig())
    with pytest.raises(ValueError, match="vgg19_weights is set but no VGG-19 was passed"):
        lfae_loss(out, images(1, 64, 1), LFAELossConfig(vgg19_weights="x.pth"), model=model)


# ----------------------------------------------------------------------------------------------------------------
# VGG-19 loading


def _vgg_file(tmp_path, layers=(1, 6)) -> tuple[str, dict[str, torch.Tensor]]:
    """A random VGG-19 checkpoint laid out like torchvision's, plus keys the loss must ignore."""
    torch.manual_seed(0)
    state = VGG19Features(layers).state_dict()
    extra = {"features.34.weight": torch.zeros(1), "classifier.0.weight": torch.zeros(2, 2)}
    path = tmp_path / VGG19_FILE
    torch.save({**state, **extra}, path)
    return str(path), state


def test_vgg19_random_weights_round_trip(tmp_path):
    path, state = _vgg_file(tmp_path)
    vgg = load_vgg19(path, layers=(1, 6))
    assert list(vgg.state_dict()) == ["features.0.weight", "features.0.bias", "features.2.weight",
                                      "features.2.bias", "features.5.weight", "features.5.bias"]  # fmt: skip
    for key, value in vgg.state_dict().items():
        assert torch.equal(value, state[key])
    assert not any(p.requires_grad for p in vgg.parameters()) and not vgg.training
    x = images(2, 32)
    feats = vgg(x)
    assert [f.shape for f in feats] == [(2, 64, 32, 32), (2, 128, 16, 16)]
    assert perceptual_loss(vgg, x, x, (1.0, 1.0)) == 0
    pred = images(2, 32, 1).requires_grad_(True)
    perceptual_loss(vgg, pred, x, (1.0, 1.0), scales=(1.0, 0.5)).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_lfae_loss_with_perceptual_term(tmp_path):
    path, _ = _vgg_file(tmp_path)
    config = LFAELossConfig(
        vgg19_weights=path, perceptual_layers=(1, 6), perceptual_layer_weights=(1.0, 0.5), perceptual_scales=(1.0,)
    )
    criterion = LFAELoss(config)
    model = tiny_model()
    drive = images(1, 64, 1)
    total, parts = criterion(model, model(images(1, 64), drive), drive)
    assert "perceptual" in parts and parts["perceptual"] > 0 and torch.isfinite(total)


def test_vgg19_missing_file_says_what_to_do(tmp_path):
    missing = tmp_path / "weights" / VGG19_FILE
    with pytest.raises(FileNotFoundError) as info:
        LFAELoss(LFAELossConfig(vgg19_weights=str(missing)))
    assert isinstance(info.value, MissingWeightsError) and info.value.path == missing
    message = str(info.value)
    for needle in (str(missing), "vgg19_weights", VGG19_FILE, "https://download.pytorch.org/models/", "None"):
        assert needle in message


def test_vgg19_wrong_file_is_rejected(tmp_path):
    wrong_keys = tmp_path / "wrong_keys.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, wrong_keys)
    with pytest.raises(
        WeightsFormatError, match=r"missing keys \(6\): features.0.weight.*; unused keys in the file \(1\): conv1"
    ):
        load_vgg19(wrong_keys, layers=(1, 6))

    wrong_shape = tmp_path / "wrong_shape.pth"
    state = VGG19Features((1, 6)).state_dict()
    state["features.2.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, wrong_shape)
    with pytest.raises(WeightsFormatError, match=r"features.2.weight has shape \(64, 64, 1, 1\), expected"):
        load_vgg19(wrong_shape, layers=(1, 6))

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsFormatError, match="could not read"):
        load_vgg19(garbage)


# ----------------------------------------------------------------------------------------------------------------
# Training


def _moving_shapes(seed: int, frames: int = 16, size: int = 128) -> np.ndarray:
    """Fallback clip (T, H, W, 3) uint8: three discs on a gradient, moving along sine paths."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    background = rng.uniform(0.1, 0.5, 3) + 0.2 * xx[..., None] * np.array([1.0, 0.5, 0.0])
    discs = [(rng.uniform(0.2, 0.8, 2), rng.uniform(0.08, 0.18), rng.uniform(0.3, 1.0, 3), rng.uniform(-0.15, 0.15, 2),
              rng.uniform(0, 2 * np.pi)) for _ in range(3)]  # fmt: skip
    out = np.empty((frames, size, size, 3), np.float32)
    for t in range(frames):
        img = background.copy()
        for centre, radius, colour, amplitude, phase in discs:
            cx, cy = centre + amplitude * np.sin(2 * np.pi * t / frames + phase)
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < radius**2] = colour
        out[t] = img
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def _training_clips(count: int, size: int) -> torch.Tensor:
    """(N, T, 3, size, size) in [0, 1]: procedural dance clips when that module exists, else moving shapes."""
    try:
        from dance_any_beat.data.procedural import make_clip

        frames = [make_clip(seed, seconds=1.0, fps=16, size=128).frames for seed in range(count)]
    except ImportError:
        frames = [_moving_shapes(seed) for seed in range(count)]
    clips = torch.from_numpy(np.stack(frames)).permute(0, 1, 4, 2, 3).float() / 255.0  # (N, T, 3, 128, 128)
    n, t = clips.shape[:2]
    return F.interpolate(clips.flatten(0, 1), size=(size, size), mode="area").reshape(n, t, 3, size, size)


@pytest.mark.slow
def test_tiny_training_run_halves_reconstruction_loss():
    steps, batch = 150, 4
    model = tiny_model()
    clips = _training_clips(4, model.config.image_size)  # (4, T, 3, 64, 64)
    n, t = clips.shape[:2]
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    config = LFAELossConfig()
    gen = torch.Generator().manual_seed(0)
    curve = []
    for _ in range(steps):
        clip = torch.randint(0, n, (batch,), generator=gen)
        ref = clips[clip, torch.randint(0, t, (batch,), generator=gen)]
        drive = clips[clip, torch.randint(0, t, (batch,), generator=gen)]
        total, parts = lfae_loss(model(ref, drive), drive, config, model=model, generator=gen)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        curve.append(parts["l1"].item())
    first, last = np.mean(curve[:10]), np.mean(curve[-10:])
    assert last <= 0.5 * first, f"multi-scale L1 fell only from {first:.4f} to {last:.4f}: {curve[::10]}"
