"""`dance-any-beat serve` as the add-on meets it: a real server process on 127.0.0.1 with a tiny random-weight model,
spoken to over real HTTP. Whole jobs, cancel, queue order, a crashing job, a killed server restarted over its jobs
folder, every refused input (a 4xx `{"error": ...}` that says what to change), a schemathesis run over the OpenAPI
schema, and the server's memory over 50 draft jobs."""

import http.client
import io
import json
import os
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import psutil
import pytest
import soundfile as sf

from dance_any_beat.cli import main
from dance_any_beat.data.music_synth import synthesize_music
from dance_any_beat.server.auth import TOKEN_ENV, TokenError, is_loopback, resolve_token
from dance_any_beat.server.jobs import lock_folder

# `checkpoint` (conftest.py): a ~40 k-parameter DabFusion with random weights: a job takes about a second.
QUICK = {"seconds": 1.0, "fps": 8, "steps": 2, "resolution": "model", "window_overlap": 2}
LONG = {"seconds": 30.0, "fps": 24, "steps": 1000, "resolution": "model", "window_overlap": 2}  # minutes: cancel it
FINAL = ("done", "failed", "cancelled")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MAX_IMAGE_MB, MAX_AUDIO_MB = 0.25, 1.0  # lowered, so an oversized upload is cheap to send


# ------------------------------------------------------------------------------------------------ the server
@dataclass
class Server:
    proc: subprocess.Popen
    ready: dict
    token: str
    log: Path

    @property
    def url(self) -> str:
        return self.ready["url"]

    @classmethod
    def start(cls, folder: Path, checkpoint: Path, *flags: str, env_token: str | None = None) -> "Server":
        """Start `serve` on 127.0.0.1 port 0 over folder/jobs; wait for its ready line."""
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env.pop(TOKEN_ENV, None)
        token_flags = ["--token-file", str(folder / "token")]
        if env_token is not None:
            env[TOKEN_ENV], token_flags = env_token, []
        log = folder / f"server-{time.monotonic_ns()}.log"
        cmd = [sys.executable, "-m", "dance_any_beat.cli", "serve", "--host", "127.0.0.1", "--port", "0",
               "--threads", "1", "--jobs-dir", str(folder / "jobs"), "--checkpoint", str(checkpoint), *token_flags,
               *flags]  # fmt: skip
        with open(log, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
        deadline = time.monotonic() + 120
        line = b""
        while not line.endswith(b"\n"):
            ready_to_read, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            chunk = proc.stdout.readline() if ready_to_read else b""
            if not chunk:
                proc.kill()
                pytest.fail(f"serve printed no ready line (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
            line += chunk
        ready = json.loads(line)
        token = env_token if env_token is not None else Path(ready["token_file"]).read_text().strip()
        return cls(proc, ready, token, log)

    def client(self, token: str | None = "own") -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {self.token if token == 'own' else token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def shutdown(self) -> int:
        with self.client() as c:
            assert c.post("/shutdown").status_code == 202
        return self.proc.wait(30)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def rss_mb(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint):
    folder = tmp_path_factory.mktemp("server")
    srv = Server.start(folder, checkpoint, "--max-image-mb", str(MAX_IMAGE_MB), "--max-audio-mb", str(MAX_AUDIO_MB))
    yield srv
    if srv.proc.poll() is None:
        assert srv.shutdown() == 0, srv.log.read_text()[-3000:]


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


# ------------------------------------------------------------------------------------------------ inputs
def png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.random((4, 4, 3)).astype(np.float32)
    image = (cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


def wav_bytes(samples: np.ndarray, sr: int = 22050) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header declares width x height (a decompression bomb's first bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


STILL = png_bytes(50, 36)
SONG = wav_bytes(synthesize_music("house", 124.0, 4.0, sr=22050, seed=2, first_beat=0.1).audio)


def post_job(client: httpx.Client, params: dict | str | None = None, image: bytes = STILL, audio: bytes = SONG,
             **kwargs) -> httpx.Response:  # fmt: skip
    text = params if isinstance(params, str) else json.dumps(params or {})
    return client.post("/jobs", files={"image": ("still.png", image, "image/png"),
                                       "audio": ("song.wav", audio, "audio/wav")},
                       data={"params": text}, **kwargs)  # fmt: skip


def submit(client: httpx.Client, params: dict) -> str:
    r = post_job(client, params)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/jobs/{r.json()['id']}"
    return r.json()["id"]


def wait(client: httpx.Client, job_id: str, until=FINAL, timeout: float = 90.0, check=None) -> dict:
    """Poll GET /jobs/{id} until its state is in `until`; `check(status)` sees every status on the way."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/jobs/{job_id}").json()
        if check is not None:
            check(status)
        if status["state"] in until:
            return status
        assert time.monotonic() < deadline, f"job {job_id} still {status['state']} after {timeout} s: {status}"
        time.sleep(0.05)


def assert_error(r: httpx.Response, status: int, *phrases: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    for phrase in phrases:
        assert phrase.lower() in body["error"].lower(), (phrase, body["error"])
    assert "Traceback" not in body["error"]
    return body["error"]


# ------------------------------------------------------------------------------------------------ whole jobs
def test_ready_line_health_and_presets(server, client, checkpoint):
    assert set(server.ready) >= {"url", "pid", "token_file", "jobs_dir", "version"}
    assert server.ready["url"].startswith("http://127.0.0.1:") and server.ready["pid"] == server.proc.pid
    assert server.token not in json.dumps(server.ready)  # the token is handed over by file, never printed
    assert stat.S_IMODE(os.stat(server.ready["token_file"]).st_mode) == 0o600
    health = httpx.get(server.url + "/health").json()  # no token needed
    assert health["status"] == "ok" and health["device"] == "cpu" and health["model_error"] is None
    assert health["model"]["name"] == checkpoint.name and health["model"]["config"]["data"]["image_size"] == 32
    assert health["queue"]["concurrency"] == 1 and health["version"] == server.ready["version"]
    assert health["limits"]["max_image_mb"] == MAX_IMAGE_MB and health["limits"]["max_side"] == 8192
    presets = client.get("/presets").json()
    assert [p["name"] for p in presets["quality"]] == ["draft", "standard", "final"]
    assert presets["default"] == "standard" and presets["styles"][0]["name"] == "auto"
    assert "house" in {s["name"] for s in presets["styles"]}


def test_beats_route_tracks_the_upload(client):
    r = client.post("/beats", files={"audio": ("song.wav", SONG)}, data={"start": "1"})
    assert r.status_code == 200, r.text
    beats = r.json()
    assert beats["tempo"] == pytest.approx(124.0, rel=0.05) and beats["start"] == 1.0
    assert beats["beats"][0] >= 1.0 and np.allclose(np.diff(beats["beats"]), 60 / 124.0, atol=0.05)
    assert beats["duration"] == pytest.approx(3.0, abs=0.01)


def test_whole_job(client):
    params = {"seconds": 1.5, "fps": 12, "steps": 3, "resolution": "full", "style": "house", "seed": 3}
    job_id = submit(client, params)
    seen: list[dict] = []
    status = wait(client, job_id, check=seen.append)
    assert status["state"] == "done", status
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0 and all(0 <= p <= 1 for p in progress)
    assert status["error"] is None and status["eta_s"] is None and status["params"] == params
    result = status["result"]
    assert result["frames"] == 18 and result["size"] == [50, 36] and result["params"]["steps"] == 3
    assert result["warnings"] == []
    assert job_id in [j["id"] for j in client.get("/jobs").json()["jobs"]]

    frames = client.get(f"/jobs/{job_id}/frames").json()
    assert (frames["count"], frames["fps"], frames["width"], frames["height"]) == (18, 12.0, 50, 36)
    assert frames["frames"][0] == f"/jobs/{job_id}/frames/1" and len(frames["frames"]) == 18
    for n in (1, 18):
        r = client.get(frames["frames"][n - 1])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR).shape == (36, 50, 3)
    assert_error(client.get(f"/jobs/{job_id}/frames/19"), 404, "frames 1 to 18")
    assert_error(client.get(f"/jobs/{job_id}/frames/0"), 404, "no frame 0")
    video = client.get(f"/jobs/{job_id}/video")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4" and video.content[4:8] == b"ftyp"
    beats = client.get(f"/jobs/{job_id}/beats").json()
    assert beats["source"] == "tracked" and beats["duration"] == 1.5 and len(beats["beats"]) >= 2


def test_a_done_job_tells_what_the_artist_should_know(client):
    """The pipeline's warnings reach the job's result: here the dancer is cut off at the knees by the frame."""
    room = cv2.imread(str(EXAMPLES / "dancer_on_set_room.jpg"))  # (540, 960, 3), the dancer from y 243 to 465
    cut = cv2.imencode(".jpg", room[:376], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()  # under the upload cap
    r = post_job(client, {"seconds": 1, "fps": 12, "steps": 2, "keep_background": True}, image=cut)
    assert r.status_code == 202, r.text
    status = wait(client, r.json()["id"])
    assert status["state"] == "done", status
    assert status["result"]["warnings"] == [
        "the dancer is cut off at the bottom edge of the still; the missing part cannot dance"]


def test_cancel_mid_job(client):
    job_id = submit(client, LONG)
    status = wait(client, job_id, until=("running",))
    deadline = time.monotonic() + 60
    while not status["stage"].startswith("denoising") or status["progress"] <= 0.125:
        assert status["state"] == "running" and time.monotonic() < deadline, status
        time.sleep(0.05)
        status = client.get(f"/jobs/{job_id}").json()
    assert status["eta_s"] is not None and status["eta_s"] > 0
    t0 = time.monotonic()
    status = client.delete(f"/jobs/{job_id}").json()
    took = time.monotonic() - t0
    assert status["state"] == "cancelled" and took < 1.0, (status, took)  # stops at the next sampler step
    assert client.get(f"/jobs/{job_id}").json()["state"] == "cancelled"
    assert_error(client.get(f"/jobs/{job_id}/frames"), 409, "was cancelled")
    # a queued job is cancelled at once; cancelling again changes nothing; purge deletes it
    assert client.delete(f"/jobs/{job_id}").json()["state"] == "cancelled"
    assert client.delete(f"/jobs/{job_id}", params={"purge": "true"}).status_code == 200
    assert_error(client.get(f"/jobs/{job_id}"), 404, "no job with id")


def test_two_queued_jobs_run_in_order(client):
    first = submit(client, {**QUICK, "steps": 60, "seconds": 2.0})
    second = post_job(client, {**QUICK, "beats": [0.5, 1.0, 1.5]}).json()  # given beats
    assert second["state"] == "queued" and second["queue_position"] >= 1
    a, b = wait(client, first), wait(client, second["id"])
    assert a["state"] == b["state"] == "done"
    assert a["finished"] <= b["started"], (a, b)  # one at a time, first in first out
    beats = client.get(f"/jobs/{second['id']}/beats").json()
    assert beats["source"] == "given" and beats["beats"] == [0.5, 1.0]  # 1.5 s lies past the 1 s range


def test_a_crashing_job_fails_with_its_reason_and_the_server_goes_on(server, client):
    running = submit(client, {**QUICK, "steps": 60, "seconds": 2.0})
    doomed = submit(client, QUICK)
    assert client.get(f"/jobs/{doomed}").json()["state"] == "queued"
    shutil.rmtree(Path(server.ready["jobs_dir"]) / doomed / "inputs")  # its still is gone when it runs
    failed = wait(client, doomed)
    assert failed["state"] == "failed" and "does not exist" in failed["error"], failed
    assert server.ready["jobs_dir"] not in failed["error"]  # no server paths in messages
    assert wait(client, running)["state"] == "done"
    assert wait(client, submit(client, QUICK))["state"] == "done"  # the worker took the next job
    assert_error(client.get(f"/jobs/{doomed}/video"), 409, "failed")


def test_a_killed_server_restarted_over_its_jobs_folder(tmp_path, checkpoint):
    """SIGKILL mid-job; a new server (token from the environment, no model this time) lists the finished job and
    still serves its frames, and marks the running and the queued job failed."""
    token = "restart-test-token-0123456789"
    first = Server.start(tmp_path, checkpoint, env_token=token)
    assert first.ready["token_file"] is None
    with first.client() as c:
        done = submit(c, QUICK)
        assert wait(c, done)["state"] == "done"
        running = submit(c, LONG)
        queued = submit(c, QUICK)
        wait(c, running, until=("running",))
    first.kill()

    second = Server.start(tmp_path, tmp_path / "no-such-checkpoint", env_token=token)
    try:
        with second.client() as c:
            jobs = {j["id"]: j for j in c.get("/jobs").json()["jobs"]}
            assert jobs[done]["state"] == "done" and jobs[done]["result"]["frames"] == 8
            assert c.get(f"/jobs/{done}/frames/8").headers["content-type"] == "image/png"
            for job_id, was in ((running, "running"), (queued, "queued")):
                assert jobs[job_id]["state"] == "failed", jobs[job_id]
                assert "interrupted" in jobs[job_id]["error"] and was in jobs[job_id]["error"]
            assert not (tmp_path / "jobs" / running / "out").exists()
            # no model: /health says why and how to get one, a job is refused with the same message
            health = httpx.get(second.url + "/health").json()
            assert health["model"] is None and "no-such-checkpoint" in health["model_error"]
            assert "train" in health["model_error"]
            assert_error(post_job(c, QUICK), 503, "no model loaded", "no-such-checkpoint", "--checkpoint")
    finally:
        assert second.shutdown() == 0  # POST /shutdown: a clean exit


def test_one_server_per_jobs_folder(server):
    with pytest.raises(OSError, match="another dance-any-beat server is using the jobs folder"):
        lock_folder(Path(server.ready["jobs_dir"])).close()


def test_serve_refuses_a_public_host_without_a_token(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--jobs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a loopback address" in err and TOKEN_ENV in err and "--token-file" in err


def test_token_sources(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    made = resolve_token("127.0.0.1", None, tmp_path)  # generated into the jobs folder
    assert made.file == tmp_path / "token" and made.file.read_text().strip() == made.value and not made.explicit
    given = tmp_path / "given"
    first = resolve_token("0.0.0.0", given, tmp_path)  # generated into the file asked for
    assert stat.S_IMODE(given.stat().st_mode) == 0o600 and resolve_token("0.0.0.0", given, tmp_path) == first
    given.write_text("short\n")
    with pytest.raises(TokenError, match="at least 16 characters"):
        resolve_token("127.0.0.1", given, tmp_path)
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment-1234")
    env = resolve_token("0.0.0.0", None, tmp_path)
    assert env.value == "from-the-environment-1234" and env.file is None and env.matches(env.value)
    assert not env.matches("from-the-environment-1235") and not env.matches("")


# ------------------------------------------------------------------------------------------------ bad inputs
def raw_get(server: Server, path: str) -> tuple[int, dict]:
    """GET an exact path (no client-side normalisation of '..' or percent escapes)."""
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    conn.putheader("Authorization", f"Bearer {server.token}")
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, json.loads(body)


def test_no_token_and_wrong_token(server):
    with server.client(token=None) as c:
        assert_error(c.get("/jobs"), 401, "missing token", "Authorization: Bearer")
        assert_error(post_job(c, QUICK), 401, "missing token")
        assert_error(c.get("/openapi.json"), 401, "missing token")
        assert_error(c.get("/no/such/route"), 401, "missing token")  # nothing is probed without the token
    with server.client(token="x" * 43) as c:
        r = c.get("/jobs")
        assert_error(r, 401, "wrong token")
        assert r.headers["www-authenticate"] == "Bearer"
    with server.client(token=None) as c:
        assert_error(c.get("/jobs", headers={"Authorization": f"Basic {server.token}"}), 401, "Bearer <token>")


TRUNCATED = png_bytes(200, 150, seed=1)
BAD_JOBS = {
    "text as image": (dict(image=b"hello, this is not an image\n" * 3), 422, ["not a PNG or JPEG"]),
    "truncated png": (dict(image=TRUNCATED[: len(TRUNCATED) // 2]), 422, ["damaged or truncated"]),
    "30000x30000 png header": (dict(image=png_header_only(30000, 30000)), 422, ["30000x30000", "8192"]),
    "9000x20 png header": (dict(image=png_header_only(9000, 20)), 422, ["9000x20", "8192"]),
    "empty image": (dict(image=b""), 422, ["empty"]),
    "zero-length audio": (dict(audio=b""), 422, ["empty", "zero-length"]),
    "wav without samples": (dict(audio=wav_bytes(np.zeros(0))), 422, ["no samples", "zero-length"]),
    "0.3 s audio": (dict(audio=wav_bytes(np.sin(np.arange(6615) * 0.3))), 422, ["0.30 s", "at least 1 s"]),
    "silent audio": (dict(audio=wav_bytes(np.zeros(3 * 22050))), 422, ["no beats were found", "silent", "beats"]),
    "silent audio, beats given": (dict(audio=wav_bytes(np.zeros(3 * 22050)), params={"beats": [0.5, 1.0]}), 422,
                                  ["silent", "the beats are given"]),
    "text as audio": (dict(audio=b"RIFF? no, just text" * 10), 422, ["could not read", "wav, flac, ogg or mp3"]),
    "unknown style": (dict(params={"style": "tango"}), 422, ["unknown style 'tango'", "house"]),
    "unknown preset": (dict(params={"preset": "ultra"}), 422, ["unknown preset 'ultra'", "draft"]),
    "fps 0": (dict(params={"fps": 0}), 422, ["params.fps", "greater than or equal to 1"]),
    "fps 121": (dict(params={"fps": 121}), 422, ["params.fps", "less than or equal to 120"]),
    "seconds -1": (dict(params={"seconds": -1}), 422, ["params.seconds", "greater than 0"]),
    "seconds 601": (dict(params={"seconds": 601}), 422, ["params.seconds", "600"]),
    "steps 5000": (dict(params={"steps": 5000}), 422, ["params.steps", "less than or equal to 1000"]),
    "beat sync 1.5": (dict(params={"beat_sync": 1.5}), 422, ["params.beat_sync", "less than or equal to 1"]),
    "unknown parameter": (dict(params={"fsp": 24}), 422, ["unknown parameter params.fsp", "fps"]),
    "params not json": (dict(params="{seconds: 4"), 422, ["not valid JSON"]),
    "params not an object": (dict(params="[1, 2]"), 422, ["JSON object"]),
    "negative beat": (dict(params={"beats": [0.5, -1]}), 422, ["params.beats.1"]),
    "start past the end": (dict(params={"start": 10}), 422, ["past the end of the audio"]),
    "device cuda on a cpu server": (dict(params={"device": "cuda"}), 422, ["runs its model on cpu"]),
    "window overlap too big": (dict(params={"window_overlap": 8}), 422, ["window_overlap", "8 frames"]),
    "oversized image": (dict(image=b"\x89PNG" + bytes(300_000)), 413, ["image is", "0.25 MB"]),
    "oversized request": (dict(audio=bytes(3 * 2**20)), 413, ["request is 3", "1 MB"]),
}


@pytest.mark.parametrize("case", list(BAD_JOBS))
def test_bad_job_inputs_are_refused_with_a_clear_message(client, case):
    kwargs, status, phrases = BAD_JOBS[case]
    before = len(client.get("/jobs").json()["jobs"])
    assert_error(post_job(client, **kwargs), status, *phrases)
    assert len(client.get("/jobs").json()["jobs"]) == before  # nothing queued


def test_missing_fields_and_an_oversized_streamed_body(server, client):
    assert_error(client.post("/jobs", files={"image": ("s.png", STILL)}), 422, "'audio' are missing")
    assert_error(client.post("/jobs", data={"params": "{}"}), 422, "'image', 'audio'")
    # no Content-Length (chunked): the size is counted while the body streams in
    boundary = "b0undary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n").encode()  # fmt: skip

    def body():
        yield head
        for _ in range(3):
            yield bytes(2**20)
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post("/beats", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert_error(r, 413, "request is")
    assert_error(client.post("/beats", files={"audio": ("a.wav", wav_bytes(np.zeros(2 * 22050)))}), 422,
                 "no beats were found")  # fmt: skip


@pytest.mark.parametrize("path", ["/jobs/../../etc/passwd", "/jobs/..%2F..%2Fetc", "/jobs/%2E%2E%2F%2E%2E%2Fetc",
                                  "/jobs/..%2F..%2Fetc/frames/1", "/jobs/%2e%2e/video", "/jobs/..", "/jobs/~root",
                                  "/jobs/" + "0" * 32, "/jobs/" + "0" * 32 + "/frames", "/jobs/ABCDEF/beats",
                                  "/jobs/%00/video"])  # fmt: skip
def test_job_ids_that_are_not_ids(server, path):
    status, body = raw_get(server, path)
    assert status in (400, 404) and set(body) == {"error"}, (status, body)
    assert "root:" not in body["error"]


def test_unknown_job_id(client):
    assert_error(client.get("/jobs/" + "ab" * 16), 404, "no job with id", "GET /jobs lists them")
    assert_error(client.delete("/jobs/" + "ab" * 16), 404, "no job with id")
    assert_error(client.get("/jobs/../../etc"), 404)  # httpx normalises the dots away: no route /etc
    assert_error(client.get("/jobs/" + "ab" * 16 + "/frames/x"), 422, "integer")


# ------------------------------------------------------------------------------------------------ schema, memory
@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(server, tmp_path):
    st = Path(sys.executable).with_name("st")
    cmd = [str(st), "run", server.url + "/openapi.json", "--header", f"Authorization: Bearer {server.token}",
           "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
           "--exclude-path", "/shutdown", "--max-examples", "20", "--workers", "1", "--seed", "1", "--no-shrink",
           "--warnings", "off", "--report-dir", str(tmp_path)]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    generated = int(out.split(" generated")[0].rsplit(None, 1)[-1]) if " generated" in out else 0
    assert run.returncode == 0 and "No issues found" in out, out[-4000:]
    assert generated >= 200, out[-2000:]  # "a few hundred cases"
    assert server.proc.poll() is None


@pytest.mark.slow
def test_memory_is_flat_over_50_draft_jobs(server, client, capsys):
    rss = []
    for _ in range(50):
        status = wait(client, submit(client, {"preset": "draft", "seconds": 1.0, "fps": 8}))
        assert status["state"] == "done", status
        rss.append(server.rss_mb())
    with capsys.disabled():
        print(f"\nserver RSS over 50 draft jobs: after 5th {rss[4]:.1f} MB, after 50th {rss[49]:.1f} MB "
              f"(max {max(rss):.1f} MB)")  # fmt: skip
    assert rss[49] <= rss[4] * 1.10, rss


def test_shutdown_stops_the_running_job_and_exits(server, client):
    """Last in the module: POST /shutdown with a job running and one queued; both end failed (a client sees why
    after a restart), the process exits 0 within seconds."""
    running, queued = submit(client, LONG), submit(client, QUICK)
    wait(client, running, until=("running",))
    t0 = time.monotonic()
    assert server.shutdown() == 0
    assert time.monotonic() - t0 < 10
    for job_id in (running, queued):
        record = json.loads((Path(server.ready["jobs_dir"]) / job_id / "state.json").read_text())
        assert record["state"] == "failed" and "shut down" in record["error"], record
