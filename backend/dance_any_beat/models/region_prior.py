"""A prior that puts the LFAE's motion regions on the dancer's body parts, where the data set knows the skeleton.

Left unsupervised on 32 x 32 frames, the starter's regions all settled on the torso and the dense motion net moved
the whole dancer with one of them: limbs that turn were not followed, the occlusion map hid them and the decoder
painted them blurred (the LFAE's SSIM stalled near 0.88). This prior gives region k a target heat map, a Gaussian
tube of `sigma` latent pixels around body part k, and scores the region's own heat map against it by cross-entropy.
Regions beyond the listed parts stay free. Procedural clips carry their joints; AIST++'s 2D keypoints could too.

With `LFAEConfig.bone_motion` the region predictor also finds the joints that end the parts (BONE_JOINTS), and
`joint_loss` scores them against the data's; `mask_prior_loss` has the dense motion net move each part's pixels
with that part's region.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dance_any_beat.data.skeleton import J
from dance_any_beat.warp import identity_grid

# Body parts as (from, to) joints, in the order regions take them: the trunk and head first, then the limbs.
REGION_PARTS: tuple[tuple[str, str], ...] = (
    ("pelvis", "neck"),
    ("neck", "head"),
    ("l_shoulder", "l_elbow"),
    ("l_elbow", "l_wrist"),
    ("r_shoulder", "r_elbow"),
    ("r_elbow", "r_wrist"),
    ("l_hip", "l_knee"),
    ("l_knee", "l_ankle"),
    ("r_hip", "r_knee"),
    ("r_knee", "r_ankle"),
)

# The joints that end the parts, each once, in the order the region predictor's joint maps take them.
BONE_JOINTS: tuple[str, ...] = tuple(dict.fromkeys(name for part in REGION_PARTS for name in part))
# Each part's (from, to) as indices into BONE_JOINTS.
PART_ENDS: tuple[tuple[int, int], ...] = tuple((BONE_JOINTS.index(a), BONE_JOINTS.index(b)) for a, b in REGION_PARTS)


def normalised_joints(joints: Tensor, image_size: int) -> Tensor:
    """The data's joints (B, J, 2) in pixels of the S x S frame -> BONE_JOINTS (B, len(BONE_JOINTS), 2) in the
    normalised [-1, 1] coordinates of `identity_grid` (x first, on pixel centres)."""
    assert joints.ndim == 3 and joints.shape[-1] == 2, f"joints must be (B, J, 2), got {tuple(joints.shape)}"
    index = torch.tensor([J[name] for name in BONE_JOINTS], device=joints.device)
    return pixels_to_normalised(joints[:, index], image_size)


def pixels_to_normalised(points: Tensor, image_size: int) -> Tensor:
    """(..., 2) pixel coordinates of the S x S frame -> `identity_grid`'s [-1, 1] (pixel i's centre is i + 0.5)."""
    return (points.float() + 0.5) * (2.0 / image_size) - 1.0


def joint_loss(predicted: Tensor, joints: Tensor, image_size: int) -> Tensor:
    """Mean distance between the predicted BONE_JOINTS (B, P, 2), normalised, and the data's joints (B, J, 2), px;
    in normalised units (2 / latent_size is one latent pixel)."""
    target = normalised_joints(joints, image_size)  # (B, P, 2)
    assert predicted.shape == target.shape, f"predicted joints {tuple(predicted.shape)} != {tuple(target.shape)}"
    return (predicted.float() - target).norm(dim=-1).mean()


def part_heatmaps(joints: Tensor, image_size: int, latent_size: int, sigma: float, parts: int) -> Tensor:
    """joints (B, J, 2) in pixels of the S x S frame (x first) -> (B, parts, h, w) target heat maps, each summing
    to 1: a Gaussian of `sigma` latent pixels around the segment of one body part of REGION_PARTS."""
    logits = part_logits(joints, image_size, latent_size, sigma, parts)
    return torch.softmax(logits.flatten(2), dim=-1).reshape(logits.shape)  # (B, P, h, w)


def part_logits(joints: Tensor, image_size: int, latent_size: int, sigma: float, parts: int) -> Tensor:
    """(B, parts, h, w): -d^2 / (2 sigma^2), d a latent pixel's distance to the segment of body part p."""
    assert joints.ndim == 3 and joints.shape[-1] == 2, f"joints must be (B, J, 2), got {tuple(joints.shape)}"
    assert 1 <= parts <= len(REGION_PARTS), f"parts must be in 1..{len(REGION_PARTS)}, got {parts}"
    start = torch.tensor([J[a] for a, _ in REGION_PARTS[:parts]], device=joints.device)
    end = torch.tensor([J[b] for _, b in REGION_PARTS[:parts]], device=joints.device)
    normalised = pixels_to_normalised(joints, image_size)  # (B, J, 2), as the joints the LFAE finds
    a, b = normalised[:, start], normalised[:, end]  # (B, P, 2) each
    z = identity_grid(latent_size, latent_size, device=joints.device).permute(0, 2, 3, 1)  # (1, h, w, 2)
    ab = (b - a)[:, :, None, None, :]  # (B, P, 1, 1, 2)
    az = z[:, None] - a[:, :, None, None, :]  # (B, P, h, w, 2)
    along = ((az * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0.0, 1.0)  # (B, P, h, w)
    distance2 = ((az - along[..., None] * ab) ** 2).sum(-1)  # (B, P, h, w) squared distance to the segment
    spread = sigma * 2.0 / latent_size  # sigma latent pixels in normalised units
    return -0.5 * distance2 / spread**2  # (B, P, h, w)


def region_prior_loss(heatmap: Tensor, joints: Tensor, image_size: int, sigma: float) -> Tensor:
    """Cross-entropy of the first regions' heat maps (B, K, h, w) against their body parts' targets, minus the
    targets' own entropy (so 0 = a perfect fit), averaged over regions and frames."""
    parts = min(heatmap.shape[1], len(REGION_PARTS))
    target = part_heatmaps(joints, image_size, heatmap.shape[-1], sigma, parts)  # (B, P, h, w)
    predicted = heatmap[:, :parts].float().clamp_min(1e-12).log()
    own = target.clamp_min(1e-12).log()
    return (target * (own - predicted)).sum(dim=(-2, -1)).mean()  # KL(target || predicted)


def mask_prior_loss(mask: Tensor, joints: Tensor, image_size: int, sigma: float) -> Tensor:
    """Cross-entropy of the dense motion net's choice (B, 1 + K, h, w; motion 0 the still background) against region
    p on drive pixels of body part p, each pixel weighted by its nearness to the part (a Gaussian of `sigma` latent
    pixels): the net had learned to move the whole dancer with one region, which hid turning limbs."""
    parts = min(mask.shape[1] - 1, len(REGION_PARTS))
    nearness, part = part_logits(joints, image_size, mask.shape[-1], sigma, parts).exp().max(dim=1)  # (B, h, w) each
    chosen = mask[:, 1 : 1 + parts].float().gather(1, part[:, None])[:, 0]  # (B, h, w) weight of part's region
    return -(nearness * chosen.clamp_min(1e-6).log()).sum() / nearness.sum().clamp_min(1e-6)
