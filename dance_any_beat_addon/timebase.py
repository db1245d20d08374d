"""Frames <-> seconds and the names of the add-on's beat markers; pure functions, bpy-free.

Clock: a beat time is seconds on the audio's clock. For the timeline mixdown the audio starts at the range's
first frame, so beat time t sits at frame `range_start + t * fps`; `offset` is the audio-clock time of the
range's first frame when the audio is a file or a strip that starts elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable

MARKER_PREFIX = "dab:"  # every marker the add-on makes starts with this; it never touches any other
BEAT_MARKER = MARKER_PREFIX + "beat"
DOWNBEAT_MARKER = MARKER_PREFIX + "DOWN"


def is_beat_marker(name: str) -> bool:
    return name.startswith(MARKER_PREFIX)


def is_downbeat_marker(name: str) -> bool:
    return name == DOWNBEAT_MARKER


def scene_fps(fps: int, fps_base: float) -> float:
    """Frames per second as Blender means it (29.97 = 30 / 1.001)."""
    return fps / fps_base


def frame_to_seconds(frame: float, fps: float, range_start: int, offset: float = 0.0) -> float:
    return offset + (frame - range_start) / fps


def seconds_to_frame(t: float, fps: float, range_start: int, offset: float = 0.0) -> int:
    return range_start + round((t - offset) * fps)


def beat_frames(beats: Iterable[float], downbeats: Iterable[float], fps: float, range_start: int, range_end: int,
                offset: float = 0.0) -> dict[int, bool]:
    """Frame -> is a downbeat, for the beats inside [range_start, range_end]. Beats that round to one frame
    merge (a downbeat wins)."""
    down = {seconds_to_frame(t, fps, range_start, offset) for t in downbeats}
    frames: dict[int, bool] = {}
    for t in beats:
        frame = seconds_to_frame(t, fps, range_start, offset)
        if range_start <= frame <= range_end:
            frames[frame] = frames.get(frame, False) or frame in down
    return dict(sorted(frames.items()))


def range_seconds(range_start: int, range_end: int, fps: float) -> float:
    """Length of the inclusive frame range in seconds."""
    return (range_end - range_start + 1) / fps
