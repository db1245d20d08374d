"""Beat tracking and the per-frame rhythm features that condition the dance on the music.

Two trackers: `librosa` is librosa's default `beat_track` (the DabFusion paper's baseline), and `dab`, this
project's own. librosa's default often locks onto half, double or two-thirds of the tempo on drum tracks
with a backbeat (snare on 2 and 4), which would make the dancer hit every other beat. `dab` separates the
percussive part (HPSS on a mel spectrogram), builds onset envelopes for three frequency bands, takes tempo
candidates from the envelope's autocorrelation and their metrical relatives (x2, /2, x3/2, x2/3), scores
each by how well its beat grid explains the onsets (an F-measure between grid points and onset peaks, under
a log-normal tempo prior), tracks beats by dynamic programming at the winning tempo, checks the phase so
beats land on hits rather than between them, and picks downbeats from kick strength and chord changes.
It uses nothing from the synthesiser: no style, no known tempo range beyond 60-180 BPM.

Rhythm features are computed from beat times, not from audio, so beats edited on the Blender timeline
steer the dance exactly like detected ones: `track_rhythm_features(track)` is `rhythm_features` fed with the
track's own beats.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

import dance_any_beat  # noqa: F401  (sets NUMBA_CACHE_DIR before librosa is imported)

TrackerMethod = Literal["dab", "librosa"]
TRACKER_METHODS: tuple[str, ...] = ("dab", "librosa")

# Rhythm feature channels, in order.
RHYTHM_CHANNELS: tuple[str, ...] = ("beat", "phase_sin", "phase_cos", "downbeat", "onset")
RHYTHM_DIM: int = len(RHYTHM_CHANNELS)

# dab analysis settings: audio is resampled to SR and analysed at SR / HOP (~86) frames per second.
SR = 22050
N_FFT = 1024
HOP = 256
N_MELS = 96
TEMPO_RANGE = (60.0, 180.0)  # BPM searched by the dab tracker
TEMPO_PRIOR_BPM = 110.0  # centre of the log-normal tempo prior
TEMPO_PRIOR_OCTAVES = 0.6  # its standard deviation, in octaves: it settles octave ties, not close calls
LOW_BAND_HZ = 200.0  # kick drum and bass: the phase and downbeat cue
HIGH_BAND_HZ = 3000.0  # hats and cymbals above this; they count a quarter in the beat envelope
FIT_TOLERANCE = 0.035  # seconds: an onset this close to a grid point is on it
FIT_WINDOW_SECONDS = 8.0  # tempo candidates are scored in windows this long, each with its own phase
METRICAL_SUPPORT = 0.5  # weight of the double- and half-tempo fits in a tempo candidate's score
DP_TIGHTNESS = 400.0  # librosa's default is 100; music for dancing keeps a steady tempo
PHASE_SWITCH_VOTE = 0.2  # summed log(off-beat / on-beat) strength over the bands that moves beats
EDGE_TOLERANCE = 0.03  # seconds before the first / after the last onset that still count as music


@dataclass
class BeatTrack:
    tempo: float  # BPM
    beats: np.ndarray  # (B,) seconds
    downbeats: np.ndarray  # (D,) seconds; a subset of beats (every 4th, from the strongest phase)
    onset_envelope: np.ndarray  # (F,) onset strength normalised to [0, 1]
    onset_rate: float  # envelope frames per second
    duration: float  # seconds of audio analysed


def _mono(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:  # librosa layout (channels, samples)
        y = y.mean(axis=0)
    if y.ndim != 1:
        raise ValueError(f"audio must be (samples,) or (channels, samples), got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("audio contains NaN or inf samples")
    return y


def track_beats(y: np.ndarray, sr: int, *, method: TrackerMethod = "dab") -> BeatTrack:
    """Find tempo, beats and downbeats of audio `y` ((samples,) or (channels, samples)) sampled at `sr` Hz.

    With `dab`, audio without onsets (silence, a drone) gives tempo 0 and no beats rather than a made-up grid.
    """
    if method not in TRACKER_METHODS:
        raise ValueError(f"unknown beat tracker {method!r}; choose one of: {', '.join(TRACKER_METHODS)}")
    y = _mono(y)
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if len(y) < sr // 10:
        raise ValueError(f"audio too short for beat tracking: {len(y)} samples at {sr} Hz (need 0.1 s)")
    duration = len(y) / sr
    if method == "librosa":
        return _track_librosa(y, sr, duration)
    return _track_dab(y, sr, duration)


def _normalise(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(x)) if len(x) else 0.0
    return (x / peak if peak > 0 else np.zeros_like(x)).astype(np.float32)


def _track_librosa(y: np.ndarray, sr: int, duration: float) -> BeatTrack:
    import librosa

    hop = 512
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop)
    tempo, frames = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=hop)
    beats = librosa.frames_to_time(frames, sr=sr, hop_length=hop)
    env = _normalise(env)
    rate = sr / hop
    return BeatTrack(
        tempo=float(np.atleast_1d(tempo)[0]),
        beats=beats,
        downbeats=_choose_downbeats(beats, env, rate),
        onset_envelope=env,
        onset_rate=rate,
        duration=duration,
    )


# ----------------------------------------------------------------------------------------------- dab tracker


@dataclass
class _Envelopes:
    full: np.ndarray  # all bands, percussive part: tempo and beat placement
    low: np.ndarray  # below LOW_BAND_HZ: kicks
    mid: np.ndarray
    high: np.ndarray
    harmonic: np.ndarray  # (N_MELS, F) log-mel of the harmonic part: chord changes mark bar starts
    fps: float


def _flux(log_mel: np.ndarray) -> np.ndarray:
    """Half-wave rectified spectral flux per band, with the first frame zero."""
    d = np.diff(log_mel, axis=1, prepend=log_mel[:, :1])
    return np.maximum(d, 0.0)


def _detrend(x: np.ndarray, fps: float, seconds: float = 0.5) -> np.ndarray:
    """Subtract a moving average so slow loudness changes do not count as onsets."""
    from scipy.ndimage import uniform_filter1d

    return np.maximum(x - uniform_filter1d(x, size=max(int(seconds * fps), 1), mode="nearest"), 0.0)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear to 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(f < 1000.0, f * 3.0 / 200.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / log_step)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(m < 15.0, m * 200.0 / 3.0, 1000.0 * np.exp(log_step * (m - 15.0)))


def _mel_filters(sr: int, n_fft: int, n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-normalised triangular mel filters (n_mels, n_fft // 2 + 1) and their centre frequencies."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2))
    fft_freqs = np.linspace(0.0, sr / 2, n_fft // 2 + 1)
    lower = (fft_freqs[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    upper = (edges[2:, None] - fft_freqs[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights, edges[1:-1]


def _mel_power(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Mel power spectrogram (N_MELS, frames) at SR / HOP frames per second, frame k centred on k * HOP.

    Plain numpy and scipy on purpose: librosa's spectral code pulls in numba functions that take tens of
    seconds to compile in a fresh environment, and the default tracker should start fast.
    """
    from math import gcd

    from scipy.signal import resample, resample_poly

    if sr != SR:
        g = gcd(int(sr), SR)
        up, down = SR // g, int(sr) // g
        if max(up, down) <= 1000:
            y = resample_poly(y, up, down)
        else:  # an odd rate: FFT resampling is fast where a polyphase filter would be huge
            y = resample(y, int(round(len(y) * SR / sr)))
    padded = np.pad(y.astype(np.float64), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (frames, bins)
    filters, centres = _mel_filters(SR, N_FFT, N_MELS)
    return filters @ power.T, centres


def _envelopes(y: np.ndarray, sr: int) -> _Envelopes:
    from scipy.ndimage import median_filter

    mel, freqs = _mel_power(y, sr)
    # HPSS on the mel spectrogram (cheap): percussive = wins against its time-median
    harm = median_filter(mel, size=(1, 17), mode="nearest")
    perc = median_filter(mel, size=(9, 1), mode="nearest")
    mask = perc**2 / (perc**2 + harm**2 + 1e-20)
    fps = SR / HOP
    log_perc = np.log1p(1000.0 * mel * mask / (mel.max() + 1e-20))
    log_full = np.log1p(1000.0 * mel / (mel.max() + 1e-20))
    flux_p, flux_f = _flux(log_perc), _flux(log_full)
    low = freqs < LOW_BAND_HZ
    bands = (low, (freqs >= LOW_BAND_HZ) & (freqs < HIGH_BAND_HZ), freqs >= HIGH_BAND_HZ)
    # each band normalised on its own so that loud cymbals do not drown kicks and snares
    parts = []
    for band in bands:
        e = _detrend(flux_p[band].mean(axis=0) + 0.5 * flux_f[band].mean(axis=0), fps)
        parts.append(e / (np.std(e) + 1e-9))
    full = parts[0] + parts[1] + 0.25 * parts[2]
    log_harm = np.log1p(1000.0 * mel * (1.0 - mask) / (mel.max() + 1e-20))
    return _Envelopes(full=full, low=parts[0], mid=parts[1], high=parts[2], harmonic=log_harm, fps=fps)


def _tempo_prior(bpm: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * (np.log2(bpm / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCTAVES) ** 2)


def _onset_events(env: np.ndarray, radius: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of the envelope (local maxima over +-radius frames above a floor) and their compressed strengths."""
    from scipy.ndimage import maximum_filter1d

    if len(env) == 0 or np.max(env) <= 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    local_max = maximum_filter1d(env, size=2 * radius + 1, mode="constant")
    floor = np.median(env) + 0.1 * np.percentile(env, 99)
    idx = np.flatnonzero((env == local_max) & (env > floor))
    strength = env[idx] / (np.percentile(env[idx], 90) + 1e-9) if len(idx) else np.zeros(0)
    # compressed: a beat grid is judged by which hits it catches more than by how loud they are
    return idx, np.sqrt(np.clip(strength, 0.0, 1.0))


def _grid_fit(events: np.ndarray, weights: np.ndarray, n: int, period: float, tol: float, n_phases: int = 64) -> float:
    """How well a beat grid of `period` frames explains the onsets between frames 0 and n: best F over phases.

    Recall is the share of onset weight within `tol` frames of a grid point; precision is the mean over grid
    points of the strongest onset caught. Half tempo misses the backbeat (low recall), double tempo puts
    half its points between hits (low precision), so the true beat level scores highest.
    """
    if len(events) == 0 or period <= 2 * tol:
        return 0.0
    phases = np.arange(n_phases) * period / n_phases  # (P,)
    rel = (events[None, :] - phases[:, None]) / period  # (P, E) position in grid periods
    k = np.round(rel)
    hit = (np.abs(rel - k) * period <= tol) & (k >= 0)
    recall = (hit * weights).sum(axis=1) / weights.sum()
    n_grid = np.floor((n - 1 - phases) / period).astype(int) + 1  # grid points inside the span, per phase
    best = np.zeros((n_phases, int(n_grid.max()) + 1))
    rows = np.broadcast_to(np.arange(n_phases)[:, None], hit.shape)
    cols = np.clip(k, 0, best.shape[1] - 1).astype(int)
    np.maximum.at(best, (rows[hit], cols[hit]), np.broadcast_to(weights, hit.shape)[hit])
    precision = best.sum(axis=1) / np.maximum(n_grid, 1)
    f = 2 * precision * recall / np.maximum(precision + recall, 1e-9)
    return float(f.max())


def _windowed_fit(events: np.ndarray, weights: np.ndarray, n: int, period: float, tol: float, fps: float) -> float:
    """`_grid_fit` in overlapping windows, each with its own phase, averaged by onset weight.

    Real music drifts in tempo and phase over minutes; one global grid would fit none of it.
    """
    win = int(FIT_WINDOW_SECONDS * fps)
    if n <= win:
        return _grid_fit(events, weights, n, period, tol)
    total, norm = 0.0, 0.0
    for start in range(0, n - win // 2, win // 2):
        end = min(start + win, n)
        sel = (events >= start) & (events < end)
        w = weights[sel].sum()
        if w > 0:
            total += w * _grid_fit(events[sel] - start, weights[sel], end - start, period, tol)
            norm += w
    return total / norm if norm > 0 else 0.0


def _estimate_tempo(env: np.ndarray, fps: float) -> float:
    """Tempo in BPM: autocorrelation peaks and their metrical relatives, scored by grid fit times the prior."""
    lo, hi = TEMPO_RANGE
    x = env - env.mean()
    n = len(x)
    spec = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(np.abs(spec) ** 2)[:n]
    acf /= acf[0] + 1e-12
    bpms = np.arange(lo, hi + 0.01, 0.5)
    lags = 60.0 * fps / bpms
    acf_at = np.interp(lags, np.arange(n), acf)
    # candidates: local maxima of the autocorrelation in the range, plus their metrical relatives
    peaks = [i for i in range(1, len(bpms) - 1) if acf_at[i] >= acf_at[i - 1] and acf_at[i] >= acf_at[i + 1]]
    peaks = sorted(peaks, key=lambda i: -acf_at[i])[:6]
    cands = set()
    for i in peaks:
        for ratio in (1.0, 2.0, 0.5, 1.5, 2.0 / 3.0):
            b = bpms[i] * ratio
            if lo <= b <= hi:
                cands.add(_refine_tempo(acf, fps, b))
    events, weights = _onset_events(env)
    tol = FIT_TOLERANCE * fps
    best, best_score = 120.0, -np.inf
    for b in sorted(cands):
        # the beat level of 4/4 music sits between a binary subdivision and a binary grouping that fit too;
        # a two-thirds or three-halves tempo has neither
        fits = [_windowed_fit(events, weights, n, 60.0 * fps / (b * r), tol, fps) for r in (1.0, 2.0, 0.5)]
        score = (fits[0] + METRICAL_SUPPORT * 0.5 * (fits[1] + fits[2])) * _tempo_prior(np.array(b))
        if score > best_score:
            best, best_score = b, score
    return float(best)


def _refine_tempo(acf: np.ndarray, fps: float, bpm: float) -> float:
    """Move a tempo guess to the nearest autocorrelation peak (parabolic interpolation)."""
    lag = int(round(60.0 * fps / bpm))
    lo, hi = max(lag - 3, 1), min(lag + 4, len(acf) - 1)
    if hi - lo < 3:
        return bpm
    j = lo + int(np.argmax(acf[lo:hi]))
    j = min(max(j, 1), len(acf) - 2)
    a, b, c = acf[j - 1], acf[j], acf[j + 1]
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if denom < 0 else 0.0
    return float(60.0 * fps / (j + np.clip(shift, -0.5, 0.5)))


def _track_dab(y: np.ndarray, sr: int, duration: float) -> BeatTrack:
    envs = _envelopes(y, sr)
    if len(_onset_events(envs.full)[0]) < 4:  # silence, a drone or a few hits: no pulse to find
        empty = np.zeros(0)
        return BeatTrack(0.0, empty, empty, _normalise(envs.full), envs.fps, duration)
    tempo = _estimate_tempo(envs.full, envs.fps)
    beats = _dp_beats(envs.full, 60.0 * envs.fps / tempo, DP_TIGHTNESS) / envs.fps
    beats = _check_phase(beats, envs)
    beats = _fit_edges(beats, envs.full, envs.fps, duration)
    return BeatTrack(
        tempo=tempo,
        beats=beats,
        downbeats=_choose_downbeats(beats, envs.low, envs.fps, envs.harmonic),
        onset_envelope=_normalise(envs.full),
        onset_rate=envs.fps,
        duration=duration,
    )


def onset_envelope(y: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """The onset strength `track_beats` (dab) reports, without tracking: (envelope in [0, 1], frames per second).

    Training computes rhythm features of short windows with it, so they match what inference feeds the model.
    """
    envs = _envelopes(_mono(y), sr)
    return _normalise(envs.full), envs.fps


def _dp_beats(env: np.ndarray, period: float, tightness: float) -> np.ndarray:
    """Beat frames by dynamic programming (Ellis 2007): onsets on beats, intervals close to `period` frames.

    Unlike librosa's `beat_track` the period is not rounded to whole frames, and the envelope is scaled by
    its standard deviation so `tightness` means the same for quiet and loud music.
    """
    n = len(env)
    score = env / (np.std(env) + 1e-9)
    offsets = np.arange(max(int(period / 2), 1), int(np.ceil(2 * period)) + 1)
    penalty = -tightness * np.log(offsets / period) ** 2
    cum = score.astype(np.float64).copy()
    back = np.full(n, -1)
    for t in range(offsets[0], n):
        k = np.searchsorted(offsets, t, side="right")  # offsets usable at t (predecessor >= 0)
        cand = cum[t - offsets[:k]] + penalty[:k]
        j = int(np.argmax(cand))
        if cand[j] > 0:  # a chain worth extending; otherwise this frame starts a new one
            cum[t] += cand[j]
            back[t] = t - offsets[j]
    # the last beat: the best-scoring frame within the final period, then follow the chain back
    tail = max(n - int(np.ceil(period)), 0)
    t = tail + int(np.argmax(cum[tail:]))
    beats = []
    while t >= 0:
        beats.append(t)
        t = back[t]
    return np.array(beats[::-1], dtype=np.float64)


def _check_phase(beats: np.ndarray, envs: _Envelopes) -> np.ndarray:
    """Move beats half a beat when the onsets sit between them rather than on them.

    Off-beat parts (chord stabs, open hats, a bass line) pull the DP to the off-beats now and then, but such a
    part is confined to one band, while the hits on the beat (kick, snare) span several. So each band votes
    with its log ratio of off-beat to on-beat strength, and the beats move only when the sum clearly says so.
    """
    if len(beats) < 4:
        return beats
    mids = 0.5 * (beats[1:] + beats[:-1])
    vote = 0.0
    for env in (envs.low, envs.mid, envs.high):
        on = _sample_envelope(env, envs.fps, beats).mean()
        off = _sample_envelope(env, envs.fps, mids).mean()
        vote += np.log((off + 1e-3) / (on + 1e-3))
    return mids if vote > PHASE_SWITCH_VOTE else beats


def _fit_edges(beats: np.ndarray, env: np.ndarray, fps: float, duration: float) -> np.ndarray:
    """Keep beats only where there is music, and carry the grid on to where the music starts and ends.

    The DP places beats over the whole signal, silence included, and tends to drop the first and last beat;
    the music's extent is taken from the first and last onset.
    """
    events, _ = _onset_events(env)
    if len(beats) < 2 or len(events) == 0:
        return beats
    period = float(np.median(np.diff(beats)))
    first, last = events[0] / fps - EDGE_TOLERANCE, events[-1] / fps + EDGE_TOLERANCE
    if last > duration - period:  # music runs to the end of the clip
        last = duration
    beats = beats[(beats >= first) & (beats <= last)]
    if len(beats) < 2:
        return beats
    head, tail = [], []
    period = beats[1] - beats[0]
    t = beats[0] - period
    while t >= first:
        head.append(t)
        t -= period
    period = beats[-1] - beats[-2]
    t = beats[-1] + period
    while t < min(last, duration):
        tail.append(t)
        t += period
    return np.concatenate([head[::-1], beats, tail])


def _sample_envelope(env: np.ndarray, rate: float, times: np.ndarray, radius: int = 1) -> np.ndarray:
    """Envelope maximum within `radius` frames of each time (beats may sit a frame off the onset peak)."""
    idx = np.round(np.asarray(times) * rate).astype(int)
    out = np.zeros(len(idx))
    for r in range(-radius, radius + 1):
        j = idx + r
        ok = (j >= 0) & (j < len(env))
        out[ok] = np.maximum(out[ok], env[j[ok]])
    return out


def _harmonic_change(beats: np.ndarray, harmonic: np.ndarray, fps: float, context: int = 2) -> np.ndarray:
    """Per beat: cosine distance between the harmonic spectrum of the `context` beats after it and before it.

    Two beats on each side, so a chord held through the bar looks the same on both sides of beat 3 while a
    new bar's chord differs across beat 1, whatever the rhythm of the chord hits.
    """
    n_frames = harmonic.shape[1]
    frames = np.clip(np.round(beats * fps).astype(int), 0, n_frames)
    if len(frames) < 2 * context + 1 or n_frames == 0:
        return np.zeros(len(beats))
    cum = np.concatenate([np.zeros((harmonic.shape[0], 1)), np.cumsum(harmonic, axis=1)], axis=1)
    out = np.zeros(len(beats))
    for i, f in enumerate(frames):
        a, b = frames[max(i - context, 0)], frames[min(i + context, len(frames) - 1)]
        if f - a <= 0 or b - f <= 0:
            continue
        before = (cum[:, f] - cum[:, a]) / (f - a)
        after = (cum[:, b] - cum[:, f]) / (b - f)
        out[i] = 1.0 - before @ after / (np.linalg.norm(before) * np.linalg.norm(after) + 1e-9)
    return out


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9) if len(x) else x


def _choose_downbeats(
    beats: np.ndarray, low: np.ndarray, fps: float, harmonic: np.ndarray | None = None, beats_per_bar: int = 4
) -> np.ndarray:
    """Every `beats_per_bar`-th beat, from the phase where kicks are strongest and chords change most.

    Four-on-the-floor kicks cannot tell beat 1 from beat 3; a chord change usually can.
    """
    if len(beats) == 0:
        return beats.copy()
    strength = _zscore(_sample_envelope(low, fps, beats))
    if harmonic is not None:
        strength = strength + _zscore(_harmonic_change(beats, harmonic, fps))
    scores = [
        strength[p::beats_per_bar].mean() if len(strength[p::beats_per_bar]) else -np.inf for p in range(beats_per_bar)
    ]
    return beats[int(np.argmax(scores)) :: beats_per_bar].copy()


# ------------------------------------------------------------------------------------------ rhythm features


def _impulses(times: np.ndarray, t: np.ndarray, sigma: float) -> np.ndarray:
    """max over events of a unit-peak Gaussian: 1 exactly at an event, overlapping bumps do not add up."""
    out = np.zeros(len(t))
    if len(times) == 0:
        return out
    idx = np.searchsorted(times, t)
    for j in (idx - 1, idx):
        ok = (j >= 0) & (j < len(times))
        d = t[ok] - times[j[ok]]
        out[ok] = np.maximum(out[ok], np.exp(-0.5 * (d / sigma) ** 2))
    return out


def _beat_phase(beats: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Phase in [0, 1) between consecutive beats, extrapolated with the first / last period outside them."""
    i = np.clip(np.searchsorted(beats, t, side="right") - 1, 0, len(beats) - 2)
    period = beats[i + 1] - beats[i]
    return np.mod((t - beats[i]) / period, 1.0)


def rhythm_features(
    beat_times: np.ndarray,
    *,
    fps: float,
    n_frames: int,
    start: float = 0.0,
    downbeat_times: np.ndarray | None = None,
    onset_envelope: np.ndarray | None = None,
    onset_rate: float | None = None,
    sigma_frames: float = 1.0,
) -> np.ndarray:
    """Per-video-frame rhythm features, (n_frames, RHYTHM_DIM) float32; frame k is at time start + k / fps.

    Channels (RHYTHM_CHANNELS): beat impulse (a Gaussian of `sigma_frames` frames, 1 at a beat), sin and cos
    of the beat phase (0 at a beat, running to 1 at the next; before the first and after the last beat it
    runs on with the nearest period), downbeat impulse, onset strength (the envelope sampled at the frame and
    scaled to a peak of 1; zeros without an envelope).

    With no beats the impulses and phase are all zero. With one beat there is no period, so the impulse is
    there but the phase (sin and cos) stays zero: (0, 0) is "phase unknown", never a real phase.
    """
    if fps <= 0 or n_frames < 0:
        raise ValueError(f"need fps > 0 and n_frames >= 0, got fps={fps}, n_frames={n_frames}")
    if (onset_envelope is None) != (onset_rate is None):
        raise ValueError("give onset_envelope and onset_rate together (the rate says where each value lies)")
    # sorted and de-duplicated: two markers on one frame must not make a zero-length beat
    beats = np.unique(np.asarray(beat_times, dtype=np.float64).ravel())
    downs = np.unique(np.asarray(downbeat_times if downbeat_times is not None else [], dtype=np.float64).ravel())
    if not (np.all(np.isfinite(beats)) and np.all(np.isfinite(downs))):
        raise ValueError("beat and downbeat times must be finite")
    t = start + np.arange(n_frames) / fps
    sigma = sigma_frames / fps
    out = np.zeros((n_frames, RHYTHM_DIM), dtype=np.float64)
    out[:, 0] = _impulses(beats, t, sigma)
    if len(beats) >= 2:
        phase = _beat_phase(beats, t)
        out[:, 1] = np.sin(2 * np.pi * phase)
        out[:, 2] = np.cos(2 * np.pi * phase)
    out[:, 3] = _impulses(downs, t, sigma)
    if onset_envelope is not None:
        env = np.asarray(onset_envelope, dtype=np.float64).ravel()
        if onset_rate <= 0:
            raise ValueError(f"onset_rate must be positive, got {onset_rate}")
        if len(env):
            pos = t * onset_rate
            vals = np.interp(pos, np.arange(len(env)), env, left=0.0, right=0.0)
            peak = float(np.max(env))
            out[:, 4] = np.clip(vals / peak, 0.0, 1.0) if peak > 0 else 0.0
    return out.astype(np.float32)


def track_rhythm_features(track: BeatTrack, *, fps: float, n_frames: int, start: float = 0.0) -> np.ndarray:
    """Rhythm features from a detected track: exactly `rhythm_features` fed with its beats and onsets."""
    return rhythm_features(
        track.beats,
        fps=fps,
        n_frames=n_frames,
        start=start,
        downbeat_times=track.downbeats,
        onset_envelope=track.onset_envelope,
        onset_rate=track.onset_rate,
    )


def read_beat_times(path: str | os.PathLike) -> np.ndarray:
    """Beat times from a text file: one time in seconds per line; '#' starts a comment, blank lines are skipped.

    Returns the times sorted, float64. Raises ValueError naming the file and line of anything else.
    """
    times = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{path}, line {number}: expected one time in seconds, got {text!r}") from None
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{path}, line {number}: time must be a finite number >= 0, got {text!r}")
            times.append(value)
    return np.sort(np.array(times, dtype=np.float64))
