"""2D-MM Align from body landmarks (mediapipe Pose, for real) against the procedural data set's ground truth.

The procedural dancer hits a key pose on every music beat, so the landmarks of its own video must score well
against its own music and clearly worse against another clip's (the next clip: another style and tempo, the
same length), as the flow-energy 2D-MM Align does in test_metrics_procedural.py.
"""

import numpy as np
import pytest

from dance_any_beat.data.procedural import list_clips, make_dataset, read_clip
from dance_any_beat.metrics import landmark_beat_alignment, video_beat_alignment
from dance_any_beat.metrics.pose_alignment import body_track, landmark_speed
from dance_any_beat.vision.person import PersonFinder

# 4 s each. Measured on 24 test clips: own music 0.71 (per clip 0.54 to 0.95), another clip's 0.14. Means of 6
# clips drawn from them: all 4000 draws passed (5th percentile 0.65); of 4 clips, 0.7 % failed; of 3, 2.3 %
NUM_CLIPS = 6

pytestmark = pytest.mark.slow  # ~20 s: Pose on 6 x 120 frames


@pytest.fixture(scope="module")
def finder():
    with PersonFinder() as f:
        yield f


@pytest.fixture(scope="module")
def scored(tmp_path_factory, finder) -> list[tuple[object, np.ndarray]]:
    """Each test clip with its landmark speed track (T,)."""
    split = make_dataset(tmp_path_factory.mktemp("procedural"), NUM_CLIPS, split="test", workers=1)
    clips = [read_clip(path) for path in list_clips(split)]
    return [(clip, landmark_speed(*finder.landmarks(clip.frames))) for clip in clips]


def test_ground_truth_dancers_score_high_with_their_own_music_and_low_with_another(scored):
    own = [video_beat_alignment(speed, clip.beat_times, clip.fps) for clip, speed in scored]
    swapped = [
        video_beat_alignment(speed, scored[(i + 1) % len(scored)][0].beat_times, clip.fps)
        for i, (clip, speed) in enumerate(scored)
    ]
    summary = f"own {np.mean(own):.3f} ({np.round(own, 2)}), swapped {np.mean(swapped):.3f} ({np.round(swapped, 2)})"
    print(f"landmark 2D-MM Align on {len(scored)} ground-truth clips: {summary}")  # the figure, with pytest -s
    assert np.mean(own) >= 0.6, summary
    assert np.mean(own) >= 1.3 * np.mean(swapped), summary


def test_the_video_score_is_the_speed_track_score(scored, finder):
    clip, _ = scored[0]
    frames = clip.frames[: 2 * clip.fps]  # the first 2 s
    speed = landmark_speed(*finder.landmarks(frames))
    expected = video_beat_alignment(speed, clip.beat_times, clip.fps)
    assert landmark_beat_alignment(frames, clip.beat_times, clip.fps, finder) == pytest.approx(expected)


def test_a_video_without_anyone_has_no_score(finder):
    empty = np.full((6, 64, 64, 3), 120, np.uint8)
    with pytest.raises(ValueError, match="found in only 0 of 6 frames"):
        landmark_beat_alignment(empty, np.array([0.1]), 30.0, finder)


def _walker(frames: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic landmarks (T, 33, 2) of a standing body swaying sideways, all seen: torso 100 px long."""
    t = np.arange(frames)
    points = np.zeros((frames, 33, 2))
    points[:, :, 0] = 200 + 20 * np.sin(t / 4)[:, None]
    points[:, :, 1] = np.linspace(100, 400, 33)[None]
    points[:, [11, 12], 1], points[:, [23, 24], 1] = 150, 250
    return points, np.ones((frames, 33))


def test_speed_is_in_torso_lengths_and_fills_gaps():
    points, visibility = _walker()
    speed = landmark_speed(points, visibility)
    assert np.allclose(landmark_speed(points * 3 + 7, visibility), speed)  # any resolution, any offset
    sway = 20 * np.abs(np.cos(np.arange(40) / 4) / 4) / 100  # d/dt of the sway, in torso lengths
    assert np.allclose(speed[1:-1], sway[1:-1], atol=0.01)

    gappy, seen = points.copy(), visibility.copy()
    gappy[10:13] = np.nan  # nobody found in three frames
    seen[20:25, 15] = 0.1  # a wrist hidden for five
    filled = body_track(gappy, seen)  # (T, 13, 2)
    assert filled.shape == (40, 13, 2) and np.isfinite(filled).all()
    expected = np.interp(np.arange(10, 13), [9, 13], [points[9, 0, 0], points[13, 0, 0]]) / 100
    assert np.allclose(filled[10:13, 0, 0], expected)  # the nose, interpolated over the gap


def test_a_mostly_missing_dancer_is_refused():
    points, visibility = _walker()
    points[:25] = np.nan
    with pytest.raises(ValueError, match="found in only 15 of 40 frames"):
        body_track(points, visibility)
