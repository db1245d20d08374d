"""Acceptance test of the rhythm metrics against the procedural data set's ground truth.

The procedural dancer hits a key pose on every music beat, so its own music must score well and another clip's
music (different style and tempo, same length) clearly worse, under every rhythm metric: the BAS on its joints,
2D-MM Align on its rendered frames, and AV-Align on frames + audio. Clip i is paired with clip i + 3, which
has the same duration (durations cycle with period 3) and a different style (styles cycle with period 10).
"""

from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from dance_any_beat.data.procedural import make_clip
from dance_any_beat.metrics import (
    audio_peaks,
    av_align_from_peaks,
    beat_alignment_score,
    center_pair_track,
    flow_magnitudes,
    video_beat_alignment,
    video_peaks_from_flow_magnitudes,
)
from dance_any_beat.styles import STYLE_NAMES

NUM_CLIPS = 24
DURATIONS = (4.0, 6.0, 8.0)
PARTNER_OFFSET = 3  # keeps the duration, changes the style
FPS = 30

pytestmark = pytest.mark.slow  # ~30 s: 24 clips rendered, Farneback flow on every frame pair


@dataclass
class Scored:
    """One clip and what the metrics need from it, computed once for the module."""

    clip: object
    motion_energy: np.ndarray  # (T,) frame-centred Farneback magnitude, for 2D-MM Align
    video_peaks: np.ndarray  # AV-Align motion peaks (frame indices)
    audio_peaks: np.ndarray  # AV-Align onsets (fractional frames)


@pytest.fixture(scope="module")
def scored() -> list[Scored]:
    # Farneback on 128x128 frames gains nothing from cv2's worker threads and loses to them on a busy runner.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return [_score(seed) for seed in range(NUM_CLIPS)]
    finally:
        cv2.setNumThreads(threads)


def _score(seed: int) -> Scored:
    clip = make_clip(seed, style=STYLE_NAMES[seed % len(STYLE_NAMES)], seconds=DURATIONS[seed % 3], fps=FPS)
    pairs = flow_magnitudes(clip.frames)  # (T - 1,), shared by both video metrics
    return Scored(
        clip=clip,
        motion_energy=center_pair_track(pairs),
        video_peaks=video_peaks_from_flow_magnitudes(pairs),
        audio_peaks=audio_peaks(clip.audio, clip.sr, clip.fps),
    )


def partner(items: list, i: int):
    return items[(i + PARTNER_OFFSET) % len(items)]


def test_clips_are_paired_with_same_length_different_tempo(scored):
    for i, s in enumerate(scored):
        other = partner(scored, i).clip
        assert len(other.frames) == len(s.clip.frames)
        assert other.style != s.clip.style
    tempo_gaps = [abs(partner(scored, i).clip.bpm - s.clip.bpm) for i, s in enumerate(scored)]
    assert np.median(tempo_gaps) > 3.0


def test_bas_of_ground_truth_joints_beats_shuffled_music(scored):
    own = np.mean([beat_alignment_score(s.clip.joints, s.clip.beat_times, s.clip.fps) for s in scored])
    shuffled = np.mean(
        [
            beat_alignment_score(s.clip.joints, partner(scored, i).clip.beat_times, s.clip.fps)
            for i, s in enumerate(scored)
        ]
    )
    assert own >= 0.6, f"BAS own {own:.3f} (shuffled {shuffled:.3f})"
    assert shuffled <= 0.7 * own, f"BAS own {own:.3f}, shuffled {shuffled:.3f}"


def test_video_beat_alignment_of_rendered_frames_follows_the_same_order(scored):
    own = np.mean([video_beat_alignment(s.motion_energy, s.clip.beat_times, s.clip.fps) for s in scored])
    shuffled = np.mean(
        [
            video_beat_alignment(s.motion_energy, partner(scored, i).clip.beat_times, s.clip.fps)
            for i, s in enumerate(scored)
        ]
    )
    assert own > shuffled, f"2D-MM Align own {own:.3f}, shuffled {shuffled:.3f}"
    assert shuffled <= 0.7 * own, f"2D-MM Align own {own:.3f}, shuffled {shuffled:.3f}"


def test_av_align_of_ground_truth_beats_shuffled_audio(scored):
    own = np.mean([av_align_from_peaks(s.audio_peaks, s.video_peaks) for s in scored])
    shuffled = np.mean(
        [av_align_from_peaks(partner(scored, i).audio_peaks, s.video_peaks) for i, s in enumerate(scored)]
    )
    assert own > shuffled, f"AV-Align own {own:.3f}, shuffled {shuffled:.3f}"
