"""The procedural dance data set: clips of a drawn dancer moving on the beats of synthesised music.

Each clip is fully determined by its seed (same seed -> byte-identical frames and audio) and its ground truth
is exact: beat and downbeat times, tempo, style, joint positions in pixels and joint visibility per frame.
Splits are disjoint seed ranges, so train, val and test never share a clip.

On disk a clip is a folder holding `frames.mkv` (lossless FFV1), `audio.wav` (float32), optionally
`frames/NNNNNN.png`, and `clip.json`, written last so that its presence marks a finished clip. A split folder
also holds `index.json` with the generation settings and the clip list.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import soundfile as sf

from dance_any_beat.data.moves import choreograph
from dance_any_beat.data.music_synth import synthesize_music
from dance_any_beat.data.render import fit_camera, make_background, random_look, render
from dance_any_beat.data.skeleton import BONES, JOINT_NAMES, forward_kinematics, random_proportions
from dance_any_beat.styles import STYLE_NAMES, get_style

SPLIT_SEED_BASE: dict[str, int] = {"train": 0, "val": 1_000_000, "test": 2_000_000}
SPLIT_SIZE = 1_000_000  # seeds per split: a split may hold at most this many clips
FORMAT = "dance-any-beat-procedural"
VERSION = 1
JOINT_DECIMALS = 3  # joint pixels are stored (and returned) rounded to 1/1000 pixel, so round trips are exact

Split = Literal["train", "val", "test"]


@dataclass
class Clip:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    audio: np.ndarray  # (N,) float32 mono
    sr: int
    fps: int
    joints: np.ndarray  # (T, J, 2) float32 pixels (x, y), origin at the top-left pixel's centre
    joint_names: tuple[str, ...]
    beat_times: np.ndarray  # (B,) float64 seconds
    downbeat_times: np.ndarray  # (D,) float64 seconds
    bpm: float
    style: str
    seed: int
    visibility: np.ndarray | None = None  # (T, J) bool: one of the joint's own body parts is the front surface
    moves: list[str] = field(default_factory=list)  # "arms/legs/torso" phrase names per bar

    @property
    def size(self) -> int:
        return int(self.frames.shape[1])

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps


def _check_settings(seconds: float, fps: int, size: int, sr: int) -> None:
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if fps < 1 or size < 32 or sr < 8000:
        raise ValueError(f"need fps >= 1, size >= 32 and sr >= 8000; got fps={fps}, size={size}, sr={sr}")


def make_clip(
    seed: int, *, style: str | None = None, seconds: float = 4.0, fps: int = 30, size: int = 128, sr: int = 22050
) -> Clip:
    """Generate one clip. Without `style` the seed picks one (seed modulo the number of styles)."""
    _check_settings(seconds, fps, size, sr)
    style = get_style(style).name if style is not None else STYLE_NAMES[seed % len(STYLE_NAMES)]
    # independent streams per concern, so changing how one is drawn leaves the others as they were
    music_ss, dance_ss, body_ss, look_ss = np.random.SeedSequence(seed).spawn(4)
    dance_rng, body_rng, look_rng = (np.random.default_rng(s) for s in (dance_ss, body_ss, look_ss))

    bpm = float(dance_rng.uniform(*get_style(style).bpm))
    first_beat = float(dance_rng.uniform(0.0, min(60.0 / bpm, seconds)))  # inside the clip even when it is short
    music = synthesize_music(style, bpm, seconds, sr=sr, seed=np.random.default_rng(music_ss), first_beat=first_beat)
    frames, joints, visibility, moves = _dance(
        style, music.beat_times, seconds, bpm, fps, size, dance_rng, body_rng, look_rng
    )
    return Clip(
        frames=frames,
        audio=music.audio,
        sr=sr,
        fps=fps,
        joints=np.round(joints, JOINT_DECIMALS).astype(np.float32),
        joint_names=JOINT_NAMES,
        beat_times=music.beat_times,
        downbeat_times=music.downbeat_times,
        bpm=bpm,
        style=style,
        seed=int(seed),
        visibility=visibility,
        moves=moves,
    )


@dataclass
class _Scene:
    body: np.ndarray  # (T, J, 2) joints in body heights
    props: object  # skeleton.Proportions
    look: object  # render.Look
    camera: object  # render.Camera
    background: np.ndarray  # (size, size, 3) uint8
    moves: list[str]


def _scene(
    style: str,
    beat_times: np.ndarray,
    seconds: float,
    bpm: float,
    fps: int,
    size: int,
    dance_rng: np.random.Generator,
    body_rng: np.random.Generator,
    look_rng: np.random.Generator,
) -> _Scene:
    """Choreograph a random dancer to `beat_times` and set up its camera, set and look (not yet drawn)."""
    props = random_proportions(body_rng)
    dance = choreograph(style, beat_times, seconds, bpm, dance_rng, props=props)
    n_frames = int(round(seconds * fps))
    poses = dance.sample(np.arange(n_frames) / fps)
    body = forward_kinematics(poses, props)  # (T, J, 2) body heights

    camera = fit_camera(look_rng, body, size, drift=bool(look_rng.random() < 0.5))
    horizon = camera.floor_y - look_rng.uniform(0.03, 0.1) * size
    background = make_background(look_rng, size, horizon)
    look = random_look(look_rng, background[int(horizon * 0.3) : int(camera.floor_y)])
    return _Scene(body, props, look, camera, background, dance.moves)


def _dance(*args) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Choreograph a random dancer to `beat_times` and render it: frames, joints (px), visibility, move names."""
    scene = _scene(*args)
    frames, joints, visibility = render(scene.body, scene.props, scene.look, scene.camera, scene.background)
    return frames, joints, visibility, scene.moves


def _scene_to_beats(seed: int, beat_times: np.ndarray, seconds: float, style: str, fps: int, size: int) -> _Scene:
    """The scene of a dancer from `seed` dancing to given beat times (the tempo read off the beats)."""
    _check_settings(seconds, fps, size, 22050)
    style = get_style(style).name
    beats = np.sort(np.asarray(beat_times, dtype=np.float64).ravel())
    if len(beats) < 2:
        raise ValueError(f"need at least two beats to dance to, got {len(beats)}")
    bpm = 60.0 / float(np.median(np.diff(beats)))
    _, dance_ss, body_ss, look_ss = np.random.SeedSequence(seed).spawn(4)
    rngs = (np.random.default_rng(s) for s in (dance_ss, body_ss, look_ss))
    return _scene(style, beats, seconds, bpm, fps, size, *rngs)


def dance_to_beats(
    seed: int, beat_times: np.ndarray, *, seconds: float, style: str = "pop", fps: int = 30, size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """A procedural dancer (look and body from `seed`) dancing to given beat times, e.g. a real track's.

    Returns frames (T, size, size, 3) uint8 RGB and joints (T, J, 2) pixels.
    """
    scene = _scene_to_beats(seed, beat_times, seconds, style, fps, size)
    frames, joints, _ = render(scene.body, scene.props, scene.look, scene.camera, scene.background)
    return frames, joints


def dancer_cutout(
    seed: int, beat_times: np.ndarray, *, seconds: float, style: str = "pop", fps: int = 30, size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """The dancer of `dance_to_beats` (same seed, same dancer and dance) without its set, to paste onto another:
    colour (T, size, size, 3) float32 premultiplied by alpha, and alpha (T, size, size) float32 in [0, 1] with
    the floor shadow as partial alpha. Drawn once on black and once on white; alpha is what the white showed."""
    scene = _scene_to_beats(seed, beat_times, seconds, style, fps, size)
    on_black = render(scene.body, scene.props, scene.look, scene.camera, np.zeros_like(scene.background))[0]
    on_white = render(scene.body, scene.props, scene.look, scene.camera, np.full_like(scene.background, 255))[0]
    alpha = 1.0 - (on_white.astype(np.float32) - on_black.astype(np.float32)).mean(axis=-1) / 255.0
    return on_black.astype(np.float32) / 255.0, np.clip(alpha, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------ disk io
def write_clip(clip: Clip, clip_dir: Path, *, pngs: bool = False) -> None:
    """Write a clip folder; `clip.json` goes last (atomically), so a folder with it is complete."""
    clip_dir = Path(clip_dir)
    clip_dir.mkdir(parents=True, exist_ok=True)
    t, h, w, _ = clip.frames.shape
    tmp_video = clip_dir / "frames.tmp.mkv"
    writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"FFV1"), float(clip.fps), (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write FFV1 video to {tmp_video}; its FFmpeg backend is missing")
    for frame in clip.frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    os.replace(tmp_video, clip_dir / "frames.mkv")
    sf.write(clip_dir / "audio.wav", clip.audio, clip.sr, subtype="FLOAT")
    if pngs:
        png_dir = clip_dir / "frames"
        png_dir.mkdir(exist_ok=True)
        for i, frame in enumerate(clip.frames):
            cv2.imwrite(str(png_dir / f"{i:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "seed": clip.seed,
        "style": clip.style,
        "bpm": clip.bpm,
        "fps": clip.fps,
        "sr": clip.sr,
        "size": [h, w],
        "num_frames": t,
        "beat_times": [float(b) for b in clip.beat_times],
        "downbeat_times": [float(b) for b in clip.downbeat_times],
        "joint_names": list(clip.joint_names),
        "bones": [list(b) for b in BONES],
        "moves": list(clip.moves),
        "joints": np.round(clip.joints.astype(np.float64), JOINT_DECIMALS).tolist(),
        "visibility": None if clip.visibility is None else clip.visibility.astype(int).tolist(),
    }
    tmp_json = clip_dir / "clip.json.tmp"
    tmp_json.write_text(json.dumps(meta, separators=(",", ":")))
    os.replace(tmp_json, clip_dir / "clip.json")


def read_clip(clip_dir: Path) -> Clip:
    """Load a clip folder written by `write_clip`."""
    clip_dir = Path(clip_dir)
    meta_path = clip_dir / "clip.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{clip_dir} is not a finished clip: {meta_path.name} is missing")
    meta = json.loads(meta_path.read_text())
    capture = cv2.VideoCapture(str(clip_dir / "frames.mkv"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if len(frames) != meta["num_frames"]:
        raise ValueError(f"{clip_dir / 'frames.mkv'} holds {len(frames)} frames, clip.json says {meta['num_frames']}")
    audio, sr = sf.read(clip_dir / "audio.wav", dtype="float32")
    visibility = meta.get("visibility")
    return Clip(
        frames=np.stack(frames),
        audio=audio,
        sr=int(sr),
        fps=int(meta["fps"]),
        joints=np.asarray(meta["joints"], dtype=np.float32),
        joint_names=tuple(meta["joint_names"]),
        beat_times=np.asarray(meta["beat_times"], dtype=np.float64),
        downbeat_times=np.asarray(meta["downbeat_times"], dtype=np.float64),
        bpm=float(meta["bpm"]),
        style=meta["style"],
        seed=int(meta["seed"]),
        visibility=None if visibility is None else np.asarray(visibility, dtype=bool),
        moves=list(meta.get("moves", [])),
    )


def read_frames(clip_dir: Path, rows: Sequence[int]) -> np.ndarray:
    """Frames `rows` (0-based, any order, repeats allowed) of a clip as (len(rows), H, W, 3) uint8 RGB.

    Training needs a few frames per clip; FFV1 frames are all key frames, so seeking is exact and this
    decodes only what it returns (a whole-clip read is ~4x slower for a pair of frames).
    """
    wanted = sorted(set(int(r) for r in rows))
    capture = cv2.VideoCapture(str(Path(clip_dir) / "frames.mkv"))
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open {Path(clip_dir) / 'frames.mkv'}; is the clip finished?")
    found: dict[int, np.ndarray] = {}
    position = 0
    try:
        for row in wanted:
            if row < position or row - position > 4:  # skipping a few frames beats a seek
                capture.set(cv2.CAP_PROP_POS_FRAMES, row)
                position = row
            while position <= row:
                ok, frame = capture.read()
                if not ok:
                    raise ValueError(f"{Path(clip_dir) / 'frames.mkv'} has no frame {row} (it ends at {position})")
                position += 1
            found[row] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    return np.stack([found[int(r)] for r in rows])


def _is_complete(clip_dir: Path) -> bool:
    return all((clip_dir / name).is_file() for name in ("clip.json", "frames.mkv", "audio.wav"))


# ------------------------------------------------------------------------------------------------ data set
def clip_id(seed: int) -> str:
    return f"{seed:07d}"


@dataclass(frozen=True)
class _Job:
    seed: int
    style: str
    seconds: float
    fps: int
    size: int
    sr: int
    clip_dir: str
    pngs: bool


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one clip per process already fills the cores


def _run_job(job: _Job) -> dict:
    """Make and write one clip (in a worker process); returns its index entry."""
    clip_dir = Path(job.clip_dir)
    if clip_dir.exists():
        shutil.rmtree(clip_dir)  # a half-written clip from an interrupted run
    clip = make_clip(job.seed, style=job.style, seconds=job.seconds, fps=job.fps, size=job.size, sr=job.sr)
    write_clip(clip, clip_dir, pngs=job.pngs)
    return _entry(clip_dir.name, clip.seed, clip.style, clip.bpm, clip.num_frames)


def _entry(cid: str, seed: int, style: str, bpm: float, num_frames: int) -> dict:
    return {"id": cid, "seed": seed, "style": style, "bpm": round(bpm, 4), "num_frames": num_frames}


def _write_index(split_dir: Path, config: dict, clips: list[dict], complete: bool) -> None:
    index = {"format": FORMAT, "version": VERSION, "config": config, "complete": complete, "clips": clips}
    tmp = split_dir / "index.json.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, split_dir / "index.json")


def make_dataset(
    out_dir: Path,
    num_clips: int,
    *,
    split: Split = "train",
    seconds: float = 4.0,
    fps: int = 30,
    size: int = 128,
    styles: Sequence[str] | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    sr: int = 22050,
    pngs: bool = False,
) -> Path:
    """Generate (or finish) `num_clips` clips into out_dir/<split>/<clip_id>/ and write out_dir/<split>/index.json.

    Clip i of a split uses seed SPLIT_SEED_BASE[split] + i and style styles[seed % len(styles)], so splits never
    overlap and a larger run extends a smaller one. Finished clips are kept (the run resumes); a split folder
    made with other settings is refused unless `overwrite` is set. `progress(done, total)` is called as clips
    finish. Returns the split folder.
    """
    if split not in SPLIT_SEED_BASE:
        raise ValueError(f"split must be one of {', '.join(SPLIT_SEED_BASE)}, got {split!r}")
    if not 0 < num_clips <= SPLIT_SIZE:
        raise ValueError(f"num_clips must be within 1..{SPLIT_SIZE}, got {num_clips}")
    _check_settings(seconds, fps, size, sr)
    style_list = [get_style(s).name for s in styles] if styles else list(STYLE_NAMES)
    base = SPLIT_SEED_BASE[split]
    config = {"split": split, "seed_base": base, "seconds": float(seconds), "fps": int(fps), "size": int(size),
              "sr": int(sr), "styles": style_list, "pngs": bool(pngs)}

    split_dir = Path(out_dir) / split
    index_path = split_dir / "index.json"
    if split_dir.exists() and any(split_dir.iterdir()):
        old = None
        if index_path.is_file():
            old = json.loads(index_path.read_text())
        same = old is not None and old.get("format") == FORMAT and old.get("version") == VERSION
        same = same and old.get("config") == config
        if not same:
            if not overwrite:
                what = "a data set made with other settings" if old is not None else "files that are not a data set"
                raise FileExistsError(
                    f"{split_dir} already holds {what}; pass overwrite=True (CLI: --overwrite) to replace it, "
                    "or choose another output folder"
                )
            shutil.rmtree(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)

    entries: dict[int, dict] = {}
    jobs = []
    for i in range(num_clips):
        seed = base + i
        cdir = split_dir / clip_id(seed)
        if _is_complete(cdir):
            meta = json.loads((cdir / "clip.json").read_text())
            entries[seed] = _entry(cdir.name, seed, meta["style"], meta["bpm"], meta["num_frames"])
        else:
            style = style_list[seed % len(style_list)]
            jobs.append(_Job(seed, style, float(seconds), int(fps), int(size), int(sr), str(cdir), bool(pngs)))
    _write_index(split_dir, config, [entries[s] for s in sorted(entries)], complete=False)

    done = len(entries)
    if progress is not None:
        progress(done, num_clips)
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    workers = min(workers, max(len(jobs), 1))
    if workers == 1:
        results = map(_run_job, jobs)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker)
        results = pool.imap_unordered(_run_job, jobs, chunksize=1)
    try:
        for entry in results:
            entries[entry["seed"]] = entry
            done += 1
            if progress is not None:
                progress(done, num_clips)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    _write_index(split_dir, config, [entries[s] for s in sorted(entries)], complete=True)
    return split_dir


def list_clips(split_dir: Path) -> list[Path]:
    """Finished clip folders of a split, in seed order: those of index.json after a completed run, otherwise
    (an interrupted run, a folder written by hand) every clip folder found."""
    split_dir = Path(split_dir)
    index_path = split_dir / "index.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    if index.get("complete"):
        names = [c["id"] for c in index["clips"]]
    else:
        names = sorted(p.name for p in split_dir.iterdir() if p.is_dir()) if split_dir.is_dir() else []
    return [split_dir / n for n in names if _is_complete(split_dir / n)]
