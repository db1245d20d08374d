"""Stage 2's targets computed once: the frozen LFAE's flows and reference latents of fixed windows, with music.

Each stage-2 step otherwise decodes T video frames per window and runs the frozen LFAE over all of them; on a
2-core CPU that is about half the step. A cache trades the fresh random window starts of every epoch for
`windows_per_clip` fixed ones per clip, drawn once. It is bound to the LFAE's weights and the window settings
it was made with: a cache made for other ones is refused with what differs, never silently reused.

File: one `torch.save` dict (x0 and latents in fp16) in the run's folder or wherever `target_cache` points;
regenerated, never committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dance_any_beat.models.dabfusion import FlowCoding, lfae_targets
from dance_any_beat.models.lfae import LFAE
from dance_any_beat.train.datasets import MotionWindows, worker_init

CACHE_KIND = "dance_any_beat.target_cache"
FIELDS = ("x0", "ref_latent", "audio", "rhythm", "style", "sr")


class CachedWindows(Dataset):
    """Windows of a target cache: "x0" (3, T, h, w), "ref_latent" (C, h, w), "audio" (N,), "rhythm" (T, R),
    "style" and "sr" (as `MotionWindows`)."""

    def __init__(self, tensors: dict[str, Tensor]) -> None:
        self.tensors = tensors
        self.epoch = 0  # set by EpochSampler; the windows are fixed

    def __len__(self) -> int:
        return len(self.tensors["x0"])

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        return {name: self.tensors[name][item] for name in FIELDS}


def cache_key(lfae_digest: str, windows: MotionWindows, coding: FlowCoding, source: str) -> dict[str, Any]:
    """What a cache's contents depend on; a cache whose key differs is stale."""
    return {
        "lfae_weights": lfae_digest, "source": source, "clips": len(windows.source), "size": windows.size,
        "fps": windows.fps, "num_frames": windows.num_frames, "windows_per_clip": windows.windows_per_clip,
        "seed": windows.seed, "flow_scale": coding.scale,
        "flow_knee": coding.knee,
    }  # fmt: skip


@torch.no_grad()
def build_target_cache(
    path: Path,
    lfae: LFAE,
    windows: MotionWindows,
    coding: FlowCoding,
    key: dict[str, Any],
    *,
    batch_size: int = 8,
    num_workers: int = 2,
    progress: bool = True,
) -> CachedWindows:
    """Run the frozen LFAE over every window once (epoch 0's random starts) and save the result to `path`."""
    device = next(lfae.parameters()).device
    windows.epoch = 0
    loader = DataLoader(windows, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        worker_init_fn=worker_init)  # fmt: skip
    parts: dict[str, list[Tensor]] = {name: [] for name in FIELDS}
    for batch in tqdm(loader, desc="stage-2 targets", unit="batch", disable=not progress):
        frames = batch["frames"].to(device).transpose(1, 2)  # (B, 3, T, S, S)
        x0, ref_latent = lfae_targets(lfae, frames, coding)  # (B, 3, T, h, w), (B, C, h, w)
        parts["x0"].append(x0.half().cpu())
        parts["ref_latent"].append(ref_latent.half().cpu())
        for name in ("audio", "rhythm", "style", "sr"):
            parts[name].append(batch[name])
    rates = {int(r) for r in torch.cat(parts["sr"]).tolist()}
    if len(rates) != 1:
        raise ValueError(f"the clips mix audio sample rates {sorted(rates)}; a target cache needs one rate")
    tensors = {name: torch.cat(chunks) for name, chunks in parts.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({"kind": CACHE_KIND, "key": key, "tensors": tensors}, partial)
    partial.replace(path)
    return CachedWindows(tensors)


def load_target_cache(path: Path, key: dict[str, Any]) -> CachedWindows:
    """The cache at `path` if it was made for `key`; otherwise a ValueError that names the difference."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("kind") != CACHE_KIND:
        raise ValueError(f"{path} is not a stage-2 target cache; point target_cache at another file")
    changed = [f"{k}: {saved['key'].get(k)!r} -> {v!r}" for k, v in key.items() if saved["key"].get(k) != v]
    if changed:
        raise ValueError(
            f"the target cache {path} was made for other settings ({'; '.join(changed)}); delete it to rebuild it "
            "or point target_cache at a new file"
        )
    return CachedWindows(saved["tensors"])
