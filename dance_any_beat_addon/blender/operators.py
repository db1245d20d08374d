"""The panel's buttons. Operators only gather inputs on the main thread and hand the work to `polling`."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from .. import ADDON_PACKAGE, backend, backend_setup, timebase
from ..backend import BackendSettings
from ..jobs import BackgroundTask, JobRunner
from ..payload import BACKGROUND_CHOICES, BeatInfo, JobParams
from . import polling, timeline
from .props import preferences


def _scene_ok(context) -> bool:
    return context.scene is not None and hasattr(context.scene, "dance_any_beat")


def _range_free(context) -> bool:
    """A scene with our settings, no job of ours running, and a frame range that is not empty."""
    if not _scene_ok(context) or polling.busy(context.scene):
        return False
    start, end = timeline.frame_range(context.scene)
    return end >= start


def backend_settings(context) -> BackendSettings:
    """The preferences as plain data, for worker threads (which must not read bpy)."""
    prefs = preferences(context)
    state_dir = _user_dir("server")
    online = bool(getattr(bpy.app, "online_access", True))
    if prefs is None:
        return BackendSettings(mode="LOCAL", python=_venv_python(), state_dir=state_dir, online_access=online)
    return BackendSettings(mode=prefs.backend, python=bpy.path.abspath(prefs.python_path) or _venv_python(),
                           url=prefs.server_url.strip(), token=prefs.token.strip(), device=prefs.device,
                           checkpoint=bpy.path.abspath(prefs.checkpoint_path), state_dir=state_dir,
                           clap_weights=bpy.path.abspath(prefs.clap_path) if prefs.clap_path else "",
                           wav2clip_weights=bpy.path.abspath(prefs.wav2clip_path) if prefs.wav2clip_path else "",
                           online_access=online)


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
    return str(backend_setup.venv_python(Path(_user_dir(backend_setup.VENV_NAME))))


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
        if offset < 0:
            raise RuntimeError(f"the sound strip {strip.name!r} starts after frame {start}, the range's first: "
                               "start the range on the strip, or use the Timeline Mixdown")
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
        return _range_free(context)

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
        if polling.blocking():
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
        if not _range_free(context):
            return False
        props = context.scene.dance_any_beat
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
                           steps=props.steps or None, keep_background=BACKGROUND_CHOICES[props.background],
                           beat_sync=round(props.beat_sync, 4),
                           beats=timeline.marker_beat_times(scene, start, end, offset) or None)
        base, warning = output_base()
        if warning:
            self.report({"WARNING"}, warning)
        settings = backend_settings(context)
        runner = JobRunner(lambda: backend.connect(settings), image, audio, params,
                           lambda job_id: unique_folder(base, job_id))
        props.job_state, props.progress, props.stage, props.error, props.job_id = "STARTING", 0.0, "starting", "", ""
        polling.add(polling.PendingJob(scene.name, runner, start, end, props.channel))
        if polling.blocking():  # no event loop: run to the end here
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


class DANCE_ANY_BEAT_OT_test_connection(bpy.types.Operator):
    bl_idname = "dance_any_beat.test_connection"
    bl_label = "Test Connection"
    bl_description = "Connect to the backend (Local: start it) and show its version, device and model"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return not polling.running(cls.bl_label)

    def execute(self, context):
        settings = backend_settings(context)
        task = BackgroundTask(lambda: backend.test_connection(settings), "dance-any-beat test connection")
        _set_pref(context, "connection_status", "Connecting..." if settings.mode == "REMOTE"
                  else "Starting the local backend (loading the model)...")
        outcome: dict[str, str] = {}

        def step() -> bool:
            if not task.done:
                return False
            text = f"Connection failed: {task.error}" if task.error else str(task.result)
            _set_pref(None, "connection_status", text)
            outcome["level"], outcome["text"] = ("ERROR" if task.error else "INFO"), text
            if not polling.blocking():
                polling.notify(text, outcome["level"])
            return True

        polling.add(polling.PendingCall(step, self.bl_label))
        if not polling.blocking():
            task.start()
            return {"FINISHED"}
        task.run()
        polling.poll_step()
        self.report({outcome["level"]}, outcome["text"])
        return {"CANCELLED"} if task.error else {"FINISHED"}


ONLINE_ACCESS_REFUSAL = (
    "Set up backend downloads PyTorch and the backend's other packages from the Python Package Index, and "
    "Blender's online access is off. Allow it in Preferences > System > Network > Allow Online Access (or start "
    "Blender with --online-mode), or install the backend yourself with `pip install {source}` into a Python 3.11 "
    "environment and set Python above to that environment's interpreter."
)


def setup_plan() -> tuple[list[list[str]], Path, Path]:
    """What "Set up backend" runs: (commands, the venv's interpreter, the log file), all under the extension's user
    folder. The venv is made with Blender's own Python (`sys.executable` inside Blender)."""
    user = Path(bpy.utils.extension_path_user(ADDON_PACKAGE, create=True))
    venv = user / backend_setup.VENV_NAME
    commands = backend_setup.setup_commands(sys.executable, venv)
    return commands, backend_setup.venv_python(venv), user / backend_setup.LOG_NAME


class DANCE_ANY_BEAT_OT_setup_backend(bpy.types.Operator):
    bl_idname = "dance_any_beat.setup_backend"
    bl_label = "Set up Backend"
    bl_description = ("Create a Python environment in the extension's user folder and install the bundled backend "
                      "into it (downloads PyTorch and other packages: needs online access)")
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        setup = backend_setup.current()
        return setup is None or setup.snapshot().done

    def execute(self, context):
        if not bpy.app.online_access:
            message = ONLINE_ACCESS_REFUSAL.format(source=backend_setup.SOURCE_DIR)
            _set_pref(context, "setup_status", message)
            self.report({"ERROR"}, message)
            return {"CANCELLED"}
        try:
            backend_setup.check_source()
            commands, python, log = setup_plan()
        except (OSError, ValueError) as err:
            _set_pref(context, "setup_status", str(err))
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        setup = backend_setup.begin(backend_setup.BackendSetup(commands, python, log))
        _set_pref(context, "setup_status", f"Installing; log: {log}")

        def step() -> bool:
            snap = setup.snapshot()
            if not snap.done:
                return False
            if snap.error:
                _set_pref(None, "setup_status", f"Set up backend failed: {snap.error}")
                polling.notify(f"Set up backend failed: {snap.error}", "ERROR")
            else:
                _set_pref(None, "python_path", snap.python)
                _set_pref(None, "setup_status", f"Backend installed: {snap.python}")
                polling.notify(f"Backend installed; Python set to {snap.python}", "INFO")
            return True

        polling.add(polling.PendingCall(step, self.bl_label))
        if polling.blocking():
            setup.run()
            polling.poll_step()
            return {"CANCELLED"} if setup.snapshot().error else {"FINISHED"}
        setup.start()
        return {"FINISHED"}


def _set_pref(context, name: str, value: str) -> None:
    prefs = preferences(context)
    if prefs is not None:
        setattr(prefs, name, value)


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
    DANCE_ANY_BEAT_OT_test_connection,
    DANCE_ANY_BEAT_OT_setup_backend,
    DANCE_ANY_BEAT_OT_notify,
)
