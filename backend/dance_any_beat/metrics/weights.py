"""Loading third-party weight files (I3D for FVD, AlexNet/VGG + LPIPS layers) with errors a user can act on.

Nothing is downloaded: the user fetches each file once and passes its path. A missing file names itself, the
argument or option that takes it, and where to get it; a wrong file says which keys it lacks or has extra.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


class MissingWeightsError(FileNotFoundError):
    """A metric needs a weights file that was not given or does not exist."""


class WeightsFormatError(ValueError):
    """A weights file exists but does not hold the expected network."""


@dataclass(frozen=True)
class WeightsSpec:
    """What a metric needs: shown to the user when the file is missing or wrong."""

    what: str  # e.g. "I3D Kinetics-400 weights for FVD"
    filename: str  # the public file name, e.g. "i3d_pretrained_400.pt"
    source: str  # where to get it, one sentence


def require_file(path: str | Path | None, spec: WeightsSpec, option: str) -> Path:
    """The path as a Path if the file exists; otherwise a MissingWeightsError saying how to provide it."""
    if path is not None and Path(path).is_file():
        return Path(path)
    found = "no path was given" if path is None else f"'{path}' does not exist"
    raise MissingWeightsError(
        f"{spec.what}: {found}. Set {option} to the file {spec.filename}. {spec.source} "
        "Nothing is downloaded automatically."
    )


def read_state_dict(path: Path, spec: WeightsSpec) -> dict[str, torch.Tensor]:
    """Tensors of a .pt/.pth (torch.save of a state dict) or .safetensors file, on the CPU."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpicklable, truncated, not a torch file at all
        raise WeightsFormatError(f"{spec.what}: cannot read '{path}' as a state dict ({err}). {spec.source}") from err
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFormatError(f"{spec.what}: '{path}' is not a state dict of tensors. {spec.source}")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return dict(state)


def _few(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_checked(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    spec: WeightsSpec,
    path: Path,
    optional: tuple[str, ...] = ("num_batches_tracked",),
) -> None:
    """load_state_dict that fails with a readable message on missing, unexpected or mis-shaped tensors.

    Keys ending in one of `optional` may be absent (old checkpoints predate BatchNorm's batch counter).
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(optional)]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = [f"missing keys: {_few(missing)}"] if missing else []
        parts += [f"unexpected keys: {_few(unexpected)}"] if unexpected else []
        parts += [f"wrong shapes: {_few(shapes, 3)}"] if shapes else []
        raise WeightsFormatError(
            f"{spec.what}: '{path}' does not match the expected {spec.filename} layout ({'; '.join(parts)}). "
            f"{spec.source}"
        )
    module.load_state_dict(dict(state), strict=False)
