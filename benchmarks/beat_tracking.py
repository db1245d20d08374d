"""Beat tracking accuracy: the project's `dab` tracker against librosa's default, on procedural and real music.

    .venv/bin/python benchmarks/beat_tracking.py [--json out/beat_tracking.json]

Procedural tracks come from the music synthesiser with fixed seeds, so their beats are known exactly: 20
tracks at 80-150 BPM in styles with a backbeat (the acceptance set, also asserted by tests/test_beats.py)
and 10 slow tracks at 60-80 BPM (reported only). Scores: mir_eval's beat F-measure (70 ms window, all
beats, no trimming) and whether the tempo is within 4% of the truth. The real songs in
../shared/data/audio (no ground truth) are reported as tempo, beat count, inter-beat-interval spread and
the agreement between the two trackers, for a plausibility check.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dance_any_beat.data.music_synth import synthesize_music
from dance_any_beat.music.beats import TRACKER_METHODS, track_beats
from dance_any_beat.styles import STYLE_NAMES

# Styles whose drum pattern has a backbeat (krump is half-time: its snare is on beat 3).
BACKBEAT_STYLES = tuple(name for name in STYLE_NAMES if name != "krump")
REAL_AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"  # ../shared beside the repo
F_WINDOW = 0.07
TEMPO_TOLERANCE = 0.04


@dataclass
class EvalTrack:
    name: str
    audio: np.ndarray
    sr: int
    bpm: float
    beats: np.ndarray


def evaluation_tracks(
    n: int = 20, bpm_range: tuple[float, float] = (80.0, 150.0), seconds: float = 12.0, seed: int = 2024
) -> list[EvalTrack]:
    """Fixed procedural tracks: styles taken in turn, tempo drawn uniformly from `bpm_range`."""
    rng = np.random.default_rng(seed)
    tracks = []
    for i in range(n):
        style = BACKBEAT_STYLES[i % len(BACKBEAT_STYLES)]
        bpm = float(np.round(rng.uniform(*bpm_range), 1))
        music = synthesize_music(style, bpm, seconds, seed=seed + i)
        tracks.append(EvalTrack(f"{i:02d}_{style}", music.audio, music.sr, bpm, music.beat_times))
    return tracks


@dataclass
class Score:
    track: str
    method: str
    true_bpm: float
    tempo: float
    f_measure: float
    tempo_ok: bool
    seconds: float


def score_track(track: EvalTrack, method: str) -> Score:
    import mir_eval

    start = time.perf_counter()
    result = track_beats(track.audio, track.sr, method=method)
    elapsed = time.perf_counter() - start
    f = mir_eval.beat.f_measure(track.beats, result.beats, f_measure_threshold=F_WINDOW)
    ok = abs(result.tempo - track.bpm) <= TEMPO_TOLERANCE * track.bpm
    return Score(track.name, method, track.bpm, result.tempo, float(f), bool(ok), elapsed)


def summarise(scores: list[Score]) -> dict[str, float]:
    return {
        "mean_f": float(np.mean([s.f_measure for s in scores])),
        "tempo_rate": float(np.mean([s.tempo_ok for s in scores])),
        "mean_seconds": float(np.mean([s.seconds for s in scores])),
    }


def _print_set(title: str, tracks: list[EvalTrack]) -> dict:
    print(f"\n== {title}")
    print(f"{'track':<18}{'bpm':>7}" + "".join(f"{m + ' bpm':>14}{m + ' F':>11}" for m in TRACKER_METHODS))
    per_method: dict[str, list[Score]] = {m: [] for m in TRACKER_METHODS}
    for track in tracks:
        row = f"{track.name:<18}{track.bpm:>7.1f}"
        for m in TRACKER_METHODS:
            s = score_track(track, m)
            per_method[m].append(s)
            row += f"{s.tempo:>13.1f}{' ' if s.tempo_ok else '*'}{s.f_measure:>11.3f}"
        print(row)
    summary = {m: summarise(v) for m, v in per_method.items()}
    for m, v in summary.items():
        print(
            f"{m:>8}: mean F {v['mean_f']:.3f}, tempo within 4% {v['tempo_rate']:.0%}, "
            f"{v['mean_seconds'] * 1000:.0f} ms/track"
        )
    return {"summary": summary, "tracks": [asdict(s) for v in per_method.values() for s in v]}


def _real_songs() -> list[dict]:
    """Tempo, beat count and beat regularity per tracker, and how far the two trackers' beats agree."""
    import mir_eval
    import soundfile as sf

    rows: list[dict] = []
    if not REAL_AUDIO_DIR.is_dir():
        return rows
    print("\n== real songs (no ground truth: tempo, beats, inter-beat-interval spread, agreement with the other)")
    for path in sorted(REAL_AUDIO_DIR.glob("*.ogg")):
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        tracks, seconds = {}, {}
        for m in TRACKER_METHODS:
            start = time.perf_counter()
            tracks[m] = track_beats(y, sr, method=m)
            seconds[m] = time.perf_counter() - start
        agreement = float(mir_eval.beat.f_measure(tracks["librosa"].beats, tracks["dab"].beats, F_WINDOW))
        for m, tr in tracks.items():
            ibi = np.diff(tr.beats)
            row = {
                "song": path.stem,
                "method": m,
                "duration": tr.duration,
                "tempo": tr.tempo,
                "beats": len(tr.beats),
                "downbeats": len(tr.downbeats),
                "ibi_cv": float(np.std(ibi) / np.mean(ibi)) if len(ibi) else 0.0,
                "agreement_f": agreement,
                "seconds": seconds[m],
            }
            rows.append(row)
            print(
                f"{path.stem[:36]:<38}{m:>8}: {tr.duration:6.1f} s, tempo {tr.tempo:6.1f}, {len(tr.beats):4d} beats, "
                f"IBI cv {row['ibi_cv']:.3f}, F(dab vs librosa) {agreement:.3f}, {seconds[m]:.2f} s"
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    # warm numba up so the timings are of the trackers, not of the JIT
    warm = evaluation_tracks(1, seed=1)[0]
    for m in TRACKER_METHODS:
        track_beats(warm.audio, warm.sr, method=m)
    report = {
        "tempo_80_150": _print_set("80-150 BPM, 20 tracks (acceptance set)", evaluation_tracks()),
        "tempo_60_80": _print_set("60-80 BPM, 10 slow tracks", evaluation_tracks(10, (60.0, 80.0), seed=77)),
        "real_songs": _real_songs(),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
