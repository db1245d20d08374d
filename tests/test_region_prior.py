"""The region prior: target heat maps around the skeleton's body parts, the loss against them, the joints the
frame-pair data set hands over with its frames."""


import numpy as np
import pytest
import torch

from dance_any_beat.data.procedural import read_clip
from dance_any_beat.data.skeleton import J
from dance_any_beat.models.lfae import LFAE, LFAEConfig
from dance_any_beat.models.losses import LFAELossConfig, lfae_loss
from dance_any_beat.models.region_prior import REGION_PARTS, part_heatmaps, region_prior_loss
from dance_any_beat.train.datasets import FramePairs, ProceduralSource
from dance_any_beat.warp import identity_grid


def star_skeleton(size: int = 128) -> torch.Tensor:
    """(1, J, 2) joints of a dancer with arms and legs spread, in pixels of a size x size frame."""
    spots = {
        "head": (64, 30), "neck": (64, 42), "chest": (64, 52), "pelvis": (64, 72),
        "l_shoulder": (74, 44), "l_elbow": (88, 40), "l_wrist": (102, 34),
        "r_shoulder": (54, 44), "r_elbow": (40, 52), "r_wrist": (30, 62),
        "l_hip": (70, 74), "l_knee": (78, 92), "l_ankle": (82, 110),
        "r_hip": (58, 74), "r_knee": (50, 92), "r_ankle": (46, 110), "l_toe": (88, 112), "r_toe": (40, 112),
    }  # fmt: skip
    joints = torch.zeros(1, len(J), 2)
    for name, xy in spots.items():
        joints[0, J[name]] = torch.tensor(xy, dtype=torch.float32) * (size / 128)
    return joints


def test_each_target_is_a_tube_around_its_body_part_and_fits_only_there():
    joints = star_skeleton()
    target = part_heatmaps(joints, 128, 32, sigma=1.0, parts=len(REGION_PARTS))  # (1, 10, 32, 32)
    torch.testing.assert_close(target.sum(dim=(-2, -1)), torch.ones(1, len(REGION_PARTS)))
    grid = identity_grid(32, 32).permute(0, 2, 3, 1)[0]  # (32, 32, 2), normalised pixel centres
    for k, (a, b) in enumerate(REGION_PARTS):
        peak = grid.reshape(-1, 2)[target[0, k].argmax()]  # normalised
        ends = joints[0, [J[a], J[b]]] * (2.0 / 128) - 1.0  # (2, 2)
        # the peak lies on the segment between the part's joints (within a latent pixel, 2/32)
        along = ((peak - ends[0]) @ (ends[1] - ends[0]) / (ends[1] - ends[0]).square().sum()).clamp(0, 1)
        closest = ends[0] + along * (ends[1] - ends[0])
        assert (peak - closest).norm() < 2.0 / 32, (a, b, peak, ends)
    assert float(region_prior_loss(target, joints, 128, 1.0)) == pytest.approx(0.0, abs=1e-5)
    # the left forearm's map where the right forearm is: far from a fit; regions past the listed parts are free
    swapped = target.clone()
    swapped[:, [3, 5]] = target[:, [5, 3]]
    assert float(region_prior_loss(swapped, joints, 128, 1.0)) > 1.0
    extra = torch.cat([target, torch.full((1, 2, 32, 32), 1.0 / 32**2)], dim=1)  # 12 regions, 10 parts
    assert float(region_prior_loss(extra, joints, 128, 1.0)) == pytest.approx(0.0, abs=1e-5)


def test_the_prior_pulls_a_heat_map_onto_its_part():
    joints = star_skeleton()
    logits = torch.zeros(1, len(REGION_PARTS), 32, 32, requires_grad=True)  # flat maps: no part yet
    optimiser = torch.optim.Adam([logits], lr=0.3)
    with torch.no_grad():
        before = float(region_prior_loss(torch.softmax(logits.flatten(2), -1).view_as(logits), joints, 128, 1.0))
    for _ in range(100):
        optimiser.zero_grad()
        loss = region_prior_loss(torch.softmax(logits.flatten(2), -1).view_as(logits), joints, 128, 1.0)
        loss.backward()
        optimiser.step()
    assert float(loss) < 0.1 * before


def test_frame_pairs_hand_over_the_skeleton_of_their_frames(procedural_data):
    split = procedural_data(2) / "train"
    native = FramePairs(ProceduralSource(split), size=64, pairs_per_clip=4, seed=3)
    half = FramePairs(ProceduralSource(split), size=32, pairs_per_clip=4, seed=3)
    clip = read_clip(sorted(p for p in split.iterdir() if p.is_dir())[0])
    for item in range(4):  # clip 0's pairs
        full, small = native[item], half[item]
        for key in ("ref", "drive"):
            joints = full[f"{key}_joints"].numpy()  # (J, 2) pixels of the 64 px frame
            # the joints are those of the frame drawn: the same frame of the clip
            frame = int(np.argmin(np.abs(clip.joints - joints[None]).sum(axis=(1, 2))))
            np.testing.assert_allclose(clip.joints[frame], joints, atol=1e-4)
            np.testing.assert_array_equal((full[key].permute(1, 2, 0).numpy() * 255).round(), clip.frames[frame])
            # a smaller training size scales them with the frames
            torch.testing.assert_close(small[f"{key}_joints"], full[f"{key}_joints"] * 0.5)


def test_the_prior_without_a_skeleton_says_so():
    torch.manual_seed(0)
    model = LFAE(LFAEConfig(image_size=32, latent_size=8, latent_channels=8, base_channels=8, num_regions=2,
                            region_channels=8, region_max_channels=16, region_depth=2, motion_channels=8,
                            motion_max_channels=16, motion_depth=2))  # fmt: skip
    frames = torch.rand(2, 3, 32, 32)
    output = model(frames, frames.flip(0))
    config = LFAELossConfig(region_prior_weight=0.1, equivariance_shift_weight=0, equivariance_affine_weight=0)
    with pytest.raises(ValueError, match="region_prior_weight needs the frames' skeleton joints"):
        lfae_loss(output, frames.flip(0), config, model=model)
    joints = star_skeleton(32).expand(2, -1, -1)
    total, parts = lfae_loss(output, frames.flip(0), config, model=model, joints=(joints, joints))
    assert parts["region_prior"] > 0 and torch.isfinite(total)
