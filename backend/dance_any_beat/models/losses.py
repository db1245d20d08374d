"""Training losses of the latent flow auto-encoder.

- multi-scale L1 over an image pyramid (coarse scales reward getting the motion roughly right early on);
- SSIM (Gaussian window, differentiable);
- VGG-19 perceptual loss, the published LFAE's main loss, only when a local VGG-19 weights file is configured
  (this project cannot download weights): the plain torch layer layout of torchvision's `vgg19().features`, so
  torchvision's ImageNet checkpoint `vgg19-dcbb9e9d.pth` loads as is;
- equivariance of the motion regions under a random thin-plate-spline warp of the drive frame (FOMM): regions
  found in the warped frame, mapped back through the warp, must land where they were found in the frame.

Images are RGB in [0, 1].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dance_any_beat.metrics.image_quality import ssim_per_image
from dance_any_beat.models.keypoints import sqrtm_2x2
from dance_any_beat.models.lfae import LFAE, LFAEOutput
from dance_any_beat.models.region_prior import joint_loss, mask_prior_loss, region_prior_loss
from dance_any_beat.warp import ALIGN_CORNERS, identity_grid
from dance_any_beat.weights import WeightsFile, load_checked, read_state_dict, require_file

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_WEIGHTS = WeightsFile(
    what="The perceptual loss needs torchvision's ImageNet VGG-19 weights",
    file_name=VGG19_FILE,
    source=f"Get it from https://download.pytorch.org/models/{VGG19_FILE} (torchvision's VGG-19).",
    option="LFAELossConfig.vgg19_weights",
    otherwise="Or set vgg19_weights to None to train without the perceptual loss.",
)
# torchvision's VGG-19 ("E") features: conv widths and "M" max-pools, in order; each conv is followed by a ReLU.
VGG19_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"
)  # fmt: skip
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# The one wording of this mistake, whether the training config or the loss finds it.
JOINTS_NEED_BONE_MOTION = (
    "loss.joint_weight scores the joints of a bone_motion LFAE: set model.bone_motion = true, or the weight to 0"
)


@dataclass
class LFAELossConfig:
    """Weights and settings of `lfae_loss`; round-trips through `dataclasses.asdict` -> JSON -> `LFAELossConfig(**d)`.

    A weight of 0 switches its term off (it is then not computed at all).
    """

    l1_weight: float = 1.0  # multi-scale L1 between reconstruction and drive frame
    l1_scales: tuple[float, ...] = (1.0, 0.5, 0.25)  # pyramid scales of the L1 term, averaged
    ssim_weight: float = 0.2  # 1 - SSIM at full resolution
    mse_weight: float = 0.0  # mean squared error at full resolution: what PSNR measures (L1 alone favours sharp
    #                          guesses over the mean where the frame is uncertain)
    ssim_window: int = 11  # Gaussian window side, pixels
    ssim_sigma: float = 1.5  # Gaussian window sigma, pixels
    vgg19_weights: str | None = None  # path to torchvision's vgg19-dcbb9e9d.pth; None = no perceptual term
    perceptual_weight: float = 1.0  # VGG-19 term (used only when vgg19_weights is set)
    perceptual_layers: tuple[int, ...] = (1, 6, 11, 20, 29)  # indices in `features`: relu1_1 .. relu5_1
    perceptual_layer_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)  # one per layer, summed
    perceptual_scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)  # pyramid scales of the VGG term, averaged
    equivariance_shift_weight: float = 1.0  # region centres map back through a random warp (L1, normalised units)
    equivariance_affine_weight: float = 1.0  # region covariances map back too (only with LFAEConfig.use_affine)
    tps_sigma_affine: float = 0.05  # std of the random warp's affine part around identity
    tps_sigma_tps: float = 0.005  # std of the random warp's thin-plate-spline weights
    tps_points: int = 5  # thin-plate-spline control points per side (points x points grid)
    region_prior_weight: float = 0.0  # regions' heat maps vs Gaussian tubes around body parts (needs the data's
    #                                   skeleton joints; see models.region_prior)
    region_prior_sigma: float = 1.0  # the tubes' radius (Gaussian sigma), latent pixels (the mask prior's too)
    mask_prior_weight: float = 0.0  # the dense motion net's choice of region on each body part's drive pixels vs
    #                                 that part's region (cross-entropy; needs the data's skeleton joints)
    joint_weight: float = 0.0  # distance of the joints a bone_motion LFAE finds to the data's skeleton joints
    #                            (normalised units: 2 / latent_size is a latent pixel)
    hidden_weight: float = 0.0  # mean of (1 - occlusion): a price on hiding the reference, so that the frame
    #                             keeps the warped still's detail where the warp is near enough, and the decoder
    #                             paints (blurred) only where it must
    edge_weight: float = 0.0  # the frame's local edge strength should match the drive frame's (`edge_loss`): L1
    #                           and MSE alone paint an uncertain edge as the blurred mean of where it might be;
    #                           this prices the lost sharpness and forgives an edge a pixel or two off

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # JSON gives lists back; keep tuples so configs compare equal
            value = getattr(self, field.name)
            if isinstance(value, list):
                setattr(self, field.name, tuple(value))
        if len(self.perceptual_layer_weights) != len(self.perceptual_layers):
            raise ValueError(
                f"perceptual_layer_weights has {len(self.perceptual_layer_weights)} entries for "
                f"{len(self.perceptual_layers)} perceptual_layers"
            )
        if list(self.perceptual_layers) != sorted(set(self.perceptual_layers)):
            raise ValueError(f"perceptual_layers must be strictly increasing, got {self.perceptual_layers}")
        relus = _vgg19_relu_indices()
        bad = [i for i in self.perceptual_layers if i not in relus]
        if bad:
            raise ValueError(f"perceptual_layers {bad} are not ReLU outputs of VGG-19 features; valid: {relus}")
        if self.ssim_window % 2 != 1:
            raise ValueError(f"ssim_window must be odd, got {self.ssim_window}")


# ----------------------------------------------------------------------------------------------------------------
# Pixel losses


def image_pyramid(image: Tensor, scales: tuple[float, ...]) -> list[Tensor]:
    """(B, C, H, W) -> one area-downscaled copy per scale (scale 1 is the image itself)."""
    out = []
    for scale in scales:
        if scale == 1.0:
            out.append(image)
        else:
            size = (max(1, round(image.shape[-2] * scale)), max(1, round(image.shape[-1] * scale)))
            out.append(F.interpolate(image, size=size, mode="area"))  # (B, C, H*s, W*s)
    return out


def multiscale_l1(pred: Tensor, target: Tensor, scales: tuple[float, ...] = (1.0, 0.5, 0.25)) -> Tensor:
    """Mean over scales of the mean absolute difference of the two images' pyramids."""
    assert pred.shape == target.shape, f"pred {tuple(pred.shape)} != target {tuple(target.shape)}"
    pairs = zip(image_pyramid(pred, scales), image_pyramid(target, scales), strict=True)
    return torch.stack([(p - t).abs().mean() for p, t in pairs]).mean()


def edge_loss(pred: Tensor, target: Tensor, window: int = 7) -> Tensor:
    """Mean absolute difference of the images' local edge strength: the root of the mean squared pixel difference
    (x and y) over each window x window neighbourhood. Blurring an edge spreads its step over more pixels and
    lowers the strength; moving it by a pixel or two inside the window does not, so an uncertain edge is best
    drawn sharp somewhere near, not as the blurred mean of where it might be (which L1 and MSE prefer)."""
    assert pred.shape == target.shape, f"pred {tuple(pred.shape)} != target {tuple(target.shape)}"

    def strength(image: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, H - 1, W - 1)
        dx = image[..., :-1, 1:] - image[..., :-1, :-1]
        dy = image[..., 1:, :-1] - image[..., :-1, :-1]
        energy = F.avg_pool2d(dx * dx + dy * dy, window, stride=1, padding=window // 2, count_include_pad=False)
        return (energy + 1e-6).sqrt()

    return (strength(pred) - strength(target)).abs().mean()


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> Tensor:
    """Per-image SSIM (B,) of (B, C, H, W) images, averaged over channels and valid window positions.

    Wang et al. 2004 with the usual constants K1 = 0.01, K2 = 0.03 and a Gaussian window.
    """
    assert x.shape == y.shape and x.ndim == 4, f"x {tuple(x.shape)} and y {tuple(y.shape)} must match, (B, C, H, W)"
    assert min(x.shape[-2:]) >= window, f"images {tuple(x.shape)} are smaller than the SSIM window {window}"
    return ssim_per_image(x, y, data_range=data_range, window=window, sigma=sigma)  # (B,)


def ssim_loss(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """1 - mean SSIM: 0 for identical images."""
    return 1.0 - ssim(pred, target, window, sigma).mean()


# ----------------------------------------------------------------------------------------------------------------
# VGG-19 perceptual loss


def _vgg19_relu_indices() -> list[int]:
    """Indices of the ReLU modules in torchvision's VGG-19 `features`."""
    out, index = [], 0
    for item in VGG19_LAYOUT:
        if item == "M":
            index += 1
        else:
            out.append(index + 1)
            index += 2
    return out


class VGG19Features(nn.Module):
    """torchvision's VGG-19 `features` (convs, ReLUs, max-pools at the same indices), cut after the last layer
    used, returning the activations at `layers`. Input: RGB in [0, 1]; ImageNet normalisation is done here."""

    def __init__(self, layers: tuple[int, ...] = (1, 6, 11, 20, 29)) -> None:
        super().__init__()
        self.layers = tuple(sorted(layers))
        modules: list[nn.Module] = []
        in_ch = 3
        for item in VGG19_LAYOUT:
            if len(modules) > self.layers[-1]:
                break  # cut after the last layer used
            if item == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules += [nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_ch = int(item)
        self.features = nn.Sequential(*modules[: self.layers[-1] + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: Tensor) -> list[Tensor]:
        assert image.ndim == 4 and image.shape[1] == 3, f"image must be (B, 3, H, W), got {tuple(image.shape)}"
        x = (image - self.mean) / self.std  # (B, 3, H, W)
        out = []
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self.layers:
                out.append(x)  # (B, C_i, H_i, W_i)
        return out


def load_vgg19(path: str | Path, layers: tuple[int, ...] = (1, 6, 11, 20, 29)) -> VGG19Features:
    """Frozen `VGG19Features` with weights from a local torchvision VGG-19 checkpoint (`features.N.weight` keys).

    Keys of layers past the last one used (and the classifier's) are ignored; any missing or misshapen
    `features` weight is an error naming the file (see `dance_any_beat.weights`).
    """
    file = require_file(path, VGG19_WEIGHTS)
    model = VGG19Features(layers)
    load_checked(model, read_state_dict(file, VGG19_WEIGHTS), file, VGG19_WEIGHTS, allow_unused=True)
    model.requires_grad_(False)
    return model.eval()


def perceptual_loss(
    vgg: VGG19Features,
    pred: Tensor,
    target: Tensor,
    layer_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0),
    scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125),
) -> Tensor:
    """Mean over pyramid scales of the layer-weighted sum of mean |VGG(pred) - VGG(target)| (target not
    differentiated)."""
    assert len(layer_weights) == len(vgg.layers), f"{len(layer_weights)} weights for {len(vgg.layers)} layers"
    total = []
    for p, t in zip(image_pyramid(pred, scales), image_pyramid(target, scales), strict=True):
        with torch.no_grad():
            feats_t = vgg(t)
        feats_p = vgg(p)
        total.append(
            sum(w * (fp - ft).abs().mean() for w, fp, ft in zip(layer_weights, feats_p, feats_t, strict=True))
        )
    return torch.stack(total).mean()


# ----------------------------------------------------------------------------------------------------------------
# Equivariance


class RandomTPS:
    """A random smooth warp T of the normalised plane: affine part near identity plus a thin-plate spline.

    T(z) = A z + t + sum_i w_i U(|z - c_i|), U(r) = r^2 log r, with control points c_i on a grid over [-1, 1].
    `warp_image` makes the image whose pixel z shows the original at T(z), so a point z found in the warped image
    corresponds to T(z) in the original.
    """

    def __init__(
        self,
        batch: int,
        sigma_affine: float = 0.05,
        sigma_tps: float = 0.005,
        points: int = 5,
        *,
        device: torch.device | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        def normal(*shape: int, std: float) -> Tensor:
            return torch.randn(*shape, generator=generator, device=device) * std

        self.theta = torch.eye(2, 3, device=device).expand(batch, 2, 3) + normal(batch, 2, 3, std=sigma_affine)
        line = torch.linspace(-1.0, 1.0, points, device=device)
        cy, cx = torch.meshgrid(line, line, indexing="ij")
        self.control = torch.stack([cx, cy], dim=-1).reshape(1, points * points, 2)  # (1, P, 2)
        self.weights = normal(batch, points * points, 2, std=sigma_tps)  # (B, P, 2)

    def transform_points(self, points: Tensor) -> Tensor:
        """(B, N, 2) points -> (B, N, 2) T(points)."""
        theta = self.theta.to(points.dtype)
        out = points @ theta[:, :, :2].transpose(1, 2) + theta[:, None, :, 2]  # (B, N, 2)
        rel = points.unsqueeze(2) - self.control.to(points.dtype).unsqueeze(1)  # (B, N, P, 2)
        r2 = (rel**2).sum(-1).clamp_min(1e-12)  # (B, N, P)
        basis = 0.5 * r2 * torch.log(r2)  # r^2 log r
        return out + basis @ self.weights.to(points.dtype)  # (B, N, 2)

    def jacobian(self, points: Tensor) -> Tensor:
        """(B, N, 2) points -> (B, N, 2, 2) dT/dz at the points (row = output coordinate)."""
        theta = self.theta.to(points.dtype)
        rel = points.unsqueeze(2) - self.control.to(points.dtype).unsqueeze(1)  # (B, N, P, 2)
        r2 = (rel**2).sum(-1).clamp_min(1e-12)  # (B, N, P)
        grad_basis = rel * (torch.log(r2) + 1.0).unsqueeze(-1)  # (B, N, P, 2): dU/dz
        tps = torch.einsum("bpi,bnpj->bnij", self.weights.to(points.dtype), grad_basis)  # (B, N, 2, 2)
        return theta[:, None, :, :2] + tps

    def warp_image(self, image: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W) whose pixel z shows image at T(z) (reflection outside the frame)."""
        b, _, h, w = image.shape
        z = identity_grid(h, w, device=image.device, dtype=image.dtype).permute(0, 2, 3, 1)  # (1, h, w, 2)
        grid = self.transform_points(z.reshape(1, h * w, 2).expand(b, h * w, 2)).reshape(b, h, w, 2)
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=ALIGN_CORNERS)


def equivariance_losses(
    model: LFAE, output: LFAEOutput, drive: Tensor, config: LFAELossConfig, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """Shift (and affine) equivariance of the drive frame's regions under a random TPS warp."""
    transform = RandomTPS(
        drive.shape[0], config.tps_sigma_affine, config.tps_sigma_tps, config.tps_points,
        device=drive.device, generator=generator,
    )  # fmt: skip
    warped_regions = model.predict_regions(transform.warp_image(drive))
    regions = output.motion.drive_regions
    out = {}
    if config.equivariance_shift_weight > 0:
        mapped = transform.transform_points(warped_regions.shift)  # (B, K, 2)
        out["equivariance_shift"] = (regions.shift - mapped).abs().mean()
    if config.equivariance_affine_weight > 0 and model.config.use_affine:
        # The warp's Jacobian J carries the warped frame's covariances to the frame's: S_drive ~ J S_warped J^T.
        # Compared after whitening by S_drive^(-1/2), so the term is scale-free and 0 when they agree.
        jac = transform.jacobian(warped_regions.shift)  # (B, K, 2, 2)
        _, inv_root = sqrtm_2x2(regions.covar)  # (B, K, 2, 2)
        mapped = jac @ warped_regions.covar @ jac.transpose(-1, -2)  # (B, K, 2, 2)
        normed = inv_root @ mapped @ inv_root  # ~ identity
        eye = torch.eye(2, device=drive.device, dtype=drive.dtype)
        out["equivariance_affine"] = (eye - normed).abs().mean()
    return out


# ----------------------------------------------------------------------------------------------------------------
# The total


def lfae_loss(
    output: LFAEOutput,
    target: Tensor,
    config: LFAELossConfig,
    *,
    model: LFAE | None = None,
    vgg: VGG19Features | None = None,
    generator: torch.Generator | None = None,
    joints: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted sum of the LFAE's losses for reconstructing `target` (the drive frame, (B, 3, S, S) in [0, 1]).

    `joints` (reference's, drive's), each (B, J, 2) in pixels of the frames, are needed by the region prior and
    the joint term.

    `model` is needed for the equivariance terms (they run its region predictor on a warped drive frame) and
    `vgg` (from `load_vgg19(config.vgg19_weights)`, or use `LFAELoss`) when the perceptual term is configured.
    Returns the total and each unweighted part (detached, for logging).
    """
    pred = output.reconstruction
    assert pred.shape == target.shape, f"reconstruction {tuple(pred.shape)} != target {tuple(target.shape)}"
    parts: dict[str, Tensor] = {}
    weights: dict[str, float] = {}
    if config.l1_weight > 0:
        parts["l1"], weights["l1"] = multiscale_l1(pred, target, config.l1_scales), config.l1_weight
    if config.mse_weight > 0:
        parts["mse"], weights["mse"] = F.mse_loss(pred, target), config.mse_weight
    if config.ssim_weight > 0:
        parts["ssim"] = ssim_loss(pred, target, config.ssim_window, config.ssim_sigma)
        weights["ssim"] = config.ssim_weight
    if config.edge_weight > 0:
        parts["edge"], weights["edge"] = edge_loss(pred, target), config.edge_weight
    if config.vgg19_weights is not None and config.perceptual_weight > 0:
        if vgg is None:
            raise ValueError(
                "LFAELossConfig.vgg19_weights is set but no VGG-19 was passed: give vgg=load_vgg19(config."
                "vgg19_weights) (load it once, not per step) or use LFAELoss"
            )
        parts["perceptual"] = perceptual_loss(
            vgg, pred, target, config.perceptual_layer_weights, config.perceptual_scales
        )
        weights["perceptual"] = config.perceptual_weight
    if config.equivariance_shift_weight > 0 or config.equivariance_affine_weight > 0:
        if model is None:
            raise ValueError("the equivariance terms need model=<the LFAE>; set their weights to 0 to skip them")
        equi = equivariance_losses(model, output, target, config, generator)
        parts.update(equi)
        weights.update(
            {k: config.equivariance_shift_weight if k.endswith("shift") else config.equivariance_affine_weight
             for k in equi}
        )  # fmt: skip
    if (config.region_prior_weight > 0 or config.mask_prior_weight > 0 or config.joint_weight > 0) and joints is None:
        raise ValueError(
            "loss.region_prior_weight, loss.mask_prior_weight and loss.joint_weight need the frames' skeleton "
            "joints, which this data set does not give (procedural clips do): set them to 0"
        )
    size, sigma = target.shape[-1], config.region_prior_sigma  # the skeleton terms' frame size and tube radius
    if config.mask_prior_weight > 0:
        parts["mask_prior"] = mask_prior_loss(output.motion.mask, joints[1], size, sigma)
        weights["mask_prior"] = config.mask_prior_weight
    if config.joint_weight > 0:
        found = (output.motion.ref_regions.joints, output.motion.drive_regions.joints)
        if found[0] is None or found[1] is None:
            raise ValueError(JOINTS_NEED_BONE_MOTION)
        parts["joints"] = 0.5 * (joint_loss(found[0], joints[0], size) + joint_loss(found[1], joints[1], size))
        weights["joints"] = config.joint_weight
    if config.region_prior_weight > 0:
        ref_prior = region_prior_loss(output.motion.ref_regions.heatmap, joints[0], size, sigma)
        drive_prior = region_prior_loss(output.motion.drive_regions.heatmap, joints[1], size, sigma)
        parts["region_prior"], weights["region_prior"] = 0.5 * (ref_prior + drive_prior), config.region_prior_weight
    if config.hidden_weight > 0:
        parts["hidden"], weights["hidden"] = (1.0 - output.motion.occlusion).mean(), config.hidden_weight
    assert parts, "every loss weight is 0"
    total = sum(weights[k] * v for k, v in parts.items())
    assert isinstance(total, Tensor)
    return total, {k: v.detach() for k, v in parts.items()}


class LFAELoss(nn.Module):
    """`lfae_loss` with its VGG-19 loaded once (from `config.vgg19_weights`) and moved along with `.to(device)`."""

    def __init__(self, config: LFAELossConfig) -> None:
        super().__init__()
        self.config = config
        self.vgg = (
            load_vgg19(config.vgg19_weights, config.perceptual_layers)
            if config.vgg19_weights is not None and config.perceptual_weight > 0
            else None
        )

    def forward(
        self, model: LFAE, output: LFAEOutput, target: Tensor, generator: torch.Generator | None = None,
        joints: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        return lfae_loss(output, target, self.config, model=model, vgg=self.vgg, generator=generator, joints=joints)
