"""GPU sampling speed: 40-frame clips at 128x128 with the fast sampler, fp16 / bf16 / fp32, batch 1 and 8.

    .venv/bin/python benchmarks/gpu_sampling.py [--device cuda] [--json out/bench/gpu_sampling.json]

One clip = the model frames of 40 output frames at the model's fps (windows of 16 with the preset's overlap),
sampled with the preset's sampler, steps and guidance (standard: DDIM 25, guidance 2.5: one U-Net pass over a
batch of 2B per step), then rendered by the LFAE at 128 px. Conditioning: the bundled example still and track.
Per setting: ms per clip (sampling + rendering, after a warm-up, CUDA-synchronised), U-Net FLOPs per clip
(torch's FlopCounterMode on one pass) and the share of peak FLOP/s the U-Net reaches while sampling: against a
dense matmul measured in the same run and dtype (the practical peak), and against the data-sheet peak where
the GPU is known. Goal (issue 7): <= 1 s per 40-frame clip. Runs on a CPU too (`--device cpu`), slowly.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from common import EXAMPLE_STILL, EXAMPLE_TRACK, STARTER, goal, save_json, table
from torch.utils.flop_counter import FlopCounterMode

from dance_any_beat.diffusion import make_sampler, sample
from dance_any_beat.music.audio import load_audio
from dance_any_beat.music.beats import track_beats
from dance_any_beat.music.encoder import MusicEmbedding
from dance_any_beat.pipeline import Framing, GenerateParams, WindowPlan, load_model, window_music

CLIP_FRAMES = 40
GOAL_S_PER_CLIP = 1.0
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Dense tensor-core peak (TFLOP/s, no sparsity) of GPUs we may be lent, from NVIDIA's data sheets.
DATASHEET_TFLOPS = {
    "H100 SXM": {"fp16": 989.4, "bf16": 989.4, "fp32": 66.9},
    "H100 PCIe": {"fp16": 756.0, "bf16": 756.0, "fp32": 51.2},
    "H100 NVL": {"fp16": 835.0, "bf16": 835.0, "fp32": 60.0},
    "H200": {"fp16": 989.4, "bf16": 989.4, "fp32": 66.9},
}


def datasheet_peak(name: str, dtype: str) -> float | None:
    name = name.replace("-", " ")
    for key, peaks in DATASHEET_TFLOPS.items():
        if all(part in name for part in key.split()):
            return peaks[dtype] * 1e12
    if "H100" in name:  # "NVIDIA H100 80GB HBM3" is the SXM part
        return DATASHEET_TFLOPS["H100 SXM"][dtype] * 1e12
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of a large dense matmul in `dtype`: what this device reaches on the easiest possible work."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    repeats = 20 if device.type == "cuda" else 3
    clock = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2.0 * n**3 * repeats / (time.perf_counter() - clock)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=STARTER, help="model folder (the starter model)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--frames", type=int, default=CLIP_FRAMES, help=f"model frames per clip ({CLIP_FRAMES})")
    parser.add_argument("--preset", default="standard", help="sampler, steps, guidance, overlap from (standard)")
    parser.add_argument("--dtypes", default="fp16,bf16,fp32", help="autocast dtypes (fp16,bf16,fp32)")
    parser.add_argument("--batches", default="1,8", help="clips per batch (1,8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting, best kept (3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here; run on a GPU machine, or pass --device cpu for CPU figures")
    device = torch.device(args.device)

    model = load_model(args.checkpoint, args.device)
    model.eval()
    data = model.config.data
    params = GenerateParams(preset=args.preset).resolved()
    still = cv2.cvtColor(cv2.imread(str(EXAMPLE_STILL)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    framing = Framing.fit(still.shape[1], still.shape[0], data.image_size)
    view = torch.from_numpy(framing.frame(still)).permute(2, 0, 1)[None].to(device)  # (1, 3, S, S)
    ref_latent = model.encode_reference(view)
    plan = WindowPlan.cover(args.frames, data.fps, data.fps, data.num_frames, params.window_overlap)
    music = load_audio(EXAMPLE_TRACK, seconds=plan.covered / data.fps + 1.0)
    track = track_beats(music.samples, music.sr)
    windows = window_music(model, plan, music.samples, music.sr, track.beats, track.downbeats, device)
    style = model.style_labels([None], device=device)
    sampler = make_sampler(params.sampler, model.config.diffusion)

    def clip(batch: int, dtype: torch.dtype) -> None:
        generator = torch.Generator(device=device).manual_seed(0)
        x0s = []
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            for global_, frames in windows:
                cond = model.conditioning(ref_latent, MusicEmbedding(global_, frames), style).repeat(batch)
                shape = model.latent_shape(batch, plan.length)
                x0s.append(sample(model.unet, shape, cond, sampler, steps=params.steps,
                                  guidance_scale=params.guidance, generator=generator))  # fmt: skip
            x0 = torch.cat(x0s, dim=2)[:, :, : args.frames].float()  # (B, 3, frames, h, w)
            model.render(ref_latent.expand(batch, -1, -1, -1), x0, ref_image=view.expand(batch, -1, -1, -1))
        sync(device)

    # FLOPs of one guided U-Net pass at batch 1 (a batch of 2 through the network), scaled by batch and count
    cond = model.conditioning(ref_latent, MusicEmbedding(*windows[0]), style).repeat(2)
    x = torch.randn(model.latent_shape(2, plan.length), device=device)
    t = torch.full((2,), 500, device=device, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        model.unet(x, t, **cond.kwargs(), drop_music=torch.tensor([False, True], device=device))
    flops_per_pass = counter.get_total_flops()
    passes_per_clip = len(windows) * params.steps

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    rows = []
    for name in args.dtypes.split(","):
        dtype = DTYPES[name]
        peak = matmul_peak(device, dtype)
        sheet = datasheet_peak(gpu, name) if device.type == "cuda" else None
        for batch in (int(b) for b in args.batches.split(",")):
            clip(batch, dtype)  # warm-up (cuDNN autotuning, allocator)
            times = []
            for _ in range(args.repeats):
                clock = time.perf_counter()
                clip(batch, dtype)
                times.append(time.perf_counter() - clock)
            best = min(times)
            unet_flops = flops_per_pass * passes_per_clip * batch
            row = {"dtype": name, "batch": batch, "ms_per_clip": best / batch * 1000.0,
                   "clips_per_s": batch / best, "unet_gflop_per_clip": unet_flops / batch / 1e9,
                   "achieved_tflops": unet_flops / best / 1e12, "matmul_tflops": peak / 1e12,
                   "share_of_matmul": unet_flops / best / peak,
                   "share_of_datasheet": None if sheet is None else unet_flops / best / sheet}  # fmt: skip
            row["goal"] = goal(best / batch <= GOAL_S_PER_CLIP, f"{best / batch:.2f} s per clip")
            rows.append(row)
            print(f"{name} batch {batch}: {row['ms_per_clip']:.0f} ms per clip", flush=True)
    print(f"\n{gpu}; {args.frames}-frame clips at {data.image_size}x{data.image_size} ({len(windows)} windows of "
          f"{plan.length}), {params.sampler} {params.steps} steps, guidance {params.guidance:g}; "
          f"U-Net {flops_per_pass / 2e9:.2f} GFLOP per clip row per pass")  # fmt: skip
    print(table(rows, [
        ("dtype", "dtype", "{}"), ("batch", "batch", "{}"), ("ms per clip", "ms_per_clip", "{:.0f}"),
        ("clips/s", "clips_per_s", "{:.2f}"), ("U-Net GFLOP/clip", "unet_gflop_per_clip", "{:.0f}"),
        ("U-Net TFLOP/s", "achieved_tflops", "{:.2f}"), ("matmul TFLOP/s (same run)", "matmul_tflops", "{:.1f}"),
        ("share of matmul peak", "share_of_matmul", "{:.1%}"), ("share of data-sheet peak", "share_of_datasheet",
        "{:.1%}"), (f"goal <= {GOAL_S_PER_CLIP:g} s/clip", "goal", "{}"),
    ]))  # fmt: skip
    save_json(args.json, {"device": gpu, "frames": args.frames, "rows": rows, "flops_per_pass": flops_per_pass,
                          "passes_per_clip": passes_per_clip, "preset": args.preset})  # fmt: skip


if __name__ == "__main__":
    main()
