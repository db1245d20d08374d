"""The add-on's bpy-free half: HTTP client encoding, payloads, time base, presets, the job runner.

The client's wire format is checked against a tiny stdlib HTTP server that records requests; the real server
(issue 5) is exercised end to end by the add-on's Blender tests once it is in the tree.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from blender_helpers import REPO, ScriptedClient, png_bytes

from dance_any_beat_addon import presets, timebase
from dance_any_beat_addon.client import BackendError, ServerClient, encode_multipart
from dance_any_beat_addon.jobs import JobRunner
from dance_any_beat_addon.payload import BeatInfo, JobParams, JobStatus


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
    assert (status.progress, status.eta_s, status.finished) == (1.0, 3.0, False)
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
    assert runner.snapshot().state == "cancelled" and "cancel" in client.calls
    assert not (tmp_path / "out").exists()
    failing = _runner(ScriptedClient(4, ["running", "failed"]), tmp_path)
    failing.run()
    assert (failing.snapshot().state, failing.snapshot().error) == ("failed", "boom")
