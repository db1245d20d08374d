"""Writing results: numbered PNG frames (what Blender's image strip reads) and an MP4 with the music muxed in.

ffmpeg comes from the imageio-ffmpeg wheel, so no system ffmpeg is needed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

FRAME_NAME = "{:06d}.png"  # 1-based: 000001.png is the first frame, as Blender numbers image sequences


def frame_path(folder: str | Path, index: int) -> Path:
    """Path of frame `index` (1-based) in `folder`."""
    if index < 1:
        raise ValueError(f"frame numbers start at 1, got {index}")
    return Path(folder) / FRAME_NAME.format(index)


def write_png_frames(frames: Iterable[np.ndarray], folder: str | Path, *, start: int = 1) -> int:
    """Write (H, W, 3) uint8 RGB frames as folder/000001.png ...; returns how many were written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for count, frame in enumerate(frames, start=1):
        _check_frame(frame)
        if not cv2.imwrite(str(frame_path(folder, start + count - 1)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {frame_path(folder, start + count - 1)}; is the folder writable?")
    return count


def read_png_frames(folder: str | Path) -> np.ndarray:
    """All numbered frames of `folder` as (T, H, W, 3) uint8 RGB, in order."""
    paths = sorted(Path(folder).glob("[0-9]" * 6 + ".png"))
    if not paths:
        raise FileNotFoundError(f"no numbered PNG frames (000001.png ...) in {folder}")
    return np.stack([cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in paths])


def _check_frame(frame: np.ndarray) -> None:
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8, (
        f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}"
    )


def write_mp4(
    frames: Iterable[np.ndarray],
    path: str | Path,
    *,
    fps: float,
    audio: np.ndarray | None = None,
    sr: int | None = None,
    quality: int = 8,
) -> Path:
    """Encode RGB frames to H.264 (yuv420p, plays everywhere) with the mono `audio` muxed as AAC.

    Frames are padded to even sizes by ffmpeg's macro-block rule; the audio is cut to the video's length.
    """
    import imageio_ffmpeg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no frames to write")
    _check_frame(first)
    height, width = first.shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        audio_path = None
        if audio is not None:
            assert sr is not None, "sr is needed with audio"
            audio_path = str(Path(tmp) / "audio.wav")
            sf.write(audio_path, np.asarray(audio, dtype=np.float32), sr, subtype="PCM_16")
        writer = imageio_ffmpeg.write_frames(
            str(path), (width, height), fps=fps, codec="libx264", quality=quality, macro_block_size=2,
            ffmpeg_log_level="error",
            audio_path=audio_path, audio_codec="aac" if audio_path else None,
            output_params=["-shortest"] if audio_path else None,
        )
        writer.send(None)  # start ffmpeg
        writer.send(np.ascontiguousarray(first))
        for frame in iterator:
            _check_frame(frame)
            writer.send(np.ascontiguousarray(frame))
        writer.close()
    return path


def probe_mp4(path: str | Path) -> dict[str, float]:
    """Frame count, fps and whether an audio stream is present (for tests and the CLI's report)."""
    import subprocess

    import imageio_ffmpeg

    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
        capture_output=True, text=True, check=False,
    )
    log = result.stderr
    frames = 0
    for line in log.splitlines():
        if line.strip().startswith("frame=") or "frame=" in line:
            part = line.split("frame=")[-1].strip().split()[0]
            if part.isdigit():
                frames = int(part)
    fps = 0.0
    for token in log.split(","):
        token = token.strip()
        if token.endswith(" fps"):
            fps = float(token.split()[0])
            break
    return {"frames": frames, "fps": fps, "has_audio": float("Audio:" in log)}
