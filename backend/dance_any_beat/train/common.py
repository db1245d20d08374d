"""What both training stages share: config files, distributed set-up, resumable state, CSV logs.

Kept apart from the stage scripts so each of those reads as one linear loop.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


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
