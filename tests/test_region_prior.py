"""The region prior: target heat maps around the skeleton's body parts, the loss against them, the joints the
frame-pair data set hands over with its frames; bone motion: regions moved by the joints a bone LFAE finds."""

import dataclasses

import numpy as np
import pytest
import torch

from dance_any_beat.data.procedural import read_clip
from dance_any_beat.data.skeleton import J
from dance_any_beat.models.keypoints import bone_flows, heatmap_to_regions, region_motion, sparse_motions
from dance_any_beat.models.lfae import LFAE, LFAEConfig
from dance_any_beat.models.losses import LFAELossConfig, lfae_loss
from dance_any_beat.models.region_prior import (
    BONE_JOINTS,
    PART_ENDS,
    REGION_PARTS,
    mask_prior_loss,
    normalised_joints,
    part_heatmaps,
    part_logits,
    region_prior_loss,
)
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


def test_the_tubes_and_the_joint_targets_put_a_pixel_at_the_same_place():
    # at the latent size, a joint on pixel (i, j) is on latent cell (i, j)'s centre: its part's tube is at its
    # maximum (0) there, and the normalised joint is that cell's grid point (both count from pixel centres)
    joints = star_skeleton(32).round()  # on whole pixels
    logits = part_logits(joints, 32, 32, sigma=1.0, parts=len(REGION_PARTS))  # (1, 10, 32, 32)
    grid = identity_grid(32, 32)[0]  # (2, 32, 32)
    for k, (a, _b) in enumerate(REGION_PARTS):
        x, y = (int(v) for v in joints[0, J[a]])
        assert float(logits[0, k, y, x]) == pytest.approx(0.0, abs=1e-6), a
    bone = BONE_JOINTS.index("l_elbow")
    x, y = (int(v) for v in joints[0, J["l_elbow"]])
    torch.testing.assert_close(normalised_joints(joints, 32)[0, bone], grid[:, y, x])


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
    assert float(loss.detach()) < 0.1 * before


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
    with pytest.raises(ValueError, match="region_prior_weight, loss.mask_prior_weight and loss.joint_weight need"):
        lfae_loss(output, frames.flip(0), config, model=model)
    joints = star_skeleton(32).expand(2, -1, -1)
    total, parts = lfae_loss(output, frames.flip(0), config, model=model, joints=(joints, joints))
    assert parts["region_prior"] > 0 and torch.isfinite(total)


def turned_forearm(joints: torch.Tensor, degrees: float, shift: tuple[float, float]) -> torch.Tensor:
    """The skeleton with its left forearm turned about the elbow, then all of it shifted (pixels)."""
    moved = joints.clone()
    elbow, wrist = J["l_elbow"], J["l_wrist"]
    turn = torch.tensor(degrees * np.pi / 180)
    rotation = torch.tensor([[torch.cos(turn), -torch.sin(turn)], [torch.sin(turn), torch.cos(turn)]])
    moved[0, wrist] = moved[0, elbow] + rotation @ (joints[0, wrist] - joints[0, elbow])
    return moved + torch.tensor(shift)


def flow_at(flows: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """flows (B, P, 2, h, w), points (B, P, 2) normalised -> each part's flow at its point, (B, P, 2)."""
    b, p, _, h, w = flows.shape
    sampled = torch.nn.functional.grid_sample(flows.reshape(b * p, 2, h, w), points.reshape(b * p, 1, 1, 2),
                                              align_corners=False)  # fmt: skip
    return sampled.reshape(b, p, 2)


def test_bones_follow_a_limb_turned_past_ninety_degrees_where_a_covariance_cannot():
    ref = star_skeleton()
    drive = turned_forearm(ref, 135.0, (3.0, -2.0))
    ref_n, drive_n = normalised_joints(ref, 128), normalised_joints(drive, 128)  # (1, 15, 2)
    flows = bone_flows(ref_n, drive_n, PART_ENDS, (32, 32))  # (1, 10, 2, 32, 32)
    forearm = REGION_PARTS.index(("l_elbow", "l_wrist"))
    for end in (0, 1):  # each end of the drive forearm is carried onto the same end of the reference's
        index = PART_ENDS[forearm][end]
        point = drive_n[:, index]  # (1, 2)
        mapped = point + flow_at(flows[:, forearm : forearm + 1], point[:, None])[:, 0]
        torch.testing.assert_close(mapped, ref_n[:, index], atol=1e-4, rtol=0)
    # MRAA's motion from the part's (tube-shaped) heat maps turns the forearm by -45 instead of 135 degrees
    ref_regions = heatmap_to_regions(part_heatmaps(ref, 128, 32, 1.0, len(REGION_PARTS)))
    drive_regions = heatmap_to_regions(part_heatmaps(drive, 128, 32, 1.0, len(REGION_PARTS)))
    motion = region_motion(ref_regions, drive_regions, use_affine=True, rotation_confidence=0.3)
    covariance_flows = sparse_motions(ref_regions, drive_regions, (32, 32), motion)[:, 1:]
    wrist = PART_ENDS[forearm][1]
    mapped = drive_n[:, wrist] + flow_at(covariance_flows[:, forearm : forearm + 1], drive_n[:, wrist][:, None])[:, 0]
    assert float((mapped - ref_n[:, wrist]).norm()) > 0.2  # over 12 px of the 128 px frame off


def bone_lfae(num_regions: int = 10) -> LFAE:
    torch.manual_seed(0)
    return LFAE(LFAEConfig(image_size=32, latent_size=8, latent_channels=8, base_channels=8, num_regions=num_regions,
                           region_channels=8, region_max_channels=16, region_depth=2, motion_channels=8,
                           motion_max_channels=16, motion_depth=2, bone_motion=True))  # fmt: skip


def test_a_bone_lfae_moves_its_regions_with_the_joints_it_finds_and_learns_them_from_the_skeleton():
    model = bone_lfae(num_regions=12)  # ten regions follow bones, two stay MRAA regions
    frames = torch.rand(2, 3, 32, 32)
    output = model(frames, frames.flip(0))
    ref, drive = output.motion.ref_regions, output.motion.drive_regions
    assert ref.joints is not None and ref.joints.shape == (2, len(BONE_JOINTS), 2)
    torch.testing.assert_close(output.motion.sparse_flows[:, 1:11], bone_flows(ref.joints, drive.joints, PART_ENDS,
                                                                                (8, 8)))  # fmt: skip
    motion = region_motion(ref, drive, use_affine=True, rotation_confidence=0.3)
    torch.testing.assert_close(output.motion.sparse_flows[:, 11:], sparse_motions(ref, drive, (8, 8), motion)[:, 11:])
    # the joint term pulls the joint head onto the data's joints
    skeleton = star_skeleton(32)
    joints = (skeleton.expand(2, -1, -1), turned_forearm(skeleton, 60.0, (1.0, 0.0)).expand(2, -1, -1))
    config = LFAELossConfig(l1_weight=0, ssim_weight=0, equivariance_shift_weight=0, equivariance_affine_weight=0,
                            joint_weight=1.0)  # fmt: skip
    optimiser = torch.optim.Adam(model.region_predictor.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        total, parts = lfae_loss(model(frames, frames.flip(0)), frames.flip(0), config, model=model, joints=joints)
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        losses.append(float(parts["joints"]))
    assert losses[-1] < 0.5 * losses[0], losses
    # without the data's skeleton, or on an LFAE without bones, the term says what to change
    with pytest.raises(ValueError, match="joint_weight need the frames' skeleton joints"):
        lfae_loss(output, frames.flip(0), config, model=model)
    plain = LFAE(dataclasses.replace(model.config, bone_motion=False))
    with pytest.raises(ValueError, match="set model.bone_motion = true"):
        lfae_loss(plain(frames, frames.flip(0)), frames.flip(0), config, model=plain, joints=joints)


def test_the_mask_prior_wants_each_part_moved_by_its_own_region():
    joints = star_skeleton()
    nearest = part_logits(joints, 128, 32, 1.0, len(REGION_PARTS)).argmax(dim=1)  # (1, 32, 32) nearest part
    right = torch.nn.functional.one_hot(nearest + 1, 1 + len(REGION_PARTS)).permute(0, 3, 1, 2).float() + 1e-3
    right = right / right.sum(dim=1, keepdim=True)  # (1, 11, 32, 32): each part's pixels moved by its region
    one_region = torch.full_like(right, 1e-3)
    one_region[:, 1] = 1.0  # the whole dancer moved by the trunk's region
    one_region = one_region / one_region.sum(dim=1, keepdim=True)
    fit, rigid = float(mask_prior_loss(right, joints, 128, 1.0)), float(mask_prior_loss(one_region, joints, 128, 1.0))
    assert fit < 0.05 and rigid > 2.0, (fit, rigid)
    # a mask with two more regions than parts is scored on the parts' regions alone
    extra = torch.cat([right, torch.zeros(1, 2, 32, 32)], dim=1)
    assert float(mask_prior_loss(extra, joints, 128, 1.0)) == pytest.approx(fit, rel=1e-5)
