"""Pretrained third-party weight files: where they are expected, how they are read, the errors a user can act on.

Nothing is downloaded: the user fetches each file once and gives its path (a config key or a CLI option), or,
for files with a default place, puts it under `cache_dir()/"weights"`. Every error names the file, the option
that sets it and where to get it: `MissingWeightsError` when it is not there, `WeightsFormatError` when it is
not the file expected (unreadable, no tensors, keys or shapes that do not fit the network).
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dance_any_beat import cache_dir


class MissingWeightsError(FileNotFoundError):
    """A weights file that is needed was not given or is not on disk; the message says how to provide it."""

    def __init__(self, message: str, *, path: Path | None = None, option: str | None = None):
        super().__init__(message)
        self.path = path  # the file looked for; None when no path was given and there is no default place
        self.option = option  # the config key or CLI option that sets the file

    def __str__(self) -> str:  # OSError's own __str__ would add errno formatting around the message
        return self.args[0]


class WeightsFormatError(ValueError):
    """A weights file exists but is not the one expected (unreadable, or not the network's keys and shapes)."""


@dataclass(frozen=True)
class WeightsFile:
    """A third-party weights file as the user is told about it when it is missing or wrong."""

    what: str  # what it holds, e.g. "the I3D Kinetics-400 weights for FVD"
    file_name: str  # the public file's name, e.g. "i3d_pretrained_400.pt"
    source: str  # where to get it, one or more sentences
    option: str  # the config key or CLI option that sets its path, e.g. "music.clap_checkpoint"
    has_default: bool = False  # looked for at default_path() when no path is set
    otherwise: str = ""  # how to do without it, one sentence (empty: it cannot be done without)

    def default_path(self) -> Path:
        return cache_dir() / "weights" / self.file_name

    def remedy(self) -> str:
        """How to provide the file: the option that sets it, the public file and where to get it."""
        default = f" (or put it at {self.default_path()})" if self.has_default else ""
        return f"Set {self.option} to the file {self.file_name}{default}. {self.source}"


def require_file(path: str | os.PathLike | None, spec: WeightsFile) -> Path:
    """The file to read: `path` (or the default place if `path` is not set and spec has one); raises if absent."""
    file = Path(path).expanduser() if path else spec.default_path() if spec.has_default else None
    if file is not None and file.is_file():
        return file
    if file is None:
        found = "no path was given"
    elif not path:
        found = f"{spec.option} is not set and the default place {file} has no such file"
    else:
        found = f"'{file}' is a folder, not a file" if file.is_dir() else f"'{file}' does not exist"
    otherwise = f" {spec.otherwise}" if spec.otherwise else ""
    raise MissingWeightsError(
        f"{spec.what}: {found}. {spec.remedy()}{otherwise} Nothing is downloaded automatically.",
        path=file,
        option=spec.option,
    )


def read_state_dict(
    path: Path,
    spec: WeightsFile,
    *,
    wrappers: tuple[str, ...] = ("module.",),
    unpickle_fallback: bool = False,
) -> dict[str, torch.Tensor]:
    """The tensors of a .pt/.pth (torch.save) or .safetensors file, on the CPU.

    A {'state_dict': ...} training checkpoint is unwrapped and non-tensor entries are dropped. A prefix in
    `wrappers` that every key has is removed, repeatedly ('module.': saved from DataParallel / DDP).
    `unpickle_fallback`: when the file holds pickled objects other than tensors (training checkpoints with numpy
    scalars), load it with full unpickling, with a warning (the user downloaded this file themselves).
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError:
                if not unpickle_fallback:
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=False)
                warnings.warn(f"{path} holds more than tensors; it was loaded with full unpickling", stacklevel=2)
    except Exception as err:  # unpicklable, truncated, not a torch file at all
        raise WeightsFormatError(
            f"{spec.what}: could not read '{path}' as a state dict; it may be damaged or an incomplete download. "
            f"{spec.remedy()} ({type(err).__name__}: {err})"
        ) from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, Mapping) else {}
    if not state:
        raise WeightsFormatError(
            f"{spec.what}: '{path}' holds no tensors ({type(obj).__name__}), so it is not {spec.file_name}. "
            f"{spec.remedy()}"
        )
    while prefix := next((p for p in wrappers if all(k.startswith(p) for k in state)), None):
        state = {k.removeprefix(prefix): v for k, v in state.items()}
    return state


def _listing(label: str, items: list[str], n: int = 5) -> str:
    return f"{label} ({len(items)}): " + ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def load_checked(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    path: Path,
    spec: WeightsFile,
    *,
    optional: tuple[str, ...] = (),
    allow_unused: bool = False,
) -> None:
    """load_state_dict that first checks keys and shapes and fails with one readable WeightsFormatError.

    Keys ending in one of `optional` may be absent (e.g. BatchNorm's num_batches_tracked in old files).
    allow_unused: the file may hold more than the module (a bigger network's file, of which a subset is used);
    its unused keys are named only when keys are missing, as a hint of what the file is.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(optional)]
    unused = [k for k in state if k not in expected]
    shapes = [
        f"{k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or shapes or (unused and not allow_unused):
        parts = [_listing("missing keys", missing)] if missing else []
        if unused and not allow_unused:
            parts.append(_listing("unexpected keys", unused))
        elif unused and missing:
            parts.append(_listing("unused keys in the file", unused))
        parts += [_listing("wrong shapes", shapes, 3)] if shapes else []
        raise WeightsFormatError(
            f"{spec.what}: '{path}' does not match the expected {spec.file_name} layout ({'; '.join(parts)}). "
            f"{spec.remedy()}"
        )
    module.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
