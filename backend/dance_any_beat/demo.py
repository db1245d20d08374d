"""The README's first command: beats of the bundled track, and a procedural dancer dancing on them.

This is what a newcomer sees before any model is trained: it runs the real beat tracker on real audio and the
real procedural renderer, writes the same outputs `generate` will (PNG frames, an MP4 with the music,
beats.json), and scores the result with the Beat Alignment Score.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dance_any_beat.data.procedural import dance_to_beats
from dance_any_beat.metrics import beat_alignment_score
from dance_any_beat.music.audio import load_audio
from dance_any_beat.music.beats import track_beats
from dance_any_beat.video import write_mp4, write_png_frames

EXAMPLE_TRACK = Path(__file__).resolve().parents[2] / "examples" / "example_track.ogg"


@dataclass
class DemoResult:
    frames_dir: Path
    video: Path
    beats_json: Path
    frames: int
    fps: int
    tempo: float
    beats: int
    beat_alignment: float  # BAS of the dancer's motion against the detected beats
    seconds: dict[str, float] = field(default_factory=dict)  # per stage


def run_demo(
    out: Path,
    *,
    audio_path: Path = EXAMPLE_TRACK,
    style: str = "lock",
    seed: int = 0,
    fps: int = 30,
    size: int = 256,
    progress: Callable[[float, str], None] | None = None,
) -> DemoResult:
    report = progress or (lambda fraction, stage: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    report(0.0, "loading audio")
    audio = load_audio(audio_path, sr=22050)
    lap("load_audio")
    report(0.1, "tracking beats")
    track = track_beats(audio.samples, audio.sr)
    lap("beats")
    out.mkdir(parents=True, exist_ok=True)
    beats_json = out / "beats.json"
    beats_json.write_text(json.dumps({
        "tempo": round(float(track.tempo), 2),
        "beats": [round(float(t), 4) for t in track.beats],
        "downbeats": [round(float(t), 4) for t in track.downbeats],
        "duration": round(float(track.duration), 4),
    }, indent=1))
    report(0.3, "rendering the dancer")
    frames, joints = dance_to_beats(seed, track.beats, seconds=audio.duration, style=style, fps=fps, size=size)
    lap("render")
    report(0.7, "writing frames and video")
    frames_dir = out / "frames"
    write_png_frames(frames, frames_dir)
    video = write_mp4(frames, out / "dance.mp4", fps=fps, audio=audio.samples, sr=audio.sr)
    lap("write")
    score = beat_alignment_score(joints, track.beats, fps)
    report(1.0, "done")
    return DemoResult(
        frames_dir=frames_dir, video=video, beats_json=beats_json, frames=len(frames), fps=fps,
        tempo=float(track.tempo), beats=len(track.beats), beat_alignment=float(score), seconds=timings,
    )
