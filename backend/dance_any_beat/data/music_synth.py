"""Fast, deterministic procedural music with a known beat grid.

The procedural dance data set needs music whose beats are known exactly (the dancer hits them), and the beat
tracker needs test tracks with ground truth. Each clip is drums (kick, snare, closed and open hi-hat) plus a
bass line and chords in a random key, with one drum pattern per dance style. Most patterns carry a backbeat
(snare on beats 2 and 4): that is what makes off-the-shelf trackers lock onto half or double tempo, so the
tracks are a fair test. numpy only; a 4 s clip renders in a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dance_any_beat.styles import get_style

STEPS_PER_BEAT = 4  # patterns are written on a sixteenth-note grid
BEATS_PER_BAR = 4  # 4/4 only
MIN_BPM, MAX_BPM = 30.0, 300.0


@dataclass
class SynthMusic:
    audio: np.ndarray  # (N,) float32 mono in [-1, 1]
    sr: int
    bpm: float
    beat_times: np.ndarray  # (B,) float64 seconds of every quarter-note beat inside [0, seconds)
    downbeat_times: np.ndarray  # the beats that start a bar (4/4); the first beat is a downbeat
    style: str


@dataclass(frozen=True)
class _Pattern:
    """One style's groove. Step strings are one or two bars of sixteenths.

    Step symbols: 'X' accent (velocity 1), 'x' normal (0.8), 'o' soft (0.5), 'g' ghost (0.25),
    '?' sometimes (probability 0.5, velocity 0.7), '.' rest.
    """

    kick: str
    snare: str
    hat: str
    open_hat: str
    bass: str  # where bass notes start (same symbols; velocity scales the note)
    chords: str  # 'pad' = one sustained chord per bar, otherwise a stab step string
    swing: tuple[float, float] = (0.0, 0.0)  # range of swing, as a fraction of one swung step
    swing_unit: int = 1  # 1 = sixteenth swing (hip-hop), 2 = eighth swing (jazz)
    drum_gain: float = 1.0
    fill_prob: float = 0.2  # chance that a 4th bar ends with a snare fill


_PATTERNS: dict[str, _Pattern] = {
    # syncopated breakbeat: kicks off the beat, ghost snares, busy hats
    "break": _Pattern(
        kick="X.x.......x..?..X.........x?....",
        snare="....X..g.g..X..g....X..g....X.g.",
        hat="x.x.x.x.x.x.x.x.",
        open_hat="..............?.",
        bass="x.....x...x.....",
        chords="pad",
        swing=(0.0, 0.15),
        fill_prob=0.3,
    ),
    "pop": _Pattern(
        kick="X......x?.X.....",
        snare="....X.......X...",
        hat="x.x.x.x.x.x.x.x.",
        open_hat="..............?.",
        bass="x.x.x.x.x.x.x.x.",
        chords="pad",
    ),
    # funk: sixteenth hats, syncopated kicks
    "lock": _Pattern(
        kick="X......x..x.....X.....x...x..?..",
        snare="....X..g....X.......X..g....X..g",
        hat="xoxoxoxoxoxoxoxo",
        open_hat="......?.........",
        bass="x..x..x...x.x...",
        chords="..x...x...x...x.",
        swing=(0.0, 0.1),
    ),
    # boom-bap, swung sixteenths
    "middle_hiphop": _Pattern(
        kick="X.....?.x.x.....",
        snare="....X.......X...",
        hat="x.x.x.x.x.x.x.x.",
        open_hat="................",
        bass="x.......x.x.....",
        chords="pad",
        swing=(0.2, 0.5),
    ),
    "la_hiphop": _Pattern(
        kick="X.....x..x......X.....x...?.....",
        snare="....X.......X.......X.......X...",
        hat="x.x.x.x.x.x.x.x.",
        open_hat="..........?.....",
        bass="x.....x..x......",
        chords="pad",
        swing=(0.1, 0.4),
    ),
    # four-on-the-floor with off-beat open hats
    "house": _Pattern(
        kick="X...x...X...x...",
        snare="....x.......x...",
        hat="o.o.o.o.o.o.o.o.",
        open_hat="..x...x...x...x.",
        bass="..x...x...x...x.",
        chords="..x.......x..?..",
        fill_prob=0.1,
    ),
    # disco
    "waack": _Pattern(
        kick="X...x...X...x...",
        snare="....X.......X...",
        hat="xoxoxoxoxoxoxoxo",
        open_hat="..x...x...x...x.",
        bass="x.x.x.x.x.x.x.x.",
        chords="pad",
    ),
    # heavy half-time: snare on beat 3, big kicks
    "krump": _Pattern(
        kick="X..x..X.......?.X.....x.?.......",
        snare="........X...............X.......",
        hat="x...x...x...x...",
        open_hat="..............?.",
        bass="x.....x.........",
        chords="pad",
        drum_gain=1.2,
        fill_prob=0.15,
    ),
    "street_jazz": _Pattern(
        kick="X.......x..x....",
        snare="....X.......X...",
        hat="x.x.x.x.x.x.x.x.",
        open_hat="......?.......?.",
        bass="x.......x..x....",
        chords="x.....x...x.....",
        swing=(0.0, 0.2),
    ),
    # lighter, swung: soft kick on 1 and 3, brushed 2 and 4, ride-like hats on a swung eighth grid
    "ballet_jazz": _Pattern(
        kick="o.......o.......",
        snare="....o.......o...",
        hat="x...x.o.x...x.o.",
        open_hat="................",
        bass="x...x...x...x...",
        chords="pad",
        swing=(0.4, 0.66),
        swing_unit=2,
        drum_gain=0.6,
        fill_prob=0.05,
    ),
}

_SYMBOLS = {"X": (1.0, 1.0), "x": (1.0, 0.8), "o": (1.0, 0.5), "g": (1.0, 0.25), "?": (0.5, 0.7)}

_PROGRESSIONS_MAJOR = ((0, 5, 3, 4), (0, 4, 5, 3), (0, 3, 4, 4), (5, 3, 0, 4), (0, 0, 3, 4))
_PROGRESSIONS_MINOR = ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 0, 5, 4))
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _decay(n: int, sr: int, tau: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (sr * tau))


def _highpass(x: np.ndarray, times: int) -> np.ndarray:
    """Crude high-pass by repeated first differences: cheap and enough to make noise sound like a cymbal."""
    for _ in range(times):
        x = np.diff(x, prepend=0.0)
    return x / (np.max(np.abs(x)) + 1e-9)


def _drum_kit(sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One-shot drum samples with per-clip variation in pitch and decay."""
    kit = {}
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    f_hi, f_lo = rng.uniform(120, 180), rng.uniform(42, 62)
    freq = f_lo + (f_hi - f_lo) * np.exp(-t / rng.uniform(0.02, 0.04))
    kick = np.sin(2 * np.pi * np.cumsum(freq) / sr) * _decay(n, sr, rng.uniform(0.12, 0.2))
    click = int(0.003 * sr)
    kick[:click] += 0.4 * rng.standard_normal(click) * np.linspace(1, 0, click)
    kit["kick"] = kick

    n = int(0.25 * sr)
    t = np.arange(n) / sr
    tone = np.sin(2 * np.pi * rng.uniform(170, 230) * t) * _decay(n, sr, 0.05)
    noise = _highpass(rng.standard_normal(n), 1) * _decay(n, sr, rng.uniform(0.07, 0.14))
    kit["snare"] = 0.5 * tone + 0.8 * noise

    n = int(0.08 * sr)
    kit["hat"] = 0.35 * _highpass(rng.standard_normal(n), 2) * _decay(n, sr, rng.uniform(0.015, 0.03))
    n = int(0.35 * sr)
    kit["open_hat"] = 0.3 * _highpass(rng.standard_normal(n), 2) * _decay(n, sr, rng.uniform(0.12, 0.2))
    return kit


def _add(out: np.ndarray, sample: np.ndarray, start: int, gain: float) -> None:
    if start >= len(out) or gain == 0.0:
        return
    if start < 0:
        sample, start = sample[-start:], 0
    end = min(len(out), start + len(sample))
    out[start:end] += gain * sample[: end - start]


def _hits(steps: str, n_steps: int, rng: np.random.Generator) -> list[tuple[int, float]]:
    """Expand a looped step string over `n_steps` sixteenths into (step, velocity) hits."""
    hits = []
    for k in range(n_steps):
        prob, vel = _SYMBOLS.get(steps[k % len(steps)], (0.0, 0.0))
        if prob > 0 and rng.random() < prob:
            hits.append((k, vel))
    return hits


def _step_time(k: int, step: float, swing: float, swing_unit: int, first_beat: float) -> float:
    """Onset time of sixteenth `k`, the swung (off-grid) steps pushed late by `swing` of one swung step."""
    t = first_beat + k * step
    if swing > 0 and (k // swing_unit) % 2 == 1 and k % swing_unit == 0:
        t += swing * step * swing_unit
    return t


def synthesize_music(
    style: str,
    bpm: float,
    seconds: float,
    *,
    sr: int = 22050,
    seed: int | np.random.Generator = 0,
    first_beat: float | None = None,
) -> SynthMusic:
    """Render `seconds` of music in a dance style at a fixed tempo, returning the audio and its exact beat grid.

    The beat grid starts at `first_beat` (by default a random offset within the first beat, so grids do not
    always start at 0) and the first beat is a downbeat. Before it the clip is silent.
    """
    get_style(style)  # validates the name, listing valid ones
    if not MIN_BPM <= bpm <= MAX_BPM:
        raise ValueError(f"bpm must be within [{MIN_BPM}, {MAX_BPM}], got {bpm}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    rng = np.random.default_rng(seed)
    pattern = _PATTERNS[style]
    period = 60.0 / bpm
    step = period / STEPS_PER_BEAT
    if first_beat is None:
        first_beat = float(rng.uniform(0.0, period))
    if not 0.0 <= first_beat < seconds:
        raise ValueError(f"first_beat must be within [0, seconds), got {first_beat}")

    n = int(round(seconds * sr))
    n_beats = int(np.floor((seconds - first_beat) / period - 1e-9)) + 1
    beat_times = first_beat + period * np.arange(n_beats, dtype=np.float64)
    beat_times = beat_times[beat_times < seconds]
    downbeat_times = beat_times[::BEATS_PER_BAR].copy()
    n_steps = len(beat_times) * STEPS_PER_BEAT
    bar_steps = STEPS_PER_BEAT * BEATS_PER_BAR

    swing = float(rng.uniform(*pattern.swing)) if rng.random() < 0.8 else 0.0
    jitter = 0.004  # seconds of timing humanisation

    def onset(k: int) -> int:
        t = _step_time(k, step, swing, pattern.swing_unit, first_beat) + rng.normal(0.0, jitter)
        return int(round(max(t, 0.0) * sr))

    # --- drums; every 4th bar may end with a fill (rising sixteenth snares replacing the hats of its last beat)
    kit = _drum_kit(sr, rng)
    drums = np.zeros(n)
    levels = {"kick": 1.0, "snare": 0.8, "hat": rng.uniform(0.5, 0.9), "open_hat": rng.uniform(0.3, 0.55)}
    fill_bars = {b for b in range(3, n_steps // bar_steps, 4) if rng.random() < pattern.fill_prob}
    for name in ("kick", "snare", "hat", "open_hat"):
        for k, vel in _hits(getattr(pattern, name), n_steps, rng):
            bar, pos = divmod(k, bar_steps)
            if name in ("hat", "open_hat") and bar in fill_bars and pos >= bar_steps - STEPS_PER_BEAT:
                continue
            gain = levels[name] * vel * float(np.clip(rng.normal(1.0, 0.08), 0.6, 1.3))
            _add(drums, kit[name], onset(k), gain)
    for bar in sorted(fill_bars):
        for j in range(STEPS_PER_BEAT):
            _add(drums, kit["snare"], onset((bar + 1) * bar_steps - STEPS_PER_BEAT + j), 0.35 + 0.15 * j)
    drums *= pattern.drum_gain

    # --- harmony: a random key, mode and four-chord progression, one chord per bar
    minor = rng.random() < 0.5
    scale = _MINOR if minor else _MAJOR
    progs = _PROGRESSIONS_MINOR if minor else _PROGRESSIONS_MAJOR
    progression = progs[rng.integers(len(progs))]
    root = 36 + int(rng.integers(0, 12))  # bass octave, C2..B2

    def chord_notes(bar: int) -> list[int]:
        degree = progression[bar % len(progression)]
        return [root + 24 + scale[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]

    tonal = np.zeros(n)
    # bass: plucked sine with a little second harmonic, each note held until the next
    bass_hits = _hits(pattern.bass, n_steps, rng)
    for i, (k, vel) in enumerate(bass_hits):
        start = onset(k)
        end_k = bass_hits[i + 1][0] if i + 1 < len(bass_hits) else n_steps
        length = max(int((end_k - k) * step * sr), 1)
        degree = progression[(k // bar_steps) % len(progression)]
        note = root + scale[degree % 7] + (7 if rng.random() < 0.15 else 0) + (12 if rng.random() < 0.2 else 0)
        t = np.arange(length) / sr
        env = np.minimum(t / 0.005, 1.0) * np.exp(-t / 0.35) * np.minimum((length - np.arange(length)) / 200, 1.0)
        f = _midi_hz(note)
        _add(tonal, 0.45 * vel * env * (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)), start, 1.0)

    # chords: a soft pad per bar, or short stabs
    harmonics = (1.0, 0.4, 0.2)
    first = int(round(first_beat * sr))
    n_bars = -(-n_steps // bar_steps)
    if pattern.chords == "pad":
        bar_len = int(round(bar_steps * step * sr))
        for bar in range(n_bars):
            start = first + bar * bar_len
            length = min(bar_len, n - start)
            if length <= 0:
                break
            t = np.arange(length) / sr
            env = np.minimum(t / 0.08, 1.0) * np.minimum((length - np.arange(length)) / (0.05 * sr), 1.0)
            pad = sum(
                h * np.sin(2 * np.pi * _midi_hz(m) * (i + 1) * t)
                for m in chord_notes(bar)
                for i, h in enumerate(harmonics)
            )
            _add(tonal, 0.07 * env * pad, start, 1.0)
    else:
        length = int(0.18 * sr)
        t = np.arange(length) / sr
        env = np.minimum(t / 0.004, 1.0) * np.exp(-t / 0.07)
        for k, vel in _hits(pattern.chords, n_steps, rng):
            stab = sum(
                h * np.sin(2 * np.pi * _midi_hz(m) * (i + 1) * t)
                for m in chord_notes(k // bar_steps)
                for i, h in enumerate(harmonics)
            )
            _add(tonal, 0.1 * vel * env * stab, onset(k), 1.0)

    mix = drums + rng.uniform(0.6, 1.0) * tonal
    peak = np.max(np.abs(mix))
    if peak > 0:
        mix *= rng.uniform(0.5, 0.95) / peak
    return SynthMusic(
        audio=mix.astype(np.float32),
        sr=sr,
        bpm=float(bpm),
        beat_times=beat_times,
        downbeat_times=downbeat_times,
        style=style,
    )
