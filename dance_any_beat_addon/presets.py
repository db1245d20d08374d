"""The style and quality presets the add-on's menus show, read from the bundled `presets/` TOML files.

The same files the backend reads (`dance_any_beat.presets`); this is a bpy-free, torch-free reader of the names
and display names only. In the repository and in the extension zip, `presets/` sits next to this package.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"
DEFAULT_STYLE = "auto"
DEFAULT_QUALITY = "standard"


def _items(filename: str, folder: Path | None = None) -> list[tuple[str, str, str]]:
    """(name, display name, description) per table, in file order; empty when the file is missing."""
    try:
        with open((folder or PRESETS_DIR) / filename, "rb") as f:
            tables = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    return [(name, str(t.get("display_name", name)), str(t.get("description", ""))) for name, t in tables.items()
            if isinstance(t, dict)]


def style_items(folder: Path | None = None) -> list[tuple[str, str, str]]:
    return _items("styles.toml", folder) or [(DEFAULT_STYLE, "Auto", "The music decides")]


def quality_items(folder: Path | None = None) -> list[tuple[str, str, str]]:
    return _items("quality.toml", folder) or [(DEFAULT_QUALITY, "Standard", "The backend's default settings")]
