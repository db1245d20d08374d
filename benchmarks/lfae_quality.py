"""Stage-1 quality of an LFAE on held-out procedural clips, and where its error is.

    .venv/bin/python benchmarks/lfae_quality.py [--checkpoint checkpoints/starter] \
        --data datasets/procedural/val [--clips 20] [--json out/lfae_quality.json]

For each clip the first frame is the reference and every 6th frame a driving frame. Reported:
- SSIM and PSNR of the LFAE's reconstruction of the driving frame, and of the reference itself (what a model that
  ignores motion would score). The issue's target for the starter is SSIM >= 0.90 and PSNR >= 26 dB at 128 px.
- Where the squared error is: on pixels that did not change between the two frames (the set, with a still
  camera) or on those that did (the dancer, and the whole frame when the camera drifts), with the PSNR of each.
- With a compositing LFAE, the SSIM and PSNR it would reach if its decoder painted the hidden parts perfectly (the
  true frame there, the same flow and occlusion map): how much a better decoder alone could gain. The rest of the
  gap is the flow's.
- Sharpness: the variance of the Laplacian of the reconstructions over that of the true frames (means over the
  pairs), as `evaluate`'s drift check measures a frame's; a blurred rebuild reads well below 1.
`--checkpoint` takes a stage-1 checkpoint (a `train lfae` run's checkpoint folder) or a full model's folder.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch

from dance_any_beat.checkpoint import read_config
from dance_any_beat.data.procedural import list_clips, read_clip
from dance_any_beat.evaluate import frame_sharpness
from dance_any_beat.metrics import psnr, ssim
from dance_any_beat.models.dabfusion import DABFUSION_KIND, DabFusion, load_lfae_checkpoint
from dance_any_beat.models.lfae import LFAE
from dance_any_beat.pipeline import frames_to_uint8

ROOT = Path(__file__).resolve().parents[1]
STILL = 2 / 255  # a pixel whose channels all moved less than this between reference and drive "did not change"


def load_lfae(path: Path) -> LFAE:
    if read_config(path).get("kind") == DABFUSION_KIND:
        return DabFusion.from_checkpoint(path).lfae.float().eval()
    return load_lfae_checkpoint(path).float()


def pooled_psnr(squared_error: float, pixels: int) -> float:
    return 10.0 * math.log10(pixels / squared_error) if squared_error > 0 else 100.0


@torch.no_grad()
def measure(model: LFAE, clip_dirs: list[Path], every: int) -> dict[str, float]:
    size = model.config.image_size
    names = ("ssim", "psnr", "copy_ssim", "copy_psnr", "painted_ssim", "painted_psnr", "hidden", "sharp", "true_sharp")
    scores: dict[str, list[float]] = {name: [] for name in names}
    error = {"unchanged": 0.0, "changed": 0.0}
    pixels = {"unchanged": 0, "changed": 0}
    for clip_dir in clip_dirs:
        frames = read_clip(clip_dir).frames  # (T, H, W, 3) uint8
        if frames.shape[1:3] != (size, size):
            frames = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
        frames = torch.from_numpy(frames).float().div(255).permute(0, 3, 1, 2)  # (T, 3, S, S)
        drive = frames[every::every]
        ref = frames[:1].expand_as(drive)
        out = model(ref, drive)
        recon = out.reconstruction.clamp(0.0, 1.0)
        scores["ssim"] += ssim(recon, drive, data_range=1.0).tolist()
        scores["psnr"] += psnr(recon, drive, data_range=1.0).tolist()
        scores["copy_ssim"] += ssim(ref, drive, data_range=1.0).tolist()
        scores["copy_psnr"] += psnr(ref, drive, data_range=1.0).tolist()
        # the share of the frame the occlusion map hides (below 0.5): there the decoder paints, elsewhere the
        # warped reference shows
        scores["hidden"] += (out.motion.occlusion < 0.5).float().mean(dim=(1, 2, 3)).tolist()
        if model.config.composite_reference:  # the hidden parts as they truly are: a perfect decoder
            painted = model.composite(ref, drive, out.motion.flow, out.motion.occlusion).clamp(0.0, 1.0)
            scores["painted_ssim"] += ssim(painted, drive, data_range=1.0).tolist()
            scores["painted_psnr"] += psnr(painted, drive, data_range=1.0).tolist()
        for name, images in (("sharp", recon), ("true_sharp", drive)):
            scores[name] += [frame_sharpness(image) for image in frames_to_uint8(images)]
        squared = ((recon - drive) ** 2).mean(dim=1)  # (B, S, S)
        unchanged = (ref - drive).abs().amax(dim=1) < STILL  # (B, S, S)
        for name, where in (("unchanged", unchanged), ("changed", ~unchanged)):
            error[name] += float(squared[where].sum())
            pixels[name] += int(where.sum())
    result = {k: float(np.mean(v)) if v else None for k, v in scores.items()}
    total_error, total_pixels = sum(error.values()), sum(pixels.values())
    for name in error:
        result[f"{name}_pixels"] = pixels[name] / total_pixels
        result[f"{name}_error_share"] = error[name] / total_error if total_error > 0 else 0.0
        result[f"{name}_psnr"] = pooled_psnr(error[name], pixels[name]) if pixels[name] else None
    result["pairs"] = len(scores["ssim"])
    result["sharpness"] = result["sharp"] / result["true_sharp"]
    return result


def table(r: dict[str, float]) -> str:
    def f(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    rows = [
        "| measure | SSIM | PSNR dB |",
        "|---|---|---|",
        f"| reconstruction ({r['pairs']} pairs) | {r['ssim']:.3f} | {r['psnr']:.2f} |",
        f"| copying the reference | {r['copy_ssim']:.3f} | {r['copy_psnr']:.2f} |",
        f"| hidden parts painted perfectly (same flow) | {f(r['painted_ssim'], '.3f')} | "
        f"{f(r['painted_psnr'], '.2f')} |",
        "",
        f"The occlusion map hides {r['hidden']:.0%} of the frame (mean over the pairs): the decoder paints there.",
        f"Sharpness (variance of the Laplacian) of the reconstructions: {r['sharpness']:.2f}x the true frames' "
        f"({r['sharp']:.0f} / {r['true_sharp']:.0f}).",
        "",
        "| pixels | share of pixels | share of squared error | PSNR dB there |",
        "|---|---|---|---|",
    ]
    for name in ("unchanged", "changed"):
        rows.append(f"| {name} between reference and drive | {r[f'{name}_pixels']:.2f} | "
                    f"{r[f'{name}_error_share']:.2f} | {f(r[f'{name}_psnr'], '.2f')} |")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "starter",
                        help="stage-1 checkpoint folder or a full model's (default: the starter)")  # fmt: skip
    parser.add_argument("--data", required=True, help="a procedural split folder never used in training")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--every", type=int, default=6, help="driving frame stride")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    clip_dirs = list_clips(Path(args.data))[: args.clips]
    if not clip_dirs:
        parser.error(f"no clips in {args.data}: make some with `dance-any-beat make-dataset`")
    result = measure(load_lfae(args.checkpoint), clip_dirs, args.every)
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
