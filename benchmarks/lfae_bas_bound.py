"""How well stage 2 could dance at best through the LFAE: BAS of real motion coded by the LFAE and decoded.

    .venv/bin/python benchmarks/lfae_bas_bound.py [--clips 8] [--data datasets/procedural/test]

For each held-out clip: the real frames' BAS (the ground truth `evaluate` compares with); the LFAE's flows from
the first frame to every 30 fps frame, decoded (what a perfect generator at 30 fps would give); and the same
flows taken at the model's 10 fps, resampled to 30 fps as `generate` does, decoded (what a perfect generator
at the model's fps gives). The gap between the last and `evaluate`'s generated BAS is the generator's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from common import STARTER, held_out_clips, table

from dance_any_beat.data.procedural import read_clip
from dance_any_beat.metrics import video_beat_alignment
from dance_any_beat.models.dabfusion import lfae_targets
from dance_any_beat.pipeline import frames_to_uint8, load_model, resample_time


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=STARTER, help="model folder (the starter model)")
    parser.add_argument("--data", type=Path, default=None, help="procedural split (datasets/procedural/test)")
    parser.add_argument("--clips", type=int, default=8, help="held-out clips (8)")
    args = parser.parse_args()
    model = load_model(args.checkpoint, "cpu")
    model.eval()
    coding, model_fps = model.config.data.flow_coding, model.config.data.fps
    rows = []
    for path in held_out_clips(args.data, args.clips):
        clip = read_clip(path)
        frames = torch.from_numpy(clip.frames).permute(3, 0, 1, 2)[None].float() / 255.0  # (1, 3, T, S, S)
        n = frames.shape[2]
        rows_at_model_fps = np.round(np.arange(0, clip.seconds, 1.0 / model_fps) * clip.fps).astype(int)
        rows_at_model_fps = rows_at_model_fps[rows_at_model_fps < n]
        x_full, ref = lfae_targets(model.lfae, frames, coding)
        x_model, _ = lfae_targets(model.lfae, frames[:, :, rows_at_model_fps], coding)
        x_resampled = resample_time(x_model, model_fps, float(clip.fps), n)
        view = frames[:, :, 0]
        full = frames_to_uint8(model.render(ref, x_full, ref_image=view)[0].transpose(0, 1))
        resampled = frames_to_uint8(model.render(ref, x_resampled, ref_image=view)[0].transpose(0, 1))
        rows.append({"clip": path.name, "style": clip.style,
                     "real": video_beat_alignment(clip.frames, clip.beat_times, clip.fps),
                     "lfae_full": video_beat_alignment(full, clip.beat_times, clip.fps),
                     "lfae_model_fps": video_beat_alignment(resampled, clip.beat_times, clip.fps)})  # fmt: skip
        print(rows[-1], flush=True)
    rows.append({"clip": "**mean**", "style": "", **{k: float(np.mean([r[k] for r in rows]))
                                                     for k in ("real", "lfae_full", "lfae_model_fps")}})  # fmt: skip
    print(table(rows, [("clip", "clip", "{}"), ("style", "style", "{}"), ("BAS real video", "real", "{:.3f}"),
                       ("LFAE at 30 fps", "lfae_full", "{:.3f}"),
                       (f"LFAE at {model_fps:g} fps -> 30", "lfae_model_fps", "{:.3f}")]))  # fmt: skip


if __name__ == "__main__":
    main()
