"""What both training stages share: config files, distributed set-up, data loading, resumable state and resume
checks, AMP, the learning-rate schedule, and logs.

Kept apart from the stage scripts so each of those reads as one linear loop.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import math
import os
import time
import tomllib
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from dance_any_beat.train.datasets import EpochSampler, worker_init

T = TypeVar("T")

AmpMode = Literal["auto", "off", "bf16", "fp16"]


# ------------------------------------------------------------------------------------------------- configs
def _coerce(value: Any, annotation: Any, name: str) -> Any:
    """Check/convert one TOML or command-line value against its dataclass field type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() == "none" and type(None) in args):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError(f"{name}: {value!r} fits none of {annotation} ({'; '.join(errors)})")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, args))}; got {value!r}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        item = args[0] if args else Any
        items = [_coerce(v, item, name) for v in value]
        return tuple(items) if origin is tuple else items
    if annotation is bool:
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{name} must be true or false; got {value!r}")
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    if annotation in (int, float, str):
        try:
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return annotation(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be {annotation.__name__}; got {value!r}") from None
    return value


def _build(cls: type[T], values: dict[str, Any], prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        where = f" in [{prefix.rstrip('.')}]" if prefix else ""
        raise ValueError(f"unknown config keys {unknown}{where}; valid keys: {', '.join(sorted(names))}")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ValueError(f"{prefix}{key} must be a table of {hint.__name__} settings")
            kwargs[key] = _build(hint, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, hint, prefix + key)
    return cls(**kwargs)


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build config dataclass `cls` from its defaults, then a TOML file, then `key=value` overrides.

    Fields that are dataclasses themselves are TOML tables (`[model]`) and dotted keys in overrides
    (`model.latent_channels=32`). Unknown keys are errors: a typo must not silently train the wrong model.
    """
    values: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as f:
            values.update(tomllib.load(f))
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key=value")
        *tables, leaf = key.strip().split(".")
        target = values
        for table in tables:
            target = target.setdefault(table, {})
        target[leaf] = value.strip()
    return _build(cls, values, "")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


# --------------------------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(name)


def setup_distributed(device: str = "auto") -> DistInfo:
    """Single process, or one rank of `torchrun --nproc_per_node N` (gloo on CPU, nccl on GPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistInfo(0, 1, 0, pick_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device)
    if chosen.type == "cuda":
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank, chosen)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def run_distributed(device: str, train: Callable[[DistInfo], T]) -> T:
    """`train(info)` in this process's set-up (single process, or one rank under torchrun), torn down after."""
    info = setup_distributed(device)
    try:
        result = train(info)
    except BaseException:
        if dist.is_initialized():  # no barrier: the other ranks may be stuck in a collective
            dist.destroy_process_group()
        raise
    cleanup_distributed()
    return result


# ---------------------------------------------------------------------------------------------------- data
def make_loader(dataset: Dataset, config: Any, info: DistInfo) -> tuple[DataLoader, EpochSampler]:
    """This rank's batches of `dataset` (config.batch_size, config.num_workers) and the sampler that picks them:
    its shard of a per-epoch shuffle seeded with config.seed."""
    sampler = EpochSampler(dataset, rank=info.rank, world_size=info.world_size, seed=config.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers,
                        drop_last=True, pin_memory=info.device.type == "cuda", worker_init_fn=worker_init)
    return loader, sampler


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


# ---------------------------------------------------------------------------------------------- optimisation
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


def params_digest(module: nn.Module) -> str:
    """sha256 of every tensor of the module's state dict, in key order: equal weights give equal digests."""
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ state/logs
STATE_FILE = "train_state.pt"


def save_train_state(run_dir: Path, state: dict[str, Any]) -> Path:
    """Everything needed to resume (models, optimiser, step, config), written atomically over the last one."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(run_dir / STATE_FILE)
    return run_dir / STATE_FILE


def load_train_state(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / STATE_FILE
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


STAGES = {"lfae": "stage-1", "diffusion": "stage-2"}  # run kind -> the stage it trains, as messages name it


def read_init_state(path: str, kind: str, needs: str, folder: str) -> dict[str, Any] | None:
    """A new run's `init_weights`: None when `path` is a folder (a checkpoint, which the caller reads), else the
    train_state.pt of a `kind` run holding `needs`; a clear error for anything else. `folder` names the folder
    it may be instead."""
    stage = STAGES[kind]
    source = Path(path).expanduser()
    if source.is_dir():
        return None
    if not source.is_file():
        raise FileNotFoundError(f"init_weights {path} does not exist: give a {stage} run's train_state.pt or {folder}")
    state = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("kind") != kind or needs not in state:
        raise ValueError(f"init_weights {path} is not the train_state.pt of a {stage} ({kind}) run")
    return state


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


class CsvLog:
    """Append-only CSV of training scalars (one row per logged step), readable by any plotting tool."""

    def __init__(self, path: Path, fields: list[str]):
        self.path = path
        self.fields = ["step", *fields]
        new = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", newline="")  # noqa: SIM115 - closed in close()
        self._writer = csv.DictWriter(self._file, fieldnames=self.fields, extrasaction="ignore")
        if new:
            self._writer.writeheader()

    def write(self, step: int, values: dict[str, float]) -> None:
        self._writer.writerow({"step": step, **{k: f"{v:.6g}" for k, v in values.items()}})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_csv_log(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


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
