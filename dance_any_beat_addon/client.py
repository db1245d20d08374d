"""HTTP client for the Dance Any Beat server (`dance-any-beat serve`), urllib only and bpy-free.

Every call is a blocking request with a timeout: the add-on makes them from a worker thread (or, in
background mode, directly). Errors come out as `BackendError` with the server's own message.
"""

from __future__ import annotations

import json
import mimetypes
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .payload import BeatInfo, JobParams, JobStatus

DEFAULT_TIMEOUT = 10.0  # seconds for small requests
UPLOAD_TIMEOUT = 300.0  # seconds for requests that carry or analyse media


class BackendError(RuntimeError):
    """The server answered with an error, or could not be reached (`status` None)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def encode_multipart(fields: dict[str, str], files: dict[str, str | Path]) -> tuple[bytes, str]:
    """A multipart/form-data body of text `fields` and `files` (form name -> path); returns (body, content type)."""
    boundary = "----DanceAnyBeat" + secrets.token_hex(16)
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode())
        parts.append(value.encode("utf-8") + b"\r\n")
    for name, path in files.items():
        path = Path(path)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"; '
                f'filename="{_quote(path.name)}"\r\nContent-Type: {mime}\r\n\r\n')
        parts.append(head.encode("utf-8"))
        parts.append(path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class ServerClient:
    """One server: `url` like http://127.0.0.1:8765, `token` the bearer token (empty: none sent)."""

    def __init__(self, url: str, token: str = "", timeout: float = DEFAULT_TIMEOUT):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # ------------------------------------------------------------------------------------------------ transport
    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                timeout: float | None = None) -> tuple[bytes, str]:
        """One request; returns (body, content type). Raises BackendError with the server's message."""
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                return resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            raise BackendError(f"{method} {path}: {_error_message(err)}", err.code) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise BackendError(f"cannot reach the Dance Any Beat server at {self.url}: {reason}") from None

    def json(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
             timeout: float | None = None) -> Any:
        data, _ = self.request(method, path, body, content_type, timeout)
        try:
            return json.loads(data) if data else None
        except ValueError:
            raise BackendError(f"{method} {path}: the server sent something that is not JSON") from None

    # ---------------------------------------------------------------------------------------------------- routes
    def health(self) -> dict[str, Any]:
        return self.json("GET", "/health")

    def presets(self) -> dict[str, Any]:
        return self.json("GET", "/presets")

    def beats(self, audio: str | Path) -> BeatInfo:
        body, ctype = encode_multipart({}, {"audio": audio})
        return BeatInfo.from_json(self.json("POST", "/beats", body, ctype, timeout=UPLOAD_TIMEOUT))

    def submit(self, image: str | Path, audio: str | Path, params: JobParams) -> str:
        body, ctype = encode_multipart({"params": json.dumps(params.to_json())}, {"image": image, "audio": audio})
        answer = self.json("POST", "/jobs", body, ctype, timeout=UPLOAD_TIMEOUT)
        if not isinstance(answer, dict) or not answer.get("id"):
            raise BackendError("POST /jobs: the server did not return a job id")
        return str(answer["id"])

    def status(self, job_id: str) -> JobStatus:
        return JobStatus.from_json(self.json("GET", f"/jobs/{job_id}"))

    def cancel(self, job_id: str) -> None:
        self.request("DELETE", f"/jobs/{job_id}")

    def purge(self, job_id: str) -> None:
        """Deletes an ended job and its files on the server (the add-on keeps its own copy of the frames)."""
        self.request("DELETE", f"/jobs/{job_id}?purge=true", timeout=UPLOAD_TIMEOUT)

    def frames(self, job_id: str) -> list[str]:
        """The frames of a done job: `GET /jobs/{id}/frames` is {id, count, fps, width, height, frames}, `frames`
        the URL paths of frames 1..count."""
        answer = self.json("GET", f"/jobs/{job_id}/frames")
        if not isinstance(answer, dict) or not isinstance(answer.get("frames"), list):
            raise BackendError(f"GET /jobs/{job_id}/frames: the server did not send a frame list")
        frames = [str(f) for f in answer["frames"]]
        if int(answer.get("count", len(frames))) != len(frames):
            raise BackendError(f"GET /jobs/{job_id}/frames: count {answer.get('count')} but {len(frames)} frames")
        return frames

    def frame(self, job_id: str, n: int) -> bytes:
        """Frame n (1-based) as PNG bytes."""
        return self.request("GET", f"/jobs/{job_id}/frames/{n}", timeout=UPLOAD_TIMEOUT)[0]

    def video(self, job_id: str) -> bytes:
        return self.request("GET", f"/jobs/{job_id}/video", timeout=UPLOAD_TIMEOUT)[0]

    def job_beats(self, job_id: str) -> Any:
        return self.json("GET", f"/jobs/{job_id}/beats")

    def shutdown(self) -> None:
        self.request("POST", "/shutdown")


def _error_message(err: urllib.error.HTTPError) -> str:
    try:
        data = json.loads(err.read() or b"{}")
    except ValueError:
        data = {}
    message = data.get("error") or data.get("detail") if isinstance(data, dict) else None
    return str(message) if message else f"HTTP {err.code} {err.reason}"

