"""AIST++ naming, the music-based split and video reading, on a small folder laid out like the real one."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from dance_any_beat.data.aist import TEST_MUSIC_IDS, list_videos, parse_name, read_video, split_of


def test_parse_name():
    name = parse_name("gBR_sBM_c01_d04_mBR0_ch01.mp4")
    assert (name.genre, name.situation, name.camera, name.dancer, name.music_id, name.choreography) == (
        "BR", "BM", "01", "04", "mBR0", "01"
    )
    assert name.style == "break"
    assert parse_name("gJB_sFM_c09_d08_mJB5_ch15").style == "ballet_jazz"


@pytest.mark.parametrize("bad", ["dance.mp4", "gXX_sBM_c01_d04_mBR0_ch01", "gBR_sBM_c01_d04_mBR_ch01"])
def test_bad_names(bad: str):
    with pytest.raises(ValueError, match="AIST\\+\\+|unknown genre code"):
        parse_name(bad)


def test_split_is_by_music_fifty_ten():
    genres = ["BR", "PO", "LO", "MH", "LH", "HO", "WA", "KR", "JS", "JB"]
    music_ids = [f"m{g}{i}" for g in genres for i in range(6)]
    splits = [split_of(parse_name(f"g{m[1:3]}_sBM_c01_d01_{m}_ch01")) for m in music_ids]
    assert splits.count("train") == 50 and splits.count("test") == 10
    # one held-out track per genre
    assert sorted(m[1:3] for m in TEST_MUSIC_IDS) == sorted(genres)


def write_video(path: Path, frames: int, width: int = 96, height: int = 64) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 60, (width, height))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:, :, 2] = 200  # red in BGR
        cv2.circle(frame, (10 + i * 4, height // 2), 8, (255, 255, 255), -1)
        writer.write(frame)
    writer.release()


@pytest.fixture
def aist_root(tmp_path: Path) -> Path:
    (tmp_path / "videos").mkdir()
    (tmp_path / "music").mkdir()
    for name in ["gBR_sBM_c01_d04_mBR0_ch01", "gBR_sBM_c02_d04_mBR1_ch02", "gPO_sFM_c01_d10_mPO3_ch05"]:
        write_video(tmp_path / "videos" / f"{name}.mp4", frames=12)
    for music in ["mBR0", "mBR1", "mPO3"]:
        sf.write(tmp_path / "music" / f"{music}.wav", np.zeros(22050, np.float32), 22050)
    (tmp_path / "videos" / "README.mp4").write_bytes(b"")  # not an AIST++ name: ignored
    return tmp_path


def test_list_videos_by_split_and_camera(aist_root: Path):
    train = list_videos(aist_root, "train")
    test = list_videos(aist_root, "test")
    assert [v.name.music_id for v in train] == ["mBR1", "mPO3"]
    assert [v.name.music_id for v in test] == ["mBR0"]
    assert test[0].music == aist_root / "music" / "mBR0.wav"
    assert [v.name.camera for v in list_videos(aist_root, "all", cameras=("02",))] == ["02"]


def test_missing_music_is_named(aist_root: Path):
    (aist_root / "music" / "mPO3.wav").unlink()
    with pytest.raises(FileNotFoundError, match="music mPO3 not found in .*music"):
        list_videos(aist_root, "train")


def test_missing_video_folder(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="videos does not exist"):
        list_videos(tmp_path)


def test_read_video_crops_resizes_and_converts_to_rgb(aist_root: Path):
    frames, fps = read_video(aist_root / "videos" / "gBR_sBM_c01_d04_mBR0_ch01.mp4", size=32)
    assert frames.shape == (12, 32, 32, 3) and frames.dtype == np.uint8
    assert fps == pytest.approx(60.0)
    corner = frames[0, 0, 0].astype(int)
    assert corner[0] > 150 and corner[2] < 60  # red stays red after BGR -> RGB
    assert not np.array_equal(frames[0], frames[-1])  # the circle moved
    limited, _ = read_video(aist_root / "videos" / "gBR_sBM_c01_d04_mBR0_ch01.mp4", size=32, max_frames=5)
    assert len(limited) == 5
    window, _ = read_video(aist_root / "videos" / "gBR_sBM_c01_d04_mBR0_ch01.mp4", size=32, start_seconds=5 / 60,
                           seconds=3 / 60)
    assert len(window) == 3
    np.testing.assert_allclose(window[0].astype(int), frames[5].astype(int), atol=2)
