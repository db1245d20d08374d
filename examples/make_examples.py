"""Regenerate the bundled example media (the project's own work, GPL-3.0-or-later like the code).

    .venv/bin/python examples/make_examples.py

example_track.ogg: 16 s of the project's synthesised music (style "lock", 104 BPM, with a backbeat).
example_still.png: a 384x512 still of a procedural dancer (the look the starter model was trained on).
dancer_on_set_{room,street,stage}.jpg: a procedural dancer pasted onto a larger photo-like set (a room, a street,
a stage) made here from gradients, shapes and noise: the artist's case of a character on their own set, where
`generate` moves only the dancer (--keep-background).
"""

from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from dance_any_beat.data.music_synth import synthesize_music
from dance_any_beat.data.procedural import dance_to_beats, dancer_cutout

HERE = Path(__file__).resolve().parent
TRACK = dict(style="lock", bpm=104.0, seconds=16.0, sr=44100, seed=2026, first_beat=0.25)
STILL = dict(seed=7, style="pop", size=512, width=384)
# name -> (set width, height, dancer seed, style, dancer square size in px, dancer centre x as a fraction)
SETS = {
    "room": (960, 540, 11, "house", 420, 0.35),
    "street": (1280, 720, 23, "break", 520, 0.62),
    "stage": (800, 1000, 31, "waack", 640, 0.5),
}


def _grain(rng: np.random.Generator, height: int, width: int, cells: int, amount: float) -> np.ndarray:
    """Smooth noise (H, W, 1) in [-amount, amount]: light and texture variation of a photographed surface."""
    small = rng.uniform(-1.0, 1.0, (cells, max(2, cells * width // height), 1)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)[..., None] * amount


def make_set(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A photo-like (H, W, 3) float32 RGB set in [0, 1]: walls, floor, shapes, soft light and sensor grain."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy, xx = yy / height, xx / width
    horizon = {"room": 0.72, "street": 0.68, "stage": 0.8}[kind]
    if kind == "room":
        wall = np.array([0.78, 0.70, 0.58]) * (0.85 + 0.15 * xx[..., None])
        floor = np.array([0.45, 0.30, 0.18]) * (0.8 + 0.2 * np.sin(xx * 60 + yy * 8)[..., None] ** 2)
    elif kind == "street":
        wall = np.array([0.55, 0.68, 0.85]) * (1.1 - 0.4 * yy[..., None])  # sky
        floor = np.array([0.32, 0.32, 0.34]) * (0.9 + 0.1 * (np.abs(xx - 0.5) < 0.01)[..., None])
    else:
        wall = np.array([0.10, 0.08, 0.14]) * np.ones_like(yy)[..., None]
        floor = np.array([0.22, 0.18, 0.20]) * np.ones_like(yy)[..., None]
    image = np.where((yy < horizon)[..., None], wall, floor).astype(np.float32)
    for _ in range({"room": 5, "street": 9, "stage": 4}[kind]):  # frames, windows, buildings, panels
        x0, y0 = rng.uniform(0, 0.9) * width, rng.uniform(0.05, horizon - 0.1) * height
        w, h = rng.uniform(0.05, 0.25) * width, rng.uniform(0.1, 0.4) * height
        y1 = min(y0 + h, horizon * height) if kind != "street" else horizon * height
        color = rng.uniform(0.15, 0.9, 3)
        cv2.rectangle(image, (int(x0), int(y0)), (int(x0 + w), int(y1)), color.tolist(), -1, cv2.LINE_AA)
        cv2.rectangle(image, (int(x0), int(y0)), (int(x0 + w), int(y1)), (color * 0.6).tolist(), 3, cv2.LINE_AA)
    for _ in range({"room": 2, "street": 1, "stage": 4}[kind]):  # lamps, the sun, spotlights
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.0, 0.5), rng.uniform(0.15, 0.4)
        glow = np.exp(-((xx - cx) ** 2 * (width / height) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        image += glow * rng.uniform(0.1, 0.35) * (rng.uniform(0.6, 1.0, 3) if kind == "stage" else 1.0)
    image *= 1.0 + _grain(rng, height, width, 12, 0.08)
    image += rng.normal(0.0, 0.012, image.shape).astype(np.float32)  # sensor noise
    return np.clip(image, 0.0, 1.0)


def dancer_on_set(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the set `name` with a procedural dancer standing on its floor."""
    width, height, seed, style, size, centre = SETS[name]
    rng = np.random.default_rng(seed)
    image = make_set(name, width, height, rng)
    colour, alpha = dancer_cutout(seed, np.arange(4) * 0.5, seconds=1.0, style=style, fps=1, size=size)
    colour, alpha = colour[0], alpha[0, ..., None]
    x = int(centre * width - size / 2)
    y = int(height * 0.97 - size)  # the dancer's square ends just above the bottom edge
    xs, ys = slice(max(x, 0), min(x + size, width)), slice(max(y, 0), min(y + size, height))
    part = image[ys, xs]
    cx, cy = xs.start - x, ys.start - y
    sub_c = colour[cy : cy + part.shape[0], cx : cx + part.shape[1]]
    sub_a = alpha[cy : cy + part.shape[0], cx : cx + part.shape[1]]
    image[ys, xs] = sub_c + part * (1.0 - sub_a)
    return np.round(image * 255.0).astype(np.uint8)


def main() -> None:
    music = synthesize_music(TRACK["style"], TRACK["bpm"], TRACK["seconds"], sr=TRACK["sr"], seed=TRACK["seed"],
                             first_beat=TRACK["first_beat"])
    sf.write(HERE / "example_track.ogg", music.audio, music.sr, format="OGG", subtype="VORBIS")
    (HERE / "example_track_beats.txt").write_text(
        "# ground-truth beat times (s) of example_track.ogg, one per line\n"
        + "".join(f"{t:.4f}\n" for t in music.beat_times)
    )
    frames, _ = dance_to_beats(STILL["seed"], np.arange(4) * 0.5, seconds=1.0, style=STILL["style"], fps=1,
                               size=STILL["size"])
    left = (STILL["size"] - STILL["width"]) // 2
    still = frames[0][:, left : left + STILL["width"]]  # portrait crop: any aspect is allowed
    cv2.imwrite(str(HERE / "example_still.png"), cv2.cvtColor(still, cv2.COLOR_RGB2BGR))
    for name in SETS:
        cv2.imwrite(str(HERE / f"dancer_on_set_{name}.jpg"), cv2.cvtColor(dancer_on_set(name), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])  # fmt: skip
    print(f"wrote example_track.ogg ({len(music.beat_times)} beats at {music.bpm:g} BPM)")


if __name__ == "__main__":
    main()
