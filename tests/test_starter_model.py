"""The shipped starter model (checkpoints/starter) does what issue 4 asks of it, measured on inputs it never saw:
the bundled example still and track (made by the project, not in the training data) and procedural stills from
the test split's seed range.

- The dance is not the still repeated (the flow is clearly non-zero) and not noise (frame 0 ~ the still).
- Moving the given beat times moves the dance's kinematic beats with them.
- No drift over 16 s made of many windows (sharpness and colour; beat alignment once the model is on the beat).
- Its LFAE rebuilds the whole test split's frames at SSIM >= 0.90 and PSNR >= 26 dB (issue 4's targets).
The held-out BAS and music-swap figures of the model card come from `dance-any-beat evaluate` (minutes of CPU),
not from these tests.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dance_any_beat.data.procedural import SPLIT_SEED_BASE, make_clip
from dance_any_beat.evaluate import drift_scores
from dance_any_beat.metrics import psnr, ssim, video_beat_alignment
from dance_any_beat.models.dabfusion import DabFusion
from dance_any_beat.music.audio import load_audio
from dance_any_beat.music.beats import read_beat_times
from dance_any_beat.pipeline import STARTER_CHECKPOINT, GenerateParams, decode_frames, generate_motion, read_still

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FPS = 24.0
TEST_CLIPS = 50  # the test split as `make-dataset --split test --num-clips 50` writes it (the model card's)
EVERY = 6  # every 6th frame is rebuilt from the first, as benchmarks/lfae_quality.py does


@pytest.fixture(scope="module")
def starter() -> DabFusion:
    assert (STARTER_CHECKPOINT / "model.safetensors").is_file(), f"no starter model in {STARTER_CHECKPOINT}"
    return DabFusion.from_checkpoint(STARTER_CHECKPOINT).eval()


@pytest.fixture(scope="module")
def example() -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """The bundled still (float RGB), the track's samples and rate, and its ground-truth beats."""
    still = read_still(EXAMPLES / "example_still.png")  # (H, W, 3) float in [0, 1]
    music = load_audio(EXAMPLES / "example_track.ogg")
    return still, music.samples, music.sr, read_beat_times(EXAMPLES / "example_track_beats.txt")


def _dance(model: DabFusion, still: np.ndarray, samples: np.ndarray, sr: int, seconds: float, beats: np.ndarray,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S, 3) uint8 frames at the model's resolution and (N, 2, h, w) flows, draft quality."""
    params = GenerateParams(preset="draft", seed=seed, fps=FPS, seconds=seconds).resolved()
    n = int(round(seconds * FPS))
    downbeats = beats[::4]
    motion = generate_motion(model, still, samples, sr, n, params, beats, downbeats)
    frames = np.stack(list(decode_frames(model, motion, still, "model")))  # (N, S, S, 3)
    flow, _ = motion.flows(model.config.data.flow_scale)
    return frames, flow


def test_the_dance_moves_and_is_not_noise(starter, example):
    still, samples, sr, beats = example
    frames, flow = _dance(starter, still, samples, sr, 4.0, beats)
    assert frames.shape[0] == 96
    px = np.hypot(flow[:, 0], flow[:, 1]) * starter.config.data.image_size / 2.0  # (N, h, w) view pixels
    assert px.mean() > 0.3, f"mean flow {px.mean():.3f} px: the still barely moves"
    first = frames[0]
    view = cv2.resize((still * 255).round().astype(np.uint8), first.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert float(ssim(first, view)) >= 0.8
    # frames differ from each other, not only from the still
    assert np.abs(frames[1:].astype(int) - frames[:-1].astype(int)).mean() > 0.05


def test_moving_the_beats_moves_the_dance(starter, example):
    """The same music danced to the true beats and to beats moved by half a beat: each dance matches the beats it
    was given better than the others (BAS from the frames, as `evaluate` measures it)."""
    still, samples, sr, beats = example
    seconds = 8.0
    period = float(np.median(np.diff(beats)))
    shifted = beats + period / 2
    scores = {}
    for name, given in (("true", beats), ("moved", shifted)):
        frames, _ = _dance(starter, still, samples, sr, seconds, given)
        for against, target in (("true", beats), ("moved", shifted)):
            inside = target[target < seconds]
            scores[name, against] = video_beat_alignment(frames, inside, FPS)
    print("BAS (dance given, beats measured against):", {k: round(v, 3) for k, v in scores.items()})
    assert scores["true", "true"] > scores["true", "moved"]
    assert scores["moved", "moved"] > scores["moved", "true"]


@pytest.fixture(scope="module")
def long_dance(starter):
    """Six dances of 16 s (12 windows each) from a held-out procedural still (test-split seed range) to its
    style's music (seeds 0-5). One dance is not a measurement: a 4 s segment holds only about seven beats, so its
    BAS is noise, and its sharpness follows how much the dancer happens to move in it (one dance's last / first
    ranged 0.76-1.11 over seeds 0-8, mean 0.92; MODEL_CARD.md)."""
    clip = make_clip(SPLIT_SEED_BASE["test"] + 17, seconds=0.5, size=starter.config.data.image_size)
    drift = drift_scores(starter, clip.frames[0], clip.style, 16.0, GenerateParams(preset="draft", fps=FPS),
                         dances=6)
    print("drift:", drift, drift.ratios())
    assert drift.windows >= 10
    return drift


def test_sixteen_seconds_keep_their_sharpness_and_colour(long_dance):
    """The last 4 s are as sharp and as close in colour to the still as the first 4 s."""
    checks = long_dance.checks()
    assert checks["sharpness_ratio"] and checks["histogram_ratio"], long_dance.ratios()


def test_sixteen_seconds_keep_their_beat_alignment(long_dance):
    """The last 4 s follow the beats at least 0.9x as well as the first 4 s (means over the six dances): drift
    would make them worse. A 4 s segment's BAS varies by about 0.15 between dances (7 beats), so the two-sided
    "within 10%" is `evaluate`'s figure over more dances; on this still the last segments are the better ones."""
    assert long_dance.bas_last >= 0.9 * long_dance.bas_first, long_dance.bas_per_dance
    assert long_dance.bas_first > 0.4, long_dance.bas_per_dance  # and both follow them: not two equal failures


@torch.no_grad()
def test_the_lfae_rebuilds_the_held_out_test_split_at_the_issues_targets(starter):
    # the clips are made again from their seeds (the data set stores them losslessly: the same frames); the
    # reference is each clip's first frame, the drive frames every 6th after it: 50 clips, 950 pairs
    lfae = starter.lfae  # float32, as from_checkpoint loads it
    ssims, psnrs = [], []
    for i in range(TEST_CLIPS):
        clip = make_clip(SPLIT_SEED_BASE["test"] + i, size=starter.config.data.image_size)
        frames = torch.from_numpy(clip.frames).float().div(255.0).permute(0, 3, 1, 2)  # (T, 3, S, S)
        drive = frames[EVERY::EVERY]
        recon = lfae(frames[:1].expand_as(drive), drive).reconstruction.clamp(0.0, 1.0)
        ssims += ssim(recon, drive, data_range=1.0).tolist()
        psnrs += psnr(recon, drive, data_range=1.0).tolist()
    assert len(ssims) == 950
    print(f"\nLFAE on the test split: SSIM {np.mean(ssims):.4f}, PSNR {np.mean(psnrs):.2f} dB")
    assert np.mean(ssims) >= 0.90 and np.mean(psnrs) >= 26.0, (np.mean(ssims), np.mean(psnrs))
