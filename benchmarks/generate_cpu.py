"""End-to-end `dance-any-beat generate` on the CPU: wall time by stage and peak memory.

    .venv/bin/python benchmarks/generate_cpu.py [--json out/bench/generate_cpu.json]

Two runs of the real command line, each in its own process (so its peak RSS is its own), on the bundled example
track and the starter model: a 4 s dance at 24 fps with the draft preset (the model's 128 px view), and the same
dance at full resolution from a 1920x1080 still (the example still placed on a 1080p canvas). Stages are those
`generate --json` reports: inputs, model loading, audio + beats, music encoding (+ the still's latent), sampling,
LFAE decoding at the model's 128 px, warping at the still's full resolution, writing PNG frames, writing the
video. Baselines timed in the same run: real time (the dance's length) and, for full-resolution warping, OpenCV's
`remap` of the same 1080p still (one bilinear warp per frame, the least a warper can do). Goals on 2 cores
(issue 7): draft <= 60 s, peak RSS <= 3 GB; full-resolution warping >= 25 frames/s.
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

import cv2
import numpy as np
from common import EXAMPLE_STILL, EXAMPLE_TRACK, STARTER, goal, save_json, table

DRAFT_SECONDS_GOAL = 60.0
RSS_GOAL_GB = 3.0
WARP_FPS_GOAL = 25.0
STAGES = ("inputs", "load_model", "dancer", "beats", "encode", "denoise", "decode", "warp", "write_frames", "video")
STAGE_NAMES = {"inputs": "inputs + audio", "load_model": "load model", "dancer": "finding the dancer",
               "beats": "beats", "encode": "music encoding",
               "denoise": "sampling", "decode": "LFAE decoding (128 px)", "warp": "full-resolution warping",
               "write_frames": "writing PNG frames", "video": "writing video"}  # fmt: skip


def make_1080p_still(path: Path) -> Path:
    """The example still centred on a 1920x1080 canvas of its own edge colour (a wide shot of the dancer)."""
    still = cv2.imread(str(EXAMPLE_STILL), cv2.IMREAD_COLOR)
    scale = 1080 / still.shape[0]
    still = cv2.resize(still, (round(still.shape[1] * scale), 1080), interpolation=cv2.INTER_CUBIC)
    canvas = np.empty((1080, 1920, 3), np.uint8)
    canvas[:] = np.median(still[:, 0], axis=0)
    x = (1920 - still.shape[1]) // 2
    canvas[:, x : x + still.shape[1]] = still
    cv2.imwrite(str(path), canvas)
    return path


def run_generate(still: Path, out: Path, extra: list[str], checkpoint: Path, seconds: float) -> dict:
    """One `generate` process: its --json result, wall time and peak resident memory (GB)."""
    cmd = [sys.executable, "-m", "dance_any_beat.cli", "generate", "--image", str(still), "--audio",
           str(EXAMPLE_TRACK), "--out", str(out), "--seconds", f"{seconds:g}", "--fps", "24", "--device", "cpu",
           "--checkpoint", str(checkpoint), "--json", *extra]  # fmt: skip
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        clock = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS
        wall = time.perf_counter() - clock
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0), stderr.seek(0)
        out_text, err_text = stdout.read(), stderr.read()
    if proc.returncode != 0:
        raise SystemExit(f"generate failed (exit {proc.returncode}):\n{err_text[-3000:]}")
    result = json.loads(out_text.strip().splitlines()[-1])
    return {"wall": wall, "peak_rss_gb": usage.ru_maxrss / 2**20, "result": result}  # ru_maxrss: KiB on Linux


def remap_fps(still: Path, frames: int = 48) -> float:
    """Frames/s of OpenCV's bilinear `remap` warping the still by a smooth flow: the floor for a warper."""
    image = cv2.imread(str(still), cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    clock = time.perf_counter()
    for k in range(frames):
        shift = np.float32(5.0 * np.sin(k / 4.0))
        map_x, map_y = xs + shift * np.sin(ys / 200.0), ys + shift
        cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return frames / (time.perf_counter() - clock)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=STARTER, help="model folder (the starter model)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the dance (4)")
    parser.add_argument("--keep-background", action="store_true",
                        help="let generate find the dancer and move only them (default: the whole still moves)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dab_bench_generate_"))
    # the whole still moves (the example still shows a dancer, whom generate would otherwise cut out of the set)
    whole = [] if args.keep_background else ["--no-keep-background"]
    wide = make_1080p_still(work / "still_1920x1080.png")
    runs = {
        "draft": run_generate(EXAMPLE_STILL, work / "draft", ["--preset", "draft", *whole], args.checkpoint,
                              args.seconds),
        "full 1080p": run_generate(wide, work / "full", ["--preset", "draft", "--resolution", "full", *whole],
                                   args.checkpoint, args.seconds),
    }  # fmt: skip
    baseline_fps = remap_fps(wide)
    rows = []
    for stage in STAGES:
        row = {"stage": STAGE_NAMES[stage]}
        for name, run in runs.items():
            row[name] = run["result"]["seconds"].get(stage, 0.0)
        rows.append(row)
    rows.append({"stage": "**process wall**", **{name: run["wall"] for name, run in runs.items()}})
    rows.append({"stage": "peak RSS (GB)", **{name: run["peak_rss_gb"] for name, run in runs.items()}})
    for run in runs.values():
        run["frames"] = run["result"]["frames"]
        run["times_real_time"] = args.seconds / run["wall"]
    full = runs["full 1080p"]
    warp_seconds = full["result"]["seconds"].get("warp")  # None: a generate that does not time warping apart
    warp_fps = full["frames"] / warp_seconds if warp_seconds else float("nan")
    draft = runs["draft"]
    checks = [
        ("draft wall <= 60 s", draft["wall"] <= DRAFT_SECONDS_GOAL, f"{draft['wall']:.1f} s"),
        ("draft peak RSS <= 3 GB", draft["peak_rss_gb"] <= RSS_GOAL_GB, f"{draft['peak_rss_gb']:.2f} GB"),
        ("full-resolution warping >= 25 frames/s", warp_fps >= WARP_FPS_GOAL,
         f"{warp_fps:.1f} frames/s = {warp_fps / baseline_fps:.2f}x cv2.remap ({baseline_fps:.0f} frames/s)"),
        ("full 1080p peak RSS <= 3 GB", full["peak_rss_gb"] <= RSS_GOAL_GB, f"{full['peak_rss_gb']:.2f} GB"),
    ]  # fmt: skip
    used = draft["result"]["params"]
    print(f"\n{args.seconds:g} s dance at 24 fps ({draft['frames']} frames), example track, starter model, CPU, "
          f"draft preset (steps {used['steps']}, guidance {used['guidance']})")
    print(table(rows, [("stage", "stage", "{}"), ("draft 128 px, s", "draft", "{:.2f}"),
                       ("full 1920x1080, s", "full 1080p", "{:.2f}")]))  # fmt: skip
    print(f"\nreal time / wall: draft {draft['times_real_time']:.2f}x, full {full['times_real_time']:.2f}x")
    print(table([{"goal": g, "status": goal(ok, "" if ok else v), "value": v} for g, ok, v in checks],
                [("goal", "goal", "{}"), ("measured", "value", "{}"), ("status", "status", "{}")]))
    save_json(args.json, {"runs": runs, "remap_fps": baseline_fps, "warp_fps": warp_fps,
                          "checks": {g: {"met": ok, "value": v} for g, ok, v in checks}})  # fmt: skip


if __name__ == "__main__":
    main()
