"""Stage 1 of DabFusion: train the latent flow auto-encoder (LFAE) to rebuild one frame of a video from another.

Launch (the config file's keys are the fields of `LFAETrainConfig`; `--set key=value` overrides any of them):

    dance-any-beat make-dataset --out datasets/procedural --num-clips 2000 --split train
    dance-any-beat train lfae --config configs/lfae_starter.toml
    dance-any-beat train lfae --config configs/lfae_starter.toml --set device=cuda --set batch_size=32
    torchrun --standalone --nproc_per_node 4 -m dance_any_beat.cli train lfae --config configs/lfae_starter.toml

Running the same command again resumes from OUT/train_state.pt (model, optimiser, step); a changed model
config is refused. OUT/log.csv has one row per `log_every` steps; OUT/checkpoint/ is the stage-1 checkpoint
(kind "lfae") that `train diffusion` reads as its `lfae_checkpoint`.

The helpers below the loop (AMP, learning-rate schedule, resume checks, logs) are shared with stage 2.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from dance_any_beat.models.dabfusion import save_lfae_checkpoint
from dance_any_beat.models.lfae import LFAE, LFAEConfig
from dance_any_beat.models.losses import LFAELoss, LFAELossConfig
from dance_any_beat.train.common import (
    STATE_FILE,
    CsvLog,
    DistInfo,
    cleanup_distributed,
    config_to_dict,
    load_train_state,
    read_csv_log,
    save_train_state,
    setup_distributed,
)
from dance_any_beat.train.datasets import EpochSampler, FramePairs, open_source, worker_init

AmpMode = Literal["auto", "off", "bf16", "fp16"]


@dataclass
class LFAETrainConfig:
    """Every setting of a stage-1 run; a TOML file gives any subset, `[model]` and `[loss]` are tables."""

    # data
    data_kind: Literal["procedural", "aist"] = "procedural"  # the procedural data set or AIST++ videos
    data_path: str = "datasets/procedural"  # procedural: the make-dataset --out folder; aist: the AIST++ root
    data_split: str = "train"  # procedural: a split folder under data_path; aist: train (anything else: test)
    pairs_per_clip: int = 16  # random (reference, drive) frame pairs drawn per clip per epoch
    # output
    out: str = "runs/lfae"  # run folder: train_state.pt, log.csv, checkpoint/; an existing run there is resumed
    # model and loss
    model: LFAEConfig = field(default_factory=LFAEConfig)
    loss: LFAELossConfig = field(default_factory=LFAELossConfig)
    affine_warmup_steps: int = 1000  # region motions ramp from shift-only to affine (see LFAE.set_affine_strength)
    # optimisation (AdamW; linear warm-up, then cosine decay to min_lr at `steps`)
    batch_size: int = 8  # per process; the effective batch is batch_size x processes
    lr: float = 2e-4  # peak learning rate
    min_lr: float = 2e-5  # learning rate at the last step
    warmup_steps: int = 200  # linear warm-up from 0 to lr
    betas: tuple[float, ...] = (0.5, 0.999)  # Adam betas (FOMM's)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 = off
    steps: int = 50_000  # optimiser steps in total (a resumed run continues to this)
    # logging and checkpoints
    log_every: int = 50  # steps between rows of log.csv (each row averages the steps since the last)
    checkpoint_every: int = 1000  # steps between checkpoint + train_state saves (and one at the end)
    progress: bool = True  # tqdm bar on rank 0
    # system
    num_workers: int = 2  # DataLoader processes per training process (0 = load in the training process)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: AmpMode = "auto"  # mixed precision on CUDA (auto = bf16 where supported, else fp16); never on CPU
    seed: int = 0  # model init, data order, random pairs, loss randomness
    dump_rank_params: bool = False  # tests: each rank writes a digest of its final weights to OUT/params_rank<r>.txt

    def __post_init__(self) -> None:
        for name in ("pairs_per_clip", "batch_size", "steps", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_optimiser_settings(self)


# ----------------------------------------------------------------------------------------------------------------
# The run


class LFAEWithLoss(nn.Module):
    """The LFAE and its loss as one module, so DDP sees every use of the weights in one forward (the
    equivariance term runs the region predictor a second time)."""

    def __init__(self, lfae: LFAE, loss: LFAELoss) -> None:
        super().__init__()
        self.lfae = lfae
        self.loss = loss

    def forward(
        self, ref: Tensor, drive: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        output = self.lfae(ref, drive)
        return self.loss(self.lfae, output, drive, generator)


def train_lfae(config: LFAETrainConfig) -> Path:
    """Train (or resume) a stage-1 run; returns the run folder. Single process, or one rank under torchrun."""
    info = setup_distributed(config.device)
    try:
        run_dir = _train(config, info)
    except BaseException:
        if dist.is_initialized():  # no barrier: the other ranks may be stuck in a collective
            dist.destroy_process_group()
        raise
    cleanup_distributed()
    return run_dir


def _train(config: LFAETrainConfig, info: DistInfo) -> Path:
    run_dir, device = Path(config.out), info.device
    amp_dtype = resolve_amp(config.amp, device)

    # data: random frame pairs of one clip, this rank's shard of a per-epoch shuffle
    source = open_source(config.data_kind, config.data_path, config.data_split)
    dataset = FramePairs(source, size=config.model.image_size, pairs_per_clip=config.pairs_per_clip, seed=config.seed)
    sampler = EpochSampler(dataset, rank=info.rank, world_size=info.world_size, seed=config.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers,
                        drop_last=True, pin_memory=device.type == "cuda", worker_init_fn=worker_init)

    # model, loss, optimiser (the same initial weights on every rank; DDP also broadcasts rank 0's)
    torch.manual_seed(config.seed)
    model = LFAE(config.model).to(device)
    criterion = LFAELoss(config.loss).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=tuple(config.betas),
                                  weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    # resume
    architecture = {"model": config_to_dict(config.model)}
    step = 0
    state = load_train_state(run_dir)
    if state is not None:
        check_resume(state, "lfae", architecture, run_dir)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
        del state
    generator = seeded_generator(device, config.seed, info.rank, step)  # the loss's random warps

    wrapped = LFAEWithLoss(model, criterion)
    if info.distributed:
        wrapped = DistributedDataParallel(wrapped, device_ids=[device.index] if device.type == "cuda" else None)
    batches = epoch_batches(loader, sampler, step)

    def save() -> None:
        if not info.is_main:
            return
        training = {"step": step, "data_kind": config.data_kind, "data_path": config.data_path}
        save_lfae_checkpoint(run_dir / "checkpoint", model, extra=training)
        save_train_state(run_dir, {
            "kind": "lfae", "step": step, "config": config_to_dict(config), "architecture": architecture,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
        })  # fmt: skip

    model.train()
    with RunLog(run_dir, step, config.steps, "lfae", enabled=info.is_main, progress=config.progress) as log:
        while step < config.steps:
            batch = next(batches)
            ref = batch["ref"].to(device, non_blocking=True)  # (B, 3, S, S)
            drive = batch["drive"].to(device, non_blocking=True)  # (B, 3, S, S)
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            warmup = config.affine_warmup_steps
            model.set_affine_strength(min(1.0, step / warmup) if warmup > 0 else 1.0)

            with autocast(device, amp_dtype):
                loss, parts = wrapped(ref, drive, generator)
            check_finite(loss, step)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or math.inf)
            scaler.step(optimizer)
            scaler.update()
            step += 1

            log.add({"loss": loss.detach(), **parts, "grad_norm": grad_norm}, lr)
            if step % config.log_every == 0 or step == config.steps:
                log.write(step)
            if step % config.checkpoint_every == 0 or step == config.steps:
                save()
    if config.dump_rank_params:
        (run_dir / f"params_rank{info.rank}.txt").write_text(params_digest(model) + "\n")
    return run_dir


# ----------------------------------------------------------------------------------------------------------------
# Helpers shared by both stages


def check_optimiser_settings(config: Any) -> None:
    """The optimiser fields both stages' configs share."""
    if config.lr <= 0 or config.min_lr < 0 or config.min_lr > config.lr:
        raise ValueError(f"need 0 <= min_lr <= lr and lr > 0, got lr={config.lr}, min_lr={config.min_lr}")
    if config.warmup_steps < 0 or config.grad_clip < 0 or config.num_workers < 0:
        raise ValueError("warmup_steps, grad_clip and num_workers must be >= 0")
    if len(config.betas) != 2:
        raise ValueError(f"betas must be two numbers (beta1, beta2), got {list(config.betas)}")


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for `mode` on `device`; None = full precision (always on CPU)."""
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "fp16" or (mode == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision in `dtype`, or nothing at all when it is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def lr_at(step: int, config: Any) -> float:
    """Linear warm-up to `lr`, then cosine decay to `min_lr` at `steps` (nanoGPT's schedule)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


def seeded_generator(device: torch.device, *keys: int) -> torch.Generator:
    """A generator on `device` seeded from (seed, rank, step, ...): each rank and each resume draws its own."""
    seed = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])  # 32 bits
    return torch.Generator(device).manual_seed(seed)


def check_finite(loss: Tensor, step: int) -> None:
    if not torch.isfinite(loss.detach()).item():
        raise FloatingPointError(
            f"the loss is {loss.item()} at step {step + 1}: lower lr, set grad_clip, or resume from the last "
            "checkpoint with amp=off"
        )


def _differences(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    return [] if old == new else [f"{prefix} was {old!r}, now {new!r}"]


def check_resume(state: dict[str, Any], kind: str, expected: dict[str, Any], run_dir: Path) -> None:
    """Refuse to resume a run of another stage or with other model settings; the message says what changed.

    `expected` is what the new run would build (configs as dicts); the state holds the same under "architecture".
    """
    path = run_dir / STATE_FILE
    if state.get("kind") != kind:
        raise ValueError(
            f"{path} is the state of a {state.get('kind')!r} run, not a {kind!r} one: choose another `out` folder"
        )
    saved = state.get("architecture") or {}
    changed = _differences({k: saved.get(k) for k in expected}, expected, "")
    if changed:
        shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
        raise ValueError(
            f"{path} was trained with other model settings ({shown}); resume with the settings it was started "
            "with, or give a new `out` folder to start a new run"
        )


def epoch_batches(loader: DataLoader, sampler: EpochSampler, start_step: int) -> Iterator[dict[str, Tensor]]:
    """Endless batches, epoch after epoch, starting at the batch `start_step` would have been."""
    per_epoch = len(sampler.inner) // loader.batch_size
    if per_epoch == 0:
        raise ValueError(
            f"the data set gives each process {len(sampler.inner)} samples, fewer than batch_size "
            f"{loader.batch_size}: use more clips (or pairs/windows per clip) or a smaller batch"
        )
    epoch, offset = divmod(start_step, per_epoch)
    while True:
        sampler.set_epoch(epoch, skip=offset * loader.batch_size)
        yield from loader
        epoch, offset = epoch + 1, 0


def params_digest(module: nn.Module) -> str:
    """sha256 of every tensor of the module's state dict, in key order: equal weights give equal digests."""
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class RunLog:
    """log.csv (rows averaged over `log_every` steps, with steps/s) and the tqdm bar; silent off rank 0.

    A resumed run first drops the rows past its saved step, so the log never holds a step twice.
    """

    def __init__(self, run_dir: Path, step: int, total: int, name: str, *, enabled: bool, progress: bool) -> None:
        from tqdm import tqdm

        self.path, self.start_step, self.enabled = run_dir / "log.csv", step, enabled
        self.csv: CsvLog | None = None
        self.sums: dict[str, Tensor] = {}
        self.count = 0
        self.lr = 0.0
        self.clock = time.perf_counter()
        self.bar = tqdm(total=total, initial=step, desc=name, unit="step", dynamic_ncols=True,
                        disable=not (enabled and progress))

    def add(self, values: dict[str, Tensor], lr: float) -> None:
        """One step's scalars (kept as tensors: no GPU sync until a row is written)."""
        for key, value in values.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += 1
        self.lr = lr
        self.bar.update(1)

    def write(self, step: int) -> dict[str, float]:
        now = time.perf_counter()
        row = {k: v.item() / self.count for k, v in self.sums.items()}
        row["lr"] = self.lr
        row["steps_per_s"] = self.count / max(now - self.clock, 1e-9)
        self.sums, self.count, self.clock = {}, 0, now
        if not self.enabled:
            return row
        if self.csv is None:
            self.csv = open_log(self.path, list(row), keep_until=self.start_step)
        self.csv.write(step, row)
        self.bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)
        return row

    def close(self) -> None:
        self.bar.close()
        if self.csv is not None:
            self.csv.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_log(path: Path, fields: list[str], keep_until: int) -> CsvLog:
    """The run's CsvLog, keeping the rows up to step `keep_until` (those of the state being resumed)."""
    if path.exists():
        rows = [r for r in read_csv_log(path) if r.get("step", math.inf) <= keep_until]
        names = ["step", *fields]
        with open(path, newline="") as f:
            old = next(csv.reader(f), [])
        names += [n for n in old if n not in names]
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=names)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: (int(v) if k == "step" else f"{v:.6g}") for k, v in row.items()})
        tmp.replace(path)
        fields = names[1:]
    return CsvLog(path, fields)
