"""PNG frame sequences and MP4 muxing with real ffmpeg (from imageio-ffmpeg)."""

from pathlib import Path

import numpy as np
import pytest

from dance_any_beat.video import frame_path, probe_mp4, read_png_frames, write_mp4, write_png_frames


def moving_square(frames: int = 24, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    video = np.zeros((frames, *size, 3), np.uint8)
    for i in range(frames):
        video[i, 10:20, 2 * i : 2 * i + 10] = (255, 40, 10)
    return video


def test_png_frames_round_trip_exactly(tmp_path: Path):
    video = moving_square()
    assert write_png_frames(video, tmp_path / "frames") == 24
    assert frame_path(tmp_path / "frames", 1).name == "000001.png"
    assert (tmp_path / "frames" / "000024.png").exists()
    np.testing.assert_array_equal(read_png_frames(tmp_path / "frames"), video)


def test_frame_numbers_start_at_one(tmp_path: Path):
    with pytest.raises(ValueError, match="start at 1"):
        frame_path(tmp_path, 0)
    with pytest.raises(FileNotFoundError, match="no numbered PNG frames"):
        read_png_frames(tmp_path)


def test_mp4_has_every_frame_and_the_music(tmp_path: Path):
    sr = 22050
    audio = 0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    path = write_mp4(moving_square(24), tmp_path / "dance.mp4", fps=24, audio=audio, sr=sr)
    info = probe_mp4(path)
    assert info["frames"] == 24 and info["fps"] == pytest.approx(24) and info["has_audio"] == 1.0


def test_mp4_without_audio_and_odd_size(tmp_path: Path):
    path = write_mp4(moving_square(10, size=(33, 45)), tmp_path / "silent.mp4", fps=30)
    info = probe_mp4(path)
    assert info["frames"] == 10 and info["has_audio"] == 0.0


def test_mp4_rejects_empty_and_wrong_frames(tmp_path: Path):
    with pytest.raises(ValueError, match="no frames"):
        write_mp4([], tmp_path / "x.mp4", fps=24)
    with pytest.raises(AssertionError, match="uint8 RGB"):
        write_mp4([np.zeros((8, 8), np.float32)], tmp_path / "x.mp4", fps=24)
