"""The panel's buttons. Operators only gather inputs on the main thread and hand the work to `polling`."""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from .. import ADDON_PACKAGE, backend, timebase
from ..backend import BackendSettings
from ..jobs import BackgroundTask, JobRunner
from ..payload import BeatInfo, JobParams
from . import polling, timeline
from .props import preferences


def _scene_ok(context) -> bool:
    return context.scene is not None and hasattr(context.scene, "dance_any_beat")


def backend_settings(context) -> BackendSettings:
    """The preferences as plain data, for worker threads (which must not read bpy)."""
    prefs = preferences(context)
    state_dir = _user_dir("server")
    if prefs is None:
        return BackendSettings(mode="LOCAL", python=_venv_python(), state_dir=state_dir)
    return BackendSettings(mode=prefs.backend, python=bpy.path.abspath(prefs.python_path) or _venv_python(),
                           url=prefs.server_url.strip(), token=prefs.token.strip(), device=prefs.device,
                           checkpoint=bpy.path.abspath(prefs.checkpoint_path),
                           clap=bpy.path.abspath(prefs.clap_path), wav2clip=bpy.path.abspath(prefs.wav2clip_path),
                           state_dir=state_dir)


def _user_dir(name: str) -> str:
    """A folder for the add-on's own files: the extension's user folder, or a temp folder outside one."""
    try:
        return bpy.utils.extension_path_user(ADDON_PACKAGE, path=name, create=True)
    except (ValueError, RuntimeError):
        path = Path(tempfile.gettempdir()) / "dance_any_beat" / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)


def _venv_python() -> str:
    """The interpreter of the backend venv "Set up backend" creates (may not exist yet)."""
    return str(Path(_user_dir("backend-venv")) / "bin" / "python")


def resolve_audio(scene, props, start: int, end: int, work: Path) -> tuple[Path, float]:
    """The audio file to send and the time on its clock (seconds) at the range's first frame."""
    if props.audio_source == "TIMELINE":
        if not timeline.sound_strips(scene):
            raise RuntimeError("the timeline has no sound strips: add music, or pick an audio file")
        return timeline.mixdown(scene, start, end, work / "mixdown.wav"), 0.0
    if props.audio_source == "STRIP":
        strip = next((s for s in timeline.sound_strips(scene) if s.name == props.audio_strip), None)
        if strip is None:
            raise RuntimeError(f"no sound strip named {props.audio_strip!r}")
        path, offset = timeline.sound_strip_audio(scene, strip, start)
    else:
        path, offset = Path(bpy.path.abspath(props.audio_path)), 0.0
    if not path.is_file():
        raise RuntimeError(f"the audio file {str(path)!r} does not exist")
    return path, offset


def resolve_still(scene, props, work: Path) -> Path:
    if props.still_source == "SCENE":
        return timeline.render_still(scene, work / "still.png", use_sequencer=False)
    if props.still_source == "SEQUENCER":
        return timeline.render_still(scene, work / "still.png", use_sequencer=True)
    if props.still_source == "STRIP":
        strip = timeline.image_strip_under_playhead(scene)
        if strip is None:
            raise RuntimeError("no image strip under the playhead")
        path = timeline.image_strip_file(strip, scene.frame_current)
    else:
        path = Path(bpy.path.abspath(props.still_path))
    if not path.is_file():
        raise RuntimeError(f"the image file {str(path)!r} does not exist")
    return path


def output_base() -> tuple[Path, str]:
    """Where result folders go: `//dance_any_beat/` next to the .blend, or a temp folder (with a warning)."""
    if bpy.data.filepath:
        return Path(bpy.path.abspath("//dance_any_beat")), ""
    return (Path(tempfile.gettempdir()) / "dance_any_beat",
            "the .blend is not saved: frames go to a temporary folder; save the file to keep them next to it")


def unique_folder(base: Path, name: str) -> Path:
    folder, n = base / name, 1
    while folder.exists():
        n += 1
        folder = base / f"{name}-{n}"
    return folder


class DANCE_ANY_BEAT_OT_detect_beats(bpy.types.Operator):
    bl_idname = "dance_any_beat.detect_beats"
    bl_label = "Detect Beats"
    bl_description = "Find the music's beats in the frame range and mark them on the timeline (replaces only " \
                     "the add-on's own beat markers)"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        if not _scene_ok(context) or polling.busy(context.scene):
            return False
        start, end = timeline.frame_range(context.scene)
        return end >= start

    def execute(self, context):
        scene, props = context.scene, context.scene.dance_any_beat
        start, end = timeline.frame_range(scene)
        work = Path(tempfile.mkdtemp(prefix="dance_any_beat_"))
        try:
            audio, offset = resolve_audio(scene, props, start, end, work)
        except RuntimeError as err:
            props.error = str(err)
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        settings = backend_settings(context)
        task = BackgroundTask(lambda: backend.detect_beats(settings, audio), "dance-any-beat beats")

        def apply(scene, info: BeatInfo) -> str:
            count = timeline.place_beats(scene, info.beats, info.downbeats, start, end, offset)
            if count == 0:
                raise RuntimeError("no beats found in the frame range; add beat markers by hand (Add Beat Marker)")
            return f"{count} beat markers at {info.tempo:.1f} BPM"

        polling.add(polling.PendingTask(scene.name, task, apply, "Detect Beats"))
        if bpy.app.background:
            task.run()
            polling.poll_step()
            if props.error:
                self.report({"ERROR"}, props.error)
                return {"CANCELLED"}
        else:
            task.start()
        return {"FINISHED"}


class DANCE_ANY_BEAT_OT_add_beat_marker(bpy.types.Operator):
    bl_idname = "dance_any_beat.add_beat_marker"
    bl_label = "Add Beat Marker"
    bl_description = "Add a beat marker at the playhead: Generate makes the dance hit it"
    bl_options = {"REGISTER", "UNDO"}

    downbeat: bpy.props.BoolProperty(name="Downbeat", description="Mark the first beat of a bar", default=False)

    @classmethod
    def poll(cls, context):
        return _scene_ok(context)

    def execute(self, context):
        frame = context.scene.frame_current
        if timeline.add_beat_marker(context.scene, frame, self.downbeat) is None:
            self.report({"WARNING"}, f"frame {frame} already has a beat marker")
            return {"CANCELLED"}
        return {"FINISHED"}


class DANCE_ANY_BEAT_OT_clear_beat_markers(bpy.types.Operator):
    bl_idname = "dance_any_beat.clear_beat_markers"
    bl_label = "Clear Beat Markers"
    bl_description = "Remove the add-on's beat markers in the frame range (your own markers stay)"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if not _scene_ok(context):
            return False
        return bool(timeline.beat_markers(context.scene, *timeline.frame_range(context.scene)))

    def execute(self, context):
        count = timeline.clear_beat_markers(context.scene, *timeline.frame_range(context.scene))
        self.report({"INFO"}, f"removed {count} beat markers")
        return {"FINISHED"}


class DANCE_ANY_BEAT_OT_generate(bpy.types.Operator):
    bl_idname = "dance_any_beat.generate"
    bl_label = "Generate"
    bl_description = "Make the still dance to the music over the frame range, to the beat markers; the result " \
                     "is added as an image strip"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        if not _scene_ok(context) or polling.busy(context.scene):
            return False
        props = context.scene.dance_any_beat
        start, end = timeline.frame_range(context.scene)
        if end < start:
            return False
        if props.still_source == "FILE" and not props.still_path:
            return False
        if props.audio_source == "FILE" and not props.audio_path:
            return False
        return not (props.audio_source == "STRIP" and not props.audio_strip)

    def execute(self, context):
        scene, props = context.scene, context.scene.dance_any_beat
        start, end = timeline.frame_range(scene)
        work = Path(tempfile.mkdtemp(prefix="dance_any_beat_"))
        try:
            audio, offset = resolve_audio(scene, props, start, end, work)
            image = resolve_still(scene, props, work)
        except RuntimeError as err:
            props.error = str(err)
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        rate = timeline.fps(scene)
        params = JobParams(seconds=timebase.range_seconds(start, end, rate), fps=int(rate) if rate.is_integer()
                           else rate, start=offset, style=props.style, seed=props.seed, preset=props.quality,
                           beats=timeline.marker_beat_times(scene, start, end, offset) or None)
        base, warning = output_base()
        if warning:
            self.report({"WARNING"}, warning)
        settings = backend_settings(context)
        runner = JobRunner(lambda: backend.connect(settings), image, audio, params,
                           lambda job_id: unique_folder(base, job_id))
        props.job_state, props.progress, props.stage, props.error, props.job_id = "STARTING", 0.0, "starting", "", ""
        polling.add(polling.PendingJob(scene.name, runner, start, end, props.channel))
        if bpy.app.background:  # no event loop: run to the end here
            runner.run()
            polling.poll_step()
            if props.job_state != "DONE":
                self.report({"ERROR"}, props.error or f"Generate {props.job_state.lower()}")
                return {"CANCELLED"}
        else:
            runner.start()
        return {"FINISHED"}


class DANCE_ANY_BEAT_OT_cancel(bpy.types.Operator):
    bl_idname = "dance_any_beat.cancel"
    bl_label = "Cancel"
    bl_description = "Cancel the running job (no strip is added)"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return _scene_ok(context) and polling.active_job(context.scene) is not None

    def execute(self, context):
        polling.active_job(context.scene).runner.cancel()
        context.scene.dance_any_beat.stage = "cancelling"
        return {"FINISHED"}


class DANCE_ANY_BEAT_OT_free_backend(bpy.types.Operator):
    bl_idname = "dance_any_beat.free_backend"
    bl_label = "Free Backend Memory"
    bl_description = "Stop the local backend process; its model memory is freed (it restarts on the next job)"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return backend.local_running() and not (context.scene and polling.busy(context.scene))

    def execute(self, context):
        backend.free()
        self.report({"INFO"}, "backend stopped")
        return {"FINISHED"}


class DANCE_ANY_BEAT_OT_open_output(bpy.types.Operator):
    bl_idname = "dance_any_beat.open_output"
    bl_label = "Open Output Folder"
    bl_description = "Open the folder of the last result's frames"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        if not _scene_ok(context):
            return False
        folder = context.scene.dance_any_beat.output_dir
        return bool(folder) and Path(folder).is_dir()

    def execute(self, context):
        return bpy.ops.wm.path_open(filepath=context.scene.dance_any_beat.output_dir)


class DANCE_ANY_BEAT_OT_notify(bpy.types.Operator):
    """Reports a message that arrives after the operator that caused it returned (a finished job)."""

    bl_idname = "dance_any_beat.notify"
    bl_label = "Dance Any Beat Message"
    bl_options = {"INTERNAL"}

    message: StringProperty()
    level: EnumProperty(items=[(x, x, "") for x in ("INFO", "WARNING", "ERROR")], default="INFO")

    def execute(self, context):
        self.report({self.level}, self.message)
        return {"FINISHED"}


classes = (
    DANCE_ANY_BEAT_OT_detect_beats,
    DANCE_ANY_BEAT_OT_add_beat_marker,
    DANCE_ANY_BEAT_OT_clear_beat_markers,
    DANCE_ANY_BEAT_OT_generate,
    DANCE_ANY_BEAT_OT_cancel,
    DANCE_ANY_BEAT_OT_free_backend,
    DANCE_ANY_BEAT_OT_open_output,
    DANCE_ANY_BEAT_OT_notify,
)
