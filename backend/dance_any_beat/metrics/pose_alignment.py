"""2D-MM Align from body landmarks found in any video: the BAS with kinetic beats taken from the dancer's joints.

The paper's 2D-MM Align runs a 2D pose estimator on the video and scores its keypoints like the BAS scores a
skeleton. Here the estimator is PersonFinder (mediapipe Pose, every frame on its own), and the scoring is
beat_alignment's: the speed track is smoothed, its local minima are the kinetic beats, and each music beat
scores exp(-d^2 / (2 sigma^2)), all with the fps-scaled constants.

Speed = the mean, over the body's 13 landmarks (nose, shoulders, elbows, wrists, hips, knees, ankles), of the
frame-centred displacement, in torso lengths per frame (the median shoulder-to-hip distance over the clip), so
it reads the same at any resolution. The hands, face and feet details are left out: they jitter more than they
move. A landmark Pose barely sees (visibility <= VISIBLE) and a frame with nobody found are gaps, filled per
landmark by linear interpolation in time, so a missed frame is neither a stop (a false beat) nor a jump.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .beat_alignment import joint_speed, video_beat_alignment

if TYPE_CHECKING:
    from dance_any_beat.vision.person import PersonFinder

BODY_LANDMARKS = (0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)  # mediapipe Pose's indices
SHOULDERS, HIPS = (11, 12), (23, 24)
VISIBLE = 0.5  # visibility above which a landmark is used
MIN_FOUND = 0.5  # a score needs the dancer found in at least this fraction of the frames


def _fill_gaps(track: np.ndarray) -> np.ndarray:
    """(T, D) with NaN rows -> linearly interpolated in time (held at the ends); all NaN stays NaN."""
    filled = track.copy()
    known = ~np.isnan(track[:, 0])  # (T,)
    if known.sum() >= 1:
        t = np.arange(len(track))
        for d in range(track.shape[1]):
            filled[:, d] = np.interp(t, t[known], track[known, d])
    return filled


def body_track(landmarks: np.ndarray, visibility: np.ndarray) -> np.ndarray:
    """Landmarks (T, 33, 2) pixels (NaN where nobody was found) and visibility (T, 33) -> the body's landmarks
    (T, J, 2) in torso lengths with gaps filled; J <= 13 (a landmark seen in fewer than 2 frames is dropped).

    Raises ValueError when the dancer was found in fewer than MIN_FOUND of the frames (the score would be
    mostly interpolation).
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    visibility = np.asarray(visibility, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (33, 2) or visibility.shape != landmarks.shape[:2]:
        shapes = f"{landmarks.shape} and {visibility.shape}"
        raise ValueError(f"expected landmarks (T, 33, 2) and visibility (T, 33), got {shapes}")
    found = ~np.isnan(landmarks).any(axis=(1, 2))  # (T,)
    if found.sum() < max(2, MIN_FOUND * len(landmarks)):
        counts = f"{int(found.sum())} of {len(landmarks)}"
        raise ValueError(f"the dancer was found in only {counts} frames; 2D-MM Align needs them in most frames")
    seen = visibility > VISIBLE  # (T, 33)
    torso = seen[:, SHOULDERS + HIPS].all(axis=1) & found  # (T,)
    if not torso.any():
        raise ValueError("the dancer's shoulders and hips are never seen together: no body size to measure by")
    mid_shoulder = landmarks[torso][:, SHOULDERS].mean(axis=1)  # (K, 2)
    mid_hip = landmarks[torso][:, HIPS].mean(axis=1)
    torso_length = float(np.median(np.linalg.norm(mid_shoulder - mid_hip, axis=1)))
    if not torso_length > 0:
        raise ValueError("the dancer's torso measures 0 px: no body size to measure by")

    joints = []
    for i in BODY_LANDMARKS:
        usable = seen[:, i] & found  # (T,)
        if usable.sum() >= 2:
            joints.append(_fill_gaps(np.where(usable[:, None], landmarks[:, i], np.nan)))  # (T, 2)
    return np.stack(joints, axis=1) / torso_length  # (T, J, 2)


def landmark_speed(landmarks: np.ndarray, visibility: np.ndarray) -> np.ndarray:
    """(T,) body speed in torso lengths per frame from PersonFinder.landmarks' output (see body_track)."""
    return joint_speed(body_track(landmarks, visibility))


def landmark_beat_alignment(
    frames: np.ndarray, beat_times: np.ndarray, fps: float, finder: PersonFinder | None = None
) -> float:
    """2D-MM Align of a video (T, H, W, 3) uint8 RGB against music beat times (s): in [0, 1], higher is better.

    finder: a PersonFinder to reuse (one is made and closed otherwise). Raises ValueError when the dancer is
    missing from most frames or no music beat falls inside the video.
    """
    own = finder is None
    if finder is None:
        from dance_any_beat.vision.person import PersonFinder  # mediapipe: loaded only when a score is asked for

        finder = PersonFinder()
    try:
        landmarks, visibility = finder.landmarks(frames)
    finally:
        if own:
            finder.close()
    return video_beat_alignment(landmark_speed(landmarks, visibility), beat_times, fps)
