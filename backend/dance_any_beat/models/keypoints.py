"""Motion regions of a frame and the sparse motions between two frames, in the manner of FOMM and MRAA.

A region predictor turns a (downscaled) frame into K heat maps, each a probability distribution over positions.
A region is summarised by its heat map's mean (the centre, a soft-argmax) and covariance (its extent and, when
elongated, its orientation). The motion of region k from reference to drive maps a drive-frame point z to the
reference frame:

    z_ref = mu_ref + M (z - mu_drive)

M = I for shift-only regions. With affine regions, M = S_ref R(-c phi) S_drive^-1, where S = covariance^(1/2)
(symmetric root), phi the turn of the region's major axis from reference to drive, and c in [0, 1] the
confidence in that turn. This equals MRAA's A_ref A_drive^-1 with PCA frames A = U diag(sqrt(l)) when c = 1, but
(1) has no eigenvector sign to fix (the turn comes from doubled angles, so it lies in (-90, 90] degrees) and
(2) does not turn round regions, whose orientation is noise: c = min(1, (rho_ref rho_drive / rho0^2)^2), with
rho = (l1 - l2) / (l1 + l2) the anisotropy. Random turns of round blobs at initialisation otherwise make huge
sparse flows far from the region, and the dense motion net learns to ignore every region (all background).

All coordinates are normalised, x first, on pixel centres (`dance_any_beat.warp.identity_grid`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dance_any_beat.models.lfae_blocks import Hourglass
from dance_any_beat.warp import identity_grid


@dataclass
class RegionParams:
    """K regions of a batch of frames; coordinates normalised to [-1, 1], x first."""

    heatmap: Tensor  # (B, K, h, w) softmax over positions: each map sums to 1
    shift: Tensor  # (B, K, 2) centre (heat-map mean)
    covar: Tensor  # (B, K, 2, 2) heat-map covariance (plus a pixel's own spread, so never singular)
    joints: Tensor | None = None  # (B, P, 2) skeleton joints (soft-argmax), with LFAEConfig.bone_motion

    def select(self, rows: slice) -> RegionParams:
        """The regions of a slice of the batch."""
        joints = None if self.joints is None else self.joints[rows]
        return RegionParams(self.heatmap[rows], self.shift[rows], self.covar[rows], joints)


def sqrtm_2x2(covar: Tensor) -> tuple[Tensor, Tensor]:
    """(..., 2, 2) symmetric positive-definite -> (its symmetric square root, the root's inverse), closed form.

    sqrt(S) = (S + s I) / t with s = sqrt(det S), t = sqrt(trace S + 2 s); smooth, no eigen-decomposition.
    """
    a, b, c = covar[..., 0, 0], covar[..., 0, 1], covar[..., 1, 1]  # (...,)
    s = torch.sqrt((a * c - b * b).clamp_min(1e-20))
    t = torch.sqrt(a + c + 2.0 * s)
    root = torch.stack([torch.stack([a + s, b], -1), torch.stack([b, c + s], -1)], -2) / t[..., None, None]
    inv = torch.stack([torch.stack([c + s, -b], -1), torch.stack([-b, a + s], -1)], -2) / (t * s)[..., None, None]
    return root, inv  # (..., 2, 2) each


def _rotation(angle: Tensor) -> Tensor:
    """(...,) angles in radians -> (..., 2, 2) rotation matrices [[cos, -sin], [sin, cos]]."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


def region_turn(ref_covar: Tensor, drive_covar: Tensor, rotation_confidence: float) -> Tensor:
    """(..., 2, 2) covariances -> (...,) turn c * phi (radians) of the major axis from reference to drive.

    phi in (-pi/2, pi/2] is half the angle between the doubled-angle vectors z = ((a - c) + 2 i b) / trace of
    the two ellipses; |z| is the anisotropy rho. c = min(1, (rho_ref rho_drive / rotation_confidence^2)^2).
    """

    def doubled(cov: Tensor) -> tuple[Tensor, Tensor]:
        trace = cov[..., 0, 0] + cov[..., 1, 1]
        return (cov[..., 0, 0] - cov[..., 1, 1]) / trace, 2.0 * cov[..., 0, 1] / trace  # (...,) each

    xr, yr = doubled(ref_covar)
    xd, yd = doubled(drive_covar)
    w_re, w_im = xd * xr + yd * yr, yd * xr - xd * yr  # z_drive * conj(z_ref), |w| = rho_ref * rho_drive
    w2 = w_re**2 + w_im**2
    confidence = (w2 / rotation_confidence**4).clamp_max(1.0)  # (rho_ref rho_drive / rho0^2)^2, capped at 1
    # atan2 has no gradient at (0, 0): feed a harmless (1, 0) there and zero the result (double-where trick).
    safe = w2 > 1e-20
    phi = 0.5 * torch.atan2(torch.where(safe, w_im, 0.0), torch.where(safe, w_re, 1.0))
    return torch.where(safe, confidence * phi, 0.0)


def heatmap_centres(heatmap: Tensor) -> Tensor:
    """(B, K, h, w) heat maps (each summing to 1) -> (B, K, 2) their means (soft-argmax), normalised, x first."""
    assert heatmap.ndim == 4, f"heatmap must be (B, K, h, w), got {tuple(heatmap.shape)}"
    grid = identity_grid(*heatmap.shape[-2:], device=heatmap.device, dtype=heatmap.dtype)  # (1, 2, h, w)
    return torch.einsum("bkhw,chw->bkc", heatmap, grid[0])  # (B, K, 2)


def heatmap_to_regions(heatmap: Tensor) -> RegionParams:
    """(B, K, h, w) heat maps (each summing to 1) -> centres and covariances."""
    h, w = heatmap.shape[-2:]
    shift = heatmap_centres(heatmap)  # (B, K, 2)
    grid = identity_grid(h, w, device=heatmap.device, dtype=heatmap.dtype)  # (1, 2, h, w)
    grid = grid.permute(0, 2, 3, 1).unsqueeze(1)  # (1, 1, h, w, 2)
    weights = heatmap.unsqueeze(-1)  # (B, K, h, w, 1)
    diff = grid - shift[:, :, None, None, :]  # (B, K, h, w, 2)
    covar = (weights.unsqueeze(-1) * diff.unsqueeze(-1) * diff.unsqueeze(-2)).sum(dim=(2, 3))  # (B, K, 2, 2)
    # A point mass still covers one pixel: add the variance of a uniform pixel, (2 / size)^2 / 12, per axis.
    pixel_var = torch.tensor([(2.0 / w) ** 2 / 12.0, (2.0 / h) ** 2 / 12.0], device=heatmap.device)
    covar = covar + torch.diag_embed(pixel_var.to(heatmap.dtype))  # (B, K, 2, 2)
    return RegionParams(heatmap=heatmap, shift=shift, covar=covar)


def region_motion(ref: RegionParams, drive: RegionParams, use_affine: bool, rotation_confidence: float) -> Tensor:
    """(B, K, 2, 2) linear part M of each region's drive -> reference motion (identity without affine)."""
    if not use_affine:
        eye = torch.eye(2, device=ref.shift.device, dtype=ref.shift.dtype)
        return eye.expand(*ref.shift.shape[:2], 2, 2)  # (B, K, 2, 2)
    ref_root, _ = sqrtm_2x2(ref.covar)  # (B, K, 2, 2)
    _, drive_inv_root = sqrtm_2x2(drive.covar)
    turn = region_turn(ref.covar, drive.covar, rotation_confidence)  # (B, K)
    return ref_root @ _rotation(-turn) @ drive_inv_root  # (B, K, 2, 2)


def sparse_motions(ref: RegionParams, drive: RegionParams, size: tuple[int, int], motion: Tensor) -> Tensor:
    """Backward flow of each region plus a still background: (B, K + 1, 2, h, w), normalised, index 0 = background.

    Region k's flow at drive point z is mu_ref + M_k (z - mu_drive) - z, with `motion` M (B, K, 2, 2) from
    `region_motion`.
    """
    h, w = size
    z = identity_grid(h, w, device=ref.shift.device, dtype=ref.shift.dtype)  # (1, 2, h, w)
    z = z.permute(0, 2, 3, 1).unsqueeze(1)  # (1, 1, h, w, 2)
    rel = z - drive.shift[:, :, None, None, :]  # (B, K, h, w, 2)
    mapped = torch.einsum("bkij,bkhwj->bkhwi", motion, rel) + ref.shift[:, :, None, None, :]  # (B, K, h, w, 2)
    flows = (mapped - z).permute(0, 1, 4, 2, 3)  # (B, K, 2, h, w)
    background = torch.zeros_like(flows[:, :1])  # (B, 1, 2, h, w)
    return torch.cat([background, flows], dim=1)  # (B, K + 1, 2, h, w)


def bone_flows(
    ref_joints: Tensor,
    drive_joints: Tensor,
    ends: tuple[tuple[int, int], ...],
    size: tuple[int, int],
    max_scale: float = 2.0,
) -> Tensor:
    """Backward flow (B, P, 2, h, w), normalised, of each bone moving rigidly: the rotation, uniform scale (at most
    `max_scale` either way) and shift that carry the drive frame's segment between joints `ends[p]` onto the
    reference's, about the segment's midpoint. Unlike a covariance's turn, this follows any turn, past 90 degrees
    too. Joints (B, J, 2) normalised, x first."""
    h, w = size
    a, b = torch.tensor([e[0] for e in ends]), torch.tensor([e[1] for e in ends])
    ref_from, ref_to = ref_joints[:, a], ref_joints[:, b]  # (B, P, 2) each
    drive_from, drive_to = drive_joints[:, a], drive_joints[:, b]
    # As complex numbers: q = (ref bone) / (drive bone) turns and scales the drive bone onto the reference's.
    ref_bone = torch.view_as_complex((ref_to - ref_from).float().contiguous())  # (B, P)
    drive_bone = torch.view_as_complex((drive_to - drive_from).float().contiguous())
    q = ref_bone * drive_bone.conj() / (drive_bone.abs() ** 2).clamp_min(1e-6)  # (B, P)
    scale = q.abs().clamp_min(1e-6)
    q = q * (scale.clamp(1.0 / max_scale, max_scale) / scale)
    ref_mid, drive_mid = 0.5 * (ref_from + ref_to), 0.5 * (drive_from + drive_to)  # (B, P, 2) each
    z = identity_grid(h, w, device=ref_joints.device, dtype=torch.float32)[0]  # (2, h, w)
    rel = z[None, None] - drive_mid.float()[..., None, None]  # (B, P, 2, h, w)
    qr, qi = q.real[..., None, None], q.imag[..., None, None]  # (B, P, 1, 1) each
    mapped = torch.stack([qr * rel[:, :, 0] - qi * rel[:, :, 1], qi * rel[:, :, 0] + qr * rel[:, :, 1]], dim=2)
    return (mapped + ref_mid.float()[..., None, None] - z).to(ref_joints.dtype)  # (B, P, 2, h, w)


def region_gaussians(regions: RegionParams, size: tuple[int, int], variance: float | None) -> Tensor:
    """(B, K, h, w) unnormalised Gaussians at the region centres: the regions' own covariances, or an isotropic
    `variance` (normalised units) when given. Used to tell the dense motion net where each region is."""
    h, w = size
    z = identity_grid(h, w, device=regions.shift.device, dtype=regions.shift.dtype)  # (1, 2, h, w)
    z = z.permute(0, 2, 3, 1).unsqueeze(1)  # (1, 1, h, w, 2)
    rel = z - regions.shift[:, :, None, None, :]  # (B, K, h, w, 2)
    if variance is not None:
        mahal = (rel**2).sum(-1) / variance  # (B, K, h, w)
    else:
        precision = torch.linalg.inv(regions.covar)  # (B, K, 2, 2)
        mahal = torch.einsum("bkhwi,bkij,bkhwj->bkhw", rel, precision, rel)  # (B, K, h, w)
    return torch.exp(-0.5 * mahal)


class RegionPredictor(nn.Module):
    """Frame (B, 3, h, w) -> K region heat maps and their parameters.

    An hourglass over the downscaled frame, a 7x7 conv to K logits, and a spatial softmax with a temperature
    (a low temperature makes peaked maps, hence well-localised centres). With `num_joints`, a second 7x7 conv
    gives that many joint maps, whose soft-argmax are the skeleton's joints (`RegionParams.joints`).
    """

    def __init__(
        self,
        num_regions: int,
        base_channels: int,
        max_channels: int,
        depth: int,
        temperature: float,
        in_channels: int = 3,
        groups: int = 8,
        num_joints: int = 0,
    ) -> None:
        super().__init__()
        self.num_regions = num_regions
        self.temperature = temperature
        self.hourglass = Hourglass(in_channels, base_channels, max_channels, depth, groups)
        self.head = nn.Conv2d(self.hourglass.out_channels, num_regions, 7, padding=3)
        self.joint_head = nn.Conv2d(self.hourglass.out_channels, num_joints, 7, padding=3) if num_joints else None

    def forward(self, image: Tensor) -> RegionParams:
        assert image.ndim == 4, f"image must be (B, C, h, w), got {tuple(image.shape)}"
        features = self.hourglass(image)  # (B, F, h, w)
        regions = heatmap_to_regions(spatial_softmax(self.head(features) / self.temperature))
        if self.joint_head is not None:
            joint_maps = spatial_softmax(self.joint_head(features) / self.temperature)  # (B, P, h, w)
            regions.joints = heatmap_centres(joint_maps)  # (B, P, 2)
        return regions


def spatial_softmax(logits: Tensor) -> Tensor:
    """(B, K, h, w) logits -> K maps, each a probability distribution over positions."""
    b, k, h, w = logits.shape
    return torch.softmax(logits.reshape(b, k, h * w), dim=-1).reshape(b, k, h, w)
