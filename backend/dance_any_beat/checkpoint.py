"""Checkpoints: safetensors weights plus the JSON config that rebuilds the model, so loading never guesses.

A checkpoint is a folder:
    config.json          {"format": ..., "version": ..., "kind": ..., <one typed config per part>}
    model.safetensors    every part's weights, keys prefixed by part name ("lfae.", "unet.", "music.");
                         the same config JSON is stored in the file's metadata, so a lone file still loads
The optimiser state for resuming lives elsewhere (`train_state.pt`); a checkpoint is what inference needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from dance_any_beat import __version__

FORMAT = "dance-any-beat-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


def save_checkpoint(
    directory: str | Path,
    parts: Mapping[str, Mapping[str, torch.Tensor]],
    config: Mapping[str, Any],
    *,
    kind: str,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `parts` (part name -> state dict) and `config` to `directory`, replacing an earlier checkpoint there.

    `dtype` (e.g. torch.float16) shrinks floating-point weights for shipping; loading casts back.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for part, state in parts.items():
        assert "." not in part, f"part names must not contain '.', got {part!r}"
        for key, value in state.items():
            value = value.detach().cpu()
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            tensors[f"{part}.{key}"] = value.contiguous()
    header = {"format": FORMAT, "version": FORMAT_VERSION, "package_version": __version__, "kind": kind,
              "parts": sorted(parts), **config}
    text = json.dumps(header, indent=2, sort_keys=True)
    # write next to the target, then rename: an interrupted save never leaves a half-written checkpoint
    tmp_weights = directory / (WEIGHTS_FILE + ".tmp")
    tmp_config = directory / (CONFIG_FILE + ".tmp")
    save_file(tensors, str(tmp_weights), metadata={"config": text})
    tmp_config.write_text(text + "\n")
    tmp_weights.replace(directory / WEIGHTS_FILE)
    tmp_config.replace(directory / CONFIG_FILE)
    return directory


def _weights_path(path: Path) -> Path:
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.exists():
        raise CheckpointError(
            f"checkpoint weights not found: {path}; give the checkpoint folder (holding {WEIGHTS_FILE} and "
            f"{CONFIG_FILE}), e.g. checkpoints/starter"
        )
    return path


def read_config(path: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """The config stored with a checkpoint; checks format, version and (if given) the kind of model."""
    weights = _weights_path(Path(path))
    try:
        with safe_open(str(weights), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{weights} is not a safetensors checkpoint ({err}); was it saved by this project?"
        ) from None
    config_file = weights.parent / CONFIG_FILE
    text = config_file.read_text() if config_file.exists() else metadata.get("config")
    if text is None:
        raise CheckpointError(f"{weights} carries no config (no {CONFIG_FILE} beside it, none in its metadata)")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"the config of {weights} is not valid JSON ({err})") from None
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{weights} is not a Dance Any Beat checkpoint (format {config.get('format')!r})")
    if config.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{weights} has checkpoint format version {config.get('version')}; this program reads version "
            f"{FORMAT_VERSION}: upgrade dance-any-beat or re-export the checkpoint"
        )
    if kind is not None and config.get("kind") != kind:
        raise CheckpointError(f"{weights} holds a {config.get('kind')!r} model, but a {kind!r} model is needed here")
    return config


def load_checkpoint(
    path: str | Path, *, kind: str | None = None, dtype: torch.dtype = torch.float32
) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """Config and per-part state dicts (floating-point weights cast to `dtype`)."""
    config = read_config(path, kind=kind)
    weights = _weights_path(Path(path))
    flat = load_file(str(weights))
    parts: dict[str, dict[str, torch.Tensor]] = {name: {} for name in config.get("parts", [])}
    for key, value in flat.items():
        part, _, rest = key.partition(".")
        if value.is_floating_point():
            value = value.to(dtype)
        parts.setdefault(part, {})[rest] = value
    return config, parts


def load_part(module: torch.nn.Module, state: Mapping[str, torch.Tensor], *, part: str, source: str | Path) -> None:
    """Load one part's weights strictly, turning shape/key mismatches into one readable error."""
    try:
        result = module.load_state_dict(dict(state), strict=False)
    except RuntimeError as err:  # shape mismatches
        detail = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise CheckpointError(
            f"the {part!r} weights in {source} do not fit the model its config describes: {detail}"
        ) from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing {len(result.missing_keys)} weights (e.g. {result.missing_keys[0]})")
    if result.unexpected_keys:
        problems.append(f"{len(result.unexpected_keys)} unexpected weights (e.g. {result.unexpected_keys[0]})")
    if problems:
        raise CheckpointError(
            f"the {part!r} weights in {source} do not fit the model its config describes: {'; '.join(problems)}"
        )
