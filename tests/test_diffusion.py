"""Diffusion: schedule, noising, training loss, the three samplers and the guided sampling loop.

Sampler correctness is checked against an exact denoiser: for Gaussian data x0 ~ N(mu, s^2) the optimal
epsilon prediction is known in closed form, so every sampler must reproduce the data's mean and spread.
A tiny U-Net training run on toy "flows" (smooth functions of the per-frame rhythm features) checks that the
loss falls and that sampling with the trained model lands near the data.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from dance_any_beat.diffusion import Conditioning as Cond
from dance_any_beat.diffusion import (
    DDIMSampler,
    DDPMSampler,
    DiffusionConfig,
    DPMSolverSampler,
    GaussianDiffusion,
    Sampler,
    SamplingCancelled,
    StepOutput,
    extract,
    guided_prediction,
    make_betas,
    make_sampler,
    sample,
)
from dance_any_beat.models.unet3d import UNet3D, UNet3DConfig

SHAPE = (2, 3, 4, 8, 8)  # (B, C, T, H, W)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_unet(seed: int = 0, **overrides) -> UNet3D:
    cfg = dict(
        ref_channels=2,
        base_channels=8,
        channel_mults=(1, 2),
        num_res_blocks=1,
        spatial_attention=(False, False),
        temporal_attention=(False, True),
        attention_heads=2,
        attention_head_dim=8,
        max_relative_distance=4,
        music_global_dim=4,
        music_frame_dim=2,
        cond_dim=32,
        norm_groups=4,
    )
    cfg.update(overrides)
    torch.manual_seed(seed)
    return UNet3D(UNet3DConfig(**cfg)).eval()


def tiny_cond(b: int = 2, t: int = 4, hw: int = 8, seed: int = 0) -> Cond:
    g = torch.Generator().manual_seed(seed)
    return Cond(
        ref_latent=torch.randn(b, 2, hw, hw, generator=g),
        music_global=torch.randn(b, 4, generator=g),
        music_frames=torch.randn(b, t, 2, generator=g),
        style=torch.randint(0, 11, (b,), generator=g),
    )


def gaussian_oracle(diffusion: GaussianDiffusion, mu: float, std: float):
    """The exact epsilon predictor for data x0 ~ N(mu, std^2) i.i.d. per element, in the model_fn interface."""

    def model_fn(x, t, **_):
        ab = extract(diffusion.alphas_cumprod, t, x.shape).double()
        x64 = x.double()
        # E[x0 | x_t] for a Gaussian prior, then eps = (x_t - sqrt(ab) x0_hat) / sqrt(1 - ab)
        x0_hat = mu + ab.sqrt() * std**2 / (ab * std**2 + 1 - ab) * (x64 - ab.sqrt() * mu)
        out = (x64 - ab.sqrt() * x0_hat) / (1 - ab).sqrt()
        if diffusion.config.prediction == "sample":
            out = x0_hat
        elif diffusion.config.prediction == "v_prediction":
            out = ab.sqrt() * out - (1 - ab).sqrt() * x0_hat
        return out.to(x.dtype)

    return model_fn


class TestConfig:
    def test_round_trips_through_json(self):
        cfg = DiffusionConfig(schedule="linear", dynamic_threshold_quantile=None, clip_range=None, ddim_eta=0.5)
        assert DiffusionConfig(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
        assert DiffusionConfig(**json.loads(json.dumps(dataclasses.asdict(DiffusionConfig())))) == DiffusionConfig()

    def test_paper_defaults(self):
        cfg = DiffusionConfig()
        assert (cfg.num_train_timesteps, cfg.schedule, cfg.prediction) == (1000, "cosine", "epsilon")
        assert cfg.dynamic_threshold_quantile == 0.9

    @pytest.mark.parametrize(
        "field,value,valid",
        [
            ("schedule", "sigmoid", "cosine, linear"),
            ("prediction", "noise", "epsilon, sample, v_prediction"),
            ("timestep_spacing", "uniform", "trailing, leading, linspace"),
            ("ddpm_variance", "learned", "fixed_small, fixed_large"),
        ],
    )
    def test_rejects_unknown_options_listing_valid_ones(self, field: str, value: str, valid: str):
        with pytest.raises(ValueError, match=valid):
            DiffusionConfig(**{field: value})

    def test_rejects_thresholding_without_a_range(self):
        with pytest.raises(ValueError, match="clip_range"):
            DiffusionConfig(clip_range=None)

    def test_make_sampler_by_name(self):
        assert isinstance(make_sampler("ddim", DiffusionConfig()), DDIMSampler)
        assert isinstance(make_sampler("dpmpp_2m", DiffusionConfig()), DPMSolverSampler)
        with pytest.raises(ValueError, match="ddpm, ddim, dpmpp_2m"):
            make_sampler("euler", DiffusionConfig())


class TestSchedule:
    @pytest.mark.parametrize("schedule", ["cosine", "linear"])
    def test_alphas_cumprod_decrease_strictly_within_0_1(self, schedule: str):
        d = GaussianDiffusion(DiffusionConfig(schedule=schedule))
        ab = d.alphas_cumprod
        assert ab.dtype == torch.float32 and ab.shape == (1000,)
        assert torch.all(ab[1:] < ab[:-1])
        assert torch.all((ab > 0) & (ab < 1))
        assert torch.all((d.betas > 0) & (d.betas <= 0.999))

    def test_cosine_endpoints_and_shape(self):
        cfg = DiffusionConfig()
        ab = GaussianDiffusion(cfg).alphas_cumprod.double()
        assert ab[0] > 0.9999  # almost clean after the first step
        assert ab[-1] < 1e-6  # pure noise at the end
        # in between it follows cos^2 (Nichol & Dhariwal eq. 17)
        f = lambda u: math.cos((u + cfg.cosine_s) / (1 + cfg.cosine_s) * math.pi / 2) ** 2  # noqa: E731
        for t in (0, 250, 500, 750, 900):
            assert abs(ab[t].item() - f((t + 1) / 1000) / f(0)) < 1e-6
        assert abs(ab[499].item() - 0.5) < 0.02  # half signal at the middle

    def test_linear_betas_are_the_papers(self):
        betas = make_betas(DiffusionConfig(schedule="linear"))
        assert betas.dtype == torch.float64
        assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)

    def test_extract_broadcasts_per_sample(self):
        a = torch.arange(10.0)
        out = extract(a, torch.tensor([2, 7]), (2, 3, 4, 5, 5))
        assert out.shape == (2, 1, 1, 1, 1) and out.flatten().tolist() == [2.0, 7.0]


class TestAddNoise:
    @pytest.mark.parametrize("t", [0, 100, 500, 999])
    def test_statistics_match_q_xt_given_x0(self, t: int):
        d = GaussianDiffusion(DiffusionConfig())
        g = torch.Generator().manual_seed(0)
        x0 = torch.full((4, 3, 8, 32, 32), 0.5)
        xt = d.add_noise(x0, torch.randn(x0.shape, generator=g), torch.full((4,), t))
        ab = d.alphas_cumprod[t].item()
        assert xt.mean().item() == pytest.approx(0.5 * math.sqrt(ab), abs=0.01)
        assert xt.std().item() == pytest.approx(math.sqrt(1 - ab), rel=0.02, abs=0.002)

    def test_per_sample_timesteps(self):
        d = GaussianDiffusion(DiffusionConfig())
        x0, noise = torch.ones(2, 3, 2, 4, 4), torch.zeros(2, 3, 2, 4, 4)
        xt = d.add_noise(x0, noise, torch.tensor([0, 999]))
        assert xt[0].mean() > 0.99 and xt[1].abs().max() < 1e-3

    @pytest.mark.parametrize("prediction", ["epsilon", "sample", "v_prediction"])
    def test_targets_invert_back_to_x0_and_noise(self, prediction: str):
        d = GaussianDiffusion(DiffusionConfig(prediction=prediction))
        x0, noise = torch.rand(1, 3, 2, 4, 4) - 0.5, torch.randn(1, 3, 2, 4, 4)
        t = torch.tensor([400])
        x0_back, eps_back = d.split_prediction(d.training_target(x0, noise, t), d.add_noise(x0, noise, t), 400)
        torch.testing.assert_close(x0_back, x0, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(eps_back, noise, atol=1e-5, rtol=1e-5)


class TestThreshold:
    def test_dynamic_threshold_keeps_x0_in_range(self):
        d = GaussianDiffusion(DiffusionConfig())
        x0 = 5 * torch.randn(3, 3, 4, 8, 8)
        out = d.threshold(x0)
        assert out.abs().max() <= 1.0 + 1e-6
        # rescaled, not flattened: below the quantile the values keep their order and ratios
        s = torch.quantile(x0[0].abs().flatten(), 0.9)
        inside = x0[0].abs() < s
        torch.testing.assert_close(out[0][inside], x0[0][inside] / s)

    def test_dynamic_threshold_leaves_in_range_samples_alone_per_sample(self):
        d = GaussianDiffusion(DiffusionConfig())
        x0 = torch.stack([0.5 * torch.rand(3, 4, 8, 8) - 0.25, 4 * torch.randn(3, 4, 8, 8)])
        out = d.threshold(x0)
        torch.testing.assert_close(out[0], x0[0])
        assert not torch.allclose(out[1], x0[1])

    def test_static_clip_and_none(self):
        x0 = 3 * torch.randn(2, 3, 2, 4, 4)
        clipped = GaussianDiffusion(DiffusionConfig(dynamic_threshold_quantile=None, clip_range=2.0)).threshold(x0)
        torch.testing.assert_close(clipped, x0.clamp(-2, 2))
        free = GaussianDiffusion(DiffusionConfig(dynamic_threshold_quantile=None, clip_range=None)).threshold(x0)
        torch.testing.assert_close(free, x0)


class TestTrainingLoss:
    def recording_model(self, calls: list):
        def model_fn(x, t, *, ref_latent, music_global, music_frames, style, drop_music):
            calls.append((t, style, drop_music))
            return torch.zeros_like(x)

        return model_fn

    def test_drop_probabilities(self):
        d = GaussianDiffusion(DiffusionConfig())
        cond = Cond(
            ref_latent=torch.zeros(1000, 2, 1, 1),
            music_global=torch.zeros(1000, 4),
            music_frames=torch.zeros(1000, 1, 2),
            style=torch.zeros(1000, dtype=torch.long),
        )
        x0 = torch.zeros(1000, 3, 1, 1, 1)
        g = torch.Generator().manual_seed(0)
        calls: list = []
        d.training_loss(self.recording_model(calls), x0, cond, p_uncond=0.1, p_style_drop=0.5, generator=g)
        t, style, drop = calls[-1]
        assert drop.dtype == torch.bool and 0.07 < drop.float().mean() < 0.13
        assert 0.45 < (style == 10).float().mean() < 0.55 and set(style.tolist()) == {0, 10}
        assert t.min() >= 0 and t.max() <= 999 and len(torch.unique(t)) > 500
        d.training_loss(self.recording_model(calls), x0, cond, p_uncond=0.0, p_style_drop=0.0, generator=g)
        assert not calls[-1][2].any() and not (calls[-1][1] == 10).any()
        d.training_loss(
            self.recording_model(calls), x0, cond, p_uncond=1.0, p_style_drop=1.0, auto_style=7, generator=g
        )
        assert calls[-1][2].all() and (calls[-1][1] == 7).all()

    def test_epsilon_mse_is_one_for_a_zero_model_and_differentiable(self):
        d = GaussianDiffusion(DiffusionConfig())
        g = torch.Generator().manual_seed(0)
        loss = d.training_loss(self.recording_model([]), torch.zeros(8, 3, 4, 8, 8), tiny_cond(8), generator=g)
        assert loss.ndim == 0 and loss.item() == pytest.approx(1.0, abs=0.05)
        model = tiny_unet().train()
        loss = d.training_loss(model, torch.zeros(SHAPE), tiny_cond(), generator=g)
        loss.backward()
        assert torch.isfinite(loss) and model.init_conv.weight.grad is not None

    def test_seeded_loss_is_reproducible(self):
        d, model = GaussianDiffusion(DiffusionConfig()), tiny_unet()
        x0, cond = 0.5 * torch.randn(SHAPE), tiny_cond()
        a = d.training_loss(model, x0, cond, generator=torch.Generator().manual_seed(3))
        b = d.training_loss(model, x0, cond, generator=torch.Generator().manual_seed(3))
        assert a.item() == b.item()


def check_over_configs(sampler_cls: type[Sampler], steps: int, tol: float, **overrides) -> None:
    """Sample Gaussian data with its exact denoiser; the samples must have the data's mean and std."""
    mu, std = 0.3, 0.25
    cfg = DiffusionConfig(**{"dynamic_threshold_quantile": None, "clip_range": None, **overrides})
    sampler = sampler_cls(cfg)
    shape = (2, 3, 4, 16, 16)
    cond = Cond(ref_latent=torch.zeros(2, 1, 1, 1))
    x = sample(
        gaussian_oracle(sampler, mu, std),
        shape,
        cond,
        sampler,
        steps=steps,
        generator=torch.Generator().manual_seed(0),
    )
    assert x.shape == shape and torch.isfinite(x).all()
    assert x.mean().item() == pytest.approx(mu, abs=tol), f"{sampler_cls.__name__} {overrides}: mean {x.mean():.3f}"
    assert x.std().item() == pytest.approx(std, abs=tol), f"{sampler_cls.__name__} {overrides}: std {x.std():.3f}"


class SamplerTest:
    """Shared checks; each subclass names its sampler and the step counts it must handle."""

    sampler_cls: type[Sampler]
    step_counts: tuple[int, ...] = (1, 3, 10)
    oracle_steps: int = 50
    stochastic: bool = False

    def make(self, **overrides) -> Sampler:
        return self.sampler_cls(DiffusionConfig(**overrides))

    @pytest.mark.parametrize(
        "overrides",
        [
            {},
            {"schedule": "linear"},
            {"prediction": "sample"},
            {"prediction": "v_prediction"},
            {"timestep_spacing": "linspace"},
            {"timestep_spacing": "leading"},
        ],
    )
    def test_reproduces_gaussian_data_with_the_exact_denoiser(self, overrides: dict):
        check_over_configs(self.sampler_cls, self.oracle_steps, 0.02, **overrides)

    def test_runs_the_unet_at_several_step_counts(self):
        model, cond = tiny_unet(), tiny_cond()
        sampler = self.make()
        for steps in self.step_counts:
            x = sample(model, SHAPE, cond, sampler, steps=steps, generator=torch.Generator().manual_seed(0))
            assert x.shape == SHAPE and torch.isfinite(x).all()
            assert len(sampler.timesteps) == steps

    def test_seed_determines_the_sample(self):
        model, cond, sampler = tiny_unet(), tiny_cond(), self.make()
        a, b, c = (
            sample(model, SHAPE, cond, sampler, steps=4, guidance_scale=2, generator=torch.Generator().manual_seed(i))
            for i in (1, 1, 2)
        )
        assert torch.equal(a, b)
        assert not torch.allclose(a, c)

    def test_same_start_noise_is_deterministic_unless_stochastic(self):
        model, cond, sampler = tiny_unet(), tiny_cond(), self.make()
        x_t = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
        a = sample(model, SHAPE, cond, sampler, steps=3, latents=x_t, generator=torch.Generator().manual_seed(1))
        b = sample(model, SHAPE, cond, sampler, steps=3, latents=x_t, generator=torch.Generator().manual_seed(2))
        assert torch.equal(a, b) != self.stochastic

    def test_step_returns_thresholded_x0(self):
        sampler = self.make()
        sampler.set_timesteps(10)
        x = torch.randn(SHAPE)
        t = int(sampler.timesteps[0])
        out = sampler.step(torch.randn(SHAPE), t, x, generator=torch.Generator().manual_seed(0))
        assert isinstance(out, StepOutput) and out.prev_sample.shape == SHAPE
        assert out.pred_original_sample.abs().max() <= 1.0 + 1e-6

    def test_unknown_timestep_and_bad_step_counts_are_refused(self):
        sampler = self.make()
        with pytest.raises(ValueError, match="set_timesteps"):
            sampler.step(torch.zeros(SHAPE), 999, torch.zeros(SHAPE))
        for n in (0, 1001):
            with pytest.raises(ValueError, match=r"\[1, 1000\]"):
                sampler.set_timesteps(n)

    def test_schedule_of_timesteps(self):
        sampler = self.make()
        for n in (1, 7, 50, 1000):
            sampler.set_timesteps(n)
            ts = sampler.timesteps
            assert len(ts) == n and ts[0] == 999 and torch.all(ts[1:] < ts[:-1]) and ts[-1] >= 0
        sampler.set_timesteps(1000)
        assert sampler.timesteps.tolist() == list(range(999, -1, -1))


class TestDDPM(SamplerTest):
    sampler_cls = DDPMSampler
    step_counts = (1, 5, 25)
    oracle_steps = 1000  # paper-faithful: every step
    stochastic = True

    def test_strided_steps_and_large_variance(self):
        check_over_configs(DDPMSampler, 100, 0.03)
        check_over_configs(DDPMSampler, 1000, 0.02, ddpm_variance="fixed_large")


class TestDDIM(SamplerTest):
    sampler_cls = DDIMSampler
    oracle_steps = 200  # few-step DDIM under-disperses (its last step returns E[x0 | x_t]); 50 steps: std -10%

    def test_eta_one_is_stochastic_and_still_correct(self):
        check_over_configs(DDIMSampler, 100, 0.03, ddim_eta=1.0)
        model, cond, sampler = tiny_unet(), tiny_cond(), self.make(ddim_eta=1.0)
        x_t = torch.randn(SHAPE)
        a = sample(model, SHAPE, cond, sampler, steps=3, latents=x_t, generator=torch.Generator().manual_seed(1))
        b = sample(model, SHAPE, cond, sampler, steps=3, latents=x_t, generator=torch.Generator().manual_seed(2))
        assert not torch.equal(a, b)

    def test_deterministic_sampling_inverts_a_point_mass(self):
        # a single data point x0: the exact eps-predictor makes every DDIM step land on x0
        sampler = self.make()
        x0 = 0.8 * torch.rand(SHAPE) - 0.4

        def model_fn(x, t, **_):
            ab = extract(sampler.alphas_cumprod, t, x.shape)
            return (x - ab.sqrt() * x0) / (1 - ab).sqrt()

        out = sample(
            model_fn,
            SHAPE,
            Cond(ref_latent=torch.zeros(2, 1, 1, 1)),
            sampler,
            steps=5,
            generator=torch.Generator().manual_seed(0),
        )
        torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)


class TestDPMSolver(SamplerTest):
    sampler_cls = DPMSolverSampler
    oracle_steps = 50

    def test_second_order_beats_ddim_at_few_steps(self):
        errors = {}
        for cls in (DDIMSampler, DPMSolverSampler):
            sampler = cls(DiffusionConfig(dynamic_threshold_quantile=None, clip_range=None))
            oracle = gaussian_oracle(sampler, 0.3, 0.25)
            x_t = torch.randn(4, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
            cond = Cond(ref_latent=torch.zeros(4, 1, 1, 1))
            reference = sample(oracle, x_t.shape, cond, DDIMSampler(sampler.config), steps=1000, latents=x_t)
            errors[cls] = (sample(oracle, x_t.shape, cond, sampler, steps=6, latents=x_t) - reference).abs().mean()
        assert errors[DPMSolverSampler] < errors[DDIMSampler], errors


class TestSampleLoop:
    def test_guidance_scale_one_is_the_conditional_model_alone(self):
        model, cond = tiny_unet(), tiny_cond()
        seen = []

        def cond_only(x, t, **kw):
            seen.append(kw["drop_music"])
            return model(x, t, **kw)

        sampler = DDIMSampler(DiffusionConfig())
        kw = dict(steps=3, generator=torch.Generator().manual_seed(0))
        guided = sample(cond_only, SHAPE, cond, sampler, guidance_scale=1.0, **kw)
        assert all(d.shape == (2,) and not d.any() for d in seen)
        x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
        for t in sampler.timesteps.tolist():  # the same loop by hand, conditional only
            x = sampler.step(model(x, torch.full((2,), t), **cond.kwargs()), t, x).prev_sample
        torch.testing.assert_close(guided, x)

    def test_batched_guidance_matches_separate_passes(self):
        model, cond = tiny_unet(), tiny_cond()
        x = torch.randn(SHAPE)
        t = torch.full((2,), 500)
        with torch.no_grad():
            guided = guided_prediction(model, x, 500, cond, 3.0)
            eps_c = model(x, t, **cond.kwargs(), drop_music=torch.zeros(2, dtype=torch.bool))
            eps_u = model(x, t, **cond.kwargs(), drop_music=torch.ones(2, dtype=torch.bool))
            uncond = guided_prediction(model, x, 500, cond, 0.0)
        torch.testing.assert_close(guided, eps_u + 3.0 * (eps_c - eps_u), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(uncond, eps_u)

    def test_callback_sees_every_step_and_can_cancel(self):
        model, cond, sampler = tiny_unet(), tiny_cond(), DDIMSampler(DiffusionConfig())
        seen = []
        sample(model, SHAPE, cond, sampler, steps=4, callback=lambda i, n, t, x: seen.append((i, n, t, x.shape)))
        assert [s[:3] for s in seen] == [(0, 4, 999), (1, 4, 749), (2, 4, 499), (3, 4, 249)]
        calls = []

        def cancel_at_second(i, n, t, x):
            calls.append(i)
            return i < 1

        with pytest.raises(SamplingCancelled, match="after step 2 of 4") as info:
            sample(model, SHAPE, cond, sampler, steps=4, callback=cancel_at_second)
        assert isinstance(info.value, InterruptedError) and calls == [0, 1]

    def test_no_music_samples_unconditionally(self):
        model = tiny_unet()
        cond = dataclasses.replace(tiny_cond(), music_global=None, music_frames=None)
        x = sample(model, SHAPE, cond, DDIMSampler(DiffusionConfig()), steps=2, guidance_scale=3.0)
        assert x.shape == SHAPE


# ---------------------------------------------------------------------------------------------------------------
# A tiny training run on toy data


def toy_batch(b: int, t: int, generator: torch.Generator) -> tuple[torch.Tensor, Cond]:
    """Toy "flows" driven by the rhythm: per frame, (sin, cos) of the beat phase sets the flow; occlusion ~ 0.5."""
    phase = 2 * math.pi * torch.rand(b, 1, generator=generator) + 2 * math.pi * torch.arange(t) / t  # (B, T)
    frames = torch.stack([torch.sin(phase), torch.cos(phase)], dim=-1)  # (B, T, 2)
    yy = torch.linspace(-1, 1, 8)[:, None].expand(8, 8)  # (H, W) a smooth spatial ramp
    flow_x = 0.6 * frames[..., 0, None, None] * (0.75 + 0.25 * yy)  # (B, T, H, W)
    flow_y = 0.6 * frames[..., 1, None, None] * (0.75 - 0.25 * yy)
    occlusion = torch.full_like(flow_x, 0.5)
    x0 = torch.stack([flow_x, flow_y, occlusion], dim=1)  # (B, 3, T, H, W)
    cond = Cond(ref_latent=torch.zeros(b, 2, 8, 8), music_global=torch.zeros(b, 4), music_frames=frames)
    return x0, cond


def train_tiny(steps: int, seed: int = 0) -> tuple[UNet3D, list[float]]:
    """Train a tiny U-Net on toy data; returns the model and the loss of every step."""
    model = tiny_unet(seed, base_channels=16, temporal_attention=(False, False), mid_attention=False).train()
    diffusion = GaussianDiffusion(DiffusionConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        x0, cond = toy_batch(16, 4, g)
        loss = diffusion.training_loss(model, x0, cond, p_uncond=0.1, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.eval(), losses


def sample_error(model: UNet3D, seed: int = 123) -> float:
    """MSE between DDIM samples for fresh rhythm features and the data those features define."""
    x0, cond = toy_batch(8, 4, torch.Generator().manual_seed(seed))
    x = sample(
        model,
        tuple(x0.shape),
        cond,
        DDIMSampler(DiffusionConfig()),
        steps=20,
        generator=torch.Generator().manual_seed(seed),
    )
    return (x - x0).square().mean().item()


@pytest.mark.slow
def test_tiny_training_lowers_the_loss_and_sampling_lands_near_the_data():
    untrained = tiny_unet(0, base_channels=16, temporal_attention=(False, False), mid_attention=False)
    model, losses = train_tiny(150)
    first, last = sum(losses[:15]) / 15, sum(losses[-15:]) / 15
    assert last < 0.6 * first, f"loss went from {first:.3f} to {last:.3f}"
    trained_err, untrained_err = sample_error(model), sample_error(untrained)
    assert trained_err < 0.6 * untrained_err, f"trained {trained_err:.4f} vs untrained {untrained_err:.4f}"
