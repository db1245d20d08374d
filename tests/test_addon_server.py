"""The add-on in real Blender (`bpy` 5.0.1) against a real `dance-any-beat serve` process: no mocks of bpy, of the
server or of HTTP.

The server is the one the add-on itself starts (local mode, `local_server.py`) with this environment's Python, the
tiny random-weight checkpoint of conftest.py and a jobs folder in the extension's user folder (a temp dir: see
blender_helpers). Jobs use the draft preset with 2 sampler steps, a 1-2 s range at 12 fps: a few seconds each.
Covered: Generate (strip length, frames on disk, the markers as the job's beats, nothing overwritten by a second
run), Cancel mid-job, a backend killed mid-job, Detect Beats through POST /beats, Test Connection, Set up Backend's
refusal without online access, and the `-c dance_any_beat generate` command on saved .blend files.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import soundfile as sf
from blender_helpers import ADDON_MODULE, PollTimes, drive_polling, enable_addon, import_bpy, png_bytes
from PIL import Image

bpy = import_bpy()

FPS = 12
PARAMS = {"quality": "draft", "steps": 2}  # draft: the model's own resolution; 2 steps: a job takes seconds
LONG_STEPS = 1000  # a job that runs for minutes: cancelled or killed mid-way


def _pkg(name: str):
    return sys.modules[f"{ADDON_MODULE}.dance_any_beat_addon.{name}"]


@pytest.fixture(scope="module")
def prefs(checkpoint):
    """The add-on enabled, in local mode on this environment's Python with the tiny checkpoint on the CPU."""
    enable_addon(bpy)
    saved_env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DANCE_ANY_BEAT_TOKEN")}
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # A token in Blender's own environment must not reach the local server (it would win over the token file).
    os.environ["DANCE_ANY_BEAT_TOKEN"] = "a-token-the-local-server-must-not-use"
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.backend, prefs.python_path, prefs.device, prefs.checkpoint_path = "LOCAL", sys.executable, "cpu", str(
        checkpoint)
    yield prefs
    _pkg("backend").free()
    prefs.backend, prefs.python_path, prefs.checkpoint_path, prefs.device = "LOCAL", "", "", "auto"
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    bpy.ops.wm.read_homefile(use_empty=True)  # the next module starts from an unsaved, empty file


def _music(path: Path, seconds: float = 3.0) -> list[float]:
    """Synthesised house music at 120 BPM, first beat at 0.3 s; returns the true beat times."""
    from dance_any_beat.data.music_synth import synthesize_music  # the test's own music; the add-on never imports it

    music = synthesize_music("house", 120.0, seconds, seed=3, first_beat=0.3)
    sf.write(path, music.audio, music.sr, subtype="PCM_16")
    return list(music.beat_times)


@pytest.fixture(scope="module")
def shot(prefs, tmp_path_factory):
    """A saved .blend (so results go to //dance_any_beat/ next to it) with a 2 s range at 12 fps, the music as a
    sound strip and a still image file."""
    folder = tmp_path_factory.mktemp("shot")
    _music(folder / "music.wav")
    (folder / "still.png").write_bytes(png_bytes((200, 120, 40), size=48))
    scene = bpy.data.scenes.new("e2e")
    scene.render.fps, scene.render.fps_base = FPS, 1.0
    scene.frame_start, scene.frame_end = 1, 2 * FPS
    _pkg("blender.timeline").strips(scene).new_sound("music", str(folder / "music.wav"), channel=1, frame_start=1)
    props = scene.dance_any_beat
    props.still_source, props.still_path = "FILE", str(folder / "still.png")
    props.audio_source, props.quality, props.steps = "TIMELINE", PARAMS["quality"], PARAMS["steps"]
    bpy.ops.wm.save_as_mainfile(filepath=str(folder / "shot.blend"), check_existing=False)
    return scene


def _op(scene, name: str, **kwargs):
    with bpy.context.temp_override(scene=scene):
        return getattr(bpy.ops.dance_any_beat, name)(**kwargs)


@pytest.fixture
def timer_mode(monkeypatch):
    """Operators return at once and the test calls the poll step by hand, as Blender's timer would."""
    monkeypatch.setattr(_pkg("blender.polling"), "blocking", lambda: False)
    return _pkg("blender.polling")


def _drive(polling, scene, until=None, limit_s=120.0) -> PollTimes:
    """Calls the poll step until the scene's job is applied (or `until()` holds)."""
    return drive_polling(polling, scene, until=until, limit_s=limit_s, pause_s=0.02)


def _strips(scene) -> list:
    ed = scene.sequence_editor
    return [s for s in _pkg("blender.timeline").strips_all(scene) if s.type == "IMAGE"] if ed else []


def _digest(folder: Path) -> dict[str, tuple[int, str]]:
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------------------------------------- preferences
def test_set_up_backend_refuses_without_online_access(prefs):
    """bpy.app.online_access is False in module mode: nothing is created or downloaded, and the message says how
    to allow it or how to point at an existing Python."""
    assert not bpy.app.online_access
    operators, setup = _pkg("blender.operators"), _pkg("backend_setup")
    with pytest.raises(RuntimeError, match="online access is off"):
        bpy.ops.dance_any_beat.setup_backend()
    assert "Allow Online Access" in prefs.setup_status and "set Python" in prefs.setup_status
    commands, python, log = operators.setup_plan()  # what it would have run
    user = Path(bpy.utils.extension_path_user(ADDON_MODULE))
    venv = user / "backend-venv"
    assert commands == [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
         str(setup.SOURCE_DIR)],
    ]
    assert (python, log) == (venv / "bin" / "python", user / "setup-backend.log")
    assert (setup.SOURCE_DIR / "pyproject.toml").is_file() and (setup.SOURCE_DIR / "backend/dance_any_beat").is_dir()
    assert not python.exists() and not log.exists()


def test_test_connection_remote_errors(prefs):
    """An unreachable server, and another machine while online access is off: clear errors, nothing hangs."""
    prefs.backend = "REMOTE"
    try:
        prefs.server_url, prefs.token = "http://127.0.0.1:9", "whatever-token-123"
        with pytest.raises(RuntimeError, match="cannot reach the Dance Any Beat server at http://127.0.0.1:9"):
            bpy.ops.dance_any_beat.test_connection()
        assert prefs.connection_status.startswith("Connection failed: cannot reach")
        prefs.server_url = "http://gpu-box.example:8765"
        with pytest.raises(RuntimeError, match="online access is off.*Allow Online Access"):
            bpy.ops.dance_any_beat.test_connection()
    finally:
        prefs.backend = "LOCAL"


# --------------------------------------------------------------------------------------------------- generate
@pytest.mark.slow
def test_generate_end_to_end(shot, timer_mode, monkeypatch):
    """Generate against the real server, driven as the timer drives it: the strip has exactly the range's frame
    count, the frames are on disk next to the .blend, the job followed the beat markers; a second run (blocking,
    as in `blender -b`) writes a new folder, leaves the first one's files alone and deletes the job on the server
    once its frames are copied (the first run's purge is held back to look at the job there)."""
    scene, props, polling = shot, shot.dance_any_beat, timer_mode
    timeline, client_of = _pkg("blender.timeline"), _pkg("backend")
    client_class = _pkg("client").ServerClient
    purged = []
    with monkeypatch.context() as held_back:
        held_back.setattr(client_class, "purge", lambda self, job_id: purged.append(job_id))
        for frame in (7, 13, 19):  # beats at 0.5, 1.0 and 1.5 s into the range
            timeline.add_beat_marker(scene, frame)
        props.background = "WHOLE"  # the panel's Background menu: the whole image moves
        props.beat_sync = 0.5  # the panel's Beat Sync slider: hits part way to the beats
        assert _op(scene, "generate") == {"FINISHED"}  # returns at once: the job runs on a worker thread
        times = _drive(polling, scene)
        assert props.job_state == "DONE", props.error
        times.assert_never_blocks()
        strip = timeline.strips(scene)[props.result_strip]
        assert (strip.frame_final_start, strip.frame_final_duration) == (1, 2 * FPS)
        first = Path(props.output_dir)
        assert first.parent == Path(bpy.path.abspath("//dance_any_beat")) and first.name == props.job_id
        frames = sorted(first.glob("*.png"))
        assert len(frames) == 2 * FPS and [e.filename for e in strip.elements] == [f.name for f in frames]
        server = client_of.local_server()
        listing = server.client().json("GET", f"/jobs/{props.job_id}/frames")
        sent = server.client().json("GET", f"/jobs/{props.job_id}")["params"]
        assert sent["keep_background"] is False and sent["beat_sync"] == 0.5
        assert all(Image.open(f).size == (listing["width"], listing["height"]) for f in frames)
        assert server.ready["token_file"] == str(server.token_file)  # the server's handshake, not the env token
        beats = server.client().job_beats(props.job_id)
        assert beats["source"] == "given" and beats["beats"] == pytest.approx([0.5, 1.0, 1.5])
        assert purged == [props.job_id]
    before = _digest(first)
    monkeypatch.setattr(polling, "blocking", lambda: True)  # background mode: blocks until the strip is there
    assert _op(scene, "generate") == {"FINISHED"}, props.error
    second = Path(props.output_dir)
    assert second != first and second.parent == first.parent and len(list(second.glob("*.png"))) == 2 * FPS
    assert _digest(first) == before
    assert len(_strips(scene)) == 2 and strip.channel != timeline.strips(scene)[props.result_strip].channel
    with pytest.raises(_pkg("client").BackendError, match="no job with id") as gone:
        server.client().status(props.job_id)
    assert gone.value.status == 404 and not (server.jobs_dir / props.job_id).exists()


def test_the_result_s_warnings_are_reported(shot, tmp_path, monkeypatch):
    """What the backend warns about a done job (here: the dancer cut off at the knees by the still's frame)
    reaches the artist's report with the strip, as a warning."""
    import cv2

    scene, props, polling = shot, shot.dance_any_beat, _pkg("blender.polling")
    room = cv2.imread(str(Path(__file__).resolve().parents[1] / "examples" / "dancer_on_set_room.jpg"))
    cv2.imwrite(str(tmp_path / "cut.jpg"), room[:376])  # the dancer stands from y 243 to 465
    reports = []
    notify = polling.notify
    monkeypatch.setattr(polling, "notify", lambda message, level="INFO": (reports.append((level, message)),
                                                                          notify(message, level)))
    saved = props.still_path, props.background
    props.still_path, props.background = str(tmp_path / "cut.jpg"), "KEEP"
    try:
        assert _op(scene, "generate") == {"FINISHED"}, props.error  # blocking: `blender -b` has no timer
    finally:
        props.still_path, props.background = saved
    assert reports[-1][0] == "WARNING" and reports[-1][1].startswith("Dance added as strip"), reports
    assert "the dancer is cut off at the bottom edge of the still" in reports[-1][1]


@pytest.mark.slow
def test_detect_beats_goes_through_the_running_server(shot):
    """With a local server running, Detect Beats posts the timeline's audio to POST /beats (no subprocess)."""
    backend = _pkg("backend")
    assert backend.local_running()
    uploads = backend.local_server().jobs_dir / ".uploads"  # made by POST /beats
    assert not uploads.exists() or not any(uploads.iterdir())
    scene = shot
    scene.timeline_markers.new("intro", frame=3)
    assert _op(scene, "detect_beats") == {"FINISHED"}, scene.dance_any_beat.error
    assert uploads.is_dir()
    ours = [m.frame for m in _pkg("blender.timeline").beat_markers(scene)]
    truth = [1 + t * FPS for t in (0.3, 0.8, 1.3, 1.8)]  # the beats inside the 2 s range
    assert len(ours) >= 3 and all(min(abs(f - t) for t in truth) <= 1 for f in ours), ours
    assert {m.frame: m.name for m in scene.timeline_markers}[3] == "intro"


@pytest.mark.slow
def test_test_connection_reports_version_device_and_model(prefs, shot):
    backend = _pkg("backend")
    assert bpy.ops.dance_any_beat.test_connection() == {"FINISHED"}
    assert prefs.connection_status == "Dance Any Beat 0.1.0 on cpu, model checkpoint (42,980 parameters)"
    prefs.backend, prefs.server_url, prefs.token = "REMOTE", backend.local_server().url, "not-the-token-0123456789"
    try:
        with pytest.raises(RuntimeError, match="wrong token"):
            bpy.ops.dance_any_beat.test_connection()
    finally:
        prefs.backend = "LOCAL"


def _start_long_job(scene, polling):
    props = scene.dance_any_beat
    props.steps = LONG_STEPS
    strips_before = len(_strips(scene))
    try:
        assert _op(scene, "generate") == {"FINISHED"}
        _drive(polling, scene, until=lambda: props.job_state == "RUNNING")
    finally:
        props.steps = PARAMS["steps"]
    assert props.job_state == "RUNNING" and props.job_id
    return strips_before


@pytest.mark.slow
def test_cancel_mid_job_leaves_no_strip(shot, timer_mode):
    scene, props, polling = shot, shot.dance_any_beat, timer_mode
    strips_before = _start_long_job(scene, polling)
    assert _op(scene, "cancel") == {"FINISHED"}
    _drive(polling, scene, limit_s=30)
    assert props.job_state == "CANCELLED" and not props.error
    assert len(_strips(scene)) == strips_before
    with pytest.raises(_pkg("client").BackendError, match="no job with id"):  # cancelled, then deleted there
        _pkg("backend").local_server().client().status(props.job_id)
    assert not (Path(bpy.path.abspath("//dance_any_beat")) / props.job_id).exists()


@pytest.mark.slow
def test_killed_backend_gives_a_clear_error_and_no_strip(shot, timer_mode):
    scene, props, polling = shot, shot.dance_any_beat, timer_mode
    backend = _pkg("backend")
    strips_before = _start_long_job(scene, polling)
    backend.local_server().proc.kill()
    _drive(polling, scene, limit_s=30)
    assert props.job_state == "FAILED"
    assert props.error.startswith("The local Dance Any Beat backend stopped (killed by signal SIGKILL)"), props.error
    assert "no strip was added" in props.error
    assert len(_strips(scene)) == strips_before
    assert not (Path(bpy.path.abspath("//dance_any_beat")) / props.job_id).exists()
    assert not backend.local_running()  # the next job starts a new one


# ------------------------------------------------------------------------------------------------ the command
def _make_blend(path: Path, music: Path, still: Path, seconds: int = 2) -> None:
    """A fresh .blend: the music as a sound strip, the still as an image strip under it, `seconds` at 12 fps."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = FPS, 1.0
    scene.frame_start, scene.frame_end, scene.frame_current = 1, seconds * FPS, 1
    timeline = _pkg("blender.timeline")
    timeline.strips(scene).new_sound("music", str(music), channel=1, frame_start=1)
    still_strip = timeline.strips(scene).new_image("still", str(still), channel=2, frame_start=1)
    still_strip.frame_final_duration = seconds * FPS
    bpy.ops.wm.save_as_mainfile(filepath=str(path), check_existing=False)


@pytest.fixture
def blends(prefs, tmp_path):
    _music(tmp_path / "music.wav", seconds=3.0)
    (tmp_path / "still.png").write_bytes(png_bytes((40, 160, 220), size=48))
    paths = [tmp_path / "shot1.blend", tmp_path / "shot2.blend"]
    for path in paths:
        _make_blend(path, tmp_path / "music.wav", tmp_path / "still.png")
    return paths


@pytest.mark.slow
def test_command_generates_and_saves_several_files(blends, capsys):
    run = _pkg("blender.command").run
    code = run(["generate", "--still", "strip", "--audio", "timeline", "--range", "1", str(2 * FPS), "--detect-beats",
                "--quality", "draft", "--steps", "2", "--save", *map(str, blends)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "2 of 2 files done" in out.out
    assert not _pkg("backend").local_running()  # the batch frees the backend
    for path in blends:
        bpy.ops.wm.open_mainfile(filepath=str(path))
        scene = bpy.context.scene
        props = scene.dance_any_beat
        strip = _pkg("blender.timeline").strips(scene)[props.result_strip]
        # above the still (channel 2) and the music (channel 1)
        assert (strip.frame_final_start, strip.frame_final_duration, strip.channel) == (1, 2 * FPS, 3)
        folder = Path(props.output_dir)
        assert folder.parent == path.parent / "dance_any_beat" and len(list(folder.glob("*.png"))) == 2 * FPS
        assert len(_pkg("blender.timeline").beat_markers(scene)) >= 3  # --detect-beats: 4 beats in the 2 s


def test_command_fails_clearly(blends, prefs, capsys):
    run = _pkg("blender.command").run
    assert run(["generate", "--range", "5"]) == 2
    assert "--range: expected 2 arguments" in capsys.readouterr().err
    assert run(["render"]) == 2
    assert "unknown command 'render'" in capsys.readouterr().err
    command = sys.modules[f"{ADDON_MODULE}.dance_any_beat_addon"].command  # the --python-expr fallback
    with pytest.raises(RuntimeError, match=r"dance_any_beat generate failed \(exit status 2\)"):
        command(["generate", "--steps", "0"], check=True)
    assert "--steps must be 1 to 1000" in capsys.readouterr().err
    assert run(["generate", str(blends[0].parent / "missing.blend")]) == 1
    assert "missing.blend: error: no such file" in capsys.readouterr().err
    assert run(["generate", "--quality", "ultra", str(blends[0])]) == 1
    assert "--quality ultra: unknown; choose one of draft, standard, final" in capsys.readouterr().err
    assert bpy.data.filepath == str(blends[0])  # no files named: the one Blender has open (`-b shot.blend -c ...`)
    assert run(["generate", "--audio", "missing.wav"]) == 1
    assert f"{blends[0]}: error: --audio missing.wav: no such audio file" in capsys.readouterr().err
    prefs.backend, prefs.server_url = "REMOTE", "http://127.0.0.1:9"
    try:
        assert run(["generate", "--still", "strip", str(blends[0])]) == 1
    finally:
        prefs.backend = "LOCAL"
    assert "cannot reach the Dance Any Beat server at http://127.0.0.1:9" in capsys.readouterr().err
    bpy.ops.wm.open_mainfile(filepath=str(blends[0]))
    assert not _strips(bpy.context.scene)[1:]  # only the still: no --save, and nothing was added anyway
