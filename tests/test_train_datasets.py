"""Training samples: frame pairs (stage 1) and music windows (stage 2) have the documented shapes and ranges,
depend only on (seed, epoch, item), and the sampler shards and resumes epochs exactly."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch

from dance_any_beat.data.procedural import read_clip
from dance_any_beat.music.beats import RHYTHM_DIM
from dance_any_beat.styles import STYLE_NAMES
from dance_any_beat.train.datasets import (
    AistSource,
    EpochSampler,
    FramePairs,
    MotionWindows,
    ProceduralSource,
    open_source,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def source(procedural_data):
    return open_source("procedural", procedural_data(3), "train")


@pytest.mark.parametrize("cache_bytes", [2**30, 0])  # decoded once and kept / read window by window
def test_procedural_windows_read_exactly_the_frames_and_audio_asked_for(source, cache_bytes):
    source = ProceduralSource(source.clips[0].parent, cache_bytes=cache_bytes)
    clip = read_clip(source.clips[0])
    times = np.array([1.5, 0.1, 0.1, 0.2, 1.9, 0.0])  # unsorted, repeated, near (one pass) and far (seek)
    window = source.window(0, 0.0, times, audio_seconds=0.5, size=64)
    np.testing.assert_array_equal(window.frames, clip.frames[np.round(times * clip.fps).astype(int)])
    np.testing.assert_array_equal(window.audio, clip.audio[: round(0.5 * clip.sr)])
    later = source.window(0, 1.0, np.array([0.0, 0.5]), audio_seconds=1.5, size=64)  # runs past the clip's end
    np.testing.assert_array_equal(later.frames, clip.frames[[30, 45]])
    tail = clip.audio[clip.sr:]
    np.testing.assert_array_equal(later.audio[: len(tail)], tail)
    assert len(later.audio) == round(1.5 * clip.sr) and not later.audio[len(tail):].any()
    np.testing.assert_allclose(later.beat_times, clip.beat_times - 1.0)
    assert window.style == clip.style and window.sr == clip.sr and source.seconds(0) == pytest.approx(2.0)


def test_frame_pairs_are_two_frames_of_one_clip(source):
    pairs = FramePairs(source, size=32, pairs_per_clip=4, seed=1)
    assert len(pairs) == 12
    item = pairs[5]
    assert set(item) == {"ref", "drive", "ref_joints", "drive_joints"}  # procedural clips know their skeleton
    assert item["ref_joints"].shape == (18, 2)
    for image in (item["ref"], item["drive"]):
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.01
    # both frames come from clip 5 // 4 = 1, resized from 64 px
    clip = read_clip(source.clips[1])
    frames = torch.from_numpy(np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA)
                                        for f in clip.frames])).float().div(255).permute(0, 3, 1, 2)
    for image in (item["ref"], item["drive"]):
        assert (frames - image).abs().amax(dim=(1, 2, 3)).min() < 1e-6


def test_frame_pairs_depend_only_on_seed_epoch_and_item(source):
    a, b = FramePairs(source, size=32, seed=1), FramePairs(source, size=32, seed=1)
    for key in ("ref", "drive"):
        assert torch.equal(a[3][key], b[3][key])
    draws = {(seed, epoch): FramePairs(source, size=32, seed=seed) for seed in (1, 2) for epoch in (0, 1)}
    for (_, epoch), pairs in draws.items():
        pairs.epoch = epoch
    items = {k: torch.cat([p[3]["ref"], p[3]["drive"]]) for k, p in draws.items()}
    assert not torch.equal(items[(1, 0)], items[(1, 1)])  # a new epoch draws new pairs
    assert not torch.equal(items[(1, 0)], items[(2, 0)])  # so does another seed
    draws[(1, 1)].epoch = 0
    assert torch.equal(torch.cat([draws[(1, 1)][3]["ref"], draws[(1, 1)][3]["drive"]]), items[(1, 0)])


def test_motion_windows_hold_frames_music_and_rhythm(source):
    windows = MotionWindows(source, size=64, fps=10, num_frames=8, windows_per_clip=2, seed=3)
    assert len(windows) == 6 and windows.window_seconds == pytest.approx(0.8)
    item = windows[4]
    assert item["frames"].shape == (8, 3, 64, 64) and item["ref"].shape == (3, 64, 64)
    assert torch.equal(item["ref"], item["frames"][0])
    assert 0.0 <= item["frames"].min() and item["frames"].max() <= 1.0
    assert int(item["sr"]) == 22050 and item["audio"].shape == (round(0.8 * 22050),)
    assert item["audio"].dtype == torch.float32 and item["audio"].abs().max() > 0.01
    assert item["rhythm"].shape == (8, RHYTHM_DIM) and torch.isfinite(item["rhythm"]).all()
    clip = read_clip(source.clips[2])
    assert STYLE_NAMES[int(item["style"])] == clip.style
    # 0.8 s at 10 fps over a 2 s clip: in 8 frames there is at least one beat of a >= 80 BPM track
    assert item["rhythm"][:, 0].max() > 0.5
    again = MotionWindows(source, size=64, fps=10, num_frames=8, windows_per_clip=2, seed=3)[4]
    for key in item:
        assert torch.equal(item[key], again[key])
    windows.epoch = 1
    assert not torch.equal(windows[4]["audio"], item["audio"])  # another epoch, another window


def test_epoch_sampler_shards_and_resumes_mid_epoch(source):
    pairs = FramePairs(source, size=32, pairs_per_clip=5)  # 15 items: 7 per rank, one dropped
    ranks = [EpochSampler(pairs, rank=r, world_size=2, seed=4) for r in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(2)
    shards = [list(s) for s in ranks]
    assert [len(s) for s in shards] == [7, 7] and not set(shards[0]) & set(shards[1])
    assert pairs.epoch == 2  # set_epoch also picks the data set's random pairs
    ranks[0].set_epoch(2, skip=3)
    assert list(ranks[0]) == shards[0][3:] and len(ranks[0]) == 4
    ranks[0].set_epoch(3)
    assert list(ranks[0]) != shards[0]
    with pytest.raises(ValueError, match="fewer than the 32 processes"):
        EpochSampler(pairs, world_size=32)


def write_video(path: Path, frames: int, width: int = 48, height: int = 48) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 60, (width, height))
    for i in range(frames):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:, : i % width] = 255  # a white bar that grows one pixel per frame
        writer.write(frame)
    writer.release()


def test_aist_frame_pairs_read_unsorted_times_without_music(tmp_path: Path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "music").mkdir()
    write_video(tmp_path / "videos" / "gPO_sFM_c01_d10_mPO3_ch05.mp4", frames=40)
    sf.write(tmp_path / "music" / "mPO3.wav", np.zeros(22050, np.float32), 22050)
    source = AistSource(tmp_path, "train")
    times = np.array([30 / 60, 10 / 60])  # drive before ref: frame pairs are random
    window = source.window(0, 0.0, times, audio_seconds=0.0, size=48)
    assert window.frames.shape == (2, 48, 48, 3) and len(window.audio) == 0
    bars = (window.frames[:, 24, :, 0] > 128).sum(axis=1)  # width of the white bar = frame index (mod 48)
    assert abs(int(bars[0]) - 30) <= 1 and abs(int(bars[1]) - 10) <= 1
    source.max_decode_seconds = 0.1  # far-apart times: read by seeking
    seek = source.window(0, 0.0, times, audio_seconds=0.0, size=48)
    np.testing.assert_allclose(seek.frames.astype(int), window.frames.astype(int), atol=3)
    pairs = FramePairs(source, size=48, pairs_per_clip=2)
    assert pairs[1]["drive"].shape == (3, 48, 48)
