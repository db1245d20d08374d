"""The procedural dancer's skeleton: joint names, body proportions and pose -> joint positions.

A pose is a small vector of named parameters (pelvis offset, torso and head angles, arm angles, foot targets).
Arms and spine are forward kinematics from the pelvis; legs are two-bone inverse kinematics towards foot
targets, so planted feet stay planted while the pelvis bounces. Everything is vectorised over frames.

Coordinates are in body heights (a standing dancer is about 1 tall), x to the image right, y down, origin on
the floor midway between the feet. The dancer faces the camera, so their left side is on the image right.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "head",
    "neck",
    "chest",
    "pelvis",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "l_hip",
    "l_knee",
    "l_ankle",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_toe",
    "r_toe",
)
J: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

# Parent -> child pairs, for drawing stick figures and for tests that check bone lengths.
BONES: tuple[tuple[str, str], ...] = (
    ("pelvis", "chest"),
    ("chest", "neck"),
    ("neck", "head"),
    ("neck", "l_shoulder"),
    ("l_shoulder", "l_elbow"),
    ("l_elbow", "l_wrist"),
    ("neck", "r_shoulder"),
    ("r_shoulder", "r_elbow"),
    ("r_elbow", "r_wrist"),
    ("pelvis", "l_hip"),
    ("l_hip", "l_knee"),
    ("l_knee", "l_ankle"),
    ("l_ankle", "l_toe"),
    ("pelvis", "r_hip"),
    ("r_hip", "r_knee"),
    ("r_knee", "r_ankle"),
    ("r_ankle", "r_toe"),
)

# Pose parameters. Angles in radians, distances in body heights. Arm angles are mirror-symmetric: for either
# arm, 0 hangs down, pi/2 points straight out sideways, pi points up, negative crosses in front of the body.
# The elbow angle turns the forearm further the same way. Foot x is outward from the neutral stance, foot y is
# lift off the floor. Torso angles are positive towards the image right.
POSE_PARAMS: tuple[str, ...] = (
    "root_x",  # pelvis shift sideways
    "root_y",  # pelvis drop (knee bend); negative rises
    "hip_tilt",  # pelvis roll (hip sway)
    "lean",  # spine lean from the pelvis
    "chest",  # upper spine bend relative to the lower spine (chest pops)
    "head",  # head tilt relative to the upper spine
    "l_shrug",  # shoulder raise
    "r_shrug",
    "l_arm",
    "l_elbow",
    "r_arm",
    "r_elbow",
    "l_foot_x",
    "l_foot_y",
    "r_foot_x",
    "r_foot_y",
    "l_toe",  # foot point (ballet) / flex
    "r_toe",
    "turnout",  # how far bent knees show sideways (1 = turned out, plie) rather than towards the camera
)
P: dict[str, int] = {name: i for i, name in enumerate(POSE_PARAMS)}
NUM_PARAMS = len(POSE_PARAMS)


def mirror_params(names: tuple[str, ...] = POSE_PARAMS) -> tuple[np.ndarray, np.ndarray]:
    """Index permutation and sign vector that mirror a pose left <-> right: pose[..., perm] * sign."""
    perm, sign = [], []
    for name in names:
        other = "r_" + name[2:] if name.startswith("l_") else "l_" + name[2:] if name.startswith("r_") else name
        perm.append(names.index(other))
        sign.append(-1.0 if name in ("root_x", "hip_tilt", "lean", "chest", "head") else 1.0)
    return np.array(perm), np.array(sign)


MIRROR_PERM, MIRROR_SIGN = mirror_params()


def mirror_pose(pose: np.ndarray) -> np.ndarray:
    """(..., P) pose -> the same pose with left and right swapped."""
    return pose[..., MIRROR_PERM] * MIRROR_SIGN


@dataclass(frozen=True)
class Proportions:
    """Bone lengths in body heights; varied per dancer so the model does not learn one body."""

    head_r: float = 0.065  # head radius (half the head height)
    neck: float = 0.045  # neck joint -> bottom of the head
    upper_spine: float = 0.13  # chest -> neck
    lower_spine: float = 0.15  # pelvis -> chest
    shoulder_half: float = 0.105  # half the shoulder width
    hip_half: float = 0.055
    upper_arm: float = 0.165
    forearm: float = 0.15
    thigh: float = 0.235
    shin: float = 0.225
    ankle_h: float = 0.035  # ankle joint above the floor
    foot: float = 0.06
    stance_half: float = 0.07  # half the distance between the ankles in the neutral stance
    knee_bend: float = 0.03  # fraction by which the neutral standing leg is shorter than straight

    def scaled(self, **factors: float) -> Proportions:
        values = {f.name: getattr(self, f.name) * factors.get(f.name, 1.0) for f in fields(self)}
        return Proportions(**values)


def random_proportions(rng: np.random.Generator) -> Proportions:
    """A plausible adult or teen body: limb, torso and width ratios each varied by up to ~12%."""
    legs = rng.uniform(0.92, 1.08)
    arms = rng.uniform(0.92, 1.08)
    width = rng.uniform(0.88, 1.15)
    torso = rng.uniform(0.92, 1.08)
    return Proportions().scaled(
        head_r=rng.uniform(0.9, 1.1),
        neck=rng.uniform(0.85, 1.15),
        upper_spine=torso,
        lower_spine=torso * rng.uniform(0.95, 1.05),
        shoulder_half=width * rng.uniform(0.95, 1.05),
        hip_half=width * rng.uniform(0.9, 1.15),
        upper_arm=arms,
        forearm=arms * rng.uniform(0.95, 1.05),
        thigh=legs,
        shin=legs * rng.uniform(0.95, 1.05),
        stance_half=rng.uniform(0.85, 1.3),
        knee_bend=rng.uniform(0.6, 1.4),
    )


def _rot(angle: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rotate vectors (x, y) by `angle` (image coordinates, y down): (..., 2)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([x * c - y * s, x * s + y * c], axis=-1)


def _two_bone_ik(
    root: np.ndarray, target: np.ndarray, l1: float, l2: float, bend: np.ndarray, out: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Middle joint and (reachable) end for a two-bone chain from `root` towards `target`, (T, 2) each.

    Of the two solutions the middle joint takes the one on the side of `bend` (T, 2). `out` (T,) in [0, 1]
    scales its sideways offset: a knee bending towards the camera shows foreshortened bones, not a bow-leg.
    A target out of reach leaves the chain straight (or folded) along the root -> target line.
    """
    d = target - root
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    unit = d / np.maximum(dist, 1e-9)
    dist = np.clip(dist, abs(l1 - l2) + 1e-4, (l1 + l2) * (1 - 1e-4))
    end = root + unit * dist
    along = (l1 * l1 - l2 * l2 + dist * dist) / (2 * dist)
    across = np.sqrt(np.maximum(l1 * l1 - along * along, 0.0))
    normal = np.stack([-unit[:, 1], unit[:, 0]], axis=-1)
    flip = np.sign(np.sum(normal * bend, axis=-1, keepdims=True))
    flip[flip == 0] = 1.0
    return root + unit * along + normal * (across * flip * out[:, None]), end


def standing_pelvis_height(props: Proportions) -> float:
    """Height of the pelvis above the floor in the neutral pose (legs almost straight)."""
    return props.ankle_h + (props.thigh + props.shin) * (1.0 - props.knee_bend)


def forward_kinematics(poses: np.ndarray, props: Proportions) -> np.ndarray:
    """(T, P) poses -> (T, J, 2) joint positions in body heights (x right, y down, floor at y = 0)."""
    poses = np.asarray(poses, dtype=np.float64)
    assert poses.ndim == 2 and poses.shape[1] == NUM_PARAMS, f"poses must be (T, {NUM_PARAMS}), got {poses.shape}"
    p = {name: poses[:, i] for i, name in enumerate(POSE_PARAMS)}
    t = len(poses)
    out = np.zeros((t, len(JOINT_NAMES), 2))
    zero = np.zeros(t)

    pelvis = np.stack([p["root_x"], -standing_pelvis_height(props) + p["root_y"]], axis=-1)
    out[:, J["pelvis"]] = pelvis
    # spine: pelvis -> chest -> neck -> head centre, each segment turning by its own angle
    a1 = p["lean"]
    a2 = a1 + p["chest"]
    a3 = a2 + p["head"]
    chest = pelvis + _rot(a1, zero, zero - props.lower_spine)
    neck = chest + _rot(a2, zero, zero - props.upper_spine)
    out[:, J["chest"]] = chest
    out[:, J["neck"]] = neck
    out[:, J["head"]] = neck + _rot(a3, zero, zero - (props.neck + props.head_r))

    for side, s in (("l", 1.0), ("r", -1.0)):
        # shoulders hang a little below the neck joint on the upper-spine frame; a shrug raises them
        shoulder = neck + _rot(a2, zero + s * props.shoulder_half, zero + 0.025 - p[f"{side}_shrug"])
        arm = p[f"{side}_arm"]
        fore = arm + p[f"{side}_elbow"]
        elbow = shoulder + props.upper_arm * _rot(a2, s * np.sin(arm), np.cos(arm))
        wrist = elbow + props.forearm * _rot(a2, s * np.sin(fore), np.cos(fore))
        out[:, J[f"{side}_shoulder"]] = shoulder
        out[:, J[f"{side}_elbow"]] = elbow
        out[:, J[f"{side}_wrist"]] = wrist

        hip = pelvis + _rot(p["hip_tilt"], zero + s * props.hip_half, zero)
        target = np.stack(
            [s * (props.stance_half + p[f"{side}_foot_x"]), -props.ankle_h - p[f"{side}_foot_y"]], axis=-1
        )
        # knees bend outward (a frontal squat) and, for a leg raised sideways, upward
        bend = np.broadcast_to(np.array([s, -0.3]), (t, 2))
        knee, ankle = _two_bone_ik(hip, target, props.thigh, props.shin, bend, np.clip(p["turnout"], 0.0, 1.0))
        foot_angle = s * p[f"{side}_toe"]
        fx, fy = s * np.sqrt(max(props.foot**2 - props.ankle_h**2, 1e-6)), props.ankle_h
        out[:, J[f"{side}_hip"]] = hip
        out[:, J[f"{side}_knee"]] = knee
        out[:, J[f"{side}_ankle"]] = ankle
        out[:, J[f"{side}_toe"]] = ankle + _rot(foot_angle, zero + fx, zero + fy)
    return out
