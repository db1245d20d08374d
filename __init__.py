"""Entry point of the Dance Any Beat Blender extension (the zip built from `blender_manifest.toml`).

Blender loads the extension as a package whose root holds this file; the add-on itself lives in
`dance_any_beat_addon/`. Nothing else in the repository imports this module, but tools that walk the
repository (pytest collecting the root as a package) may import it as a plain module: there is no parent
package then, and nothing to register.
"""

if __package__:
    from .dance_any_beat_addon import register, unregister

    __all__ = ["register", "unregister"]
