"""Jobs: one folder each under the jobs directory, a FIFO queue, and worker threads that run `pipeline.generate`.

    JOBS_DIR/<id>/state.json      the job's state (written atomically on every change of state)
    JOBS_DIR/<id>/inputs/         the uploaded still, audio and given beats (removed when the job ends)
    JOBS_DIR/<id>/out/            generate's outputs: frames/000001.png ..., dance.mp4, beats.json

Ids are 32 random hex digits, so a path is built only from an id that matched `JOB_ID`. A worker runs one job
at a time (`concurrency` workers share the loaded model); progress and cancel go through generate's callbacks, so
`cancel` takes effect at the next sampler step or frame. A job that raises is marked failed with the reason and
the worker takes the next one. A server restarted over the folder lists the finished jobs and marks the ones that
were queued or running when it stopped as failed.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dance_any_beat.models.dabfusion import DabFusion
from dance_any_beat.pipeline import GenerateParams, GenerationCancelled, generate

log = logging.getLogger("dance_any_beat.server")

JOB_ID = re.compile(r"[0-9a-f]{32}")
STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = frozenset({"done", "failed", "cancelled"})
STATE_FILE = "state.json"
INPUTS_DIR = "inputs"
OUTPUTS_DIR = "out"
BEATS_INPUT = "beats.json"
MIN_PROGRESS_FOR_ETA = 0.05  # below this the rate is mostly model loading and beat tracking: no ETA yet


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


@dataclass
class Job:
    id: str
    created: float  # unix seconds
    params: dict[str, Any]  # as the client set them (JobParams fields, without beats)
    image: str  # file names inside inputs/
    audio: str
    has_beats: bool = False  # inputs/beats.json holds the client's beat times
    state: str = "queued"
    progress: float = 0.0
    stage: str = "queued"
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None  # a done job: frames, fps, size, beats, windows, seconds, params, warnings
    seq: int = 0  # submission order (FIFO position among queued jobs)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    ended: threading.Event = field(default_factory=threading.Event, repr=False)

    _RECORD = ("id", "created", "params", "image", "audio", "has_beats", "state", "progress", "stage", "error",
               "started", "finished", "result", "seq")  # fmt: skip

    def record(self) -> dict[str, Any]:
        """What state.json holds."""
        return {k: getattr(self, k) for k in self._RECORD}

    @classmethod
    def from_record(cls, values: dict[str, Any]) -> Job:
        job = cls(**{k: values[k] for k in cls._RECORD if k in values})
        if job.state not in STATES or not JOB_ID.fullmatch(job.id):
            raise ValueError(f"bad job record (state {job.state!r}, id {job.id!r})")
        if job.state in FINAL_STATES:
            job.ended.set()
        return job

    def eta_s(self, now: float) -> float | None:
        """Seconds left, from the progress rate since the job started; None while queued or too early to tell."""
        if self.state != "running" or self.started is None or self.progress < MIN_PROGRESS_FOR_ETA:
            return None
        elapsed = max(0.0, now - self.started)
        return round(elapsed * (1.0 - self.progress) / self.progress, 1)

    def status(self, queue_position: int | None = None) -> dict[str, Any]:
        """The job status every route returns: {id, state, progress, stage, eta_s, error, ...}."""
        return {
            "id": self.id, "state": self.state, "progress": round(self.progress, 4), "stage": self.stage,
            "eta_s": self.eta_s(time.time()), "error": self.error, "queue_position": queue_position,
            "created": _iso(self.created), "started": _iso(self.started), "finished": _iso(self.finished),
            "params": self.params, "result": self.result,
        }  # fmt: skip


class JobStore:
    """The jobs in memory (dict by id) mirrored to JOBS_DIR/<id>/state.json."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._seq = 0

    # -- paths (only from validated ids)

    def job_dir(self, job_id: str) -> Path:
        if not JOB_ID.fullmatch(job_id):
            raise ValueError(f"invalid job id {job_id!r}")
        return self.root / job_id

    def inputs(self, job_id: str) -> Path:
        return self.job_dir(job_id) / INPUTS_DIR

    def outputs(self, job_id: str) -> Path:
        return self.job_dir(job_id) / OUTPUTS_DIR

    def new_job_dir(self) -> tuple[str, Path]:
        """A fresh random id and its (new, empty) inputs folder."""
        while True:
            job_id = secrets.token_hex(16)
            try:
                (self.root / job_id).mkdir()
            except FileExistsError:
                continue
            inputs = self.inputs(job_id)
            inputs.mkdir()
            return job_id, inputs

    # -- records

    def add(self, job: Job) -> None:
        with self.lock:
            self._seq += 1
            job.seq = self._seq
            self._jobs[job.id] = job
            self.save(job)

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self.lock:
            return sorted(self._jobs.values(), key=lambda j: j.seq, reverse=True)

    def queued(self) -> list[Job]:
        with self.lock:
            return sorted((j for j in self._jobs.values() if j.state == "queued"), key=lambda j: j.seq)

    def queue_position(self, job: Job) -> int | None:
        if job.state != "queued":
            return None
        with self.lock:
            return 1 + sum(1 for j in self._jobs.values() if j.state == "queued" and j.seq < job.seq)

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {s: sum(1 for j in self._jobs.values() if j.state == s) for s in STATES}

    def save(self, job: Job) -> None:
        """Write state.json atomically (a reader or a crash never sees half a file)."""
        with self.lock:
            text = json.dumps(job.record(), indent=1)
            path = self.job_dir(job.id) / STATE_FILE
            tmp = path.with_name(STATE_FILE + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)

    def remove(self, job_id: str) -> None:
        with self.lock:
            self._jobs.pop(job_id, None)
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def recover(self) -> dict[str, int]:
        """Load the jobs of an earlier server: finished ones as they were, interrupted ones marked failed."""
        found = {"finished": 0, "interrupted": 0, "unreadable": 0}
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or not JOB_ID.fullmatch(folder.name):
                continue
            state_file = folder / STATE_FILE
            try:
                job = Job.from_record(json.loads(state_file.read_text()))
                if job.id != folder.name:
                    raise ValueError(f"state.json names job {job.id}")
            except (OSError, ValueError, TypeError, KeyError) as err:
                log.warning("skipping job folder %s: unreadable %s (%s)", folder.name, STATE_FILE, err)
                found["unreadable"] += 1
                continue
            if job.state not in FINAL_STATES:
                was = job.state
                job.state, job.stage, job.finished = "failed", "failed", time.time()
                job.error = (f"interrupted: the server stopped while this job was {was} (it was shut down, killed "
                             "or crashed); submit it again")  # fmt: skip
                job.ended.set()
                shutil.rmtree(folder / OUTPUTS_DIR, ignore_errors=True)
                found["interrupted"] += 1
            else:
                found["finished"] += 1
            shutil.rmtree(folder / INPUTS_DIR, ignore_errors=True)
            with self.lock:
                self._jobs[job.id] = job
                self._seq = max(self._seq, job.seq)
                self.save(job)
        return found


def result_summary(result: Any) -> dict[str, Any]:
    """GenerateResult -> what a client sees (no server paths)."""
    return {"frames": result.frames, "fps": result.fps, "size": list(result.size), "beats": len(result.beat_times),
            "windows": result.windows, "seconds": result.seconds, "params": result.params.to_dict(),
            "warnings": list(result.warnings)}  # fmt: skip


def lock_folder(root: Path) -> Any:
    """Hold an exclusive lock on root/.lock for the life of the process (the OS drops it when the process dies):
    a second server on the same jobs folder would mark the first one's running jobs failed and replace its token."""
    handle = open(root / ".lock", "a+")  # held open on purpose: closing it drops the lock
    try:
        if os.name == "nt":
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise OSError(f"another dance-any-beat server is using the jobs folder {root}; stop it (POST /shutdown) "
                      "or give this one its own --jobs-dir") from None  # fmt: skip
    return handle


class JobRunner:
    """The queue and `concurrency` worker threads running jobs with one shared model."""

    def __init__(self, store: JobStore, model: Callable[[], DabFusion], concurrency: int = 1) -> None:
        assert concurrency >= 1, f"concurrency must be >= 1, got {concurrency}"
        self.store = store
        self.model = model
        self.concurrency = concurrency
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> None:
        for i in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"dab-job-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, job: Job) -> None:
        self.store.add(job)
        self._queue.put(job.id)
        log.info("job %s queued", job.id)

    def cancel(self, job: Job, wait: float = 1.0) -> None:
        """Cancel a queued job at once; ask a running one to stop and wait up to `wait` s for it to."""
        with self.store.lock:
            if job.state == "queued":
                self._end(job, "cancelled", error=None)
                return
            if job.state != "running":
                return
            job.cancel.set()
            job.stage = "cancelling"
        job.ended.wait(wait)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down: queued jobs fail (the next server would mark them failed anyway), running ones are cancelled."""
        self._stopping.set()
        with self.store.lock:
            for job in self.store.queued():
                self._end(job, "failed", error="the server shut down before this job ran; submit it again")
            running = [j for j in self.store.all() if j.state == "running"]
            for job in running:
                job.cancel.set()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- the workers

    def _end(self, job: Job, state: str, error: str | None, result: dict[str, Any] | None = None) -> None:
        with self.store.lock:
            job.state, job.stage, job.error, job.result = state, state, error, result
            if state == "done":
                job.progress = 1.0
            job.finished = time.time()
            self.store.save(job)
            shutil.rmtree(self.store.inputs(job.id), ignore_errors=True)
            job.ended.set()
        log.info("job %s %s%s", job.id, state, f": {error}" if error else "")

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None or self._stopping.is_set():
                return
            job = self.store.get(job_id)
            if job is None:
                continue
            try:
                with self.store.lock:
                    if job.state != "queued":  # cancelled while it waited
                        continue
                    job.state, job.stage, job.started = "running", "starting", time.time()
                    self.store.save(job)
                self._run(job)
            except Exception:  # the job's folder vanished, the disk is full...: this job fails, the worker lives
                log.exception("job %s could not be run or recorded", job.id)
                job.state, job.stage, job.error = "failed", "failed", "internal error: the job could not be recorded"
                job.ended.set()

    def _progress(self, job: Job) -> Callable[[float, str], None]:
        def report(fraction: float, stage: str) -> None:
            job.progress = max(job.progress, min(float(fraction), 1.0))
            if not job.cancel.is_set():
                job.stage = stage

        return report

    def _run(self, job: Job) -> None:
        inputs = self.store.inputs(job.id)
        try:
            params = GenerateParams.from_dict({k: v for k, v in job.params.items() if k != "device"})
            beats = json.loads((inputs / BEATS_INPUT).read_text()) if job.has_beats else None
            result = generate(self.model(), inputs / job.image, inputs / job.audio, self.store.outputs(job.id),
                              params, beat_times=beats, progress=self._progress(job),
                              cancel=job.cancel.is_set)  # fmt: skip
        except GenerationCancelled:
            if self._stopping.is_set():
                self._end(job, "failed", error="the server shut down while this job ran; submit it again")
            else:
                self._end(job, "cancelled", error=None)
        except Exception as err:  # any crash fails this job only; the worker goes on with the next
            known = isinstance(err, ValueError | OSError)
            if not known:
                log.exception("job %s crashed", job.id)
            message = str(err).replace(str(self.store.root), "<jobs dir>") or type(err).__name__
            self._end(job, "failed", error=message if known else f"internal error ({type(err).__name__}): {message}")
        else:
            self._end(job, "done", error=None, result=result_summary(result))
