"""The add-on's bpy-free half: HTTP client encoding, payloads, time base, presets, the job runner.

The client's wire format is checked against a tiny stdlib HTTP server that records requests; the real server is
exercised end to end by test_addon_server.py. Also: the local server's command line against `serve`'s own parser,
Set up Backend's commands and runner (stand-in commands, no pip), and the `-c dance_any_beat` arguments.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import os
import sys
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from blender_helpers import REPO, ScriptedClient, png_bytes

from dance_any_beat_addon import backend, backend_setup, command_line, presets, timebase
from dance_any_beat_addon.backend import BackendSettings, is_loopback_url
from dance_any_beat_addon.client import BackendError, ServerClient, encode_multipart
from dance_any_beat_addon.jobs import JobRunner
from dance_any_beat_addon.local_server import LocalServer
from dance_any_beat_addon.payload import BACKGROUND_CHOICES, BeatInfo, JobParams, JobStatus


class _Recorder(BaseHTTPRequestHandler):
    requests: list[dict] = []
    reply: tuple[int, dict] = (202, {"id": "abc"})

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        type(self).requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                    "body": body})
        status, payload = type(self).reply
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _parts(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert msg.is_multipart()
    return {p.get_param("name", header="content-disposition"): (p.get_filename(), p.get_payload(decode=True))
            for p in msg.iter_parts()}


def test_submit_sends_multipart_with_token(recorder, tmp_path):
    server, url = recorder
    image, audio = tmp_path / "still.png", tmp_path / "music.wav"
    image.write_bytes(png_bytes((1, 2, 3)))
    audio.write_bytes(b"RIFF\x00\x01binary\r\n--not-a-boundary\r\n")
    params = JobParams(seconds=4.0, fps=24, style="house", seed=7, preset="draft", beats=[0.5, 1.0])
    _Recorder.reply = (202, {"id": "abc"})
    assert ServerClient(url, "s3cret").submit(image, audio, params) == "abc"
    req = _Recorder.requests[-1]
    assert (req["method"], req["path"]) == ("POST", "/jobs")
    assert req["headers"]["Authorization"] == "Bearer s3cret"
    parts = _parts(req["headers"]["Content-Type"], req["body"])
    assert parts["image"] == ("still.png", image.read_bytes())
    assert parts["audio"] == ("music.wav", audio.read_bytes())
    sent = json.loads(parts["params"][1])
    assert sent == {"seconds": 4.0, "fps": 24, "start": 0.0, "style": "house", "seed": 7, "preset": "draft",
                    "beats": [0.5, 1.0]}  # None fields (steps, guidance, resolution) are left to the server


def test_encode_multipart_quotes_names(tmp_path):
    f = tmp_path / 'we"ird.wav'
    f.write_bytes(b"x")
    body, ctype = encode_multipart({"params": "{}"}, {"audio": f})
    assert ctype.startswith("multipart/form-data; boundary=")
    assert _parts(ctype, body)["audio"][1] == b"x"


def test_server_error_message_reaches_the_caller(recorder):
    server, url = recorder
    _Recorder.reply = (422, {"error": "unknown style 'tango'; valid: auto, break, ..."})
    with pytest.raises(BackendError, match="unknown style 'tango'") as info:
        ServerClient(url, "t").status("abc")
    assert info.value.status == 422


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(BackendError, match="cannot reach the Dance Any Beat server") as info:
        ServerClient("http://127.0.0.1:9", "t", timeout=2).health()
    assert info.value.status is None


def test_payloads():
    status = JobStatus.from_json({"state": "running", "progress": 1.7, "stage": "sampling", "eta_s": 3})
    assert (status.progress, status.eta_s, status.finished, status.warnings) == (1.0, 3.0, False, [])
    done = JobStatus.from_json({"state": "done", "result": {"frames": 2, "warnings": ["the dancer is cut off"]}})
    assert done.finished and done.warnings == ["the dancer is cut off"]
    with pytest.raises(ValueError, match="unknown job state"):
        JobStatus.from_json({"state": "exploded"})
    beats = BeatInfo.from_json({"tempo": 120, "beats": [0.5, 1], "downbeats": [0.5]})
    assert beats.beats == [0.5, 1.0] and beats.tempo == 120.0


def test_timebase_fps_base_and_range_start():
    fps = timebase.scene_fps(30, 1.001)  # 29.97
    assert timebase.frame_to_seconds(101, fps, 101) == 0.0
    assert timebase.frame_to_seconds(131, fps, 101) == pytest.approx(1.001)
    assert timebase.seconds_to_frame(1.001, fps, 101) == 131
    assert timebase.frame_to_seconds(131, fps, 101, offset=10.0) == pytest.approx(11.001)
    # beats that round to one frame merge, a downbeat wins; beats outside the range are dropped
    frames = timebase.beat_frames([0.0, 0.01, 0.5, 9.0], [0.01], 24.0, 1, 100)
    assert frames == {1: True, 13: False}
    assert timebase.is_beat_marker(timebase.DOWNBEAT_MARKER) and timebase.is_downbeat_marker("dab:DOWN")
    assert not timebase.is_beat_marker("intro")


def test_presets_are_the_shared_toml_files():
    with open(REPO / "presets" / "styles.toml", "rb") as f:
        styles = list(tomllib.load(f))
    assert [name for name, _, _ in presets.style_items()] == styles
    assert presets.DEFAULT_STYLE in styles
    assert presets.DEFAULT_QUALITY in [name for name, _, _ in presets.quality_items()]


def _runner(client, tmp_path: Path, out: str = "out") -> JobRunner:
    image, audio = tmp_path / "i.png", tmp_path / "a.wav"
    image.write_bytes(b"i")
    audio.write_bytes(b"a")
    return JobRunner(lambda: client, image, audio, JobParams(seconds=1.0, fps=4), lambda job: tmp_path / out / job,
                     poll_interval=0.01)


def test_job_runner_downloads_frames_and_never_overwrites(tmp_path):
    runner = _runner(ScriptedClient(4), tmp_path)
    runner.run()
    snap = runner.snapshot()
    assert (snap.state, snap.finished, len(snap.frames)) == ("done", True, 4)
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in snap.frames)
    assert runner._connect().calls[-1] == "purge"  # the server's copy goes once ours is on disk
    again = _runner(ScriptedClient(4), tmp_path)  # same job folder exists already: refuses, touches nothing
    before = [p.stat().st_mtime_ns for p in snap.frames]
    again.run()
    assert again.snapshot().state == "failed" and "exists" in again.snapshot().error
    assert [p.stat().st_mtime_ns for p in snap.frames] == before


def test_job_runner_cancel_and_failure(tmp_path):
    client = ScriptedClient(4, ["running"])
    runner = _runner(client, tmp_path).start()
    deadline = time.monotonic() + 5
    while runner.snapshot().state != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.cancel()
    runner._thread.join(5)
    assert runner.snapshot().state == "cancelled" and client.calls[-1] == "purge" and "cancel" in client.calls
    assert not (tmp_path / "out").exists()
    failing = _runner(ScriptedClient(4, ["running", "failed"]), tmp_path)
    failing.run()
    assert (failing.snapshot().state, failing.snapshot().error) == ("failed", "boom")
    assert "purge" not in failing._connect().calls  # a failed job stays on the server, for its log and state


def test_frames_listing_is_the_servers_shape(recorder):
    server, url = recorder
    paths = [f"/jobs/abc/frames/{n}" for n in (1, 2, 3)]
    _Recorder.reply = (200, {"id": "abc", "count": 3, "fps": 12.0, "width": 24, "height": 32, "frames": paths})
    assert ServerClient(url, "t").frames("abc") == paths
    _Recorder.reply = (200, {"id": "abc", "count": 4, "frames": paths})
    with pytest.raises(BackendError, match="count 4 but 3 frames"):
        ServerClient(url, "t").frames("abc")
    _Recorder.reply = (200, ["not", "a", "listing"])
    with pytest.raises(BackendError, match="did not send a frame list"):
        ServerClient(url, "t").frames("abc")


# ------------------------------------------------------------------------------------------ the local server
def test_local_server_passes_only_what_serve_accepts(tmp_path, monkeypatch):
    """Every option of the command line is one `dance-any-beat serve --help` lists; the token is the server's own
    (--token-file, read after the ready line), so a DANCE_ANY_BEAT_TOKEN in Blender's environment is not passed."""
    from dance_any_beat.cli import build_parser

    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    accepted = {opt for action in serve._actions for opt in action.option_strings}
    server = LocalServer("/usr/bin/python3", tmp_path, device="cpu", checkpoint="/ckpt")
    cmd = server.command()
    assert cmd[:4] == ["/usr/bin/python3", "-m", "dance_any_beat.cli", "serve"]
    used = {a for a in cmd[4:] if a.startswith("--")}
    assert used <= accepted and {"--token-file", "--jobs-dir", "--device", "--checkpoint", "--port"} <= used
    args = serve.parse_args(cmd[4:])
    assert (args.host, args.port, args.device, args.checkpoint) == ("127.0.0.1", 0, "cpu", "/ckpt")
    assert (args.token_file, args.jobs_dir) == (str(tmp_path / "token"), str(tmp_path / "jobs"))
    assert (args.clap_weights, args.wav2clip_weights) == (None, None)  # not set: not passed
    weights = LocalServer("/usr/bin/python3", tmp_path, checkpoint="/ckpt", clap_weights="/w/clap.pt",
                          wav2clip_weights="/w/Wav2CLIP.pt")
    args = serve.parse_args(weights.command()[4:])
    assert (args.clap_weights, args.wav2clip_weights) == ("/w/clap.pt", "/w/Wav2CLIP.pt")
    monkeypatch.setenv("DANCE_ANY_BEAT_TOKEN", "from-the-artists-shell-0123456789")
    env = server.environment()
    assert "DANCE_ANY_BEAT_TOKEN" not in env and not [k for k in env if "CLAP" in k.upper()]


def test_local_server_reports_a_missing_interpreter_and_a_death(tmp_path):
    with pytest.raises(BackendError, match="does not exist: set Python in the add-on's preferences"):
        LocalServer(str(tmp_path / "nope" / "python"), tmp_path).start()
    server = LocalServer(sys.executable, tmp_path)
    server.command = lambda: [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"]
    server.start()
    with pytest.raises(BackendError, match=r"stopped \(exit code 3\)\. Its last output:\nboom"):
        server.wait_ready(timeout=30)


def test_remote_backends_and_online_access():
    assert is_loopback_url("http://127.0.0.1:8765") and is_loopback_url("localhost:8765")
    assert is_loopback_url("http://[::1]:8765") and not is_loopback_url("http://gpu-box:8765")
    offline = BackendSettings(mode="REMOTE", url="http://gpu-box:8765", token="t", online_access=False)
    with pytest.raises(BackendError, match="online access is off.*Allow Online Access"):
        backend.connect(offline)
    local = BackendSettings(mode="REMOTE", url="http://127.0.0.1:8765", token="t", online_access=False)
    assert backend.connect(local).url == "http://127.0.0.1:8765"  # this machine: no online access needed
    assert backend.describe_health({"version": "0.1.0", "device": "cuda:0", "model": {"name": "starter",
                                    "parameters": 1234567}}) == "Dance Any Beat 0.1.0 on cuda:0, model starter " \
                                                               "(1,234,567 parameters)"
    assert "no model: train it" in backend.describe_health({"model": None, "model_error": "train it"})


# ------------------------------------------------------------------------------------------ set up backend
def test_setup_commands_use_blenders_python_and_the_bundled_backend(tmp_path):
    venv = tmp_path / "backend-venv"
    commands = backend_setup.setup_commands("/blender/python/bin/python3.11", venv)
    assert commands[0] == ["/blender/python/bin/python3.11", "-m", "venv", str(venv)]
    assert commands[1][:4] == [str(venv / "bin" / "python"), "-m", "pip", "install"]
    assert commands[1][-1] == str(REPO)  # the extension's root: pyproject.toml + backend/ (see the zip test)
    backend_setup.check_source(REPO)
    with pytest.raises(FileNotFoundError, match="lacks pyproject.toml"):
        backend_setup.check_source(tmp_path)


def test_setup_runner_logs_progress_and_failure(tmp_path):
    """The runner with stand-in commands (no pip): stages follow pip's output, everything lands in the log."""
    python = tmp_path / "venv" / "bin" / "python"
    make_venv = [sys.executable, "-c", f"import pathlib; p = pathlib.Path({str(python)!r}); "
                 "p.parent.mkdir(parents=True); p.write_text('')"]
    pip = [sys.executable, "-c", "print('Collecting torch==2.13.0'); print('Downloading torch.whl'); "
           "print('Installing collected packages: torch'); print('Successfully installed torch')"]
    setup = backend_setup.BackendSetup([make_venv, pip], python, tmp_path / "setup.log")
    assert setup.snapshot().stage == "starting"
    setup.run()
    snap = setup.snapshot()
    assert (snap.done, snap.error, snap.progress, snap.python) == (True, None, 1.0, str(python))
    log = (tmp_path / "setup.log").read_text()
    assert "Collecting torch==2.13.0" in log and "$ " + " ".join(pip) in log
    failing = backend_setup.BackendSetup([[sys.executable, "-c", "print('ERROR: No matching distribution'); "
                                           "raise SystemExit(1)"]], python, tmp_path / "setup.log")
    failing.run()
    snap = failing.snapshot()
    assert snap.done and "failed (exit code 1)" in snap.error and "No matching distribution" in snap.error


# -------------------------------------------------------------------------------------------- command line
def test_command_line_arguments():
    args = command_line.parse(["generate", "a.blend", "--save", "b.blend", "--range", "1", "24", "--still", "s.png",
                               "--audio", "timeline", "--detect-beats", "--steps", "2"])
    assert (args.blend_files, args.frame_range, args.still, args.audio) == (["a.blend", "b.blend"], (1, 24),
                                                                            "s.png", "timeline")
    assert args.save and args.detect_beats and args.steps == 2 and args.quality is None
    assert command_line.parse(["generate"]).blend_files == []
    for argv, message in [([], "name a command: generate"), (["render"], "unknown command 'render'"),
                          (["generate", "--range", "5"], "expected 2 arguments"),
                          (["generate", "--range", "9", "3"], "first and then the last frame"),
                          (["generate", "--steps", "0"], "--steps must be 1 to 1000"),
                          (["generate", "notes.txt"], "'notes.txt' is not a .blend file"),
                          (["generate", "--bogus"], "unrecognized arguments: --bogus")]:
        with pytest.raises(command_line.UsageError, match=message):
            command_line.parse(argv)
    assert command_line.parse(["generate", "--help"]) is None


def test_a_changed_preference_restarts_the_local_server(tmp_path, monkeypatch):
    events = []

    class Fake:
        def __init__(self, python, state_dir, device, checkpoint, clap_weights="", wav2clip_weights=""):
            self.python, self.state_dir, self.device, self.checkpoint = python, state_dir, device, checkpoint
            self.clap_weights, self.wav2clip_weights = clap_weights, wav2clip_weights
            self.up = False

        def start(self):
            self.up = True
            events.append(("start", self.device))

        def alive(self):
            return self.up

        def stop(self):
            self.up = False
            events.append(("stop", self.device))

        def wait_ready(self):
            if self.state_dir == taken:
                self.up = False
                raise BackendError(f"... another dance-any-beat server is using the jobs folder {taken}/jobs; ...")
            return self

    taken = tmp_path / "taken"
    monkeypatch.setattr(backend, "LocalServer", Fake)
    monkeypatch.setattr(backend, "_local", None)
    settings = BackendSettings(mode="LOCAL", python="py", state_dir=str(tmp_path), device="cpu")
    first = backend.connect(settings)
    assert backend.connect(settings) is first  # one server per session
    second = backend.connect(BackendSettings(mode="LOCAL", python="py", state_dir=str(tmp_path), device="cuda"))
    assert second is not first and events == [("start", "cpu"), ("stop", "cpu"), ("start", "cuda")]
    assert backend.free() and events[-1] == ("stop", "cuda") and not backend.free()
    # another Blender's backend holds the shared folder: this session gets a folder of its own
    own = backend.connect(BackendSettings(mode="LOCAL", python="py", state_dir=str(taken), device="cpu"))
    assert own.state_dir == taken / f"session-{os.getpid()}" and own.up
    assert backend.connect(BackendSettings(mode="LOCAL", python="py", state_dir=str(taken), device="cpu")) is own
    backend.free()


def test_background_choice_is_sent_only_when_the_artist_decides(recorder, tmp_path):
    server, url = recorder
    image, audio = tmp_path / "still.png", tmp_path / "music.wav"
    image.write_bytes(png_bytes((1, 2, 3)))
    audio.write_bytes(b"RIFF")
    _Recorder.reply = (202, {"id": "abc"})
    for choice, expected in BACKGROUND_CHOICES.items():  # the panel's Background menu
        ServerClient(url, "s3cret").submit(image, audio, JobParams(seconds=1.0, fps=24, keep_background=expected))
        req = _Recorder.requests[-1]
        sent = json.loads(_parts(req["headers"]["Content-Type"], req["body"])["params"][1])
        if choice == "AUTO":
            assert "keep_background" not in sent  # the server decides
        else:
            assert sent["keep_background"] is (choice == "KEEP")
        assert "beat_sync" not in sent  # the server's default (on the beats)
    ServerClient(url, "s3cret").submit(image, audio, JobParams(seconds=1.0, fps=24, beat_sync=0.25))
    req = _Recorder.requests[-1]
    assert json.loads(_parts(req["headers"]["Content-Type"], req["body"])["params"][1])["beat_sync"] == 0.25
