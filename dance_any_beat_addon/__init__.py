"""Dance Any Beat: the Blender side (sidebar panel, beat markers, image strip) of a still-image dance generator.

The modules at this level are bpy-free (HTTP client, job payloads, the worker thread that runs a job, the local
server process, presets) so they are testable outside Blender; everything that touches bpy lives in `blender/`.
Importing this package does not import bpy: `register` does.
"""

# The extension's own package ("bl_ext.<repo>.dance_any_beat"): this package sits one level below it in the
# extension zip. AddonPreferences are looked up under that name.
ADDON_PACKAGE = __package__.rpartition(".")[0] or __package__


def register() -> None:
    from . import blender

    blender.register()


def unregister() -> None:
    from . import blender

    blender.unregister()
