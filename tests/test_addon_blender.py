"""The add-on inside real Blender (`bpy` 5.0.1 from PyPI; nothing of bpy is mocked).

Loaded as an extension from this repository (see blender_helpers). Beat detection runs the real beat tracker
(the backend's `beats --json` CLI, which the add-on uses while no local server runs). Jobs are driven through
the real poll step with `ScriptedClient` standing in for the HTTP server, for the states a real server rarely
shows on cue; test_addon_server.py runs the same operators end to end against a real `dance-any-beat serve`.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from blender_helpers import (
    ADDON_MODULE,
    PollTimes,
    ScriptedClient,
    disable_addon,
    drive_polling,
    enable_addon,
    import_bpy,
)

bpy = import_bpy()


@pytest.fixture(scope="module")
def addon():
    enable_addon(bpy)
    yield sys.modules[ADDON_MODULE]


def _pkg(name: str):
    return sys.modules[f"{ADDON_MODULE}.dance_any_beat_addon.{name}"]


@pytest.fixture
def scene(addon):
    scene = bpy.data.scenes.new("dab test")
    scene.render.fps, scene.render.fps_base = 24, 1.0
    scene.frame_start, scene.frame_end = 1, 96
    yield scene
    bpy.data.scenes.remove(scene)


def _op(scene, name: str, **kwargs):
    with bpy.context.temp_override(scene=scene):
        return getattr(bpy.ops.dance_any_beat, name)(**kwargs)


def _markers(scene) -> dict[int, str]:
    return {m.frame: m.name for m in scene.timeline_markers}


def test_register_unregister_twice(addon):
    for _ in range(2):
        disable_addon(bpy)
        assert not hasattr(bpy.types.Scene, "dance_any_beat")
        assert not hasattr(bpy.types, "DANCE_ANY_BEAT_OT_generate")
        enable_addon(bpy)
        assert bpy.context.scene.dance_any_beat.style == "auto"
        for op in ("detect_beats", "add_beat_marker", "clear_beat_markers", "generate", "cancel", "free_backend",
                   "open_output"):
            assert hasattr(bpy.types, f"DANCE_ANY_BEAT_OT_{op}")
            assert getattr(bpy.ops.dance_any_beat, op).idname_py() == f"dance_any_beat.{op}"
        prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
        assert (prefs.backend, prefs.device) == ("LOCAL", "auto")


def test_the_command_is_registered_with_blender(addon, capfd):
    """`-c dance_any_beat` is registered through bpy.utils.register_cli_command (Blender warns about a second
    command with that id) and unregistered with the add-on. bpy as a module cannot run `-c` itself: the handler is
    called directly in test_addon_server.py."""
    capfd.readouterr()
    handle = bpy.utils.register_cli_command("dance_any_beat", lambda argv: 0)
    bpy.utils.unregister_cli_command(handle)
    assert 'registered duplicate command "dance_any_beat"' in "".join(capfd.readouterr())
    disable_addon(bpy)
    try:
        handle = bpy.utils.register_cli_command("dance_any_beat", lambda argv: 0)
        bpy.utils.unregister_cli_command(handle)
        assert "duplicate" not in "".join(capfd.readouterr())
    finally:
        enable_addon(bpy)


def test_strip_collection_shim(scene):
    timeline = _pkg("blender.timeline")
    assert timeline.strips(scene) == scene.sequence_editor.strips  # 5.0 name; `.sequences` before 5.0
    assert len(timeline.strips_all(scene)) == 0


def test_markers_are_ours_only(scene):
    scene.timeline_markers.new("intro", frame=10)
    scene.frame_current = 5
    assert _op(scene, "add_beat_marker") == {"FINISHED"}
    assert _op(scene, "add_beat_marker", downbeat=True) == {"CANCELLED"}  # one of ours is there already
    scene.frame_current = 12
    _op(scene, "add_beat_marker", downbeat=True)
    assert _markers(scene) == {5: "dab:beat", 10: "intro", 12: "dab:DOWN"}
    assert _op(scene, "clear_beat_markers") == {"FINISHED"}
    assert _markers(scene) == {10: "intro"}
    with bpy.context.temp_override(scene=scene):
        assert not bpy.ops.dance_any_beat.clear_beat_markers.poll()  # nothing of ours left: greyed out


def test_marker_times_use_fps_base_and_range_start(scene):
    timeline = _pkg("blender.timeline")
    scene.render.fps, scene.render.fps_base = 30, 1.001
    props = scene.dance_any_beat
    props.use_scene_range, props.frame_start, props.frame_end = False, 101, 400
    for frame in (131, 100, 161, 401):
        timeline.add_beat_marker(scene, frame)
    scene.timeline_markers.new("not a beat", frame=140)
    start, end = timeline.frame_range(scene)
    assert timeline.marker_beat_times(scene, start, end) == pytest.approx([1.001, 2.002])
    assert timeline.marker_beat_times(scene, start, end, offset=5.0) == pytest.approx([6.001, 7.002])


def _write_wav(path: Path, audio: np.ndarray, sr: int) -> None:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


@pytest.mark.slow
def test_detect_beats_marks_the_true_beats(scene, tmp_path):
    from dance_any_beat.data.music_synth import synthesize_music  # the test's own music; the add-on never imports it

    music = synthesize_music("house", 120.0, 8.0, seed=3, first_beat=0.3)
    _write_wav(tmp_path / "house.wav", music.audio, music.sr)
    timeline = _pkg("blender.timeline")
    timeline.strips(scene).new_sound("music", str(tmp_path / "house.wav"), channel=1, frame_start=1)
    scene.frame_end = 192  # 8 s at 24 fps
    scene.timeline_markers.new("intro", frame=2)
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.python_path = sys.executable  # the backend's interpreter
    assert _op(scene, "detect_beats") == {"FINISHED"}, scene.dance_any_beat.error
    ours = {m.frame: m.name for m in timeline.beat_markers(scene)}
    truth = [1 + t * 24 for t in music.beat_times]
    assert len(ours) == len(truth)
    for frame in truth:
        assert min(abs(f - frame) for f in ours) <= 1.0, (frame, sorted(ours))
    assert "dab:DOWN" in ours.values() and "dab:beat" in ours.values()  # downbeats are told apart
    assert _markers(scene)[2] == "intro"
    _op(scene, "clear_beat_markers")
    assert _markers(scene) == {2: "intro"}


def test_mixdown_covers_the_range(scene, tmp_path):
    timeline = _pkg("blender.timeline")
    sr = 48000
    _write_wav(tmp_path / "tone.wav", 0.3 * np.sin(np.arange(sr * 4) * 2 * np.pi * 440 / sr), sr)
    timeline.strips(scene).new_sound("tone", str(tmp_path / "tone.wav"), channel=1, frame_start=1)
    out = timeline.mixdown(scene, 25, 72, tmp_path / "mix.wav")  # 48 frames = 2 s at 24 fps
    with wave.open(str(out)) as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(2.0, abs=0.05)
    assert (scene.frame_start, scene.frame_end) == (1, 96)  # restored


def test_image_strip_has_the_range_frame_count_on_a_free_channel(scene, tmp_path):
    timeline = _pkg("blender.timeline")
    frames = []
    for n in range(1, 6):
        frames.append(tmp_path / f"frame_{n:06d}.png")
        frames[-1].write_bytes(b"")
    blocker = timeline.strips(scene).new_effect("blocker", "COLOR", channel=2, frame_start=1, length=12)
    assert blocker.channel == 2
    strip = timeline.add_image_strip(scene, frames, 11, 18, first_channel=2, name="Dance")
    assert (strip.channel, strip.frame_final_start, strip.frame_final_duration) == (3, 11, 8)
    assert [e.filename for e in strip.elements][-4:] == ["frame_000005.png"] * 4  # too few frames: last repeats
    short = timeline.add_image_strip(scene, frames, 20, 22, first_channel=2, name="Dance short")
    assert (short.channel, short.frame_final_duration) == (2, 3)


def _pending_job(scene, client, tmp_path, out="out"):
    polling, jobs, payload = _pkg("blender.polling"), _pkg("jobs"), _pkg("payload")
    image, audio = tmp_path / "i.png", tmp_path / "a.wav"
    image.write_bytes(b"i")
    audio.write_bytes(b"a")
    runner = jobs.JobRunner(lambda: client, image, audio, payload.JobParams(seconds=2.0, fps=24),
                            lambda job: tmp_path / out / job, poll_interval=0.02)
    polling.add(polling.PendingJob(scene.name, runner, 1, 48, 2))
    return polling, runner


def _drive(polling, runner, scene, limit_s=20.0) -> PollTimes:
    times = drive_polling(polling, scene, limit_s=limit_s)
    assert polling.active_job(scene) is None, "the job never finished"
    return times


def test_poll_step_applies_a_job_without_blocking(scene, tmp_path):
    polling, runner = _pending_job(scene, ScriptedClient(48, ["queued"] * 5 + ["running"] * 10 + ["done"]),
                                   tmp_path)
    runner.start()
    _drive(polling, runner, scene).assert_never_blocks()
    props = scene.dance_any_beat
    assert props.job_state == "DONE", props.error
    strip = scene.sequence_editor.strips[props.result_strip]
    assert (strip.frame_final_start, strip.frame_final_duration, strip.channel) == (1, 48, 2)
    assert len(list(Path(props.output_dir).glob("*.png"))) == 48


def test_cancelled_or_failed_job_adds_no_strip(scene, tmp_path):
    polling, runner = _pending_job(scene, ScriptedClient(48, ["running"]), tmp_path)
    runner.start()
    polling.poll_step()
    with bpy.context.temp_override(scene=scene):
        assert not bpy.ops.dance_any_beat.generate.poll()  # greyed out while a job runs
        assert _op(scene, "cancel") == {"FINISHED"}
    _drive(polling, runner, scene)
    assert scene.dance_any_beat.job_state == "CANCELLED"
    polling, runner = _pending_job(scene, ScriptedClient(48, ["running", "failed"]), tmp_path, out="out2")
    runner.run()  # background mode: the same work, blocking
    polling.poll_step()
    assert (scene.dance_any_beat.job_state, scene.dance_any_beat.error) == ("FAILED", "boom")
    assert len(scene.sequence_editor.strips) == 0 if scene.sequence_editor else True


def test_generate_in_background_mode_runs_to_the_end(scene, tmp_path, monkeypatch):
    """bpy.app.background is True in module mode: Generate blocks and applies the result itself. The still is
    the sequencer preview (a rendered colour strip), the audio the timeline mixdown, the beats the markers."""
    timeline, backend = _pkg("blender.timeline"), _pkg("backend")
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 32, 32, 100
    timeline.strips(scene).new_effect("bg", "COLOR", channel=1, frame_start=1, length=48)
    sr = 22050
    _write_wav(tmp_path / "tone.wav", 0.3 * np.sin(np.arange(sr * 2) * 2 * np.pi * 220 / sr), sr)
    timeline.strips(scene).new_sound("tone", str(tmp_path / "tone.wav"), channel=3, frame_start=1)
    scene.frame_end = 48
    timeline.add_beat_marker(scene, 13)
    timeline.add_beat_marker(scene, 25, downbeat=True)
    client = ScriptedClient(48)
    monkeypatch.setattr(backend, "connect", lambda settings: client)
    monkeypatch.setattr(_pkg("blender.operators"), "output_base", lambda: (tmp_path / "out", ""))
    scene.dance_any_beat.still_source = "SEQUENCER"
    assert _op(scene, "generate") == {"FINISHED"}, scene.dance_any_beat.error
    params = client.submitted[0]
    assert (params.seconds, params.fps, params.beats) == (2.0, 24, [0.5, 1.0])
    strip = scene.sequence_editor.strips[scene.dance_any_beat.result_strip]
    assert (strip.frame_final_start, strip.frame_final_duration, strip.channel) == (1, 48, 2)
    assert Path(scene.dance_any_beat.output_dir).parent == tmp_path / "out"
