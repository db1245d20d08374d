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
    # off-beat delay range, as a fraction of the swung unit: 1/3 puts the off-beat on the triplet
    swing: tuple[float, float] = (0.0, 0.0)
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
        swing=(0.2, 0.4),
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


@dataclass
class _Grid:
    """Where the sixteenth steps of one clip fall in samples: tempo, offset, swing and timing jitter."""

    sr: int
    n_samples: int
    step: float  # seconds per sixteenth
    first_beat: float
    n_steps: int
    swing: float  # off-beat delay as a fraction of the swung unit (see _Pattern.swing)
    swing_unit: int
    jitter: float = 0.004  # seconds of timing humanisation

    def onset(self, k: int, rng: np.random.Generator) -> int:
        """Sample index of sixteenth `k`; off-beat units (odd sixteenths or odd eighths) come late by the swing."""
        t = self.first_beat + k * self.step
        if self.swing > 0 and (k // self.swing_unit) % 2 == 1 and k % self.swing_unit == 0:
            t += self.swing * self.step * self.swing_unit
        t += rng.normal(0.0, self.jitter)
        return int(round(max(t, 0.0) * self.sr))


BAR_STEPS = STEPS_PER_BEAT * BEATS_PER_BAR


def _render_drums(pattern: _Pattern, grid: _Grid, rng: np.random.Generator) -> np.ndarray:
    """Drum track with humanised velocities; every 4th bar may end in a fill (rising snares replace the hats)."""
    kit = _drum_kit(grid.sr, rng)
    drums = np.zeros(grid.n_samples)
    levels = {"kick": 1.0, "snare": 0.8, "hat": rng.uniform(0.5, 0.9), "open_hat": rng.uniform(0.3, 0.55)}
    fill_bars = {b for b in range(3, grid.n_steps // BAR_STEPS, 4) if rng.random() < pattern.fill_prob}
    for name in ("kick", "snare", "hat", "open_hat"):
        for k, vel in _hits(getattr(pattern, name), grid.n_steps, rng):
            bar, pos = divmod(k, BAR_STEPS)
            if name in ("hat", "open_hat") and bar in fill_bars and pos >= BAR_STEPS - STEPS_PER_BEAT:
                continue
            gain = levels[name] * vel * float(np.clip(rng.normal(1.0, 0.08), 0.6, 1.3))
            _add(drums, kit[name], grid.onset(k, rng), gain)
    for bar in sorted(fill_bars):
        for j in range(STEPS_PER_BEAT):
            _add(drums, kit["snare"], grid.onset((bar + 1) * BAR_STEPS - STEPS_PER_BEAT + j, rng), 0.35 + 0.15 * j)
    return drums * pattern.drum_gain


def _chord(notes: list[int], t: np.ndarray) -> np.ndarray:
    """A chord of soft saw-like tones (three harmonics each)."""
    return sum(h * np.sin(2 * np.pi * _midi_hz(m) * (i + 1) * t) for m in notes for i, h in enumerate((1.0, 0.4, 0.2)))


def _render_tonal(pattern: _Pattern, grid: _Grid, rng: np.random.Generator) -> np.ndarray:
    """Bass line and chords in a random key, mode and four-chord progression, one chord per bar."""
    minor = rng.random() < 0.5
    scale = _MINOR if minor else _MAJOR
    progs = _PROGRESSIONS_MINOR if minor else _PROGRESSIONS_MAJOR
    progression = progs[rng.integers(len(progs))]
    root = 36 + int(rng.integers(0, 12))  # bass octave, C2..B2
    sr, n = grid.sr, grid.n_samples

    def chord_notes(bar: int) -> list[int]:
        degree = progression[bar % len(progression)]
        return [root + 24 + scale[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]

    tonal = np.zeros(n)
    # bass: plucked sine with a little second harmonic, each note held until the next
    bass_hits = _hits(pattern.bass, grid.n_steps, rng)
    for i, (k, vel) in enumerate(bass_hits):
        end_k = bass_hits[i + 1][0] if i + 1 < len(bass_hits) else grid.n_steps
        length = max(int((end_k - k) * grid.step * sr), 1)
        degree = progression[(k // BAR_STEPS) % len(progression)]
        note = root + scale[degree % 7] + (7 if rng.random() < 0.15 else 0) + (12 if rng.random() < 0.2 else 0)
        t = np.arange(length) / sr
        env = np.minimum(t / 0.005, 1.0) * np.exp(-t / 0.35) * np.minimum((length - np.arange(length)) / 200, 1.0)
        f = _midi_hz(note)
        tone = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)
        _add(tonal, 0.45 * vel * env * tone, grid.onset(k, rng), 1.0)

    if pattern.chords == "pad":  # a soft chord held through each bar
        first = int(round(grid.first_beat * sr))
        bar_len = int(round(BAR_STEPS * grid.step * sr))
        for bar in range(-(-grid.n_steps // BAR_STEPS)):
            start = first + bar * bar_len
            length = min(bar_len, n - start)
            if length <= 0:
                break
            t = np.arange(length) / sr
            env = np.minimum(t / 0.08, 1.0) * np.minimum((length - np.arange(length)) / (0.05 * sr), 1.0)
            _add(tonal, 0.07 * env * _chord(chord_notes(bar), t), start, 1.0)
    else:  # short stabs on the pattern's steps
        t = np.arange(int(0.18 * sr)) / sr
        env = np.minimum(t / 0.004, 1.0) * np.exp(-t / 0.07)
        for k, vel in _hits(pattern.chords, grid.n_steps, rng):
            _add(tonal, 0.1 * vel * env * _chord(chord_notes(k // BAR_STEPS), t), grid.onset(k, rng), 1.0)
    return tonal


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
    always start at 0) and the first beat is a downbeat. Before it the clip is silent. `seed` may be a
    Generator, which is advanced (so a data set can draw clip after clip from one).
    """
    get_style(style)  # validates the name, listing valid ones
    if not MIN_BPM <= bpm <= MAX_BPM:
        raise ValueError(f"bpm must be within [{MIN_BPM}, {MAX_BPM}], got {bpm}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    rng = np.random.default_rng(seed)
    pattern = _PATTERNS[style]
    period = 60.0 / bpm
    if first_beat is None:
        first_beat = float(rng.uniform(0.0, period))
    if not 0.0 <= first_beat < seconds:
        raise ValueError(f"first_beat must be within [0, seconds), got {first_beat}")

    n_beats = int(np.floor((seconds - first_beat) / period - 1e-9)) + 1
    beat_times = first_beat + period * np.arange(n_beats, dtype=np.float64)
    beat_times = beat_times[beat_times < seconds]
    swing = float(rng.uniform(*pattern.swing)) if rng.random() < 0.8 else 0.0
    grid = _Grid(
        sr=sr,
        n_samples=int(round(seconds * sr)),
        step=period / STEPS_PER_BEAT,
        first_beat=first_beat,
        n_steps=len(beat_times) * STEPS_PER_BEAT,
        swing=swing,
        swing_unit=pattern.swing_unit,
    )
    mix = _render_drums(pattern, grid, rng) + rng.uniform(0.6, 1.0) * _render_tonal(pattern, grid, rng)
    peak = np.max(np.abs(mix))
    if peak > 0:
        mix *= rng.uniform(0.5, 0.95) / peak
    return SynthMusic(
        audio=mix.astype(np.float32),
        sr=sr,
        bpm=float(bpm),
        beat_times=beat_times,
        downbeat_times=beat_times[::BEATS_PER_BAR].copy(),
        style=style,
    )
