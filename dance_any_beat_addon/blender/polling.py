"""The main-thread side of background work: one poll step that a timer calls (and tests call by hand).

Each step only reads snapshots the worker threads keep (no I/O, no waiting) and writes bpy data: the job's
progress into `scene.dance_any_beat`, and once a job is done the result strip. In module and background mode
timers never fire; the operators then run the work to completion and call `poll_step` themselves (`blocking`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bpy

from .. import backend, backend_setup
from ..jobs import BackgroundTask, JobRunner
from . import timeline

POLL_INTERVAL = 0.25  # seconds between steps while something runs


@dataclass
class PendingJob:
    scene_name: str
    runner: JobRunner
    start: int
    end: int
    channel: int


@dataclass
class PendingTask:
    scene_name: str
    task: BackgroundTask
    apply: Callable[[bpy.types.Scene, Any], str]  # main thread: apply the result, return a message for the report
    label: str


@dataclass
class PendingCall:
    """Work not tied to a scene (Test connection, Set up backend): `step()` runs on the main thread at every poll
    step and returns True once it has applied the finished result."""

    step: Callable[[], bool]
    label: str
    scene_name: str = ""  # no scene: never makes a scene busy


_pending: list[PendingJob | PendingTask | PendingCall] = []


def blocking() -> bool:
    """Whether operators run their work to the end before returning: in background mode (`blender -b`, bpy as
    a module) no timer ever fires. Tests that drive `poll_step` by hand as a timer would turn this off."""
    return bool(bpy.app.background)


def add(item: PendingJob | PendingTask | PendingCall) -> None:
    _pending.append(item)
    if not bpy.app.timers.is_registered(poll_step):
        bpy.app.timers.register(poll_step, first_interval=POLL_INTERVAL, persistent=True)


def active_job(scene: bpy.types.Scene) -> PendingJob | None:
    return next((p for p in _pending if isinstance(p, PendingJob) and p.scene_name == scene.name), None)


def running(label: str) -> bool:
    """Whether a PendingCall with this label (e.g. an operator's bl_label) is still under way."""
    return any(isinstance(p, PendingCall) and p.label == label for p in _pending)


def busy(scene: bpy.types.Scene) -> bool:
    """Whether something of ours runs for this scene (a job or a beat detection)."""
    return any(p.scene_name == scene.name for p in _pending)


def poll_step() -> float | None:
    """One step: refresh the state of everything pending, apply what finished. Returns the next interval, or None
    (the timer stops) when nothing is left."""
    for item in list(_pending):
        if isinstance(item, PendingCall):
            try:
                finished = item.step()
            except Exception as err:  # a bug in a step must not keep the timer failing forever
                notify(f"{item.label}: {err}", "ERROR")
                finished = True
            if finished:
                _pending.remove(item)
            continue
        scene = bpy.data.scenes.get(item.scene_name)
        if scene is None:  # the scene was deleted: drop its work
            if isinstance(item, PendingJob):
                item.runner.cancel()
            _pending.remove(item)
            continue
        finished = _step_job(scene, item) if isinstance(item, PendingJob) else _step_task(scene, item)
        if finished:
            _pending.remove(item)
    _redraw()
    return POLL_INTERVAL if _pending else None


def _step_task(scene: bpy.types.Scene, item: PendingTask) -> bool:
    if not item.task.done:
        return False
    props = scene.dance_any_beat
    if item.task.error:
        props.error = f"{item.label}: {item.task.error}"
        notify(props.error, "ERROR")
        return True
    try:
        message = item.apply(scene, item.task.result)
    except Exception as err:
        props.error = f"{item.label}: {err}"
        notify(props.error, "ERROR")
        return True
    props.error = ""
    notify(message, "INFO")
    _undo_push(item.label)
    return True


def _step_job(scene: bpy.types.Scene, item: PendingJob) -> bool:
    snap = item.runner.snapshot()
    props = scene.dance_any_beat
    state = snap.state.upper()
    if props.job_state != state:
        props.job_state = state
    if props.job_id != snap.job_id:
        props.job_id = snap.job_id
    props.progress = snap.progress
    if props.stage != snap.stage:
        props.stage = snap.stage
    props.eta_s = -1.0 if snap.eta_s is None else snap.eta_s
    if not snap.finished:
        return False
    if snap.state == "done":
        try:
            strip = timeline.add_image_strip(scene, snap.frames, item.start, item.end, item.channel,
                                             name=f"Dance {snap.job_id[:8]}")
        except Exception as err:
            props.job_state, props.error = "FAILED", f"could not add the result strip: {err}"
            notify(props.error, "ERROR")
            return True
        props.result_strip = strip.name
        props.output_dir = str(snap.frames[0].parent)
        props.error = ""
        message = f"Dance added as strip {strip.name!r} on channel {strip.channel}"
        warnings = list(snap.warnings)
        if len(snap.frames) != item.end - item.start + 1:
            warnings.append(f"{len(snap.frames)} frames generated for {item.end - item.start + 1}: fitted")
        notify(f"{message} ({'; '.join(warnings)})" if warnings else message, "WARNING" if warnings else "INFO")
        _undo_push("Dance Any Beat: add dance strip")
    elif snap.state == "failed":
        reason = snap.error or "unknown error"
        died = backend.local_death_message()
        props.error = f"{died[:1].upper()}{died[1:]}\n({reason}; no strip was added)" if died else reason
        notify(f"Generate failed: {props.error}", "ERROR")
    else:
        props.error = ""
        notify("Generate cancelled", "INFO")
    return True


def notify(message: str, level: str = "INFO") -> None:
    """Reports a message from outside an operator (the async end of a job): the info log and the console."""
    try:
        bpy.ops.dance_any_beat.notify(message=message, level=level)
    except Exception:  # no context for operators (e.g. while Blender quits): the console still gets it
        print(f"Dance Any Beat: {level}: {message}")


def _undo_push(message: str) -> None:
    if bpy.app.background:
        return  # no undo stack without a UI
    try:
        bpy.ops.ed.undo_push(message=message)
    except RuntimeError:
        pass


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type in {"SEQUENCE_EDITOR", "VIEW_3D", "PREFERENCES"}:
                area.tag_redraw()


def clear() -> None:
    """Cancels and forgets everything (unregister)."""
    for item in _pending:
        if isinstance(item, PendingJob):
            item.runner.cancel()
    _pending.clear()
    setup = backend_setup.current()
    if setup is not None:
        setup.cancel()
    if bpy.app.timers.is_registered(poll_step):
        bpy.app.timers.unregister(poll_step)
