"""Gaussian diffusion for the stage-2 flow generator: noise schedule, training loss, samplers, guided sampling.

DabFusion's setting: 1000 training steps, cosine schedule, epsilon prediction, dynamic thresholding of the
predicted x0 at the 0.9 quantile, classifier-free guidance over the music (dropped for 10% of training samples).

- `GaussianDiffusion` holds the schedule (float64 math, stored float32) and does what training needs:
  `add_noise`, `training_loss`. It is not an nn.Module and holds no weights.
- The samplers (`DDPMSampler`, `DDIMSampler`, `DPMSolverSampler`) extend it with a diffusers-like API:
  `set_timesteps(n)`, then `step(model_out, t, x, generator)` -> `StepOutput` for each `t` in `timesteps`.
- `sample` runs the loop with classifier-free guidance, progress callback and cancel.

The denoiser is any callable with the keyword interface of `UNet3D.forward`:
`model_fn(x, t, ref_latent=..., music_global=..., music_frames=..., style=..., drop_music=...) -> (B, 3, T, H, W)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from dance_any_beat.styles import STYLES

Schedule = Literal["cosine", "linear"]
SCHEDULES: tuple[str, ...] = ("cosine", "linear")
Prediction = Literal["epsilon", "sample", "v_prediction"]
PREDICTIONS: tuple[str, ...] = ("epsilon", "sample", "v_prediction")
TimestepSpacing = Literal["trailing", "leading", "linspace"]
TIMESTEP_SPACINGS: tuple[str, ...] = ("trailing", "leading", "linspace")
DDPMVariance = Literal["fixed_small", "fixed_large"]
DDPM_VARIANCES: tuple[str, ...] = ("fixed_small", "fixed_large")
SamplerName = Literal["ddpm", "ddim", "dpmpp_2m"]
SAMPLER_NAMES: tuple[str, ...] = ("ddpm", "ddim", "dpmpp_2m")

AUTO_STYLE = len(STYLES)  # the style label meaning "auto" (no style), as UNet3DConfig.num_styles defaults


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


@dataclass
class DiffusionConfig:
    """The noise process and how samplers treat it; round-trips through asdict -> JSON -> DiffusionConfig(**d)."""

    num_train_timesteps: int = 1000  # N: discrete diffusion steps the model is trained on
    schedule: Schedule = "cosine"  # beta schedule: "cosine" (Nichol & Dhariwal 2021) or "linear" (Ho et al. 2020)
    beta_start: float = 1e-4  # linear schedule: beta_1
    beta_end: float = 0.02  # linear schedule: beta_N
    cosine_s: float = 0.008  # cosine schedule: offset s that keeps beta_1 from being vanishingly small
    max_beta: float = 0.999  # cosine schedule: betas are clipped here so the last steps stay finite
    prediction: Prediction = "epsilon"  # what the model outputs: noise (DabFusion), x0, or v (Salimans & Ho)
    clip_range: float | None = 1.0  # data lives in [-r, r]: predicted x0 is clipped (or thresholded) to it
    dynamic_threshold_quantile: float | None = 0.9  # Imagen dynamic thresholding of x0 (None: plain clipping)
    timestep_spacing: TimestepSpacing = "trailing"  # how n sampling steps pick from N (trailing starts at N-1)
    ddpm_variance: DDPMVariance = "fixed_small"  # DDPM posterior variance: beta-tilde (small) or beta (large)
    ddim_eta: float = 0.0  # DDIM stochasticity: 0 = deterministic ODE-like, 1 = DDPM-like

    def __post_init__(self) -> None:
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("prediction", self.prediction, PREDICTIONS)
        _check_choice("timestep_spacing", self.timestep_spacing, TIMESTEP_SPACINGS)
        _check_choice("ddpm_variance", self.ddpm_variance, DDPM_VARIANCES)
        if self.num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1, got {self.num_train_timesteps}")
        q = self.dynamic_threshold_quantile
        if q is not None and not 0.0 < q <= 1.0:
            raise ValueError(f"dynamic_threshold_quantile must be in (0, 1] or None, got {q}")
        if q is not None and self.clip_range is None:
            raise ValueError("dynamic thresholding needs clip_range (the data range it rescales into)")
        if self.clip_range is not None and self.clip_range <= 0:
            raise ValueError(f"clip_range must be > 0 or None, got {self.clip_range}")
        if self.ddim_eta < 0:
            raise ValueError(f"ddim_eta must be >= 0, got {self.ddim_eta}")


def make_betas(config: DiffusionConfig) -> Tensor:
    """beta_1..beta_N in float64."""
    n = config.num_train_timesteps
    if config.schedule == "linear":
        return torch.linspace(config.beta_start, config.beta_end, n, dtype=torch.float64)
    # cosine: alpha_bar(u) = cos^2(pi/2 (u + s) / (1 + s)), beta_i = 1 - alpha_bar(i/N) / alpha_bar((i-1)/N)  (eq. 17)
    u = torch.arange(n + 1, dtype=torch.float64) / n
    alpha_bar = torch.cos((u + config.cosine_s) / (1 + config.cosine_s) * math.pi / 2) ** 2
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=config.max_beta)


def extract(a: Tensor, t: Tensor, x_shape: torch.Size | tuple[int, ...]) -> Tensor:
    """Gather a[t] per sample and shape it to broadcast against x: (N,), (B,) -> (B, 1, ..., 1)."""
    t = torch.as_tensor(t).reshape(-1)
    out = a.to(t.device)[t.long()]  # (B,) or (1,)
    return out.reshape(t.shape[0], *((1,) * (len(x_shape) - 1)))


def _randn(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """Gaussian noise drawn on the generator's device (so a CPU seed reproduces on any device), then moved."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=gen_device).to(device)


# ---------------------------------------------------------------------------------------------------------------
# Conditioning and the denoiser interface


@dataclass
class Conditioning:
    """What the denoiser is conditioned on; every tensor is batch-first with the same B."""

    ref_latent: Tensor  # (B, C_ref, H, W) LFAE latent of the reference frame (never dropped)
    music_global: Tensor | None = None  # (B, Dg) global music vector; None with music_frames: no music at all
    music_frames: Tensor | None = None  # (B, T, Df) per-frame rhythm features
    style: Tensor | None = None  # (B,) long dance-style labels, num_styles = auto; None: auto for every row

    def kwargs(self) -> dict[str, Tensor | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def repeat(self, n: int) -> Conditioning:
        """Each row n times along the batch, as blocks: [all rows] * n (for cond/uncond in one forward)."""
        return Conditioning(**{k: None if v is None else torch.cat([v] * n) for k, v in self.kwargs().items()})


class DenoiserFn(Protocol):
    def __call__(
        self,
        x: Tensor,
        t: Tensor,
        *,
        ref_latent: Tensor,
        music_global: Tensor | None,
        music_frames: Tensor | None,
        style: Tensor | None,
        drop_music: Tensor | None,
    ) -> Tensor: ...


StepCallback = Callable[[int, int, int, Tensor], bool | None]


class SamplingCancelled(InterruptedError):
    """The step callback returned False: the caller asked to stop."""


# ---------------------------------------------------------------------------------------------------------------
# The schedule and training


class GaussianDiffusion:
    """The forward (noising) process q(x_t | x_0) with its precomputed schedule, plus the training loss."""

    def __init__(self, config: DiffusionConfig):
        self.config = config
        betas = make_betas(config)  # float64 math ...
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        # ... stored float32: beta_t, alpha_bar_t and the roots used by q(x_t | x_0)
        self.betas = betas.float()
        self.alphas_cumprod = alphas_cumprod.float()
        self.sqrt_alphas_cumprod = alphas_cumprod.sqrt().float()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - alphas_cumprod).sqrt().float()
        self._alphas_cumprod64 = alphas_cumprod  # samplers read scalars from it

    @property
    def num_train_timesteps(self) -> int:
        return self.config.num_train_timesteps

    def alpha_bar(self, t: int) -> float:
        """alpha_bar_t as a Python float (1.0 for t < 0: the clean data after the last step)."""
        return 1.0 if t < 0 else float(self._alphas_cumprod64[t])

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (Ho et al. eq. 4); t: (B,) or scalar."""
        assert x0.shape == noise.shape, f"x0 {tuple(x0.shape)} and noise {tuple(noise.shape)} must match"
        t = torch.as_tensor(t, device=x0.device).reshape(-1).expand(x0.shape[0])
        a = extract(self.sqrt_alphas_cumprod, t, x0.shape).to(x0.dtype)
        s = extract(self.sqrt_one_minus_alphas_cumprod, t, x0.shape).to(x0.dtype)
        return a * x0 + s * noise

    def velocity(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 (Salimans & Ho 2022)."""
        t = torch.as_tensor(t, device=x0.device).reshape(-1).expand(x0.shape[0])
        a = extract(self.sqrt_alphas_cumprod, t, x0.shape).to(x0.dtype)
        s = extract(self.sqrt_one_minus_alphas_cumprod, t, x0.shape).to(x0.dtype)
        return a * noise - s * x0

    def training_target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        if self.config.prediction == "epsilon":
            return noise
        if self.config.prediction == "sample":
            return x0
        return self.velocity(x0, noise, t)

    def split_prediction(self, model_out: Tensor, x: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """(x0, eps) from the model output at the single step t, whatever the model predicts."""
        ab = self.alpha_bar(t)
        sa, sb = math.sqrt(ab), math.sqrt(1.0 - ab)
        if self.config.prediction == "epsilon":
            eps = model_out
            x0 = (x - sb * eps) / sa  # Ho et al. eq. 15 solved for x0
        elif self.config.prediction == "sample":
            x0 = model_out
            eps = (x - sa * x0) / max(sb, 1e-12)
        else:  # v = sa eps - sb x0, x = sa x0 + sb eps
            x0 = sa * x - sb * model_out
            eps = sa * model_out + sb * x
        return x0, eps

    def threshold(self, x0: Tensor) -> Tensor:
        """Keep the predicted x0 inside [-r, r] (r = clip_range).

        Dynamic thresholding (Saharia et al. 2022, Imagen, sec. 2.3): s = the quantile of |x0| per sample,
        clamped to >= r; clip to [-s, s] and rescale by r / s. Saturated samples are pulled in rather than
        flattened, which keeps flows from piling up at the boundary under strong guidance.
        """
        cfg = self.config
        r = cfg.clip_range
        if r is None:
            return x0
        if cfg.dynamic_threshold_quantile is None:
            return x0.clamp(-r, r)
        b = x0.shape[0]
        flat = x0.detach().abs().reshape(b, -1).float()  # (B, D)
        s = torch.quantile(flat, cfg.dynamic_threshold_quantile, dim=1).clamp(min=r)  # (B,)
        s = s.to(x0.dtype).reshape(b, *((1,) * (x0.ndim - 1)))  # (B, 1, ..., 1)
        return torch.maximum(torch.minimum(x0, s), -s) * (r / s)

    def training_loss(
        self,
        model_fn: DenoiserFn,
        x0: Tensor,
        cond: Conditioning,
        *,
        p_uncond: float = 0.1,
        p_style_drop: float = 0.5,
        auto_style: int = AUTO_STYLE,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The simple loss (Ho et al. eq. 14): MSE between the model output and its target at a random step.

        Classifier-free guidance training (Ho & Salimans 2022): each sample's music is dropped with probability
        `p_uncond` (the model then sees its learned null embeddings); independently, its style label becomes
        `auto_style` with probability `p_style_drop`, so "auto" is a style the model knows.
        """
        b = x0.shape[0]
        device = x0.device
        t = (_rand(b, generator, device) * self.num_train_timesteps).long().clamp(max=self.num_train_timesteps - 1)
        noise = _randn(tuple(x0.shape), generator, device, x0.dtype)
        x_t = self.add_noise(x0, noise, t)
        drop_music = _rand(b, generator, device) < p_uncond  # (B,) bool
        style = cond.style
        if style is not None:
            style = torch.where(_rand(b, generator, device) < p_style_drop, torch.full_like(style, auto_style), style)
        out = model_fn(x_t, t, **replace(cond, style=style).kwargs(), drop_music=drop_music)
        assert out.shape == x0.shape, f"model output {tuple(out.shape)} must match x0 {tuple(x0.shape)}"
        return F.mse_loss(out.float(), self.training_target(x0, noise, t).float())


# ---------------------------------------------------------------------------------------------------------------
# Samplers


@dataclass
class StepOutput:
    prev_sample: Tensor  # x at the next (smaller) timestep of the sampling schedule
    pred_original_sample: Tensor  # the x0 estimate used for the step (after clipping/thresholding)


class Sampler(GaussianDiffusion):
    """Base of the samplers: picks the n timesteps to visit; subclasses implement `step`."""

    def __init__(self, config: DiffusionConfig):
        super().__init__(config)
        self.init_noise_sigma = 1.0  # x_T ~ N(0, I)
        self.num_inference_steps: int | None = None
        self.timesteps = torch.empty(0, dtype=torch.long)
        self._prev_t: dict[int, int] = {}

    def set_timesteps(self, num_inference_steps: int, device: torch.device | str | None = None) -> None:
        """Choose `num_inference_steps` timesteps in [0, N), descending, and reset any multistep state."""
        n, big_n = num_inference_steps, self.num_train_timesteps
        if not 1 <= n <= big_n:
            raise ValueError(f"num_inference_steps must be in [1, {big_n}], got {n}")
        spacing = self.config.timestep_spacing
        if spacing == "trailing":  # N-1, ..., ends one stride above 0
            steps = torch.round(torch.arange(big_n, 0, -big_n / n, dtype=torch.float64)).long() - 1
        elif spacing == "leading":  # 0, stride, ... reversed (DDIM paper)
            steps = (torch.arange(n, dtype=torch.long) * (big_n // n)).flip(0)
        else:  # linspace: both ends included
            steps = torch.round(torch.linspace(big_n - 1, 0, n, dtype=torch.float64)).long()
        steps = steps[:n]
        assert len(torch.unique(steps)) == n, f"{spacing} spacing gave repeated timesteps for n={n}: {steps.tolist()}"
        self.num_inference_steps = n
        self.timesteps = steps.to(device) if device is not None else steps
        listed = steps.tolist()
        self._prev_t = {t: (listed[i + 1] if i + 1 < n else -1) for i, t in enumerate(listed)}
        self._reset_state()

    def _reset_state(self) -> None:
        """Forget multistep history (DPM-Solver)."""

    def previous_timestep(self, t: int) -> int:
        """The timestep after `t` in the sampling schedule (-1 after the last one: the clean sample)."""
        if t not in self._prev_t:
            raise ValueError(
                f"timestep {t} is not in the schedule; call set_timesteps first ({self.timesteps.tolist()})"
            )
        return self._prev_t[t]

    def scale_model_input(self, x: Tensor, t: int | Tensor) -> Tensor:
        """Variance-preserving samplers feed x as is (API parity with diffusers)."""
        return x

    def step(
        self, model_output: Tensor, t: int | Tensor, x: Tensor, generator: torch.Generator | None = None
    ) -> StepOutput:
        raise NotImplementedError


class DDPMSampler(Sampler):
    """Ancestral sampling (Ho et al. 2020), on all N steps or a strided subset (respaced as in Nichol & Dhariwal)."""

    def step(
        self, model_output: Tensor, t: int | Tensor, x: Tensor, generator: torch.Generator | None = None
    ) -> StepOutput:
        t = int(t)
        prev_t = self.previous_timestep(t)
        # 1. alpha_bar_t, alpha_bar_{t-1} and the step's own beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}
        #    (equal to the schedule's beta_t on full steps; the respaced beta on strided ones)
        ab_t, ab_prev = self.alpha_bar(t), self.alpha_bar(prev_t)
        beta_t = 1.0 - ab_t / ab_prev
        alpha_t = 1.0 - beta_t
        # 2. predicted x0 from epsilon (eq. 15), clipped or dynamically thresholded
        x0, _ = self.split_prediction(model_output, x, t)
        x0 = self.threshold(x0)
        # 3. posterior mean mu~_t(x_t, x0) of q(x_{t-1} | x_t, x0) (eq. 7)
        coef_x0 = math.sqrt(ab_prev) * beta_t / (1.0 - ab_t)
        coef_xt = math.sqrt(alpha_t) * (1.0 - ab_prev) / (1.0 - ab_t)
        mean = coef_x0 * x0 + coef_xt * x
        if prev_t < 0:  # the last step returns the mean (no noise at t = 0, Algorithm 2)
            return StepOutput(prev_sample=mean, pred_original_sample=x0)
        # 4. variance: sigma_t^2 = beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t, or beta_t (sec. 3.2)
        if self.config.ddpm_variance == "fixed_small":
            var = max((1.0 - ab_prev) / (1.0 - ab_t) * beta_t, 1e-20)
        else:
            var = beta_t
        # 5. x_{t-1} = mu~ + sigma_t z, z ~ N(0, I) (Algorithm 2, line 4)
        z = _randn(tuple(x.shape), generator, x.device, x.dtype)
        return StepOutput(prev_sample=mean + math.sqrt(var) * z, pred_original_sample=x0)


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021): deterministic at eta = 0, any number of steps."""

    def step(
        self, model_output: Tensor, t: int | Tensor, x: Tensor, generator: torch.Generator | None = None
    ) -> StepOutput:
        t = int(t)
        prev_t = self.previous_timestep(t)
        # 1. alpha_t and alpha_{t-1} in the paper's notation are our alpha_bar_t, alpha_bar_prev
        ab_t, ab_prev = self.alpha_bar(t), self.alpha_bar(prev_t)
        # 2. "predicted x0" (eq. 12), thresholded; epsilon re-derived from it so the step stays consistent
        x0, eps = self.split_prediction(model_output, x, t)
        if self.config.clip_range is not None:
            x0 = self.threshold(x0)
            eps = (x - math.sqrt(ab_t) * x0) / math.sqrt(max(1.0 - ab_t, 1e-12))
        # 3. sigma_t(eta) = eta sqrt((1 - alpha_{t-1}) / (1 - alpha_t)) sqrt(1 - alpha_t / alpha_{t-1}) (eq. 16)
        eta = self.config.ddim_eta
        sigma = eta * math.sqrt(max((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev), 0.0))
        # 4. "direction pointing to x_t": sqrt(1 - alpha_{t-1} - sigma_t^2) eps (eq. 12)
        direction = math.sqrt(max(1.0 - ab_prev - sigma**2, 0.0)) * eps
        # 5. x_{t-1} = sqrt(alpha_{t-1}) x0 + direction + sigma_t z (eq. 12)
        prev = math.sqrt(ab_prev) * x0 + direction
        if sigma > 0 and prev_t >= 0:
            prev = prev + sigma * _randn(tuple(x.shape), generator, x.device, x.dtype)
        return StepOutput(prev_sample=prev, pred_original_sample=x0)


class DPMSolverSampler(Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): second-order multistep in data (x0) prediction.

    Good samples in 10-25 steps and stable under strong guidance. Stateful: call `step` on the timesteps in
    order; `set_timesteps` resets the history.
    """

    def _reset_state(self) -> None:
        self._last_x0: Tensor | None = None
        self._last_lambda: float | None = None

    def _lambda(self, ab: float) -> float:
        # lambda_t = log(alpha_t / sigma_t), with alpha_t = sqrt(alpha_bar), sigma_t = sqrt(1 - alpha_bar)
        return 0.5 * (math.log(ab) - math.log(max(1.0 - ab, 1e-20)))

    def step(
        self, model_output: Tensor, t: int | Tensor, x: Tensor, generator: torch.Generator | None = None
    ) -> StepOutput:
        t = int(t)
        prev_t = self.previous_timestep(t)
        # 1. data prediction x_theta(x_t, t), thresholded (DPM-Solver++ sec. 4, with Imagen's thresholding)
        x0, _ = self.split_prediction(model_output, x, t)
        x0 = self.threshold(x0)
        ab_t, ab_s = self.alpha_bar(t), self.alpha_bar(prev_t)
        lam_t = self._lambda(ab_t)
        if prev_t < 0:  # 2. the last step lands on sigma = 0, where the first-order update is x0 itself
            prev = x0
        else:
            # 3. h_i = lambda_{t_i} - lambda_{t_{i-1}}; alpha_s, sigma_s at the target step s
            lam_s = self._lambda(ab_s)
            h = lam_s - lam_t
            alpha_s, sigma_s, sigma_t = math.sqrt(ab_s), math.sqrt(1.0 - ab_s), math.sqrt(1.0 - ab_t)
            # 4. D_i = (1 + 1/(2 r_i)) x0_i - 1/(2 r_i) x0_{i-1}, r_i = h_{i-1} / h_i; first step: D = x0
            if self._last_x0 is None:
                d = x0
            else:
                r = (lam_t - self._last_lambda) / h
                d = (1.0 + 0.5 / r) * x0 - (0.5 / r) * self._last_x0
            # 5. x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) D_i
            prev = (sigma_s / sigma_t) * x - alpha_s * math.expm1(-h) * d
        self._last_x0, self._last_lambda = x0, lam_t
        return StepOutput(prev_sample=prev, pred_original_sample=x0)


SAMPLERS: dict[str, type[Sampler]] = {"ddpm": DDPMSampler, "ddim": DDIMSampler, "dpmpp_2m": DPMSolverSampler}


def make_sampler(name: SamplerName, config: DiffusionConfig) -> Sampler:
    """The sampler called `name` ("ddpm", "ddim" or "dpmpp_2m") over the schedule in `config`."""
    _check_choice("sampler", name, SAMPLER_NAMES)
    return SAMPLERS[name](config)


# ---------------------------------------------------------------------------------------------------------------
# The sampling loop


def guided_prediction(model_fn: DenoiserFn, x: Tensor, t: int, cond: Conditioning, guidance_scale: float) -> Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): out = out_uncond + g (out_cond - out_uncond).

    "Unconditional" drops the music only (the reference frame and the style label stay). Both halves run as one
    batch of 2B; g = 1 runs the conditional half alone, g = 0 the unconditional one.
    """
    b = x.shape[0]
    tt = torch.full((b,), t, dtype=torch.long, device=x.device)
    no_music = cond.music_global is None
    if no_music or guidance_scale in (0.0, 1.0):
        drop = torch.full((b,), guidance_scale == 0.0 or no_music, dtype=torch.bool, device=x.device)
        return model_fn(x, tt, **cond.kwargs(), drop_music=drop)
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)  # (2B,)
    out = model_fn(torch.cat([x, x]), torch.cat([tt, tt]), **cond.repeat(2).kwargs(), drop_music=drop)
    out_cond, out_uncond = out.chunk(2)  # 2 x (B, C, T, H, W)
    return out_uncond + guidance_scale * (out_cond - out_uncond)


@torch.no_grad()
def sample(
    model_fn: DenoiserFn,
    shape: tuple[int, ...],
    cond: Conditioning,
    sampler: Sampler,
    *,
    steps: int = 50,
    guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    latents: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Generate x0 of `shape` (B, 3, T, H, W) from noise in `steps` sampler steps; returns the final sample.

    Reproducible for a seeded `generator` (noise is drawn on the generator's device). After every step
    `callback(i, n, t, x)` is called with the step index i in [0, n), the timestep t and the new x; returning
    False raises `SamplingCancelled`. `latents` replaces the initial noise x_T.
    """
    device = cond.ref_latent.device
    assert cond.ref_latent.shape[0] == shape[0], (
        f"cond batch {cond.ref_latent.shape[0]} does not match shape {tuple(shape)}"
    )
    sampler.set_timesteps(steps)
    if latents is None:
        x = _randn(tuple(shape), generator, device, dtype) * sampler.init_noise_sigma
    else:
        assert tuple(latents.shape) == tuple(shape), f"latents {tuple(latents.shape)} must have shape {tuple(shape)}"
        x = latents.to(device=device, dtype=dtype)
    n = len(sampler.timesteps)
    for i, t in enumerate(sampler.timesteps.tolist()):
        model_in = sampler.scale_model_input(x, t)
        out = guided_prediction(model_fn, model_in, t, cond, guidance_scale)
        x = sampler.step(out, t, x, generator=generator).prev_sample
        if callback is not None and callback(i, n, t, x) is False:
            raise SamplingCancelled(f"sampling cancelled after step {i + 1} of {n}")
    return x
