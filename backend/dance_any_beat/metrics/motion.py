"""Per-frame motion-energy tracks of a video, for metrics that need motion but have no skeleton.

Two sources: Farneback optical flow between consecutive rendered frames (what AV-Align measures), or flow
fields the caller already has (the model's latent flows). Each track is one number per frame.
"""

from typing import Literal

import cv2
import numpy as np

# Farneback parameters of the AV-Align reference script (Yariv et al. 2024): pyr_scale, levels, winsize,
# iterations, poly_n, poly_sigma, flags.
FARNEBACK_PARAMS = (0.5, 3, 15, 3, 5, 1.2, 0)


def _to_gray_uint8(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) RGB uint8 or float in [0, 1] -> (T, H, W) uint8 gray, the input Farneback expects."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB, got shape {frames.shape}")
    if frames.shape[0] < 2:
        raise ValueError(f"need at least 2 frames to measure motion, got {frames.shape[0]}")
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def flow_magnitudes(frames: np.ndarray) -> np.ndarray:
    """Mean Farneback flow magnitude (pixels/frame) between each pair of consecutive frames.

    frames: (T, H, W, 3) RGB, uint8 or float in [0, 1]. Returns (T - 1,): entry i is the motion from frame i
    to frame i + 1.
    """
    gray = _to_gray_uint8(frames)  # (T, H, W)
    out = np.empty(len(gray) - 1, dtype=np.float64)
    for i in range(len(gray) - 1):
        flow = cv2.calcOpticalFlowFarneback(gray[i], gray[i + 1], None, *FARNEBACK_PARAMS)  # (H, W, 2)
        out[i] = float(np.mean(np.hypot(flow[..., 0], flow[..., 1])))
    return out


def center_pair_track(pairs: np.ndarray) -> np.ndarray:
    """(T - 1,) values between consecutive frames -> (T,) values centred on frames.

    Frame t gets the mean of the pair before and the pair after it (the ends get their one pair), the same
    centring that central differences give joint speeds, so motion minima land on frames, not half-frames.
    """
    pairs = np.asarray(pairs, dtype=np.float64)
    if pairs.ndim != 1 or len(pairs) < 1:
        raise ValueError(f"expected a non-empty 1-D track, got shape {pairs.shape}")
    padded = np.concatenate([pairs[:1], pairs, pairs[-1:]])  # (T + 1,)
    return 0.5 * (padded[:-1] + padded[1:])


def motion_energy_from_frames(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) RGB frames -> (T,) motion energy: frame-centred mean Farneback flow magnitude."""
    return center_pair_track(flow_magnitudes(frames))


def motion_energy_from_flows(
    flows: np.ndarray, kind: Literal["frame_to_frame", "from_reference"] = "frame_to_frame"
) -> np.ndarray:
    """(T, 2, h, w) flow fields -> (T,) motion energy (mean displacement magnitude per frame).

    kind="frame_to_frame": flows[t] is the motion between frame t and its neighbour (optical flow).
    kind="from_reference": flows[t] maps a fixed reference frame to frame t, as DabFusion's latent flows do;
    the motion of frame t is then the change flows[t] - flows[t - 1]. This holds for sampling grids as well as
    displacements, since the identity grid cancels in the difference. Units are those of the flows.
    """
    flows = np.asarray(flows, dtype=np.float64)
    if flows.ndim != 4 or flows.shape[1] != 2:
        raise ValueError(f"flows must be (T, 2, h, w), got shape {flows.shape}")
    if kind == "frame_to_frame":
        return np.mean(np.hypot(flows[:, 0], flows[:, 1]), axis=(1, 2))  # (T,)
    if kind == "from_reference":
        if len(flows) < 2:
            raise ValueError(f"need at least 2 flows to measure motion from a reference, got {len(flows)}")
        step = np.diff(flows, axis=0)  # (T - 1, 2, h, w)
        return center_pair_track(np.mean(np.hypot(step[:, 0], step[:, 1]), axis=(1, 2)))
    raise ValueError(f"kind must be one of 'frame_to_frame', 'from_reference', got {kind!r}")


def flow_energy_in_mask(frames: np.ndarray, mask: np.ndarray, step: int = 4) -> float:
    """Mean Farneback flow magnitude (pixels) from the first frame to every `step`-th later frame, inside `mask`
    (H, W) bool: how much a region (the dancer) moved away from where the still had it."""
    gray = _to_gray_uint8(frames)  # (T, H, W)
    magnitudes = []
    for k in range(step, len(gray), step):
        flow = cv2.calcOpticalFlowFarneback(gray[0], gray[k], None, *FARNEBACK_PARAMS)  # (H, W, 2)
        magnitudes.append(float(np.mean(np.hypot(flow[..., 0], flow[..., 1])[mask])))
    return float(np.mean(magnitudes)) if magnitudes else 0.0


def change_outside(frames: np.ndarray, still: np.ndarray, keep: np.ndarray) -> float:
    """Mean absolute change (in 0-1 intensity) of the pixels where `keep` (H, W) is True, from `still` (H, W, 3)
    uint8 to every frame (T, H, W, 3) uint8: how much a set that should stay still moved."""
    diff = np.abs(frames[:, keep].astype(np.int16) - still[keep].astype(np.int16))  # (T, n, 3)
    return float(diff.mean() / 255.0)
