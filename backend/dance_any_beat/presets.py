"""Quality and style presets, read from the TOML files in `presets/` that the CLI, the server and the add-on share.

A quality preset fills the generation settings an artist rarely tunes by hand (steps, sampler, guidance,
resolution, window overlap). Whatever the user sets explicitly wins: `apply_preset` only fills the fields not
named in `explicit`. The style file lists the dance styles with their display names; it must agree with
`dance_any_beat.styles` (a test checks it), so menus built from either say the same thing.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dance_any_beat.diffusion import SAMPLER_NAMES

if TYPE_CHECKING:
    from dance_any_beat.pipeline import GenerateParams

PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets"  # the repository's presets/ folder
QUALITY_FILE = "quality.toml"
STYLES_FILE = "styles.toml"
DEFAULT_PRESET = "standard"  # what generate uses for the fields nobody set
AUTO_STYLE = "auto"  # the style value meaning "let the music decide"
RESOLUTIONS: tuple[str, ...] = ("model", "full")
# GenerateParams fields a quality preset sets, in the order the TOML lists them
PRESET_FIELDS: tuple[str, ...] = ("steps", "sampler", "guidance", "resolution", "window_overlap")


@dataclass(frozen=True)
class QualityPreset:
    name: str  # the value of --preset / the "preset" parameter
    display_name: str  # what a menu shows
    description: str
    steps: int
    sampler: str
    guidance: float
    resolution: str
    window_overlap: int

    def settings(self) -> dict[str, Any]:
        """The GenerateParams fields this preset sets."""
        return {f: getattr(self, f) for f in PRESET_FIELDS}


@dataclass(frozen=True)
class StylePreset:
    name: str  # the value of --style / the "style" parameter
    display_name: str
    description: str


def _read(folder: Path | None, name: str) -> dict[str, Any]:
    path = (folder or PRESETS_DIR) / name
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"preset file {path} is missing; it ships in the repository's presets/") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML ({err})") from None


def _quality(name: str, table: Any, path: str) -> QualityPreset:
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [{name}] must be a table of settings")
    expected = {"display_name", "description", *PRESET_FIELDS}
    missing, extra = expected - set(table), set(table) - expected
    if missing or extra:
        raise ValueError(
            f"{path}: preset [{name}] must set exactly {', '.join(sorted(expected))}"
            + (f"; missing {', '.join(sorted(missing))}" if missing else "")
            + (f"; unknown {', '.join(sorted(extra))}" if extra else "")
        )
    preset = QualityPreset(name=name, **table)
    problems = []
    if not isinstance(preset.steps, int) or isinstance(preset.steps, bool) or preset.steps < 1:
        problems.append(f"steps must be an integer >= 1, got {preset.steps!r}")
    if preset.sampler not in SAMPLER_NAMES:
        problems.append(f"sampler must be one of {', '.join(SAMPLER_NAMES)}, got {preset.sampler!r}")
    if not isinstance(preset.guidance, int | float) or isinstance(preset.guidance, bool) or preset.guidance < 0:
        problems.append(f"guidance must be a number >= 0, got {preset.guidance!r}")
    if preset.resolution not in RESOLUTIONS:
        problems.append(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {preset.resolution!r}")
    overlap = preset.window_overlap
    if not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0:
        problems.append(f"window_overlap must be an integer >= 0, got {overlap!r}")
    if problems:
        raise ValueError(f"{path}: preset [{name}]: " + "; ".join(problems))
    return dataclasses.replace(preset, guidance=float(preset.guidance))


def load_quality_presets(folder: str | Path | None = None) -> dict[str, QualityPreset]:
    """Name -> preset, in file order, from `folder`/quality.toml (default: the repository's presets/)."""
    folder = Path(folder) if folder is not None else None
    raw = _read(folder, QUALITY_FILE)
    path = str((folder or PRESETS_DIR) / QUALITY_FILE)
    presets = {name: _quality(name, table, path) for name, table in raw.items()}
    if DEFAULT_PRESET not in presets:
        raise ValueError(f"{path} must define the [{DEFAULT_PRESET}] preset (generate's defaults)")
    return presets


def load_style_presets(folder: str | Path | None = None) -> dict[str, StylePreset]:
    """Style name -> display name and description, in menu order ("auto" first), from styles.toml."""
    folder = Path(folder) if folder is not None else None
    raw = _read(folder, STYLES_FILE)
    path = str((folder or PRESETS_DIR) / STYLES_FILE)
    styles = {}
    for name, table in raw.items():
        if not isinstance(table, dict) or set(table) != {"display_name", "description"}:
            raise ValueError(f"{path}: [{name}] must set exactly display_name and description")
        styles[name] = StylePreset(name=name, **table)
    return styles


def apply_preset(
    params: GenerateParams, name: str, explicit: set[str] | frozenset[str] | None = None
) -> GenerateParams:
    """`params` with the quality preset `name` filled in wherever the user did not set a value.

    explicit: names of the GenerateParams fields the user set (a CLI flag given, a key present in the HTTP
    request); those keep their value. None means "the preset fields that are not None", which is right for
    params whose unset preset fields are None (GenerateParams' defaults). Raises ValueError listing the valid
    names when `name` is unknown.
    """
    presets = load_quality_presets()
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(presets)}")
    if explicit is None:
        explicit = {f for f in PRESET_FIELDS if getattr(params, f) is not None}
    fill = {f: v for f, v in presets[name].settings().items() if f not in explicit}
    return dataclasses.replace(params, preset=name, **fill)
