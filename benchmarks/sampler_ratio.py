"""Sampler ratio: the paper's DDPM sampler (1000 steps) against the fast samplers, same still, music and seed.

    .venv/bin/python benchmarks/sampler_ratio.py [--clips 2] [--json out/bench/sampler_ratio.json]

Each held-out procedural clip (its first frame is the still, its music and beats the music) is danced by every
sampler setting with the same seed and guidance (the draft preset's), at the clip's fps and the model's
resolution. Per setting: wall time per clip, U-Net forward passes and network evaluations (a guided step is one
pass over a batch of two), the evaluation ratio against DDPM-1000, and the BAS of the dance against the clip's
beats (the video form `evaluate` uses; the real clip's own BAS is shown for scale). Goal (issue 7): >= 40x fewer
evaluations than DDPM-1000 with BAS within 5% of it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
from common import STARTER, count_calls, goal, held_out_clips, save_json, table

from dance_any_beat.data.procedural import read_clip
from dance_any_beat.metrics import video_beat_alignment
from dance_any_beat.pipeline import GenerateParams, decode_frames, generate_motion, load_model, resolve_for_model

DEFAULT_SETTINGS = "ddpm:1000,ddim:10,ddim:25,ddim:50,dpmpp_2m:10,dpmpp_2m:25"
EVAL_RATIO_GOAL = 40.0
BAS_TOLERANCE = 0.05


def parse_settings(text: str) -> list[tuple[str, int]]:
    settings = []
    for item in text.split(","):
        name, _, steps = item.strip().partition(":")
        if not steps.isdigit():
            raise SystemExit(f"--settings items are SAMPLER:STEPS, e.g. ddim:25; got {item!r}")
        settings.append((name, int(steps)))
    return settings


def bas(frames: np.ndarray, beats: np.ndarray, fps: float) -> float:
    try:
        return float(video_beat_alignment(frames, beats, fps))
    except ValueError:  # no beat inside the clip
        return math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=STARTER, help="model folder (the starter model)")
    parser.add_argument("--data", type=Path, default=None,
                        help="procedural split (datasets/procedural/test; made in a temp folder when missing)")
    parser.add_argument("--clips", type=int, default=2, help="held-out clips to dance (2)")
    parser.add_argument("--seconds", type=float, default=None, help="dance only the first S seconds of each clip")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help=f"SAMPLER:STEPS list ({DEFAULT_SETTINGS})")
    parser.add_argument("--preset", default="draft", help="preset giving guidance and window overlap (draft)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    settings = parse_settings(args.settings)

    model = load_model(args.checkpoint, args.device)
    model.eval()
    clips = [read_clip(p) for p in held_out_clips(args.data, args.clips)]
    rows = []
    for name, steps in settings:
        walls, calls, samples, scores = [], 0, 0, []
        for clip in clips:
            seconds = clip.seconds if args.seconds is None else min(args.seconds, clip.seconds)
            n = int(round(seconds * clip.fps))
            base = GenerateParams(preset=args.preset, seed=args.seed, resolution="model", fps=float(clip.fps),
                                  seconds=seconds)  # fmt: skip
            params = resolve_for_model(dataclasses.replace(base, sampler=name, steps=steps), model)
            still = clip.frames[0].astype(np.float32) / 255.0
            clock = time.perf_counter()
            with count_calls(model.unet) as count:
                motion = generate_motion(model, still, clip.audio, clip.sr, n, params, clip.beat_times,
                                         clip.downbeat_times)  # fmt: skip
                frames = np.stack(list(decode_frames(model, motion, still, "model")))
            walls.append(time.perf_counter() - clock)
            calls, samples = calls + count.calls, samples + count.samples
            scores.append(bas(frames, clip.beat_times[clip.beat_times < seconds], clip.fps))
        m = len(clips)
        rows.append({"sampler": name, "steps": steps, "wall": float(np.mean(walls)), "calls": calls / m,
                     "evals": samples / m, "bas": float(np.nanmean(scores)), "bas_clips": scores})  # fmt: skip
        print(f"{name}:{steps}: {rows[-1]['wall']:.1f} s per clip, BAS {rows[-1]['bas']:.3f}", flush=True)

    truth = []
    for clip in clips:
        seconds = clip.seconds if args.seconds is None else min(args.seconds, clip.seconds)
        k = int(round(seconds * clip.fps))
        truth.append(bas(clip.frames[:k], clip.beat_times[clip.beat_times < seconds], clip.fps))
    reference = next((r for r in rows if r["sampler"] == "ddpm" and r["steps"] == 1000), rows[0])
    for r in rows:
        r["eval_ratio"] = reference["evals"] / r["evals"]
        r["time_ratio"] = reference["wall"] / r["wall"]
        r["bas_vs_ref"] = r["bas"] / reference["bas"] - 1.0 if reference["bas"] else math.nan
        if r is not reference:
            ok_evals = r["eval_ratio"] >= EVAL_RATIO_GOAL
            ok_bas = abs(r["bas_vs_ref"]) <= BAS_TOLERANCE
            gaps = [] if ok_evals else [f"{r['eval_ratio']:.0f}x fewer evaluations"]
            gaps += [] if ok_bas else [f"BAS {r['bas_vs_ref']:+.1%}"]
            r["goal"] = goal(ok_evals and ok_bas, ", ".join(gaps))
    ref_name = f"{reference['sampler']}-{reference['steps']}"
    print(f"\n{len(clips)} held-out clips, {clips[0].seconds if args.seconds is None else args.seconds:g} s each at "
          f"{clips[0].fps:g} fps, preset {args.preset} (guidance, overlap), seed {args.seed}, {args.device}; "
          f"ground-truth BAS {np.nanmean(truth):.3f}")  # fmt: skip
    print(table(rows, [
        ("sampler", "sampler", "{}"), ("steps", "steps", "{}"), ("wall s / clip", "wall", "{:.1f}"),
        ("U-Net passes", "calls", "{:.0f}"), ("network evals", "evals", "{:.0f}"),
        (f"fewer evals than {ref_name}", "eval_ratio", "{:.0f}x"), ("faster", "time_ratio", "{:.1f}x"),
        ("BAS", "bas", "{:.3f}"), (f"BAS vs {ref_name}", "bas_vs_ref", "{:+.1%}"),
        (f"goal (>= {EVAL_RATIO_GOAL:.0f}x, BAS within {BAS_TOLERANCE:.0%})", "goal", "{}"),
    ]))  # fmt: skip
    save_json(args.json, {"rows": rows, "ground_truth_bas": truth, "clips": len(clips), "preset": args.preset,
                          "seed": args.seed, "device": args.device, "checkpoint": str(args.checkpoint)})  # fmt: skip


if __name__ == "__main__":
    main()
