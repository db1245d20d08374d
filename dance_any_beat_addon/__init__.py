"""Dance Any Beat: the Blender side (sidebar panel, beat markers, image strip) of a still-image dance generator.

The modules at this level are bpy-free (HTTP client, job payloads, the worker thread that runs a job, the local
server process, Set up Backend's installer, the command line's arguments, presets) so they are testable outside
Blender; everything that touches bpy lives in `blender/`. Importing this package does not import bpy: `register`
(and `command`) do.
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


def command(argv: list[str], check: bool = False) -> int:
    """The `-c dance_any_beat` command as a function, for the `--python-expr` fallback (README, "In Blender"):
    returns the exit status, or with `check` raises RuntimeError when it is not 0 (so that
    `blender -b shot.blend --python-exit-code 1 --python-expr "...command([...], check=True)"` exits with 1)."""
    from .blender import command as cli

    status = cli.run(list(argv))
    if check and status != 0:
        raise RuntimeError(f"dance_any_beat {' '.join(argv[:1])} failed (exit status {status}); see the messages "
                           "above")
    return status
