"""Entry point of the Dance Any Beat Blender extension (the zip built from `blender_manifest.toml`).

Blender loads the extension as a package whose root holds this file; the add-on itself lives in
`dance_any_beat_addon/`. Nothing else in the repository imports this module.
"""

from .dance_any_beat_addon import register, unregister

__all__ = ["register", "unregister"]
