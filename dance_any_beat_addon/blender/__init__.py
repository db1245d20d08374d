"""The bpy side of the add-on: settings, operators, panels, timeline edits, the main-thread poll step and the
`-c dance_any_beat` command."""

from __future__ import annotations

import bpy

from .. import backend
from ..command_line import COMMAND_ID
from . import command, operators, panels, polling, props

classes = (*props.classes, *operators.classes, *panels.classes)

_cli_handle = None


def register() -> None:
    global _cli_handle
    for cls in classes:
        bpy.utils.register_class(cls)
    props.register_pointer()
    if hasattr(bpy.utils, "register_cli_command"):  # Blender 4.2+
        _cli_handle = bpy.utils.register_cli_command(COMMAND_ID, command.run)


def unregister() -> None:
    global _cli_handle
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    polling.clear()
    backend.free()  # no local server outlives the add-on
    props.unregister_pointer()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
