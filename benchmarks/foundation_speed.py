"""Speed of the foundation's data paths on this machine, each as a ratio against a baseline timed in the same run.

    .venv/bin/python benchmarks/foundation_speed.py [--clips 200] [--json out/foundation_speed.json]

- beat tracking: the `dab` tracker vs librosa's `beat_track` on the same 30 s of music (after warm-up);
- music synthesis: seconds of audio rendered per second of compute (baseline: real time);
- data set generation: clips/min writing `--clips` 4 s clips with every core vs with one worker, and the
  minutes 2000 clips would take (the target is under 30 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from dance_any_beat.data.music_synth import synthesize_music
from dance_any_beat.data.procedural import make_dataset
from dance_any_beat.music.beats import track_beats


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def beat_tracking() -> dict[str, float]:
    music = synthesize_music("break", 112.0, 30.0, seed=9)
    for method in ("dab", "librosa"):  # warm numba / caches
        track_beats(music.audio[: music.sr * 3], music.sr, method=method)
    dab = best_of(lambda: track_beats(music.audio, music.sr, method="dab"))
    base = best_of(lambda: track_beats(music.audio, music.sr, method="librosa"))
    return {"dab_s_per_30s": dab, "librosa_s_per_30s": base, "dab_vs_librosa_time": dab / base}


def synthesis() -> dict[str, float]:
    synthesize_music("house", 120.0, 4.0, seed=0)
    seconds = best_of(lambda: [synthesize_music("pop", 120.0, 4.0, seed=s) for s in range(10)]) / 10
    return {"synth_s_per_4s_clip": seconds, "synth_times_real_time": 4.0 / seconds}


def dataset_rate(clips: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="dab_rate_"))
    try:
        rates = {}
        for workers in (1, os.cpu_count() or 1):
            out = root / f"w{workers}"
            n = clips if workers > 1 else max(clips // 4, 10)
            start = time.perf_counter()
            make_dataset(out, n, split="train", seconds=4.0, fps=30, size=128, workers=workers)
            rates[workers] = n / (time.perf_counter() - start) * 60.0
        cores = os.cpu_count() or 1
        return {
            "clips_per_min_1_worker": rates[1],
            f"clips_per_min_{cores}_workers": rates[cores],
            "parallel_speedup": rates[cores] / rates[1],
            "minutes_for_2000_clips": 2000 / rates[cores],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200, help="clips to write for the data set rate (200)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    results = {**beat_tracking(), **synthesis(), **dataset_rate(args.clips)}
    for key, value in results.items():
        print(f"{key:32s} {value:10.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
