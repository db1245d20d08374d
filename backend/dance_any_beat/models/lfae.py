"""Stage 1 of DabFusion: the latent flow auto-encoder (LFAE).

An encoder turns a reference frame into a latent map; a flow predictor (motion regions -> sparse motions ->
dense motion net, after FOMM / MRAA) estimates the backward latent flow and the occlusion map from the
reference to a driving frame; the reference latent is back-warped by the flow and multiplied by the occlusion
map; a decoder renders the frame, inpainting what the occlusion map hides. Stage 2 generates flows and
occlusions; this model turns them back into frames.

Conventions: images are RGB in [0, 1], (B, 3, S, S) with S = `image_size`; the decoder ends in a sigmoid so its
output is in [0, 1] too. Flows are normalised backward offsets, x first (see `dance_any_beat.warp`); the
occlusion map is in [0, 1], 1 = visible in the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dance_any_beat import warp as warping
from dance_any_beat.models.keypoints import (
    RegionParams,
    RegionPredictor,
    bone_flows,
    region_gaussians,
    region_motion,
    sparse_motions,
)
from dance_any_beat.models.lfae_blocks import Hourglass, ResBlock
from dance_any_beat.models.region_prior import BONE_JOINTS, PART_ENDS
from dance_any_beat.warp import upsample_flow, upsample_occlusion, warp_full_res

REFERENCE_WARPS = ("bilinear", "bicubic")  # LFAEConfig.reference_warp


@dataclass
class LFAEConfig:
    """Architecture of `LFAE`; round-trips through `dataclasses.asdict` -> JSON -> `LFAEConfig(**d)`.

    The defaults are the CPU starter model (1.75 M parameters, about 1 CPU-second per training step of 8 frame
    pairs at 128 px); the published LFAE is far bigger (256 latent channels, wider hourglasses).
    """

    image_size: int = 128  # side of the square RGB frames in and out, pixels
    latent_size: int = 32  # side of the latent map, flow and occlusion; image_size / latent_size is a power of 2
    latent_channels: int = 64  # C of the latent (B, C, latent_size, latent_size); 256 in the paper
    base_channels: int = 32  # encoder/decoder width at full resolution; doubles per halving, up to latent_channels
    encoder_res_blocks: int = 1  # residual blocks at latent resolution after the encoder's downsampling
    decoder_res_blocks: int = 3  # residual blocks before the decoder's upsampling (they inpaint hidden parts)
    num_regions: int = 10  # K motion regions (keypoints) of the flow predictor
    use_affine: bool = True  # regions move with an affine map from their covariances (MRAA); False = shift only
    rotation_confidence: float = 0.3  # anisotropy (l1 - l2) / (l1 + l2) of a region at which its turn is fully
    #                                   trusted; rounder regions turn less (their orientation is noise)
    bone_motion: bool = False  # regions 1..P (P = min(num_regions, 10)) move rigidly with body part p of the
    #                            skeleton (models.region_prior.REGION_PARTS): the region predictor also finds the
    #                            parts' joints, and a part's motion is the turn, scale and shift that carry its drive
    #                            bone onto its reference bone. A covariance's turn cannot follow a limb past 90
    #                            degrees; the joints learn from the data's skeleton (loss.joint_weight)
    region_channels: int = 32  # region predictor hourglass base width
    region_max_channels: int = 128  # region predictor hourglass width cap
    region_depth: int = 3  # region predictor hourglass levels (latent_size must be divisible by 2**depth)
    region_temperature: float = 0.1  # softmax temperature of the region heat maps (lower = more peaked)
    motion_channels: int = 32  # dense motion hourglass base width
    motion_max_channels: int = 128  # dense motion hourglass width cap
    motion_depth: int = 3  # dense motion hourglass levels
    gaussian_variance: float = 0.01  # variance (normalised units) of region Gaussians fed to the dense net
    #                                  when use_affine is False; with affine, each region's own covariance
    mask_logit_bound: float = 3.0  # motion-mixing logits squashed to +-bound (tanh), so no motion's weight falls
    #                                below ~e^(-2 bound) of another's and an unused region still gets gradient; 0 = off
    composite_reference: bool = False  # the frame = occlusion x the reference image warped at full resolution +
    #                                    (1 - occlusion) x the decoder's frame: visible parts keep the reference's
    #                                    pixels (sharp), the decoder paints only what the reference hides
    decoder_guide: bool = False  # the decoder also sees the reference warped at full resolution and the occlusion
    #                              map at each of its upsampled resolutions, so it paints hidden parts with the
    #                              still's own texture nearby rather than from the 32x32 latent alone
    learned_upsampling: bool = False  # the flow and occlusion reach full resolution as a learned convex mix of
    #                                   each latent pixel's 3x3 neighbours (RAFT's upsampling), which can follow the
    #                                   still's edges, instead of bilinearly; needs decoder_guide (it starts bilinear)
    reference_warp: str = "bilinear"  # how the reference is sampled at full resolution ("bilinear" | "bicubic"):
    #                                   bilinear sampling between pixels averages neighbours, and a still moved by a
    #                                   fraction of a pixel loses a third of its sharpness; bicubic keeps most of it
    occlusion_bias: float = 2.0  # initial bias of the occlusion logit: sigmoid(2) = 0.88, mostly visible at start
    norm_groups: int = 8  # GroupNorm groups (the largest divisor of each width that is <= this)

    def __post_init__(self) -> None:
        if self.decoder_guide and not self.composite_reference:
            raise ValueError("decoder_guide needs composite_reference = true (both use the reference image)")
        if self.reference_warp not in REFERENCE_WARPS:
            raise ValueError(f"reference_warp {self.reference_warp!r} is not one of {', '.join(REFERENCE_WARPS)}")
        if self.learned_upsampling and not self.decoder_guide:
            raise ValueError("learned_upsampling needs decoder_guide = true (it shapes the decoder's image guide)")
        ratio = self.image_size // max(self.latent_size, 1)
        if self.latent_size < 1 or ratio * self.latent_size != self.image_size or ratio & (ratio - 1) or ratio < 1:
            raise ValueError(
                f"image_size / latent_size must be a power of 2, got {self.image_size} / {self.latent_size}"
            )
        for name in ("region_depth", "motion_depth"):
            depth = getattr(self, name)
            if depth < 1 or self.latent_size % 2**depth:
                raise ValueError(f"{name}={depth}: latent_size {self.latent_size} must be divisible by 2**{name}")
        if self.num_regions < 1:
            raise ValueError(f"num_regions must be >= 1, got {self.num_regions}")
        if self.mask_logit_bound < 0:
            raise ValueError(f"mask_logit_bound must be >= 0 (0 = unbounded), got {self.mask_logit_bound}")

    @property
    def num_down(self) -> int:
        """Number of 2x downsamplings between the image and the latent."""
        return int(math.log2(self.image_size // self.latent_size))

    def encoder_widths(self) -> list[int]:
        """Channel width at each resolution, full resolution first, the latent last."""
        widths = [min(self.latent_channels, self.base_channels * 2**i) for i in range(self.num_down)]
        return [*widths, self.latent_channels]


@dataclass
class FlowOutput:
    """What the flow predictor says about one reference -> drive pair."""

    flow: Tensor  # (B, 2, h, w) backward flow, normalised offsets, x first
    occlusion: Tensor  # (B, 1, h, w) in [0, 1], 1 = visible in the reference
    ref_regions: RegionParams  # regions of the reference frame
    drive_regions: RegionParams  # regions of the driving frame
    sparse_flows: Tensor  # (B, K + 1, 2, h, w) per-region flows, index 0 = still background
    mask: Tensor  # (B, K + 1, h, w) softmax weights mixing the sparse flows into `flow`


@dataclass
class LFAEOutput:
    """A reconstruction of the driving frame from the reference, with the tensors that made it."""

    reconstruction: Tensor  # (B, 3, S, S) in [0, 1]
    ref_latent: Tensor  # (B, C, h, w) encoded reference
    warped_latent: Tensor  # (B, C, h, w) warped by the flow and multiplied by the occlusion map
    motion: FlowOutput  # flow, occlusion, regions


class Encoder(nn.Module):
    """Image (B, 3, S, S) in [0, 1] -> latent (B, C, h, w).

    A plain 7x7 stem at full resolution, then per halving 2x2 average pooling and a (widening) residual block at
    the lower resolution (cheap on CPU: full resolution sees one conv), then residual blocks at latent
    resolution. No normalisation outside residual branches, so flat colours survive.
    """

    def __init__(self, config: LFAEConfig) -> None:
        super().__init__()
        widths, groups = config.encoder_widths(), config.norm_groups
        self.stem = nn.Conv2d(3, widths[0], 7, padding=3)
        self.down = nn.ModuleList([ResBlock(widths[i], widths[i + 1], groups) for i in range(config.num_down)])
        self.res = nn.Sequential(*[ResBlock(widths[-1], groups=groups) for _ in range(config.encoder_res_blocks)])

    def forward(self, image: Tensor) -> Tensor:
        x = self.stem(image * 2.0 - 1.0)  # (B, W0, S, S); the net sees [-1, 1]
        for block in self.down:
            x = block(F.avg_pool2d(x, 2))  # (B, W_i+1, S / 2**(i+1), S / 2**(i+1))
        return self.res(x)  # (B, C, h, w)


GUIDE_CHANNELS = 4  # the decoder's image guide: the reference warped at full resolution (RGB) + visibility


class GuideInjection(nn.Module):
    """Image guide (B, 4, H, W) -> features (B, C, H, W) to add to the decoder's at that resolution.

    The last conv starts at zero, so a decoder that gains a guide renders exactly as before and can be
    fine-tuned from its unguided weights.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(GUIDE_CHANNELS, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, guide: Tensor) -> Tensor:
        return self.conv2(F.silu(self.conv1(guide)))  # (B, C, H, W)


def bilinear_neighbour_weights(ratio: int) -> Tensor:
    """(9, r, r) weights of the 3x3 coarse neighbours (row-major, centre = 4) of each of a coarse pixel's r x r
    fine pixels that reproduce bilinear upsampling (align_corners=False; edges repeated)."""
    offsets = (torch.arange(ratio, dtype=torch.float64) + 0.5) / ratio - 0.5  # (r,) fine centre - coarse centre
    taps = torch.stack([(-offsets).clamp(min=0), 1.0 - offsets.abs(), offsets.clamp(min=0)])  # (3, r): -1, 0, +1
    return (taps[:, None, :, None] * taps[None, :, None, :]).reshape(9, ratio, ratio).float()  # (9, r, r)


class ConvexUpsampler(nn.Module):
    """Flow (B, 2, h, w) and occlusion (B, 1, h, w) -> (B, 2, S, S), (B, 1, S, S): each fine pixel a convex mix
    of its coarse pixel's 3x3 neighbourhood (RAFT's upsampling), the mix predicted from the reference as the
    bilinear flow carries it, so motion edges can snap to the still's edges.

    The mixing logits are log(bilinear weights + 1e-3) plus a zero-initialised correction, so a new upsampler
    is bilinear upsampling to within ~1e-3 of a neighbour's difference and every neighbour still gets gradient.
    """

    def __init__(self, config: LFAEConfig, width: int = 64) -> None:
        super().__init__()
        self.ratio = r = config.image_size // config.latent_size
        self.latent_size = config.latent_size
        self.net = nn.Sequential(
            nn.Conv2d(3 * r * r + 3, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, 9 * r * r, 1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.register_buffer("prior", torch.log(bilinear_neighbour_weights(r) + 1e-3), persistent=False)

    def forward(self, ref_image: Tensor, flow: Tensor, occlusion: Tensor) -> tuple[Tensor, Tensor]:
        b, _, h, w = flow.shape
        r = self.ratio
        seen = warp_full_res(ref_image, flow)  # (B, 3, S, S): the still where the bilinear flow puts it
        pixels = flow * (self.latent_size / 2.0)  # (B, 2, h, w) in latent pixels, order 1
        x = torch.cat([F.pixel_unshuffle(seen * 2.0 - 1.0, r), pixels, occlusion * 2.0 - 1.0], dim=1)
        # x: (B, 3 r^2 + 3, h, w), each latent pixel with its r x r fine pixels
        logits = self.net(x).reshape(b, 9, r, r, h, w)  # (B, 9, r, r, h, w)
        weights = torch.softmax(logits + self.prior.to(logits.dtype)[None, :, :, :, None, None], dim=1)
        motion = F.pad(torch.cat([flow, occlusion], dim=1), (1, 1, 1, 1), mode="replicate")  # (B, 3, h+2, w+2)
        neighbours = F.unfold(motion, 3).reshape(b, 3, 9, 1, 1, h, w)  # (B, 3, 9, 1, 1, h, w)
        fine = (weights[:, None] * neighbours).sum(dim=2)  # (B, 3, r, r, h, w)
        fine = fine.permute(0, 1, 4, 2, 5, 3).reshape(b, 3, h * r, w * r)  # (B, 3, S, S)
        return fine[:, :2], fine[:, 2:].clamp(0.0, 1.0)


class Decoder(nn.Module):
    """Warped, occlusion-masked latent (B, C, h, w) -> image (B, 3, S, S) in [0, 1].

    Residual blocks at latent resolution fill in what the occlusion map zeroed out; then per doubling, a
    (narrowing) residual block and nearest upsampling mirror the encoder; at full resolution a 3x3 conv refines
    the upsampled features and a 7x7 conv + sigmoid gives RGB. With `decoder_guide`, each upsampled
    resolution also gets the image guide (see `LFAE.image_guide`), area-averaged to its size.
    """

    def __init__(self, config: LFAEConfig) -> None:
        super().__init__()
        widths, groups = config.encoder_widths(), config.norm_groups
        self.res = nn.Sequential(*[ResBlock(widths[-1], groups=groups) for _ in range(config.decoder_res_blocks)])
        self.up = nn.ModuleList([ResBlock(widths[i + 1], widths[i], groups) for i in reversed(range(config.num_down))])
        self.guides = (
            nn.ModuleList([GuideInjection(widths[i]) for i in reversed(range(config.num_down))])
            if config.decoder_guide
            else None
        )
        self.upsampler = ConvexUpsampler(config) if config.learned_upsampling else None  # used by LFAE.image_guide
        self.refine = nn.Conv2d(widths[0], widths[0], 3, padding=1)
        self.out = nn.Conv2d(widths[0], 3, 7, padding=3)

    def forward(self, latent: Tensor, guide: Tensor | None = None) -> Tensor:
        x = self.res(latent)  # (B, C, h, w)
        for i, block in enumerate(self.up):
            x = F.interpolate(block(x), scale_factor=2.0, mode="nearest")  # (B, W_i, 2h, 2w)
            if self.guides is not None:
                x = x + self.guides[i](F.interpolate(guide, size=x.shape[-2:], mode="area"))  # (B, W_i, 2h, 2w)
        x = self.refine(F.silu(x))  # (B, W0, S, S)
        return torch.sigmoid(self.out(F.silu(x)))  # (B, 3, S, S)


class DenseMotion(nn.Module):
    """Sparse region motions -> one dense backward flow and an occlusion map, at latent resolution.

    Input per motion (K regions + still background): the Gaussian-difference heat map (where the region is in
    the drive frame minus where it was in the reference) and the reference frame warped by that motion. An
    hourglass predicts softmax weights over the K + 1 motions (the flow is their weighted sum) and an
    occlusion logit. The drive frame itself is never seen: everything about it passes through the regions.
    """

    def __init__(self, config: LFAEConfig) -> None:
        super().__init__()
        self.num_motions = config.num_regions + 1
        self.use_affine = config.use_affine
        self.rotation_confidence = config.rotation_confidence
        self.mask_logit_bound = config.mask_logit_bound
        self.bone_ends = PART_ENDS[: config.num_regions] if config.bone_motion else ()
        self.affine_strength = 1.0  # runtime blend of region motions with the identity; see LFAE.set_affine_strength
        self.gaussian_variance = None if config.use_affine else config.gaussian_variance
        in_channels = self.num_motions * (1 + 3)
        self.hourglass = Hourglass(
            in_channels, config.motion_channels, config.motion_max_channels, config.motion_depth, config.norm_groups
        )
        self.mask = nn.Conv2d(self.hourglass.out_channels, self.num_motions, 7, padding=3)
        self.occlusion = nn.Conv2d(self.hourglass.out_channels, 1, 7, padding=3)
        nn.init.constant_(self.occlusion.bias, config.occlusion_bias)

    def forward(
        self, ref_small: Tensor, ref: RegionParams, drive: RegionParams
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """ref_small: (B, 3, h, w) reference at flow resolution -> flow, occlusion, sparse flows, mask."""
        b, _, h, w = ref_small.shape
        m = self.num_motions
        motion = region_motion(ref, drive, self.use_affine, self.rotation_confidence)  # (B, K, 2, 2)
        if self.use_affine and self.affine_strength != 1.0:
            eye = torch.eye(2, device=motion.device, dtype=motion.dtype)
            motion = eye + self.affine_strength * (motion - eye)  # (B, K, 2, 2)
        sparse = sparse_motions(ref, drive, (h, w), motion)  # (B, M, 2, h, w)
        if self.bone_ends:  # regions 1..P follow their bones instead
            assert ref.joints is not None and drive.joints is not None, "bone_motion needs the regions' joints"
            bones = bone_flows(ref.joints, drive.joints, self.bone_ends, (h, w))  # (B, P, 2, h, w)
            sparse = torch.cat([sparse[:, :1], bones, sparse[:, 1 + len(self.bone_ends):]], dim=1)
        heat = region_gaussians(drive, (h, w), self.gaussian_variance) - region_gaussians(
            ref, (h, w), self.gaussian_variance
        )  # (B, K, h, w)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1)  # (B, M, h, w), background first
        repeated = ref_small.unsqueeze(1).expand(b, m, 3, h, w).reshape(b * m, 3, h, w)  # (B*M, 3, h, w)
        deformed = warping.warp(repeated, sparse.reshape(b * m, 2, h, w), padding_mode="border")  # (B*M, 3, h, w)
        deformed = deformed.reshape(b, m, 3, h, w)
        x = torch.cat([heat.unsqueeze(2), deformed], dim=2).reshape(b, m * 4, h, w)  # (B, M*4, h, w)
        features = self.hourglass(x)  # (B, F, h, w)
        logits = self.mask(features)  # (B, M, h, w)
        if self.mask_logit_bound > 0:
            # Without a bound, Adam quickly saturates the softmax on the still background (right for most pixels
            # early on, when region motions are still random), after which regions get almost no gradient.
            logits = self.mask_logit_bound * torch.tanh(logits / self.mask_logit_bound)
        mask = torch.softmax(logits, dim=1)  # (B, M, h, w)
        flow = (mask.unsqueeze(2) * sparse).sum(dim=1)  # (B, 2, h, w)
        occlusion = torch.sigmoid(self.occlusion(features))  # (B, 1, h, w)
        return flow, occlusion, sparse, mask


class LFAE(nn.Module):
    """Latent flow auto-encoder: encode / predict_flow / warp / decode, and forward = reconstruct drive from ref."""

    def __init__(self, config: LFAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.region_predictor = RegionPredictor(
            num_regions=config.num_regions,
            base_channels=config.region_channels,
            max_channels=config.region_max_channels,
            depth=config.region_depth,
            temperature=config.region_temperature,
            groups=config.norm_groups,
            num_joints=len(BONE_JOINTS) if config.bone_motion else 0,
        )
        self.dense_motion = DenseMotion(config)
        self.decoder = Decoder(config)

    def set_affine_strength(self, strength: float) -> None:
        """Blend every region's linear motion with the identity: 0 = shift only, 1 = full affine (the default).

        Not part of the architecture (not saved; leave it at 1.0 for inference): a training warm-up. At
        initialisation the regions are blobs whose covariances differ at random between frames, and the
        stretches they imply make large, wrong flows far from each region, which teaches the dense motion net to
        ignore the regions. Ramping 0 -> 1 over the first ~1000 steps softens that (`mask_logit_bound` is the
        main guard).
        """
        assert 0.0 <= strength <= 1.0, f"affine strength must be in [0, 1], got {strength}"
        self.dense_motion.affine_strength = float(strength)

    def _check_image(self, image: Tensor, name: str) -> None:
        s = self.config.image_size
        assert image.ndim == 4 and tuple(image.shape[1:]) == (3, s, s), (
            f"{name} must be (B, 3, {s}, {s}) RGB in [0, 1], got {tuple(image.shape)}"
        )

    def downscale(self, image: Tensor) -> Tensor:
        """(B, 3, S, S) -> (B, 3, h, w) at latent resolution (area average), the flow predictor's view."""
        size = self.config.latent_size
        return F.interpolate(image, size=(size, size), mode="area")  # (B, 3, h, w)

    def encode(self, image: Tensor) -> Tensor:
        """(B, 3, S, S) RGB in [0, 1] -> latent (B, C, h, w)."""
        self._check_image(image, "image")
        return self.encoder(image)

    def predict_regions(self, image: Tensor) -> RegionParams:
        """(B, 3, S, S) RGB in [0, 1] -> K motion regions, heat maps at latent resolution."""
        self._check_image(image, "image")
        return self.region_predictor(self.downscale(image))

    def predict_flow(self, ref_image: Tensor, drive_image: Tensor) -> FlowOutput:
        """Backward flow (B, 2, h, w) and occlusion (B, 1, h, w) that carry ref_image's latent to drive_image's."""
        self._check_image(ref_image, "ref_image")
        self._check_image(drive_image, "drive_image")
        assert ref_image.shape == drive_image.shape, f"{tuple(ref_image.shape)} != {tuple(drive_image.shape)}"
        b = ref_image.shape[0]
        small = self.downscale(torch.cat([ref_image, drive_image], dim=0))  # (2B, 3, h, w)
        both = self.region_predictor(small)  # regions of ref and drive in one pass
        ref, drive = both.select(slice(0, b)), both.select(slice(b, None))
        flow, occlusion, sparse, mask = self.dense_motion(small[:b], ref, drive)
        return FlowOutput(
            flow=flow, occlusion=occlusion, ref_regions=ref, drive_regions=drive, sparse_flows=sparse, mask=mask
        )

    def warp(self, latent: Tensor, flow: Tensor, occlusion: Tensor | None) -> Tensor:
        """Back-warp a latent (B, C, h, w) by flow (B, 2, h, w), times occlusion (B, 1, h, w): the decoder's input."""
        h = self.config.latent_size
        assert latent.ndim == 4 and tuple(latent.shape[1:]) == (self.config.latent_channels, h, h), (
            f"latent must be (B, {self.config.latent_channels}, {h}, {h}), got {tuple(latent.shape)}"
        )
        return warping.warp(latent, flow, occlusion)  # (B, C, h, w)

    def decode(self, latent: Tensor, guide: Tensor | None = None) -> Tensor:
        """Warped, occlusion-masked latent (B, C, h, w) -> image (B, 3, S, S) in [0, 1]; `guide` (B, 4, S, S) from
        `image_guide` is needed with `decoder_guide` and ignored without it."""
        h = self.config.latent_size
        assert latent.ndim == 4 and tuple(latent.shape[1:]) == (self.config.latent_channels, h, h), (
            f"latent must be (B, {self.config.latent_channels}, {h}, {h}), got {tuple(latent.shape)}"
        )
        if self.config.decoder_guide and guide is None:
            raise ValueError("this LFAE's decoder is guided by the reference image (decoder_guide): pass its guide")
        return self.decoder(latent, guide if self.config.decoder_guide else None)

    def upsample_motion(self, ref_image: Tensor, flow: Tensor, occlusion: Tensor) -> tuple[Tensor, Tensor]:
        """Flow (B, 2, h, w) and occlusion (B, 1, h, w) at full resolution, (B, 2, S, S) and (B, 1, S, S): by the
        decoder's learned upsampler (`learned_upsampling`, which reads ref_image (B, 3, S, S)), else bilinearly."""
        s = self.config.image_size
        if self.decoder.upsampler is not None:
            return self.decoder.upsampler(ref_image.to(flow.dtype), flow, occlusion.to(flow.dtype))
        return upsample_flow(flow, (s, s)), upsample_occlusion(occlusion, (s, s)).to(flow.dtype)

    def image_guide(self, ref_image: Tensor | None, flow: Tensor, occlusion: Tensor) -> Tensor:
        """The reference warped at full resolution by the flow (B, 2, h, w) and the occlusion (B, 1, h, w)
        upsampled, side by side: (B, 4, S, S), what `composite` blends and a guided decoder sees."""
        if ref_image is None:
            raise ValueError("this LFAE composites the reference image (composite_reference): pass ref_image")
        self._check_image(ref_image, "ref_image")
        ref_image = ref_image.to(flow.dtype)
        fine_flow, visible = self.upsample_motion(ref_image, flow, occlusion)  # (B, 2, S, S), (B, 1, S, S)
        mode = self.config.reference_warp
        warped = warping.warp(ref_image, fine_flow, padding_mode="border", mode=mode)  # (B, 3, S, S)
        if mode == "bicubic":  # its overshoot at edges stays inside the image's range
            warped = warped.clamp(0.0, 1.0)
        return torch.cat([warped, visible], dim=1)

    def render(self, ref_image: Tensor | None, ref_latent: Tensor, flow: Tensor, occlusion: Tensor) -> Tensor:
        """The frame (B, 3, S, S) that a flow (B, 2, h, w) and occlusion (B, 1, h, w) make of the reference.

        ref_image (B, 3, S, S) is needed only with `composite_reference` (the default config decodes alone).
        """
        return self._render(ref_image, self.warp(ref_latent, flow, occlusion), flow, occlusion)

    def _render(self, ref_image: Tensor | None, warped: Tensor, flow: Tensor, occlusion: Tensor) -> Tensor:
        """Decode the warped latent and composite; the image guide, when compositing, is made once for both."""
        guide = self.image_guide(ref_image, flow, occlusion) if self.config.composite_reference else None
        return self.composite(ref_image, self.decode(warped, guide), flow, occlusion, guide)

    def composite(
        self, ref_image: Tensor | None, decoded: Tensor, flow: Tensor, occlusion: Tensor, guide: Tensor | None = None
    ) -> Tensor:
        """With `composite_reference`: visible parts from the reference warped at full resolution, hidden parts
        from the decoder's frame. Without it, the decoder's frame as it is. `guide`: `image_guide`'s, if made."""
        if not self.config.composite_reference:
            return decoded
        if guide is None:
            guide = self.image_guide(ref_image, flow, occlusion)  # (B, 4, S, S)
        guide = guide.to(decoded.dtype)
        warped, visible = guide[:, :3], guide[:, 3:]  # (B, 3, S, S), (B, 1, S, S)
        return visible * warped + (1.0 - visible) * decoded  # (B, 3, S, S)

    def forward(self, ref_image: Tensor, drive_image: Tensor) -> LFAEOutput:
        """Reconstruct drive_image from ref_image: encode ref, predict flow, warp, decode (and composite)."""
        ref_latent = self.encode(ref_image)  # (B, C, h, w)
        motion = self.predict_flow(ref_image, drive_image)
        warped = self.warp(ref_latent, motion.flow, motion.occlusion)  # (B, C, h, w)
        return LFAEOutput(
            reconstruction=self._render(ref_image, warped, motion.flow, motion.occlusion),
            ref_latent=ref_latent,
            warped_latent=warped,
            motion=motion,
        )
