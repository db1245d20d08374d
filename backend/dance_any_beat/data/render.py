"""Drawing the procedural dancer: looks (skin, hair, clothes), backgrounds, the camera and the frame loop.

Every body part is a filled, anti-aliased polygon (tapered capsules for limbs, ellipses for the head) drawn
with cv2 at 1/16-pixel precision. All geometry is computed for the whole clip at once with numpy; the frame
loop only calls cv2, so a 120-frame clip renders in tens of milliseconds. Alongside the picture each part is
drawn into an id map, which gives exact per-joint visibility (a joint is visible when one of its own parts is
the front surface at its pixel).

Colours are RGB.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dance_any_beat.data.skeleton import JOINT_NAMES, J, Proportions

SHIFT = 4  # cv2 fractional bits: coordinates are drawn at 1/16 pixel
ONE = 1 << SHIFT
Color = tuple[int, int, int]

SKIN_TONES: tuple[Color, ...] = (
    (255, 224, 196), (241, 194, 160), (228, 178, 138), (205, 145, 105),
    (176, 118, 80), (141, 93, 62), (108, 70, 46), (78, 52, 36),
)
HAIR_COLORS: tuple[Color, ...] = (
    (22, 18, 18), (45, 32, 26), (78, 52, 34), (112, 78, 48), (200, 168, 100), (140, 62, 30), (170, 170, 170),
    (60, 80, 170), (190, 80, 140),
)
HAIR_STYLES = ("short", "long", "bun", "ponytail", "buzz", "afro")
PATTERNS = ("solid", "stripes", "dots", "checks", "vstripes")
SLEEVES = ("none", "short", "long")


@dataclass(frozen=True)
class Look:
    """A dancer's appearance. Widths are radii in body heights."""

    skin: Color
    hair: Color
    hair_style: str
    shirt: Color
    pattern: str
    pattern_color: Color
    pattern_period: float  # body heights
    sleeves: str
    pants: Color
    shorts: bool
    side_stripe: bool
    shoes: Color
    neck_r: float = 0.024
    upper_arm_r: tuple[float, float] = (0.03, 0.025)
    forearm_r: tuple[float, float] = (0.024, 0.019)
    hand_r: float = 0.022
    thigh_r: tuple[float, float] = (0.047, 0.034)
    shin_r: tuple[float, float] = (0.033, 0.022)
    foot_r: tuple[float, float] = (0.022, 0.017)
    waist_half: float = 0.075
    chest_half: float = 0.09
    eyes: bool = True


def _hsv_color(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> Color:
    hsv = np.uint8([[[rng.integers(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _clothing_color(rng: np.random.Generator) -> Color:
    kind = rng.random()
    if kind < 0.2:  # neutrals: black, white, grey
        v = int(rng.choice([25, 45, 200, 235, 120, 160]))
        return (v, v, v)
    if kind < 0.3:  # denim
        return (int(rng.integers(40, 70)), int(rng.integers(60, 90)), int(rng.integers(110, 160)))
    return _hsv_color(rng, (0.25, 0.95), (0.3, 0.95))


def _jitter(color: Color, rng: np.random.Generator, amount: int) -> Color:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _contrast(color: Color, against: np.ndarray, min_dist: float = 70.0) -> Color:
    """Push a colour's brightness away from a background colour it would blend into."""
    c = np.array(color, dtype=np.float64)
    if np.linalg.norm(c - against) >= min_dist:
        return color
    shift = 90.0 if c.mean() < 128 else -90.0
    return tuple(int(v) for v in np.clip(c + shift, 0, 255))


def random_look(rng: np.random.Generator, background: np.ndarray | None = None) -> Look:
    """Random skin, hair and clothes; clothes are kept distinguishable from the mean background colour."""
    skin = _jitter(SKIN_TONES[rng.integers(len(SKIN_TONES))], rng, 10)
    shirt, pants = _clothing_color(rng), _clothing_color(rng)
    if background is not None:
        mean = background.reshape(-1, 3).mean(axis=0)
        shirt, pants = _contrast(shirt, mean), _contrast(pants, mean)
    pattern = str(rng.choice(PATTERNS, p=[0.4, 0.2, 0.15, 0.1, 0.15]))
    pattern_color = _clothing_color(rng)
    if np.abs(np.subtract(pattern_color, shirt)).sum() < 120:
        pattern_color = tuple(255 - c for c in shirt)
    bulk = rng.uniform(0.85, 1.2)
    return Look(
        skin=skin,
        hair=_jitter(HAIR_COLORS[rng.integers(len(HAIR_COLORS))], rng, 8),
        hair_style=str(rng.choice(HAIR_STYLES)),
        shirt=shirt,
        pattern=pattern,
        pattern_color=pattern_color,
        pattern_period=float(rng.uniform(0.035, 0.07)),
        sleeves=str(rng.choice(SLEEVES)),
        pants=pants,
        shorts=bool(rng.random() < 0.25),
        side_stripe=bool(rng.random() < 0.25),
        shoes=_jitter(((30, 30, 30), (235, 235, 235), (150, 40, 40), (60, 60, 130))[rng.integers(4)], rng, 12),
        neck_r=0.024 * bulk,
        upper_arm_r=(0.03 * bulk, 0.025 * bulk),
        forearm_r=(0.024 * bulk, 0.019 * bulk),
        hand_r=0.021 * rng.uniform(0.9, 1.1),
        thigh_r=(0.047 * bulk, 0.034 * bulk),
        shin_r=(0.033 * bulk, 0.022 * bulk),
        waist_half=0.072 * bulk * rng.uniform(0.9, 1.1),
        chest_half=0.088 * bulk * rng.uniform(0.95, 1.1),
        eyes=bool(rng.random() < 0.8),
    )


# ------------------------------------------------------------------------------------------- background
def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) smooth noise in about [-1, 1]: a coarse random grid upsampled bicubically."""
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


def make_background(rng: np.random.Generator, size: int, horizon: float) -> np.ndarray:
    """A wall (gradient, texture, one of several patterns) over a floor starting at `horizon` (pixels).

    Returns (size, size, 3) uint8 RGB.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c1 = np.array(_hsv_color(rng, (0.05, 0.6), (0.35, 0.95)), np.float32)
    c2 = np.array(_hsv_color(rng, (0.05, 0.6), (0.2, 0.9)), np.float32)
    kind = rng.integers(4)
    if kind == 0:
        w = yy
    elif kind == 1:
        w = xx
    elif kind == 2:
        w = (xx + yy) / 2
    else:
        w = np.clip(np.hypot(xx - rng.uniform(0.3, 0.7), yy - rng.uniform(0.2, 0.5)) * 1.6, 0, 1)
    wall = c1 + (c2 - c1) * w[..., None]

    feature = rng.integers(6)
    if feature == 1:  # vertical panels
        period = rng.uniform(0.08, 0.2)
        wall *= (1.0 + rng.uniform(0.06, 0.15) * np.sign(np.sin(2 * np.pi * xx / period)))[..., None]
    elif feature == 2:  # tiles
        period = rng.uniform(0.06, 0.15)
        lines = (np.abs((xx / period) % 1 - 0.5) > 0.45) | (np.abs((yy / period) % 1 - 0.5) > 0.45)
        wall *= np.where(lines, rng.uniform(0.75, 0.9), 1.0)[..., None]
    elif feature == 3:  # soft lights (bokeh)
        for _ in range(rng.integers(3, 9)):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, horizon / size), rng.uniform(0.03, 0.1)
            glow = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
            wall += glow[..., None] * np.array(_hsv_color(rng, (0.2, 0.8), (0.6, 1.0)), np.float32) * 0.5
    elif feature == 4:  # horizontal bands
        period = rng.uniform(0.1, 0.3)
        wall *= (1.0 + rng.uniform(0.05, 0.12) * np.sin(2 * np.pi * yy / period))[..., None]
    elif feature == 5:  # bricks
        bh = rng.uniform(0.04, 0.07)
        row = np.floor(yy / bh)
        bx = (xx + 0.5 * bh * 2 * (row % 2)) / (2 * bh)
        mortar = ((yy / bh) % 1 < 0.12) | (bx % 1 < 0.06)
        wall *= np.where(mortar, rng.uniform(0.7, 0.85), 1.0)[..., None]
    wall += _smooth_noise(rng, size, int(rng.integers(3, 9)))[..., None] * rng.uniform(3, 16)

    # floor: its own colour, darker or lighter away from the wall, with boards or tiles in perspective
    f1 = np.array(_hsv_color(rng, (0.05, 0.5), (0.2, 0.8)), np.float32)
    depth = np.clip((yy * size - horizon) / max(size - horizon, 1.0), 0, 1)
    floor = f1 * (1.0 + rng.uniform(-0.3, 0.3) * depth)[..., None]
    pattern = rng.integers(3)
    if pattern == 1:  # boards converging on a vanishing point
        vx = rng.uniform(0.3, 0.7)
        spread = (xx - vx) / np.maximum(depth, 0.05)
        boards = np.abs((spread / rng.uniform(0.12, 0.25)) % 1 - 0.5) > 0.46
        floor *= np.where(boards, 0.8, 1.0)[..., None]
    elif pattern == 2:  # tiles
        period = rng.uniform(0.1, 0.2)
        u = (xx - 0.5) / np.maximum(depth, 0.05) / period
        v = np.log(np.maximum(depth, 1e-3)) * 3.0
        floor *= np.where(((np.floor(u) + np.floor(v)) % 2) == 0, 1.0, rng.uniform(0.8, 0.92))[..., None]
    floor += _smooth_noise(rng, size, int(rng.integers(4, 10)))[..., None] * rng.uniform(2, 10)

    img = np.where((yy * size >= horizon)[..., None], floor, wall)
    if rng.random() < 0.4:  # sensor grain (sparingly: it is incompressible)
        img += rng.standard_normal((size, size, 1)).astype(np.float32) * rng.uniform(0.5, 2.0)
    img = np.clip(img, 0, 255).astype(np.uint8)
    # the wall-floor line (and sometimes a skirting board above it)
    line = tuple(int(v) for v in np.clip(f1 * rng.uniform(0.4, 0.7), 0, 255))
    y = int(round(horizon * ONE))
    if rng.random() < 0.4:
        board = int(round(rng.uniform(1.5, 4.0) * ONE))
        cv2.rectangle(img, (0, y - board), (size * ONE, y), tuple(int(v) for v in c2 * 0.8), -1, cv2.LINE_AA, SHIFT)
    cv2.line(img, (0, y), (size * ONE, y), line, 1, cv2.LINE_AA, SHIFT)
    return img


# ----------------------------------------------------------------------------------------------- camera
@dataclass(frozen=True)
class Camera:
    """Body-heights -> pixels: x_px = center_x + x * height_px, y_px = floor_y + y * height_px, then a small
    drift (zoom about the image centre plus a shift) that grows linearly over the clip and moves the
    background with it."""

    height_px: float
    center_x: float
    floor_y: float
    drift_scale: float = 0.0  # relative zoom reached at the end of the clip
    drift_x: float = 0.0  # pixels reached at the end of the clip
    drift_y: float = 0.0

    def transforms(self, n: int, size: int) -> np.ndarray:
        """(n, 2, 3) per-frame affine maps from base-camera pixels to image pixels."""
        f = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
        k = 1.0 + self.drift_scale * f
        c = size / 2.0
        m = np.zeros((n, 2, 3))
        m[:, 0, 0] = m[:, 1, 1] = k
        m[:, 0, 2] = c * (1 - k) + self.drift_x * f
        m[:, 1, 2] = c * (1 - k) + self.drift_y * f
        return m

    def project(self, joints: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(T, J, 2) body heights -> (T, J, 2) pixels and (T,) pixels per body height."""
        base = np.empty_like(joints)
        base[..., 0] = self.center_x + joints[..., 0] * self.height_px
        base[..., 1] = self.floor_y + joints[..., 1] * self.height_px
        m = self.transforms(len(joints), size)
        px = np.einsum("tij,tkj->tki", m[:, :, :2], base) + m[:, None, :, 2]
        return px, self.height_px * m[:, 0, 0]


def fit_camera(rng: np.random.Generator, joints: np.ndarray, size: int, *, drift: bool) -> Camera:
    """A random framing (dancer 55-78% of the frame high, off-centre by up to 8%) that keeps every joint of
    the clip, plus a head-and-hands margin, inside the frame."""
    height = rng.uniform(0.55, 0.78) * size
    lo, hi = joints.min(axis=(0, 1)), joints.max(axis=(0, 1))  # body heights
    margin = 0.09  # head radius, hands and feet beyond their joints
    width_needed, top_needed = (hi[0] - lo[0]) + 2 * margin, -lo[1] + margin
    pad = 2.0 + (0.02 * size if drift else 0.0)
    height = min(height, (size - 2 * pad) / width_needed, (size - 2 * pad) / (top_needed + 0.02))
    floor_lo = max(top_needed * height + pad, 0.82 * size)
    floor_y = rng.uniform(floor_lo, max(floor_lo, size - pad - 0.02 * height))
    cx_lo, cx_hi = pad - (lo[0] - margin) * height, size - pad - (hi[0] + margin) * height
    center = float(np.clip(size / 2 + rng.uniform(-0.08, 0.08) * size, cx_lo, max(cx_lo, cx_hi)))
    if not drift:
        return Camera(height, center, floor_y)
    return Camera(
        height, center, floor_y,
        drift_scale=float(rng.uniform(-0.015, 0.015)),
        drift_x=float(rng.uniform(-1.5, 1.5)),
        drift_y=float(rng.uniform(-1.0, 1.0)),
    )


# -------------------------------------------------------------------------------------------- geometry
def _capsule(p0: np.ndarray, p1: np.ndarray, r0: np.ndarray, r1: np.ndarray, n: int = 6) -> np.ndarray:
    """Outline of the convex hull of two discs, (T, 2n, 2): a tapered limb from p0 (radius r0) to p1."""
    d = p1 - p0
    length = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)
    theta = np.arctan2(d[:, 1], d[:, 0])
    alpha = np.arcsin(np.clip((r0 - r1) / length, -0.9, 0.9))
    half = np.pi / 2 - alpha  # tangent normals at theta +- half
    s = np.linspace(-1.0, 1.0, n)
    a1 = theta[:, None] + half[:, None] * s  # front arc around p1
    a0 = theta[:, None] + np.pi + (np.pi - half)[:, None] * s  # back arc around p0
    front = p1[:, None] + r1[:, None, None] * np.stack([np.cos(a1), np.sin(a1)], -1)
    back = p0[:, None] + r0[:, None, None] * np.stack([np.cos(a0), np.sin(a0)], -1)
    return np.concatenate([front, back], axis=1)


def _ellipse(center: np.ndarray, rx: np.ndarray, ry: np.ndarray, angle: np.ndarray, a0=0.0, a1=2 * np.pi, n=18):
    """(T, n, 2) points on an ellipse arc (angles in the ellipse's own frame, 0 = +x, pi/2 = +y)."""
    t = np.linspace(a0, a1, n)
    x = rx[:, None] * np.cos(t)
    y = ry[:, None] * np.sin(t)
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return center[:, None] + np.stack([x * c - y * s, x * s + y * c], -1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


@dataclass
class _Part:
    points: np.ndarray  # (T, N, 2) int32 in 1/16 pixels
    color: Color
    owners: tuple[str, ...]  # joints this part belongs to (for visibility)
    convex: bool = True
    pattern: bool = False  # the shirt: gets the clothing pattern


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * ONE).astype(np.int32)


def _build_parts(px: np.ndarray, scale: np.ndarray, look: Look, props: Proportions) -> list[_Part]:
    """Every drawable part of the dancer for every frame, back to front."""
    j = {name: px[:, J[name]] for name in JOINT_NAMES}
    s = scale
    parts: list[_Part] = []

    def capsule(a, b, r, color, owners, k0=0.0, k1=1.0):
        p0, p1 = j[a] + (j[b] - j[a]) * k0, j[a] + (j[b] - j[a]) * k1
        parts.append(_Part(_fixed(_capsule(p0, p1, r[0] * s, r[1] * s)), color, owners))

    up = _unit(j["neck"] - j["pelvis"])  # torso axis, pointing up
    side = np.stack([-up[:, 1], up[:, 0]], -1)  # towards the dancer's left (image right)
    head_axis = _unit(j["head"] - j["neck"])
    head_angle = np.arctan2(head_axis[:, 1], head_axis[:, 0]) + np.pi / 2  # 0 when upright
    head_r = props.head_r * s  # (T,)
    hr = head_r[:, None]  # for scaling (T, 2) vectors

    # long hair and ponytails hang behind everything
    if look.hair_style == "long":
        top = j["head"] - head_axis * hr * 0.2
        bottom = j["neck"] - up * 0.06 * s[:, None]
        pts = np.stack([top + side * hr * 1.05, top - side * hr * 1.05,
                        bottom - side * hr * 1.15, bottom + side * hr * 1.15], 1)
        parts.append(_Part(_fixed(pts), look.hair, ()))
    elif look.hair_style == "ponytail":
        root = j["head"] - side * hr * 0.6
        tip = root - side * hr * 0.9 - up * hr * 1.4
        parts.append(_Part(_fixed(_capsule(root, tip, head_r * 0.35, head_r * 0.22)), look.hair, ()))

    # legs: thighs and shins (skin below shorts), then shoes
    for sd in ("l", "r"):
        hip, knee, ankle = f"{sd}_hip", f"{sd}_knee", f"{sd}_ankle"
        if look.shorts:
            capsule(hip, knee, look.thigh_r, look.skin, (hip, knee))
            capsule(knee, ankle, look.shin_r, look.skin, (knee, ankle))
            capsule(hip, knee, (look.thigh_r[0] * 1.1, look.thigh_r[1] * 1.25), look.pants, (hip,), k1=0.55)
        else:
            capsule(hip, knee, look.thigh_r, look.pants, (hip, knee))
            capsule(knee, ankle, (look.shin_r[0] * 1.05, look.shin_r[1] * 1.25), look.pants, (knee, ankle))
            if look.side_stripe:
                # a thin stripe down the outer seam of each leg segment
                out = side * (1.0 if sd == "l" else -1.0)
                width = (look.shin_r[1] * s * 0.22)[:, None]
                for a, b, ra, rb in ((hip, knee, *look.thigh_r), (knee, ankle, look.shin_r[0] * 1.05, look.shin_r[1])):
                    d = _unit(j[b] - j[a])
                    n = np.stack([-d[:, 1], d[:, 0]], -1)
                    n *= np.sign(np.sum(n * out, axis=-1, keepdims=True) + 1e-9)
                    p0, p1 = j[a] + n * (0.75 * ra * s)[:, None], j[b] + n * (0.75 * rb * s)[:, None]
                    parts.append(_Part(_fixed(_capsule(p0, p1, width[:, 0], width[:, 0])), look.pattern_color, ()))
        capsule(ankle, f"{sd}_toe", look.foot_r, look.shoes, (ankle, f"{sd}_toe"))

    # hips / pants top: waist band to the outer hips and crotch
    waist = j["pelvis"] + up * 0.035 * s[:, None]
    wh = (look.waist_half * s)[:, None]
    th = (look.thigh_r[0] * s)[:, None]
    out_l = _unit(j["l_hip"] - j["pelvis"])
    hips = np.stack([
        waist + side * wh,
        j["l_hip"] + out_l * th * 0.9,
        j["l_hip"] - up * th * 0.8,
        j["pelvis"] - up * th * 1.0,
        j["r_hip"] - up * th * 0.8,
        j["r_hip"] - out_l * th * 0.9,
        waist - side * wh,
    ], 1)
    parts.append(_Part(_fixed(hips), look.pants, ("pelvis", "l_hip", "r_hip"), convex=False))

    # neck, then the shirt over its base
    neck_top = j["neck"] + head_axis * props.neck * s[:, None]
    parts.append(_Part(_fixed(_capsule(j["neck"], neck_top, look.neck_r * s, look.neck_r * s * 0.9)), look.skin,
                       ("neck",)))
    ch = (look.chest_half * s)[:, None]
    sh_l, sh_r = j["l_shoulder"], j["r_shoulder"]
    arm_r = (look.upper_arm_r[0] * s)[:, None]
    nr = (look.neck_r * s)[:, None]
    shirt_bottom = j["pelvis"] + up * 0.015 * s[:, None]
    torso = np.stack([
        j["neck"] + side * nr * 1.2,
        sh_l + up * arm_r * 0.6,
        sh_l + side * arm_r * 0.8,
        j["chest"] + side * ch,
        shirt_bottom + side * (wh * 1.05),
        shirt_bottom - side * (wh * 1.05),
        j["chest"] - side * ch,
        sh_r - side * arm_r * 0.8,
        sh_r + up * arm_r * 0.6,
        j["neck"] - side * nr * 1.2,
    ], 1)
    torso_joints = ("chest", "neck", "l_shoulder", "r_shoulder", "pelvis", "l_hip", "r_hip")
    parts.append(_Part(_fixed(torso), look.shirt, torso_joints, convex=False, pattern=look.pattern != "solid"))

    # head, hair (a cap with a hairline, so the face shows), eyes
    rx, ry = head_r * 0.8, head_r
    hs = look.hair_style
    if hs == "afro":
        parts.append(_Part(_fixed(_ellipse(j["head"] - head_axis * hr * 0.2, rx * 1.55, ry * 1.2, head_angle)),
                           look.hair, ()))
    parts.append(_Part(_fixed(_ellipse(j["head"], rx, ry, head_angle)), look.skin, ("head",)))
    if hs == "bun":
        bun = j["head"] + head_axis * hr * 1.15
        parts.append(_Part(_fixed(_ellipse(bun, head_r * 0.4, head_r * 0.36, head_angle)), look.hair, ("head",)))
    local = _hair_cap(hs)  # (N, 2) in head units: x along the head's width, y down the face
    c, sn = np.cos(head_angle)[:, None], np.sin(head_angle)[:, None]
    lx, ly = local[None, :, 0] * rx[:, None], local[None, :, 1] * ry[:, None]
    cap = j["head"][:, None] + np.stack([lx * c - ly * sn, lx * sn + ly * c], -1)
    parts.append(_Part(_fixed(cap), look.hair, ("head",), convex=False))
    if look.eyes:
        eye_color = tuple(int(c * 0.35) for c in look.skin)
        for k in (-1.0, 1.0):
            c = j["head"] + side * (k * rx * 0.38)[:, None] + head_axis * (ry * 0.02)[:, None]
            eye = _ellipse(c, head_r * 0.08, head_r * 0.1, head_angle, n=8)
            parts.append(_Part(_fixed(eye), eye_color, ("head",)))

    # arms in front: upper arm (sleeve), forearm, hand
    sleeve_up = look.shirt if look.sleeves != "none" else look.skin
    sleeve_fore = look.shirt if look.sleeves == "long" else look.skin
    for sd in ("l", "r"):
        sh, el, wr = f"{sd}_shoulder", f"{sd}_elbow", f"{sd}_wrist"
        if look.sleeves == "short":
            capsule(sh, el, look.upper_arm_r, look.skin, (sh, el))
            capsule(sh, el, (look.upper_arm_r[0] * 1.15, look.upper_arm_r[0] * 1.15), sleeve_up, (sh,), k1=0.5)
        else:
            capsule(sh, el, look.upper_arm_r, sleeve_up, (sh, el))
        capsule(el, wr, look.forearm_r, sleeve_fore, (el, wr))
        hand = j[wr] + _unit(j[wr] - j[el]) * (look.hand_r * 0.8 * s)[:, None]
        parts.append(_Part(_fixed(_ellipse(hand, look.hand_r * s, look.hand_r * s * 0.85,
                                           np.arctan2(*(j[wr] - j[el]).T[::-1]), n=10)), look.skin, (wr,)))
    return parts


def _hair_cap(style: str) -> np.ndarray:
    """Hair outline in head units (x across, y down; the head is the unit circle): an arc over the crown that
    comes down the sides, then back along a hairline across the forehead."""
    thick, side, hairline = {
        "buzz": (1.02, 0.0, -0.5), "short": (1.1, 0.3, -0.38), "long": (1.12, 1.0, -0.36),
        "bun": (1.06, 0.15, -0.42), "ponytail": (1.06, 0.15, -0.42), "afro": (1.15, 0.45, -0.3),
    }[style]
    e = np.arcsin(min(side, 0.95))
    arc = np.linspace(np.pi - e, 2 * np.pi + e, 16)
    outer = np.stack([np.cos(arc), np.sin(arc)], -1) * thick
    y_end = outer[-1, 1]
    inner_x = np.array([0.8, 0.62, 0.25, -0.25, -0.62, -0.8])
    inner_y = np.array([y_end, hairline + 0.12, hairline, hairline, hairline + 0.12, y_end])
    inner_y[[0, -1]] = np.maximum(inner_y[[0, -1]], hairline + 0.2)
    return np.concatenate([outer, np.stack([inner_x, inner_y], -1)])


def _pattern_tile(look: Look, res: float) -> np.ndarray:
    """(n, n) float32 coverage of the shirt pattern in torso coordinates (res pixels per body height)."""
    n = int(round(0.7 * res))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / res
    p = look.pattern_period
    if look.pattern == "stripes":
        tile = (yy / p) % 1 < 0.45
    elif look.pattern == "vstripes":
        tile = (xx / p) % 1 < 0.4
    elif look.pattern == "checks":
        tile = ((np.floor(xx / p) + np.floor(yy / p)) % 2) == 0
    elif look.pattern == "dots":
        tile = ((xx / p) % 1 - 0.5) ** 2 + ((yy / p) % 1 - 0.5) ** 2 < 0.3**2
    else:
        tile = np.zeros_like(xx, dtype=bool)
    return cv2.GaussianBlur(tile.astype(np.float32), (3, 3), 0.7)


def render(
    joints: np.ndarray,
    props: Proportions,
    look: Look,
    camera: Camera,
    background: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw a clip. joints: (T, J, 2) body heights. Returns frames (T, H, W, 3) uint8 RGB, joint pixels
    (T, J, 2) float32 and visibility (T, J) bool."""
    size = background.shape[0]
    t = len(joints)
    px, scale = camera.project(joints, size)
    parts = _build_parts(px, scale, look, props)
    transforms = camera.transforms(t, size)
    moving = camera.drift_scale != 0 or camera.drift_x != 0 or camera.drift_y != 0

    # shadow: a soft ellipse on the floor under the feet
    feet_x = px[:, [J["l_ankle"], J["r_ankle"], J["pelvis"]], 0]
    sh_cx = feet_x.mean(axis=1)
    sh_w = np.abs(feet_x[:, 0] - feet_x[:, 1]) / 2 + 0.09 * scale
    sh_y = transforms[:, 1, 1] * camera.floor_y + transforms[:, 1, 2]
    sh_h = 0.025 * scale
    sh_strength = 0.35 + 0.2 * (look.shoes[0] < 100)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    owners = np.zeros((len(parts) + 1, len(JOINT_NAMES)), dtype=bool)  # id 0 = background
    for i, part in enumerate(parts, start=1):
        for name in part.owners:
            owners[i, J[name]] = True
    tile = _pattern_tile(look, res=240.0) if any(p.pattern for p in parts) else None
    pattern_color = np.array(look.pattern_color, np.float32)

    frames = np.empty((t, size, size, 3), np.uint8)
    ids = np.empty((size, size), np.uint8)
    visibility = np.zeros((t, len(JOINT_NAMES)), dtype=bool)
    for f in range(t):
        if moving:
            frame = cv2.warpAffine(background, transforms[f], (size, size), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT)
        else:
            frame = background.copy()
        # shadow (on a band of rows around the floor line)
        y0, y1 = int(max(sh_y[f] - 3 * sh_h[f], 0)), int(min(sh_y[f] + 3 * sh_h[f] + 1, size))
        if y1 > y0:
            d2 = ((xx[y0:y1] - sh_cx[f]) / sh_w[f]) ** 2 + ((yy[y0:y1] - sh_y[f]) / sh_h[f]) ** 2
            dark = 1.0 - sh_strength * np.exp(-1.5 * d2)
            frame[y0:y1] = (frame[y0:y1] * dark[..., None]).astype(np.uint8)
        ids.fill(0)
        for i, part in enumerate(parts, start=1):
            pts = part.points[f]
            if part.convex:
                cv2.fillConvexPoly(frame, pts, part.color, cv2.LINE_AA, SHIFT)
                cv2.fillConvexPoly(ids, pts, i, cv2.LINE_8, SHIFT)
            else:
                cv2.fillPoly(frame, [pts], part.color, cv2.LINE_AA, SHIFT)
                cv2.fillPoly(ids, [pts], i, cv2.LINE_8, SHIFT)
            if part.pattern and tile is not None:
                _apply_pattern(frame, pts, tile, px[f], scale[f], pattern_color)
        jx = np.round(px[f, :, 0]).astype(int)
        jy = np.round(px[f, :, 1]).astype(int)
        inside = (jx >= 0) & (jx < size) & (jy >= 0) & (jy < size)
        front = ids[np.clip(jy, 0, size - 1), np.clip(jx, 0, size - 1)]
        visibility[f] = inside & owners[front, np.arange(len(JOINT_NAMES))]
        frames[f] = frame
    return frames, px.astype(np.float32), visibility


def _apply_pattern(frame: np.ndarray, pts: np.ndarray, tile: np.ndarray, joints: np.ndarray, scale: float,
                   color: np.ndarray) -> None:
    """Blend the shirt pattern inside the (already drawn) shirt polygon; the pattern moves with the torso."""
    size = frame.shape[0]
    x0, y0 = np.maximum(pts.min(axis=0) // ONE - 1, 0)
    x1, y1 = np.minimum(pts.max(axis=0) // ONE + 2, size)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [pts - np.array([x0 * ONE, y0 * ONE], np.int32)], 255, cv2.LINE_AA, SHIFT)
    # tile pixel (u, v) -> image: chest + R(torso angle) * ((u, v) - centre) * scale / res
    up = joints[J["neck"]] - joints[J["pelvis"]]
    angle = np.arctan2(up[1], up[0]) + np.pi / 2
    n = tile.shape[0]
    k = scale / 240.0
    c, s = np.cos(angle) * k, np.sin(angle) * k
    origin = joints[J["chest"]] - np.array([x0, y0]) - np.array([c * n / 2 - s * n / 2, s * n / 2 + c * n / 2])
    m = np.array([[c, -s, origin[0]], [s, c, origin[1]]])
    cover = cv2.warpAffine(tile, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = (cover * (mask.astype(np.float32) / 255.0))[..., None]
    roi = frame[y0:y1, x0:x1]
    roi[...] = (roi + (color - roi) * alpha + 0.5).astype(np.uint8)
