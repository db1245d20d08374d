"""AIST++ loader: file names, the music-based split, and reading a video with its music.

AIST++ videos are named `gBR_sBM_c01_d04_mBR0_ch01`: genre, situation (basic/advanced), camera, dancer,
music, choreography. The model must be tested on music it never heard, so the split is by music id, as in the
paper (50 training tracks, 10 test tracks, one test track per genre: the AIST++ cross-modal test set).

Expected layout (as the AIST Dance Video Database distributes it):
    ROOT/videos/gBR_sBM_c01_d04_mBR0_ch01.mp4
    ROOT/music/mBR0.wav          (or .mp3 / .ogg / .flac)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from dance_any_beat.styles import STYLES

AIST_GENRES: dict[str, str] = {style.aist_code[1:]: style.name for style in STYLES}  # "BR" -> "break"
# One music id per genre held out for testing (AIST++ cross-modal test set).
TEST_MUSIC_IDS: frozenset[str] = frozenset(
    {"mBR0", "mPO1", "mLO2", "mMH3", "mLH4", "mHO5", "mWA0", "mKR2", "mJS3", "mJB5"}
)
_NAME = re.compile(
    r"^g(?P<genre>[A-Z]{2})_s(?P<situation>[A-Z]{2})_c(?P<camera>\d{2}|All)_d(?P<dancer>\d{2})"
    r"_m(?P<music_genre>[A-Z]{2})(?P<music_index>\d)_ch(?P<choreo>\d{2})$"
)
MUSIC_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac")


@dataclass(frozen=True)
class AistName:
    genre: str  # two-letter AIST++ code, e.g. "BR"
    situation: str  # "BM" basic or "FM" advanced
    camera: str  # "01".."09" (or "All" in some annotation files)
    dancer: str
    music_id: str  # e.g. "mBR0"
    choreography: str

    @property
    def style(self) -> str:
        return AIST_GENRES[self.genre]


def parse_name(name: str) -> AistName:
    """Parse an AIST++ sequence name (with or without a file suffix)."""
    stem = Path(name).name.split(".")[0]
    match = _NAME.match(stem)
    if match is None:
        raise ValueError(
            f"{name!r} is not an AIST++ sequence name; expected the form gBR_sBM_c01_d04_mBR0_ch01"
        )
    genre = match["genre"]
    if genre not in AIST_GENRES:
        raise ValueError(f"{name!r} has unknown genre code g{genre}; known: {', '.join(sorted(AIST_GENRES))}")
    return AistName(
        genre=genre,
        situation=match["situation"],
        camera=match["camera"],
        dancer=match["dancer"],
        music_id=f"m{match['music_genre']}{match['music_index']}",
        choreography=match["choreo"],
    )


def split_of(name: AistName) -> Literal["train", "test"]:
    return "test" if name.music_id in TEST_MUSIC_IDS else "train"


@dataclass(frozen=True)
class AistVideo:
    video: Path
    music: Path
    name: AistName


def find_music(root: Path, music_id: str) -> Path:
    for suffix in MUSIC_SUFFIXES:
        path = root / "music" / f"{music_id}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(
        f"music {music_id} not found in {root / 'music'} (looked for {', '.join(MUSIC_SUFFIXES)}); "
        "download the AIST Dance Video Database music files into that folder"
    )


def list_videos(
    root: str | Path, split: Literal["train", "test", "all"] = "train", cameras: tuple[str, ...] | None = None
) -> list[AistVideo]:
    """Videos of one split, sorted by name; files that are not AIST++ names are ignored."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be one of train, test, all; got {split!r}")
    root = Path(root)
    video_dir = root / "videos"
    if not video_dir.is_dir():
        raise FileNotFoundError(f"{video_dir} does not exist; expected AIST++ videos in ROOT/videos/*.mp4")
    videos = []
    for path in sorted(video_dir.glob("*.mp4")):
        try:
            name = parse_name(path.name)
        except ValueError:
            continue
        if split != "all" and split_of(name) != split:
            continue
        if cameras is not None and name.camera not in cameras:
            continue
        videos.append(AistVideo(video=path, music=find_music(root, name.music_id), name=name))
    return videos


def read_video(
    path: Path,
    size: int = 128,
    max_frames: int | None = None,
    *,
    start_seconds: float = 0.0,
    seconds: float | None = None,
) -> tuple[np.ndarray, float]:
    """Frames as (T, size, size, 3) uint8 RGB, centre-cropped to a square then resized, and the video's fps.

    `start_seconds`/`seconds` read a window (training reads a few seconds of minutes-long videos).
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"could not open video {path}; is it a readable mp4?")
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or 60.0
    if start_seconds > 0:
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(round(start_seconds * fps)))
    if seconds is not None:
        limit = int(np.ceil(seconds * fps))
        max_frames = limit if max_frames is None else min(max_frames, limit)
    frames = []
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            h, w = frame.shape[:2]
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            square = frame[top : top + side, left : left + side]
            square = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(square, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise ValueError(f"video {path} has no readable frames")
    return np.stack(frames), fps
