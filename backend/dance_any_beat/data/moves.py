"""Per-style move vocabulary and beat-locked choreography for the procedural dancer.

A move is a one-bar phrase for one body part (arms, legs or torso): four key poses, one per beat. Each bar of a
clip draws an arm, a leg and a torso phrase from its style's vocabulary (randomly mirrored and scaled), so
bars vary while the style stays recognisable. Key poses sit exactly on the music's beats and the pose eases
between them (zero speed on each beat, fastest mid-beat), which is what makes the kinematic beats - minima of
the smoothed joint speed - fall on the musical beats. A small groove (hip sway alternating every beat, a
bounce between beats, a deeper drop on the downbeat) keeps the whole body moving on every beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dance_any_beat.data.skeleton import NUM_PARAMS, P, Proportions, forward_kinematics, mirror_pose
from dance_any_beat.styles import STYLE_NAMES, get_style

# Arm shapes as (shoulder angle, elbow angle); see skeleton.POSE_PARAMS for the convention.
ARM_SHAPES: dict[str, tuple[float, float]] = {
    "down": (0.15, 0.15),
    "relaxed": (0.3, -0.5),
    "low_out": (0.75, 0.1),
    "point_down": (0.6, -0.05),
    "out": (1.57, 0.0),
    "out_bent": (1.45, 0.8),
    "high_out": (2.35, 0.0),
    "up": (2.95, 0.05),
    "goal": (1.57, 1.57),
    "flex": (1.3, 2.3),
    "chest": (0.55, -2.3),
    "hip": (0.75, -1.9),
    "jab": (1.1, -1.45),
    "across": (-1.2, 0.1),
    "cross_low": (-0.3, -0.2),
    "head": (2.3, 1.9),
    "whip": (3.6, 0.35),
    "fifth": (2.55, 1.25),
    "first": (0.4, -1.0),
    "second": (1.35, 0.25),
}

ARM_KEYS = ("l_arm", "l_elbow", "r_arm", "r_elbow", "l_shrug", "r_shrug")
LEG_KEYS = ("l_foot_x", "l_foot_y", "r_foot_x", "r_foot_y", "l_toe", "r_toe", "root_x", "root_y")
TORSO_KEYS = ("lean", "chest", "head", "hip_tilt")

Ease = str  # "smooth" | "sharp" | "snap"


@dataclass(frozen=True)
class Phrase:
    """One bar of one body part: four keys (one per beat) and four in-between bumps.

    `bumps[i]` is added along the segment that arrives on beat i (a foot lifted on the way to a stomp). Arm
    keys are absolute shapes, leg and torso keys are offsets from the style's base pose.
    """

    name: str
    keys: tuple[dict[str, float], ...]
    bumps: tuple[dict[str, float], ...] = ({}, {}, {}, {})


def arms(name: str, *keys: tuple) -> Phrase:
    """Arm phrase from shape names: each key is (left, right) or (left, right, left shrug, right shrug)."""
    out = []
    for key in keys:
        left, right = ARM_SHAPES[key[0]], ARM_SHAPES[key[1]]
        shrug = key[2:] if len(key) > 2 else (0.0, 0.0)
        out.append(
            {"l_arm": left[0], "l_elbow": left[1], "r_arm": right[0], "r_elbow": right[1],
             "l_shrug": shrug[0], "r_shrug": shrug[1]}
        )
    assert len(out) == 4, f"a phrase has 4 keys, {name} has {len(out)}"
    return Phrase(name, tuple(out))


def feet(
    lx: float = 0.0, ly: float = 0.0, rx: float = 0.0, ry: float = 0.0, y: float = 0.0, x: float = 0.0,
    lt: float = 0.0, rt: float = 0.0,
) -> dict[str, float]:
    """Leg key: foot offsets (outward, lift), toe points, pelvis offsets."""
    return {"l_foot_x": lx, "l_foot_y": ly, "r_foot_x": rx, "r_foot_y": ry, "l_toe": lt, "r_toe": rt,
            "root_x": x, "root_y": y}


def torso(lean: float = 0.0, chest: float = 0.0, head: float = 0.0, hip: float = 0.0) -> dict[str, float]:
    """Torso key: spine lean, chest bend, head tilt and hip sway offsets (radians)."""
    return {"lean": lean, "chest": chest, "head": head, "hip_tilt": hip}


# ------------------------------------------------------------------------------------------ shared phrases
LEGS = {
    "groove": Phrase("groove", (feet(y=0.02), feet(), feet(y=0.02), feet())),
    "step_touch": Phrase("step_touch", (feet(lx=0.07, rx=-0.06, ry=0.01), feet(rx=0.07, lx=-0.06, ly=0.01)) * 2),
    "march": Phrase("march", (feet(ly=0.09), feet(ry=0.09)) * 2),
    "wide_bounce": Phrase("wide_bounce", (feet(lx=0.05, rx=0.05, y=0.06), feet(lx=0.05, rx=0.05)) * 2),
    "knee_drop": Phrase(
        "knee_drop", (feet(y=0.2, lx=0.08, rx=0.02), feet(y=0.03), feet(y=0.16, rx=0.08, lx=0.02), feet(y=0.03))
    ),
    "toprock": Phrase(
        "toprock",
        (feet(rx=-0.16, y=0.03), feet(rx=0.04, lx=0.04), feet(lx=-0.16, y=0.03), feet(lx=0.04, rx=0.04)),
    ),
    "kick_side": Phrase("kick_side", (feet(lx=0.2, ly=0.26, lt=0.8), feet(), feet(rx=0.2, ry=0.26, rt=0.8), feet())),
    "stomp": Phrase(
        "stomp",
        (feet(y=0.07, lx=0.05), feet(y=0.03, lx=0.05), feet(y=0.07, rx=0.05), feet(y=0.03, rx=0.05)),
        bumps=({"l_foot_y": 0.13}, {}, {"r_foot_y": 0.13}, {}),
    ),
    "tendu": Phrase("tendu", (feet(lx=0.16, ly=0.01, lt=0.9), feet(), feet(rx=0.16, ry=0.01, rt=0.9), feet())),
    "developpe": Phrase(
        "developpe",
        (feet(lx=0.1, ly=0.16, lt=0.7), feet(lx=0.22, ly=0.3, lt=1.0), feet(lx=0.06, ly=0.05, lt=0.5), feet()),
    ),
    "plie": Phrase(
        "plie",
        (feet(y=0.09, lx=0.04, rx=0.04), feet(), feet(y=0.09, lx=0.04, rx=0.04),
         feet(y=-0.02, ly=0.02, ry=0.02, lt=0.6, rt=0.6)),
    ),
    "shuffle": Phrase(
        "shuffle", (feet(lx=0.06, ly=0.03, rx=-0.03), feet(lx=-0.03, rx=0.06, ry=0.03)) * 2,
    ),
    "heel_toe": Phrase("heel_toe", (feet(lx=0.05, lt=-0.7, y=0.02), feet(), feet(rx=0.05, rt=-0.7, y=0.02), feet())),
    "running_man": Phrase(
        "running_man", (feet(ly=0.11, y=-0.01), feet(y=0.05), feet(ry=0.11, y=-0.01), feet(y=0.05))
    ),
    "scoobot": Phrase(
        "scoobot", (feet(ly=0.12, lx=0.03), feet(lx=0.13, ly=0.04, lt=-0.5), feet(y=0.02), feet(y=0.06))
    ),
    "side_walk": Phrase(
        "side_walk", (feet(lx=0.08), feet(lx=0.08, rx=-0.07), feet(rx=-0.07, lx=-0.02), feet())
    ),
}

TORSO = {
    "still": Phrase("still", (torso(),) * 4),
    "side_lean": Phrase("side_lean", (torso(lean=0.12), torso(lean=-0.04), torso(lean=-0.12), torso(lean=0.04))),
    "chest_pop": Phrase(
        "chest_pop", (torso(chest=0.12, head=-0.06), torso(), torso(chest=-0.12, head=0.06), torso())
    ),
    "nod": Phrase("nod", (torso(head=0.16), torso(head=-0.05), torso(head=0.16), torso(head=-0.05))),
    "hip_roll": Phrase(
        "hip_roll", (torso(hip=0.16, lean=-0.06), torso(), torso(hip=-0.16, lean=0.06), torso())
    ),
    "lean_hit": Phrase("lean_hit", (torso(lean=0.2, chest=0.08), torso(), torso(lean=-0.06), torso(lean=-0.12))),
}


@dataclass(frozen=True)
class StyleMoves:
    """One style's vocabulary and groove."""

    arms: tuple[Phrase, ...]
    legs: tuple[Phrase, ...]
    torso: tuple[Phrase, ...]
    rest_arms: str = "relaxed"  # arm shape the amplitude scaling shrinks towards
    stance: float = 0.02  # extra half stance (body heights)
    knees: float = 0.03  # base pelvis drop
    lift: float = 0.012  # pelvis rise between beats
    drop: float = 0.025  # extra pelvis drop on the downbeat
    sway: float = 0.05  # hip sway, alternating every beat
    ease: Ease = "smooth"
    hit_ease: Ease = "sharp"  # ease of the segment that lands on the downbeat
    toe: float = 0.0  # base toe point
    turnout: float = 0.4  # knees: 0 bend towards the camera, 1 bend sideways


def _a(name: str, *keys: tuple) -> Phrase:
    return arms(name, *keys)


STYLE_MOVES: dict[str, StyleMoves] = {
    "break": StyleMoves(
        arms=(
            _a("swing", ("out", "low_out"), ("chest", "relaxed"), ("low_out", "out"), ("relaxed", "chest")),
            _a("guard", ("jab", "jab"), ("low_out", "jab"), ("jab", "jab"), ("jab", "low_out")),
            _a("freeze", ("high_out", "hip"), ("jab", "jab"), ("hip", "high_out"), ("relaxed", "relaxed")),
        ),
        legs=(LEGS["toprock"], LEGS["knee_drop"], LEGS["march"]),
        torso=(TORSO["side_lean"], TORSO["lean_hit"], TORSO["still"]),
        knees=0.04,
    ),
    "pop": StyleMoves(
        arms=(
            _a("hits", ("goal", "goal"), ("out", "flex"), ("chest", "out"), ("down", "goal")),
            _a("wave", ("out", "out"), ("out_bent", "out"), ("out", "out_bent"), ("goal", "down")),
            _a("tut", ("jab", "goal"), ("goal", "jab"), ("across", "out"), ("out", "across")),
            _a("pop_shrug", ("out", "out", 0.04, 0.04), ("down", "down"), ("goal", "goal", 0.04, 0.04),
               ("jab", "jab")),
        ),
        legs=(LEGS["groove"], LEGS["step_touch"], LEGS["wide_bounce"]),
        torso=(TORSO["chest_pop"], TORSO["nod"]),
        rest_arms="down",
        ease="sharp",
        hit_ease="snap",
        lift=0.008,
    ),
    "lock": StyleMoves(
        arms=(
            _a("point", ("high_out", "hip"), ("chest", "chest"), ("hip", "high_out"), ("goal", "goal")),
            _a("wrist_roll", ("chest", "jab"), ("jab", "chest"), ("chest", "jab"), ("point_down", "point_down")),
            _a("clap", ("flex", "flex"), ("low_out", "low_out"), ("out", "hip"), ("hip", "out")),
        ),
        legs=(LEGS["scoobot"], LEGS["march"], LEGS["groove"]),
        torso=(TORSO["lean_hit"], TORSO["side_lean"]),
        ease="sharp",
        hit_ease="snap",
    ),
    "middle_hiphop": StyleMoves(
        arms=(
            _a("swag", ("relaxed", "low_out"), ("jab", "relaxed"), ("low_out", "relaxed"), ("relaxed", "jab")),
            _a("rock_arms", ("jab", "jab"), ("relaxed", "relaxed"), ("jab", "jab"), ("low_out", "low_out")),
            _a("raise", ("high_out", "relaxed"), ("relaxed", "relaxed"), ("relaxed", "high_out"), ("chest", "chest")),
        ),
        legs=(LEGS["step_touch"], LEGS["running_man"], LEGS["groove"]),
        torso=(TORSO["nod"], TORSO["hip_roll"], TORSO["side_lean"]),
        knees=0.05,
        lift=0.016,
    ),
    "la_hiphop": StyleMoves(
        arms=(
            _a("frame", ("high_out", "out"), ("chest", "flex"), ("up", "down"), ("out", "out")),
            _a("hit", ("across", "out"), ("goal", "goal"), ("down", "high_out"), ("jab", "jab")),
            _a("groove_arms", ("relaxed", "low_out"), ("jab", "relaxed"), ("low_out", "relaxed"), ("out", "out")),
        ),
        legs=(LEGS["side_walk"], LEGS["step_touch"], LEGS["wide_bounce"]),
        torso=(TORSO["lean_hit"], TORSO["hip_roll"]),
        hit_ease="snap",
    ),
    "house": StyleMoves(
        arms=(
            _a("loose", ("low_out", "relaxed"), ("relaxed", "low_out"), ("low_out", "relaxed"),
               ("relaxed", "low_out")),
            _a("jack_arms", ("jab", "jab"), ("low_out", "low_out"), ("jab", "jab"), ("out", "out")),
            _a("reach", ("high_out", "low_out"), ("relaxed", "relaxed"), ("low_out", "high_out"),
               ("relaxed", "relaxed")),
        ),
        legs=(LEGS["shuffle"], LEGS["heel_toe"], LEGS["step_touch"], LEGS["march"]),
        torso=(TORSO["side_lean"], TORSO["chest_pop"]),
        stance=0.0,
        lift=0.02,
        drop=0.02,
    ),
    "waack": StyleMoves(
        arms=(
            _a("whip", ("whip", "hip"), ("down", "hip"), ("hip", "whip"), ("hip", "down")),
            _a("whip_alt", ("whip", "down"), ("up", "whip"), ("down", "up"), ("whip", "whip")),
            _a("pose", ("up", "hip"), ("head", "out"), ("out", "head"), ("fifth", "fifth")),
        ),
        legs=(LEGS["groove"], LEGS["step_touch"], LEGS["side_walk"]),
        torso=(TORSO["hip_roll"], TORSO["side_lean"]),
        rest_arms="down",
        stance=0.0,
        knees=0.015,
        ease="sharp",
    ),
    "krump": StyleMoves(
        arms=(
            _a("swing", ("out", "out"), ("across", "cross_low"), ("high_out", "out"), ("cross_low", "across")),
            _a("jab", ("jab", "out"), ("out", "jab"), ("goal", "goal"), ("flex", "flex")),
            _a("chest_arms", ("goal", "goal", 0.05, 0.05), ("low_out", "low_out"), ("flex", "flex", 0.05, 0.05),
               ("out", "out")),
        ),
        legs=(LEGS["stomp"], LEGS["wide_bounce"], LEGS["knee_drop"]),
        torso=(TORSO["chest_pop"], TORSO["lean_hit"]),
        rest_arms="low_out",
        turnout=0.7,
        stance=0.07,
        knees=0.07,
        drop=0.04,
        ease="sharp",
        hit_ease="snap",
    ),
    "street_jazz": StyleMoves(
        arms=(
            _a("lines", ("high_out", "point_down"), ("point_down", "high_out"), ("up", "out"), ("out", "up")),
            _a("sharp", ("out", "hip"), ("hip", "out"), ("fifth", "fifth"), ("second", "second")),
            _a("reach", ("up", "down"), ("down", "up"), ("high_out", "high_out"), ("chest", "chest")),
        ),
        legs=(LEGS["kick_side"], LEGS["step_touch"], LEGS["tendu"]),
        torso=(TORSO["lean_hit"], TORSO["hip_roll"]),
        rest_arms="down",
        stance=0.01,
        knees=0.015,
        ease="sharp",
    ),
    "ballet_jazz": StyleMoves(
        arms=(
            _a("port_de_bras", ("first", "first"), ("second", "second"), ("fifth", "fifth"), ("second", "second")),
            _a("circle", ("down", "first"), ("out", "second"), ("up", "fifth"), ("out", "second")),
            _a("reach", ("fifth", "second"), ("second", "fifth"), ("fifth", "second"), ("first", "first")),
        ),
        legs=(LEGS["plie"], LEGS["tendu"], LEGS["developpe"]),
        torso=(TORSO["side_lean"], TORSO["still"]),
        rest_arms="first",
        stance=0.01,
        knees=0.0,
        lift=0.006,
        drop=0.015,
        sway=0.03,
        hit_ease="smooth",
        toe=0.3,
        turnout=0.9,
    ),
}
assert set(STYLE_MOVES) == set(STYLE_NAMES), "every style in styles.py needs a move table"

BEATS_PER_BAR = 4


# --------------------------------------------------------------------------------------------------- easing
def ease(kind: Ease, u: np.ndarray) -> np.ndarray:
    """Monotone 0 -> 1 with zero slope at both ends; sharper kinds hold longer and snap harder mid-beat."""
    if kind == "smooth":
        return u * u * (3 - 2 * u)
    if kind == "sharp":
        return u**3 * (u * (6 * u - 15) + 10)
    if kind == "snap":
        return u**4 * (35 + u * (-84 + u * (70 - 20 * u)))
    raise ValueError(f"ease must be one of 'smooth', 'sharp', 'snap', got {kind!r}")


def bump(u: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0 over a segment with zero slope at both ends (so it adds no speed on the beat)."""
    return np.sin(np.pi * u) ** 2


_EASES = ("smooth", "sharp", "snap")


# ------------------------------------------------------------------------------------------- choreography
@dataclass
class Choreography:
    """Key poses on a beat grid; `sample` turns it into per-frame poses."""

    key_times: np.ndarray  # (K,) seconds, the music's beats extended by whole beats beyond both clip ends
    key_poses: np.ndarray  # (K, P)
    bumps: np.ndarray  # (K - 1, P) added along segment k (key k -> key k + 1)
    eases: np.ndarray  # (K - 1,) index into ("smooth", "sharp", "snap")
    moves: list[str]  # "arms/legs/torso" per bar, for inspection

    def sample(self, times: np.ndarray) -> np.ndarray:
        """(T,) seconds -> (T, P) poses."""
        times = np.asarray(times, dtype=np.float64)
        seg = np.clip(np.searchsorted(self.key_times, times, side="right") - 1, 0, len(self.key_times) - 2)
        t0, t1 = self.key_times[seg], self.key_times[seg + 1]
        u = np.clip((times - t0) / (t1 - t0), 0.0, 1.0)
        w = np.empty_like(u)
        for i, kind in enumerate(_EASES):
            m = self.eases[seg] == i
            w[m] = ease(kind, u[m])
        a, b = self.key_poses[seg], self.key_poses[seg + 1]
        return a + (b - a) * w[:, None] + self.bumps[seg] * bump(u)[:, None]


def beat_grid(beat_times: np.ndarray, seconds: float, bpm: float) -> tuple[np.ndarray, int]:
    """Beats extended by whole periods to cover [-1 beat, seconds + 1 beat]; returns (grid, index of beat 0)."""
    period = 60.0 / bpm
    beats = np.asarray(beat_times, dtype=np.float64)
    if len(beats) == 0:
        beats = np.array([0.0])
    before = int(np.ceil((beats[0] + period) / period))
    after = int(np.ceil((seconds + period - beats[-1]) / period))
    head = beats[0] - period * np.arange(before, 0, -1)
    tail = beats[-1] + period * np.arange(1, after + 1)
    return np.concatenate([head, beats, tail]), before


def _base_pose(moves: StyleMoves) -> np.ndarray:
    base = np.zeros(NUM_PARAMS)
    rest = ARM_SHAPES[moves.rest_arms]
    base[P["l_arm"]] = base[P["r_arm"]] = rest[0]
    base[P["l_elbow"]] = base[P["r_elbow"]] = rest[1]
    base[P["l_foot_x"]] = base[P["r_foot_x"]] = moves.stance
    base[P["root_y"]] = moves.knees
    base[P["l_toe"]] = base[P["r_toe"]] = moves.toe
    base[P["turnout"]] = moves.turnout
    return base


def _key_pose(base: np.ndarray, arm: dict, leg: dict, body: dict, amp: float) -> np.ndarray:
    pose = base.copy()
    for name, value in arm.items():
        pose[P[name]] = base[P[name]] + amp * (value - base[P[name]])
    for name, value in (*leg.items(), *body.items()):
        pose[P[name]] += amp * value
    return pose


def _weight_shift(pose: np.ndarray, stance: float) -> float:
    """Pelvis x over the supporting feet: the lifted foot carries less weight."""
    left = stance + pose[P["l_foot_x"]]
    right = -(stance + pose[P["r_foot_x"]])
    wl, wr = np.exp(-15 * max(pose[P["l_foot_y"]], 0)), np.exp(-15 * max(pose[P["r_foot_y"]], 0))
    return 0.7 * (wl * left + wr * right) / (wl + wr)


def choreograph(
    style: str,
    beat_times: np.ndarray,
    seconds: float,
    bpm: float,
    rng: np.random.Generator,
    *,
    props: Proportions | None = None,
) -> Choreography:
    """Build a clip's choreography: one random arm, leg and torso phrase per bar, keyed on the beats.

    The first music beat is a downbeat (as the synthesiser guarantees). `props` is the dancer's body: it keeps
    the pelvis over the feet and measures how much each beat moves.
    """
    props = props or Proportions()
    stance = props.stance_half
    moves = STYLE_MOVES[get_style(style).name]
    grid, first = beat_grid(beat_times, seconds, bpm)
    base = _base_pose(moves)
    n = len(grid)
    keys = np.zeros((n, NUM_PARAMS))
    bumps = np.zeros((n - 1, NUM_PARAMS))
    eases = np.full(n - 1, _EASES.index(moves.ease))
    names: list[str] = []
    bars: dict[int, tuple] = {}
    for k in range(n):
        bar, beat = divmod(k - first, BEATS_PER_BAR)
        if bar not in bars:
            arm = moves.arms[rng.integers(len(moves.arms))]
            leg = moves.legs[rng.integers(len(moves.legs))]
            body = moves.torso[rng.integers(len(moves.torso))]
            bars[bar] = (arm, leg, body, bool(rng.random() < 0.5), float(rng.uniform(0.8, 1.1)))
            names.append(f"{arm.name}/{leg.name}/{body.name}")
        arm, leg, body, mirrored, amp = bars[bar]
        pose = _key_pose(base, arm.keys[beat], leg.keys[beat], body.keys[beat], amp)
        if mirrored:
            pose = mirror_pose(pose)
        if beat == 0:
            pose[P["root_y"]] += moves.drop
        pose[P["root_x"]] += _weight_shift(pose, stance + moves.stance)
        keys[k] = pose
        if k > 0:
            seg = bumps[k - 1]
            for name, value in leg.bumps[beat].items():
                seg[P[name]] += amp * value
            if mirrored:
                bumps[k - 1] = seg = mirror_pose(seg)
            seg[P["root_y"]] -= moves.lift
            # a foot that travels lifts off the floor on the way
            for side in ("l", "r"):
                dx = abs(keys[k, P[f"{side}_foot_x"]] - keys[k - 1, P[f"{side}_foot_x"]])
                if dx > 0.01:
                    seg[P[f"{side}_foot_y"]] += min(0.02 + 0.5 * dx, 0.1)
            if beat == 0:
                eases[k - 1] = _EASES.index(moves.hit_ease)
    _add_groove(keys, moves.sway, props)
    return Choreography(key_times=grid, key_poses=keys, bumps=bumps, eases=eases, moves=names)


_SWAY = np.zeros(NUM_PARAMS)
_SWAY[[P["hip_tilt"], P["lean"], P["head"]]] = (1.0, -0.4, 0.5)
_BOOST = np.zeros(NUM_PARAMS)
_BOOST[[P["lean"], P["head"], P["hip_tilt"], P["chest"]]] = (1.0, -0.6, 0.3, 0.4)
MIN_BEAT_MOTION = 0.07  # body heights: the least mean joint travel from one beat's key pose to the next
MAX_BOOST = 0.15  # radians of extra alternating lean where a phrase alone moves too little


def _add_groove(keys: np.ndarray, sway: float, props: Proportions) -> None:
    """Sway the hips every beat (alternating sides), and sway the upper body further on beats whose phrases
    barely move, so that every beat has a clear kinematic minimum and the dancer is never still."""
    sign = np.where(np.arange(len(keys)) % 2 == 0, 1.0, -1.0)[:, None]
    keys += sway * sign * _SWAY
    joints = forward_kinematics(keys, props)  # (K, J, 2)
    travel = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(axis=1)  # (K - 1,)
    need = np.clip(1.0 - travel / MIN_BEAT_MOTION, 0.0, 1.0)
    extra = np.zeros(len(keys))
    extra[:-1] = need
    extra[1:] = np.maximum(extra[1:], need)
    keys += MAX_BOOST * extra[:, None] * sign * _BOOST
