"""Stage-1 quality of an LFAE checkpoint on held-out procedural clips, against the copy-the-reference baseline.

    .venv/bin/python benchmarks/lfae_quality.py --checkpoint checkpoints/starter/training/lfae/checkpoint \
        --data datasets/procedural/val [--clips 20] [--json out/lfae_quality.json]

For each clip the first frame is the reference and every 6th frame a driving frame. Reported: SSIM and PSNR of
the LFAE's reconstruction of the driving frame, and of the reference itself (what a model that ignores motion
would score). The flow learned something only when the reconstruction beats the copy; the issue's target for
the starter is SSIM >= 0.90 and PSNR >= 26 dB at 128 px.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dance_any_beat.data.procedural import list_clips, read_clip
from dance_any_beat.metrics import psnr, ssim
from dance_any_beat.models.dabfusion import load_lfae_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="stage-1 checkpoint folder")
    parser.add_argument("--data", required=True, help="a procedural split folder never used in training")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--every", type=int, default=6, help="driving frame stride")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    model = load_lfae_checkpoint(args.checkpoint)
    scores: dict[str, list[float]] = {"ssim": [], "psnr": [], "copy_ssim": [], "copy_psnr": []}
    for clip_dir in list_clips(Path(args.data))[: args.clips]:
        clip = read_clip(clip_dir)
        frames = torch.from_numpy(clip.frames).float().div(255).permute(0, 3, 1, 2)  # (T, 3, S, S)
        drive = frames[args.every :: args.every]
        ref = frames[:1].expand_as(drive)
        with torch.no_grad():
            recon = model(ref, drive).reconstruction
        scores["ssim"] += ssim(recon, drive, data_range=1.0).tolist()
        scores["psnr"] += psnr(recon, drive, data_range=1.0).tolist()
        scores["copy_ssim"] += ssim(ref, drive, data_range=1.0).tolist()
        scores["copy_psnr"] += psnr(ref, drive, data_range=1.0).tolist()
    result = {k: float(np.mean(v)) for k, v in scores.items()}
    result["pairs"] = len(scores["ssim"])
    print(f"{result['pairs']} pairs: reconstruction SSIM {result['ssim']:.3f} PSNR {result['psnr']:.2f} dB | "
          f"copy-the-reference SSIM {result['copy_ssim']:.3f} PSNR {result['copy_psnr']:.2f} dB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
