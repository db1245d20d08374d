"""Beat Alignment Score (BAS) of a dance against its music, and its video form (2D-MM Align).

Kinetic beats are the moments a dancer "hits" a pose: local minima of the smoothed motion speed. The score is
the mean, over MUSIC beats, of exp(-d^2 / (2 sigma^2)), d the distance in frames from the music beat to the
nearest kinetic beat (Li et al. 2021, AIST++; averaged over music beats as in Bailando's released code).

Constants are stated at 60 fps (AIST++) and scaled to the clip's fps so a score means the same time tolerance
at any frame rate:
- sigma = 3 frames at 60 fps (0.05 s): sigma = 3 * fps / 60 frames.
- smoothing: a Gaussian of 5 frames at 60 fps (scipy.ndimage.gaussian_filter, sigma 5, as Bailando), scaled the
  same way (2.5 frames at 30 fps), with mirror ("reflect") edges.
Joint speed uses central differences (np.gradient) so speed sample t is centred on frame t; the reference
forward difference puts it half a frame late.
"""

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .motion import motion_energy_from_frames

SIGMA_FRAMES_AT_60FPS = 3.0
SMOOTHING_FRAMES_AT_60FPS = 5.0


def _at_fps(frames_at_60fps: float, fps: float) -> float:
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return frames_at_60fps * fps / 60.0


def smooth_track(track: np.ndarray, fps: float) -> np.ndarray:
    """Gaussian-smooth a (T,) motion track with the BAS smoothing width for this fps."""
    track = np.asarray(track, dtype=np.float64)
    if track.ndim != 1:
        raise ValueError(f"expected a (T,) track, got shape {track.shape}")
    return gaussian_filter1d(track, sigma=_at_fps(SMOOTHING_FRAMES_AT_60FPS, fps), mode="reflect")


def local_minima(track: np.ndarray) -> np.ndarray:
    """Frame indices of strict local minima of a (T,) track, ends excluded.

    A flat bottom (a held pose: equal values lower than both sides) counts once, at its middle frame;
    scipy's argrelextrema would miss it.
    """
    track = np.asarray(track, dtype=np.float64)
    if len(track) < 3:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], track[1:] != track[:-1]]))  # (R,) first frame of each run
    ends = np.concatenate([starts[1:], [len(track)]]) - 1  # (R,) last frame of each run
    values = track[starts]  # (R,)
    inner = np.arange(1, len(starts) - 1)  # runs with a neighbour on both sides
    is_min = (values[inner] < values[inner - 1]) & (values[inner] < values[inner + 1])
    runs = inner[is_min]
    return ((starts[runs] + ends[runs]) // 2).astype(np.int64)


def joint_speed(joints: np.ndarray) -> np.ndarray:
    """(T, J, 2 or 3) joint positions -> (T,) mean joint speed (position units per frame)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[-1] not in (2, 3) or joints.shape[0] < 2:
        raise ValueError(f"joints must be (T >= 2, J, 2 or 3), got shape {joints.shape}")
    velocity = np.gradient(joints, axis=0)  # (T, J, D), central differences
    return np.linalg.norm(velocity, axis=-1).mean(axis=1)


def motion_beats(energy: np.ndarray, fps: float) -> np.ndarray:
    """Kinetic beats of any (T,) motion-energy track: local minima after BAS smoothing (frame indices)."""
    return local_minima(smooth_track(energy, fps))


def kinetic_beats(joints: np.ndarray, fps: float) -> np.ndarray:
    """Kinetic beats of a skeleton (T, J, 2 or 3): frame indices where the smoothed mean joint speed is minimal."""
    return motion_beats(joint_speed(joints), fps)


def beat_alignment_from_beats(kinetic_beat_frames: np.ndarray, music_beat_frames: np.ndarray, fps: float) -> float:
    """BAS from beats already in frames: mean over music beats of exp(-d^2 / (2 sigma^2)), sigma = 3 * fps / 60.

    Music beat frames may be fractional. No kinetic beat at all scores 0; no music beat is an error (the score
    is undefined).
    """
    music = np.asarray(music_beat_frames, dtype=np.float64).reshape(-1)  # (M,)
    kinetic = np.asarray(kinetic_beat_frames, dtype=np.float64).reshape(-1)  # (K,)
    if len(music) == 0:
        raise ValueError("no music beats: the beat alignment score is undefined")
    if len(kinetic) == 0:
        return 0.0
    sigma = _at_fps(SIGMA_FRAMES_AT_60FPS, fps)
    distance = np.min(np.abs(music[:, None] - kinetic[None, :]), axis=1)  # (M,)
    return float(np.mean(np.exp(-(distance**2) / (2.0 * sigma**2))))


def music_beat_frames(music_beat_times: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """Beat times (s) -> fractional frame indices, keeping only beats inside the clip [0, num_frames - 1]."""
    frames = np.asarray(music_beat_times, dtype=np.float64).reshape(-1) * fps
    return frames[(frames >= 0) & (frames <= num_frames - 1)]


def _score_track(energy: np.ndarray, music_beat_times: np.ndarray, fps: float) -> float:
    beats = music_beat_frames(music_beat_times, fps, len(energy))
    if len(beats) == 0:
        raise ValueError(f"no music beat falls inside the clip (0 to {(len(energy) - 1) / fps:.2f} s)")
    return beat_alignment_from_beats(motion_beats(energy, fps), beats, fps)


def beat_alignment_score(joints: np.ndarray, music_beat_times: np.ndarray, fps: float) -> float:
    """BAS of a skeleton (T, J, 2 or 3) against music beat times in seconds; in [0, 1], higher is better.

    Music beats outside the clip are ignored; a clip with no music beat inside it is an error.
    """
    return _score_track(joint_speed(joints), music_beat_times, fps)


def keypoint_beat_alignment(keypoints: np.ndarray, music_beat_times: np.ndarray, fps: float) -> float:
    """2D-MM Align with given 2D keypoints (T, J, 2) of a video: the BAS on image-plane keypoints."""
    keypoints = np.asarray(keypoints)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must be (T, J, 2) image coordinates, got shape {keypoints.shape}")
    return beat_alignment_score(keypoints, music_beat_times, fps)


def video_beat_alignment(frames_or_energy: np.ndarray, music_beat_times: np.ndarray, fps: float) -> float:
    """2D-MM Align for a video without a skeleton: the BAS with kinetic beats taken from motion energy.

    frames_or_energy: (T, H, W, 3) RGB frames (energy = frame-centred mean Farneback flow magnitude) or a (T,)
    motion-energy track (e.g. motion_energy_from_flows on the model's flows). Kinetic beats = local minima of
    the smoothed energy, exactly as for joints.
    """
    data = np.asarray(frames_or_energy)
    if data.ndim == 4:
        energy = motion_energy_from_frames(data)
    elif data.ndim == 1:
        energy = data.astype(np.float64)
    else:
        raise ValueError(f"expected (T, H, W, 3) frames or a (T,) energy track, got shape {data.shape}")
    return _score_track(energy, music_beat_times, fps)
