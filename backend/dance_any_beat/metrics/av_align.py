"""AV-Align (Yariv et al. 2024, "Diverse and Aligned Audio-to-Video Generation via Text-to-Video Model
Adaptation"): how well motion peaks in a video coincide with onsets in its audio.

As in the authors' script: audio peaks = librosa onsets (audio at 22050 Hz, default onset settings); video
peaks = strict local maxima of the mean Farneback flow magnitude, where frame t carries the flow from frame
t - 1 to t (frame 0 repeats frame 1's); a hit = an audio peak with a video peak less than one frame away;
score = hits / (|A| + |V| - hits), an intersection-over-union. Like the reference, each audio peak counts at
most once but two audio peaks may hit the same video peak, so a degenerate case can exceed 1.
"""

import librosa
import numpy as np

from .motion import flow_magnitudes

REFERENCE_SR = 22050  # the reference loads audio with librosa.load's default rate


def audio_peaks(audio: np.ndarray, sr: int, fps: float) -> np.ndarray:
    """Onsets of mono audio (N,) at sample rate sr, as fractional video frame indices (onset time * fps)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono (N,), got shape {audio.shape}")
    if sr != REFERENCE_SR:
        audio = librosa.resample(audio, orig_sr=sr, target_sr=REFERENCE_SR)
    envelope = librosa.onset.onset_strength(y=audio, sr=REFERENCE_SR)
    times = librosa.onset.onset_detect(onset_envelope=envelope, sr=REFERENCE_SR, units="time")
    return np.asarray(times, dtype=np.float64) * fps


def peaks_of_track(track: np.ndarray) -> np.ndarray:
    """Frame indices t where track[t - 1] < track[t] > track[t + 1] (ends excluded)."""
    track = np.asarray(track, dtype=np.float64)
    inner = np.arange(1, len(track) - 1)
    return inner[(track[inner - 1] < track[inner]) & (track[inner] > track[inner + 1])]


def video_peaks_from_flow_magnitudes(pair_magnitudes: np.ndarray) -> np.ndarray:
    """Motion peaks (frame indices) from (T - 1,) consecutive-pair flow magnitudes (motion.flow_magnitudes).

    As the reference, frame t carries the flow from t - 1 to t and frame 0 repeats frame 1's.
    """
    pairs = np.asarray(pair_magnitudes, dtype=np.float64)
    return peaks_of_track(np.concatenate([pairs[:1], pairs]))  # (T,) track


def video_peaks(frames: np.ndarray) -> np.ndarray:
    """Motion peaks of a (T, H, W, 3) RGB video, as frame indices."""
    return video_peaks_from_flow_magnitudes(flow_magnitudes(frames))


def av_align_from_peaks(audio_peaks: np.ndarray, video_peaks: np.ndarray, tol: float = 1.0) -> float:
    """IoU of peak sets, both in video frames: a hit = an audio peak with a video peak strictly within tol.

    Strict, as the reference (|a - v| < 1 frame); audio peaks are fractional so the edge rarely matters. Two
    empty sets score 0.
    """
    a = np.asarray(audio_peaks, dtype=np.float64).reshape(-1)  # (A,)
    v = np.asarray(video_peaks, dtype=np.float64).reshape(-1)  # (V,)
    if len(a) + len(v) == 0:
        return 0.0
    hits = int(np.sum(np.any(np.abs(a[:, None] - v[None, :]) < tol, axis=1))) if len(v) else 0
    return hits / (len(a) + len(v) - hits)


def av_align(frames: np.ndarray, audio: np.ndarray, sr: int, fps: float) -> float:
    """AV-Align of a (T, H, W, 3) RGB video against its mono audio (N,) at sample rate sr."""
    return av_align_from_peaks(audio_peaks(audio, sr, fps), video_peaks(frames))
