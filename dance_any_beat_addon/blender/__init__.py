"""The bpy side of the add-on: settings, operators, panels, timeline edits and the main-thread poll step."""

from __future__ import annotations

import bpy

from . import operators, panels, polling, props

classes = (*props.classes, *operators.classes, *panels.classes)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    props.register_pointer()


def unregister() -> None:
    polling.clear()
    props.unregister_pointer()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
