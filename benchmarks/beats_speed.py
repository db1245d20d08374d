"""Beat tracking speed on a 3-minute track, in a fresh process with a cold and with a warm numba cache.

    .venv/bin/python benchmarks/beats_speed.py [--json out/bench/beats_speed.json]

librosa compiles its numba functions on first use; `dance_any_beat` keeps numba's cache on disk
(NUMBA_CACHE_DIR) so only a machine's first process pays for it. Each measurement is a new Python process running
what `dance-any-beat beats` runs (load the file, track with the `dab` tracker), so imports count too:
- cold: NUMBA_CACHE_DIR points at an empty folder (a fresh install);
- warm: the same folder again, filled by the cold run (best of three).
Reported: the process wall time, and inside it the import, audio loading and tracking times. Baseline, timed
the same way in the same run: librosa's own `beat_track` (the paper's tracker) on the same file. Goals
(issue 7): <= 2 s warm, <= 5 s cold, for the whole process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
from common import goal, save_json, table

from dance_any_beat.data.music_synth import synthesize_music

WARM_GOAL_S = 2.0
COLD_GOAL_S = 5.0
TRACK_SECONDS = 180.0

# What the child process runs: the work of `dance-any-beat beats FILE` with its parts timed.
CHILD = """
import json, sys, time
t0 = time.perf_counter()
from dance_any_beat.music.audio import load_audio
from dance_any_beat.music.beats import track_beats
t1 = time.perf_counter()
audio = load_audio(sys.argv[1])
t2 = time.perf_counter()
track = track_beats(audio.samples, audio.sr, method=sys.argv[2])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "track": t3 - t2, "beats": len(track.beats),
                  "tempo": float(track.tempo)}))
"""


def run_child(path: Path, method: str, numba_cache: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache)}
    clock = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), method], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - clock
    if done.returncode != 0:
        raise SystemExit(f"beat tracking process failed:\n{done.stderr[-3000:]}")
    return {"wall": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def measure(path: Path, method: str, warm_repeats: int) -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="dab_numba_") as cache:
        cold = run_child(path, method, Path(cache))
        warm = min((run_child(path, method, Path(cache)) for _ in range(warm_repeats)), key=lambda r: r["wall"])
    return {"cold": cold, "warm": warm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, default=None, help="track to use (default: synthesised)")
    parser.add_argument("--seconds", type=float, default=TRACK_SECONDS, help="length of the synthesised track (180)")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs, best kept (3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dab_beats_") as work:
        path = args.audio
        if path is None:
            music = synthesize_music("house", 122.0, args.seconds, seed=5)
            path = Path(work) / "track.wav"
            sf.write(path, music.audio, music.sr)
        seconds = sf.info(str(path)).duration
        results = {method: measure(path, method, args.repeats) for method in ("dab", "librosa")}
    rows = []
    for method, runs in results.items():
        for state, r in runs.items():
            rows.append({"tracker": method, "cache": state, **r,
                         "vs_librosa": r["wall"] / results["librosa"][state]["wall"]})  # fmt: skip
    print(f"\n{seconds:.0f} s track, one fresh process per row ({'given file' if args.audio else 'synthesised'})")
    print(table(rows, [
        ("tracker", "tracker", "{}"), ("numba cache", "cache", "{}"), ("process wall s", "wall", "{:.2f}"),
        ("imports s", "import", "{:.2f}"), ("load audio s", "load", "{:.2f}"), ("track s", "track", "{:.2f}"),
        ("beats", "beats", "{}"), ("tempo", "tempo", "{:.1f}"), ("wall vs librosa", "vs_librosa", "{:.2f}x"),
    ]))  # fmt: skip
    dab = results["dab"]
    checks = [(f"warm process <= {WARM_GOAL_S:g} s", dab["warm"]["wall"] <= WARM_GOAL_S, dab["warm"]["wall"]),
              (f"cold process <= {COLD_GOAL_S:g} s", dab["cold"]["wall"] <= COLD_GOAL_S, dab["cold"]["wall"])]
    print(table([{"goal": g, "value": v, "status": goal(ok, f"{v:.2f} s")} for g, ok, v in checks],
                [("goal", "goal", "{}"), ("measured s", "value", "{:.2f}"), ("status", "status", "{}")]))
    save_json(args.json, {"track_seconds": seconds, "results": results,
                          "checks": {g: {"met": ok, "seconds": v} for g, ok, v in checks}})  # fmt: skip


if __name__ == "__main__":
    main()
