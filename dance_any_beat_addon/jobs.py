"""Work that runs off Blender's main thread: a generic background task and the generate job runner.

The main thread never waits on these: it reads `snapshot()` (a copy taken under a lock, no I/O) from a timer
and applies finished results to bpy data itself. `run()` is the same work in the calling thread, for background
mode where there is no event loop. bpy-free.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import BackendError, ServerClient
from .payload import JobParams


class BackgroundTask:
    """Runs `fn()` once on a daemon thread (or in the caller with `run`); `done`, `result`, `error` when finished."""

    def __init__(self, fn: Callable[[], Any], name: str = "dance-any-beat task"):
        self._fn = fn
        self._name = name
        self.done = False
        self.result: Any = None
        self.error: str | None = None

    def start(self) -> BackgroundTask:
        threading.Thread(target=self.run, name=self._name, daemon=True).start()
        return self

    def run(self) -> None:
        try:
            self.result = self._fn()
        except Exception as err:  # reported to the artist by the main thread
            self.error = str(err) or type(err).__name__
        finally:
            self.done = True


@dataclass
class JobSnapshot:
    """What the main thread shows and applies; a copy, safe to read without the lock."""

    state: str = "starting"
    """starting (connecting, uploading), then the server's state; downloading after done."""
    progress: float = 0.0
    stage: str = "starting the backend"
    eta_s: float | None = None
    error: str | None = None
    job_id: str = ""
    frames: list[Path] = field(default_factory=list)
    """Downloaded frames in order, once finished with state done."""
    finished: bool = False
    """True once nothing more will change: state is done, failed or cancelled."""
    warnings: list[str] = field(default_factory=list)
    """The server's warnings about a done job's result."""


class JobRunner:
    """Submits one job, follows it to the end, and downloads its frames into a fresh folder.

    `connect` makes the client (starting a local server and waiting for it may be part of that, so it runs on
    the worker thread too). `out_dir(job_id)` names the folder to write into; it must not exist yet, and frames
    are created exclusively, so nothing is ever overwritten.
    """

    def __init__(self, connect: Callable[[], ServerClient], image: Path, audio: Path, params: JobParams,
                 out_dir: Callable[[str], Path], poll_interval: float = 0.5):
        self._connect = connect
        self._image, self._audio, self._params = image, audio, params
        self._out_dir = out_dir
        self._poll_interval = poll_interval
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._snap = JobSnapshot()
        self._thread: threading.Thread | None = None

    def start(self) -> JobRunner:
        self._thread = threading.Thread(target=self.run, name="dance-any-beat job", daemon=True)
        self._thread.start()
        return self

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return copy.deepcopy(self._snap)

    def cancel(self) -> None:
        """Ask for a cancel; the worker tells the server and finishes with state cancelled."""
        self._cancel.set()

    def _update(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self._snap, key, value)

    def run(self) -> None:
        try:
            self._run()
        except Exception as err:
            self._update(state="failed", error=str(err) or type(err).__name__, finished=True)

    def _run(self) -> None:
        client = self._connect()
        if self._cancel.is_set():
            self._update(state="cancelled", stage="cancelled", finished=True)
            return
        self._update(stage="uploading")
        job_id = client.submit(self._image, self._audio, self._params)
        self._update(job_id=job_id, state="queued", stage="queued")
        cancel_sent = False
        while True:
            if self._cancel.is_set() and not cancel_sent:
                client.cancel(job_id)
                cancel_sent = True
            status = client.status(job_id)
            self._update(state=status.state, progress=status.progress, stage=status.stage or status.state,
                         eta_s=status.eta_s, error=status.error, warnings=status.warnings)
            if status.finished:
                break
            if cancel_sent:
                time.sleep(self._poll_interval / 5)  # the server cancels within a second
            else:
                self._cancel.wait(self._poll_interval)
        if status.state != "done":
            if status.state == "failed" and not status.error:
                self._update(error="the backend gave no reason")
            if status.state == "cancelled":
                _purge(client, job_id)
            self._update(finished=True)
            return
        self._download(client, job_id)
        _purge(client, job_id)

    def _download(self, client: ServerClient, job_id: str) -> None:
        listing = client.frames(job_id)
        if not listing:
            raise BackendError(f"job {job_id} finished without frames")
        folder = self._out_dir(job_id)
        folder.mkdir(parents=True, exist_ok=False)
        self._update(state="downloading", stage="downloading frames", progress=0.0, eta_s=None)
        paths = []
        for n in range(1, len(listing) + 1):
            if self._cancel.is_set():
                self._update(state="cancelled", stage="cancelled", finished=True)
                return
            path = folder / f"frame_{n:06d}.png"
            with open(path, "xb") as f:  # exclusive: never overwrite
                f.write(client.frame(job_id, n))
            paths.append(path)
            self._update(progress=n / len(listing))
        self._update(state="done", stage="done", progress=1.0, frames=paths, finished=True)


def _purge(client: ServerClient, job_id: str) -> None:
    """Deletes the job's files on the server once the add-on has what it needs (a failed job is kept there: its
    state and the server's log explain it). Best effort: a server that is gone has nothing left to delete."""
    try:
        client.purge(job_id)
    except BackendError:
        pass
