"""The FastAPI app and `serve`: the HTTP API the add-on speaks, the same for a local and a remote server.

    GET    /health                    no token: version, device, model, queue, limits
    GET    /presets                   quality presets and dance styles (presets/*.toml)
    POST   /beats                     multipart `audio` (+ `start`, `seconds`) -> tempo, beats, downbeats
    POST   /jobs                      multipart `image`, `audio`, `params` (JSON) -> 202, the job's status
    GET    /jobs                      every job's status, newest first
    GET    /jobs/{id}                 {id, state, progress, stage, eta_s, error, queue_position, ...}
    DELETE /jobs/{id}[?purge=true]    cancel (takes effect within a sampler step); purge also deletes its files
    GET    /jobs/{id}/frames          the frame list of a done job; /frames/{n} is frame n (1-based) as PNG
    GET    /jobs/{id}/video           the MP4 (frames + the music of the range)
    GET    /jobs/{id}/beats           the beats the dance followed (seconds from the range start)
    POST   /shutdown                  stop cleanly; the model's memory goes with the process
    GET    /openapi.json              the schema

Every route but /health needs `Authorization: Bearer <token>` (auth.py). Errors are always `{"error": "..."}`
with a 4xx status that says whose fault it is (a 5xx only for a bug, without its traceback). Routes are plain
functions: FastAPI runs them in its thread pool, so the event loop never blocks on a decode; jobs run on the
worker threads of jobs.py with the model loaded once at startup.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import uvicorn
from fastapi import APIRouter, FastAPI, File, Form, Query, Request, Security, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dance_any_beat import __version__, cache_dir
from dance_any_beat.checkpoint import CheckpointError
from dance_any_beat.models.dabfusion import DabFusion
from dance_any_beat.music.audio import load_audio
from dance_any_beat.music.beats import track_beats
from dance_any_beat.pipeline import (
    BEATS_FILE,
    FRAMES_DIR,
    STARTER_CHECKPOINT,
    STARTER_TRAINING,
    VIDEO_FILE,
    GenerateParams,
    resolve_device,
    resolve_for_model,
)
from dance_any_beat.presets import DEFAULT_PRESET, load_quality_presets, load_style_presets
from dance_any_beat.server.auth import Token, check_authorization, resolve_token
from dance_any_beat.server.inputs import (
    MAX_FPS,
    MAX_JOB_SECONDS,
    MAX_STEPS,
    MB,
    InputError,
    JobParams,
    Limits,
    check_audio,
    check_image,
    parse_params,
    save_upload,
)
from dance_any_beat.server.jobs import BEATS_INPUT, JOB_ID, Job, JobRunner, JobStore, lock_folder
from dance_any_beat.video import frame_path

log = logging.getLogger("dance_any_beat.server")

API_DESCRIPTION = (
    "Make a still image dance to music (DabFusion). Queue a job with POST /jobs (multipart: files `image` and "
    "`audio`, a JSON text field `params`), poll GET /jobs/{id}, then fetch /frames/{n}, /video and /beats. Every "
    "route but /health needs `Authorization: Bearer <token>`; errors are `{\"error\": \"...\"}`."
)
OPEN_PATHS = frozenset({"/health"})  # the only route without a token
UPLOADS_DIR = ".uploads"  # inside the jobs folder: audio sent to POST /beats, removed after the reply
CANCEL_WAIT_S = 1.0  # DELETE waits this long for a running job to stop before it answers


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 0  # 0 = a free port, printed in the ready line
    jobs_dir: Path = field(default_factory=lambda: cache_dir() / "jobs")
    checkpoint: Path | None = None  # None = the bundled starter model
    device: str = "auto"  # auto, cpu or cuda
    token_file: Path | None = None
    concurrency: int = 1  # jobs running at once (they share the model and the device)
    threads: int | None = None  # torch intra-op threads; None = torch's default
    limits: Limits = field(default_factory=Limits)
    music_weights: dict[str, str] = field(default_factory=dict)  # "clap"/"wav2clip" -> local weights file


# ------------------------------------------------------------------------------------------ response models
class ErrorOut(BaseModel):
    error: str


class JobStatus(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: float  # 0..1
    stage: str
    eta_s: float | None  # seconds left, from the progress rate; null while queued or too early to tell
    error: str | None  # why a job failed
    queue_position: int | None  # 1 = next to run
    created: str | None
    started: str | None
    finished: str | None
    params: dict[str, Any]  # as sent (JobParams fields)
    result: dict[str, Any] | None  # a done job: frames, fps, size, beats, windows, seconds, params as used


class JobList(BaseModel):
    jobs: list[JobStatus]


class FrameList(BaseModel):
    id: str
    count: int
    fps: float
    width: int
    height: int
    frames: list[str]  # URL paths of frames 1..count


class BeatsOut(BaseModel):
    tempo: float  # BPM
    beats: list[float]  # seconds from the start of the audio file
    downbeats: list[float]
    duration: float  # seconds analysed
    start: float


class JobBeats(BaseModel):
    tempo: float
    beats: list[float]  # seconds from the start of the job's range (params.start)
    downbeats: list[float]
    duration: float
    source: str  # "tracked" or "given"
    start: float


class ModelInfo(BaseModel):
    name: str
    parameters: int
    config: dict[str, Any]


class Health(BaseModel):
    status: str
    version: str
    device: str
    model: ModelInfo | None
    model_error: str | None  # why there is no model, and how to get one
    queue: dict[str, int]
    limits: dict[str, Any]


class Presets(BaseModel):
    default: str
    quality: list[dict[str, Any]]
    styles: list[dict[str, Any]]


class ShutdownOut(BaseModel):
    status: str


# ----------------------------------------------------------------------------------------------- the state
class ServerState:
    """What the routes share: settings, token, job store and runner, and the model loaded once."""

    def __init__(self, settings: ServerSettings, token: Token, device: torch.device) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.token = token
        self.device = device
        self.store = JobStore(settings.jobs_dir)
        self.runner = JobRunner(self.store, self.require_model, settings.concurrency)
        self.model: DabFusion | None = None
        self.model_name = ""
        self.model_error: str | None = "the model is loading"
        self.request_shutdown: Callable[[], None] = lambda: None  # serve() points this at uvicorn

    def start(self) -> None:
        found = self.store.recover()
        if any(found.values()):
            log.info("jobs folder %s: %s", self.store.root, found)
        self.model, self.model_error = self._load_model()
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()

    def _load_model(self) -> tuple[DabFusion | None, str | None]:
        path = self.settings.checkpoint or STARTER_CHECKPOINT
        self.model_name = path.name
        if not path.is_dir() or not any(path.iterdir()):
            if self.settings.checkpoint is None:
                return None, (f"no model loaded: the starter model is not trained yet ({path} holds no "
                              f"checkpoint). Train it ({STARTER_TRAINING}), or restart `dance-any-beat serve` "
                              "with --checkpoint DIR")  # fmt: skip
            return None, (f"no model loaded: checkpoint folder {path} does not exist or is empty; restart "
                          "`dance-any-beat serve` with --checkpoint set to the checkpoint folder of a `dance-any-beat "
                          "train diffusion` run (RUN_DIR/checkpoint), or train the starter model "
                          f"({STARTER_TRAINING})")
        try:
            model = DabFusion.from_checkpoint(path, device=self.device, music_weights=self.settings.music_weights)
        except (CheckpointError, ValueError, OSError, RuntimeError) as err:
            return None, f"no model loaded: {err}"
        log.info("model %s loaded on %s", path, self.device)
        return model, None

    def require_model(self) -> DabFusion:
        if self.model is None:
            raise InputError(503, self.model_error or "no model loaded")
        return self.model

    def job(self, job_id: str) -> Job:
        job = self.store.get(job_id) if JOB_ID.fullmatch(job_id) else None
        if job is None:
            shown = json.dumps(job_id[:80])
            raise InputError(404, f"no job with id {shown}; job ids are the 32 hex digits POST /jobs returned "
                                  "(GET /jobs lists them)")  # fmt: skip
        return job

    def status(self, job: Job) -> dict[str, Any]:
        return job.status(self.store.queue_position(job))

    def done_outputs(self, job: Job) -> Path:
        """The outputs folder of a done job; 409 while it is not done."""
        if job.state != "done":
            why = {"queued": f"is queued (position {self.store.queue_position(job)})",
                   "running": f"is running ({job.stage}, {job.progress:.0%})",
                   "failed": f"failed ({job.error})", "cancelled": "was cancelled"}[job.state]  # fmt: skip
            raise InputError(409, f"job {job.id} {why}; its frames, video and beats exist once its state is done")
        return self.store.outputs(job.id)


def _state(request: Request) -> ServerState:
    return request.app.state.dab


# ----------------------------------------------------------------------------------------------- middleware
class _BodyTooLarge(HTTPException):
    """Raised from the request stream; an HTTPException, so FastAPI's body parsing lets it through."""


async def _reply(send: Send, status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """Before any routing or body parsing: the bearer token (401) and the request size (413)."""

    def __init__(self, app: ASGIApp, token: Token, limits: Limits) -> None:
        self.app = app
        self.token = token
        self.limits = limits

    def _too_large(self, size: float) -> str:
        lim = self.limits
        return (f"the request is {size / MB:.3g} MB; this server takes images up to {lim.max_image_bytes / MB:.3g} "
                f"MB and audio up to {lim.max_audio_bytes / MB:.3g} MB")  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if scope["path"] not in OPEN_PATHS:
            header = headers.get(b"authorization")
            problem = check_authorization(header.decode("latin-1") if header else None, self.token)
            if problem:
                await _reply(send, 401, problem, [(b"www-authenticate", b"Bearer")])
                return
        limit = self.limits.max_body_bytes
        if b"content-length" in headers:
            try:
                length = int(headers[b"content-length"])
            except ValueError:
                await _reply(send, 400, "the Content-Length header is not a number")
                return
            if length > limit:
                await _reply(send, 413, self._too_large(length))
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(413, self._too_large(received))
            return message

        await self.app(scope, counted, send)


# ------------------------------------------------------------------------------------------ error handlers
def _validation_message(errors: list[Any]) -> str:
    parts, missing_fields = [], []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ())]
        where, name = (loc[0] if loc else ""), ".".join(loc[1:]) or "request"
        if e.get("type") == "missing":
            if where == "body":
                missing_fields.append(repr(name))
            else:
                parts.append(f"{name} is required")
        else:
            msg = str(e.get("msg", "is invalid"))
            shown = e.get("input")
            shown = json.dumps(shown, default=str)[:80] if isinstance(shown, str | int | float | bool) else ""
            parts.append(f"{where} {name}: {msg[:1].lower() + msg[1:]}" + (f", got {shown}" if shown else ""))
    if missing_fields:
        parts.insert(0, f"the multipart field(s) {', '.join(missing_fields)} are missing; POST /jobs takes files "
                        "'image' and 'audio' and a JSON text field 'params', POST /beats a file 'audio'")  # fmt: skip
    return "; ".join(parts[:4]) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}; the routes are listed in /openapi.json"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /openapi.json"
        return JSONResponse({"error": message}, exc.status_code, headers=exc.headers)

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(list(exc.errors()))}, 422)

    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, exc.status)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": f"internal server error ({type(exc).__name__}); the server's log has the "
                                      "details"}, 500)  # fmt: skip

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(InputError, input_error)
    app.add_exception_handler(Exception, server_error)


# --------------------------------------------------------------------------------------------------- routes
_bearer = HTTPBearer(auto_error=False, description="the server's token (see `dance-any-beat serve --help`)")


def _authorized(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]) -> None:
    """Documents the bearer scheme in the schema; GuardMiddleware has checked the token already, this again."""
    problem = check_authorization(request.headers.get("authorization"), _state(request).token)
    if problem:
        raise HTTPException(401, problem, headers={"WWW-Authenticate": "Bearer"})


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": what}
    for code, what in [(401, "missing or wrong token"), (404, "no such job"), (409, "job not done"),
                       (413, "upload too large"), (422, "invalid input"), (503, "no model loaded")]
}  # fmt: skip

PARAMS_HELP = (
    "a JSON object; keys: " + ", ".join(JobParams.model_fields) + ". Left out: the pipeline's defaults (preset "
    "fields from the preset). Limits: seconds in (0, 600], fps in [1, 120], steps in [1, 1000]. `beats`: beat "
    'times in seconds from the start of the audio file. Example: {"seconds": 4, "fps": 24, "preset": "draft"}'
)


def _build_routes(app: FastAPI) -> None:
    @app.get("/health", response_model=Health, tags=["server"])
    def health(request: Request) -> dict[str, Any]:
        """Version, device, model and queue; the one route that needs no token."""
        state = _state(request)
        model = state.model
        counts = state.store.counts()
        lim = state.limits
        return {
            "status": "ok", "version": __version__, "device": str(state.device),
            "model": None if model is None else {"name": state.model_name, "config": model.config.to_dict(),
                                                 "parameters": sum(p.numel() for p in model.parameters())},
            "model_error": state.model_error,
            "queue": {"queued": counts["queued"], "running": counts["running"],
                      "concurrency": state.runner.concurrency},
            "limits": {"max_image_mb": lim.max_image_bytes / MB, "max_audio_mb": lim.max_audio_bytes / MB,
                       "max_audio_minutes": lim.max_audio_seconds / 60, "max_side": lim.max_side,
                       "max_seconds": MAX_JOB_SECONDS, "fps": [1, MAX_FPS], "steps": [1, MAX_STEPS]},
        }  # fmt: skip

    router = APIRouter(dependencies=[Security(_authorized)], responses={401: ERRORS[401]})

    @router.get("/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> JSONResponse:
        return JSONResponse(request.app.openapi())

    @router.get("/presets", response_model=Presets, tags=["jobs"])
    def presets(request: Request) -> dict[str, Any]:
        """Quality presets (steps, sampler, guidance, resolution, window overlap) and the dance styles this
        server's model knows; pass their names as params.preset and params.style."""
        model = _state(request).model
        known = None if model is None else set(model.config.data.styles)
        styles = [dataclasses.asdict(s) for s in load_style_presets().values()
                  if known is None or s.name == "auto" or s.name in known]  # fmt: skip
        return {"default": DEFAULT_PRESET, "quality": [dataclasses.asdict(p) for p in load_quality_presets().values()],
                "styles": styles}  # fmt: skip

    @router.post("/beats", response_model=BeatsOut, tags=["beats"], responses={k: ERRORS[k] for k in (413, 422)})
    def beats(
        request: Request,
        audio: Annotated[UploadFile, File(description="wav, flac, ogg or mp3")],
        start: Annotated[float, Form(ge=0, le=86400, allow_inf_nan=False, description="seconds into the file")] = 0.0,
        seconds: Annotated[float | None, Form(gt=0, le=86400, allow_inf_nan=False,
                                              description="seconds to analyse (default: to the end)")] = None,
    ) -> dict[str, Any]:
        """Tempo, beats and downbeats of the audio (times from the start of the file); needs no model."""
        state = _state(request)
        uploads = state.store.root / UPLOADS_DIR
        uploads.mkdir(exist_ok=True)
        fd, name = tempfile.mkstemp(dir=uploads)
        os.close(fd)
        path = Path(name)
        try:
            save_upload(audio.file, path, state.limits.max_audio_bytes, "audio")
            check_audio(path, state.limits, start, seconds, max_seconds=None)
            music = load_audio(path, start=start, seconds=seconds)
        finally:
            path.unlink(missing_ok=True)
        track = track_beats(music.samples, music.sr)
        return {"tempo": round(float(track.tempo), 2), "beats": [round(float(t) + start, 4) for t in track.beats],
                "downbeats": [round(float(t) + start, 4) for t in track.downbeats],
                "duration": round(float(track.duration), 4), "start": start}  # fmt: skip

    @router.post("/jobs", status_code=202, response_model=JobStatus, tags=["jobs"],
                 responses={k: ERRORS[k] for k in (413, 422, 503)})  # fmt: skip
    def create_job(
        request: Request,
        image: Annotated[UploadFile, File(description="the still: PNG or JPEG, at most 8192 px a side")],
        audio: Annotated[UploadFile, File(description="the music: wav, flac, ogg or mp3")],
        params: Annotated[str, Form(description=PARAMS_HELP)] = "",
    ) -> JSONResponse:
        """Queue a dance: the inputs are decoded and checked first, so a queued job has usable inputs."""
        state = _state(request)
        job_params = parse_params(params)
        model = state.require_model()
        if job_params.device not in ("auto", state.device.type):
            raise InputError(422, f"this server runs its model on {state.device.type}; params.device must be "
                                  f"'auto' or '{state.device.type}' (the server's device is set by serve --device)")
        try:
            generate_params = GenerateParams.from_dict(job_params.generate_fields())
            resolve_for_model(generate_params, model)
        except ValueError as err:
            raise InputError(422, str(err)) from None
        data = image.file.read(state.limits.max_image_bytes + 1)
        extension = check_image(data, state.limits, image.size)
        job_id, inputs = state.store.new_job_dir()
        try:
            (inputs / f"image.{extension}").write_bytes(data)
            del data
            upload = inputs / "audio.upload"
            save_upload(audio.file, upload, state.limits.max_audio_bytes, "audio")
            info = check_audio(upload, state.limits, job_params.start, job_params.seconds,
                               beats_given=job_params.beats is not None)
            upload.rename(inputs / f"audio.{info.extension}")
            if job_params.beats is not None:
                (inputs / BEATS_INPUT).write_text(json.dumps(sorted(job_params.beats)))
            job = Job(id=job_id, created=time.time(), params=job_params.generate_fields(), image=f"image.{extension}",
                      audio=f"audio.{info.extension}", has_beats=job_params.beats is not None)  # fmt: skip
            state.runner.submit(job)
        except BaseException:
            shutil.rmtree(state.store.job_dir(job_id), ignore_errors=True)
            raise
        return JSONResponse(state.status(job), 202, headers={"Location": f"/jobs/{job_id}"})

    @router.get("/jobs", response_model=JobList, tags=["jobs"])
    def list_jobs(request: Request) -> dict[str, Any]:
        """Every job this server knows (also those of an earlier server on the same jobs folder), newest first."""
        state = _state(request)
        return {"jobs": [state.status(j) for j in state.store.all()]}

    @router.get("/jobs/{job_id}", response_model=JobStatus, tags=["jobs"], responses={404: ERRORS[404]})
    def get_job(request: Request, job_id: str) -> dict[str, Any]:
        """The job's state (queued, running, done, failed, cancelled), progress 0..1, stage, ETA and error."""
        state = _state(request)
        return state.status(state.job(job_id))

    @router.delete("/jobs/{job_id}", response_model=JobStatus, tags=["jobs"], responses={404: ERRORS[404]})
    def cancel_job(
        request: Request,
        job_id: str,
        purge: Annotated[bool, Query(description="also delete the job and its files")] = False,
    ) -> dict[str, Any]:
        """Cancel a queued or running job (a running one stops at its next sampler step or frame; this waits up
        to 1 s for it). A finished job is left as it is, unless `purge`, which also deletes it and its files."""
        state = _state(request)
        job = state.job(job_id)
        state.runner.cancel(job, wait=CANCEL_WAIT_S)
        status = state.status(job)
        if purge:
            if not job.ended.wait(10.0):
                raise InputError(409, f"job {job.id} is still stopping ({job.stage}); purge it once it has ended")
            state.store.remove(job.id)
        return status

    @router.get("/jobs/{job_id}/frames", response_model=FrameList, tags=["results"],
                responses={k: ERRORS[k] for k in (404, 409)})  # fmt: skip
    def list_frames(request: Request, job_id: str) -> dict[str, Any]:
        """The frames of a done job, as URL paths of GET /jobs/{id}/frames/{n}, n = 1..count."""
        state = _state(request)
        job = state.job(job_id)
        state.done_outputs(job)
        result = job.result or {}
        count = int(result.get("frames", 0))
        width, height = (result.get("size") or [0, 0])[:2]
        return {"id": job.id, "count": count, "fps": float(result.get("fps", 0.0)), "width": width, "height": height,
                "frames": [f"/jobs/{job.id}/frames/{n}" for n in range(1, count + 1)]}  # fmt: skip

    @router.get("/jobs/{job_id}/frames/{n}", tags=["results"], response_class=FileResponse,
                responses={200: {"content": {"image/png": {}}}, **{k: ERRORS[k] for k in (404, 409)}})  # fmt: skip
    def get_frame(request: Request, job_id: str, n: int) -> FileResponse:
        """Frame n (1-based) of a done job, as PNG."""
        state = _state(request)
        job = state.job(job_id)
        folder = state.done_outputs(job) / FRAMES_DIR
        count = int((job.result or {}).get("frames", 0))
        if not 1 <= n <= count:
            raise InputError(404, f"job {job.id} has frames 1 to {count}; there is no frame {n}")
        return _file(frame_path(folder, n), "image/png", job)

    @router.get("/jobs/{job_id}/video", tags=["results"], response_class=FileResponse,
                responses={200: {"content": {"video/mp4": {}}}, **{k: ERRORS[k] for k in (404, 409)}})  # fmt: skip
    def get_video(request: Request, job_id: str) -> FileResponse:
        """The MP4 of a done job: the frames with the music of its range."""
        state = _state(request)
        job = state.job(job_id)
        return _file(state.done_outputs(job) / VIDEO_FILE, "video/mp4", job)

    @router.get("/jobs/{job_id}/beats", response_model=JobBeats, tags=["results"],
                responses={k: ERRORS[k] for k in (404, 409)})  # fmt: skip
    def get_beats(request: Request, job_id: str) -> dict[str, Any]:
        """The beats the dance followed: seconds from the start of the job's range, tracked or given."""
        state = _state(request)
        job = state.job(job_id)
        path = state.done_outputs(job) / BEATS_FILE
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(404, f"the beats of job {job.id} are gone from the jobs folder") from None

    @router.post("/shutdown", status_code=202, response_model=ShutdownOut, tags=["server"])
    def shutdown(request: Request) -> JSONResponse:
        """Stop the server cleanly: running jobs are cancelled (and marked failed), then the process exits."""
        state = _state(request)
        log.info("shutdown requested")
        return JSONResponse({"status": "shutting down"}, 202, background=BackgroundTask(state.request_shutdown))

    app.include_router(router)


def _file(path: Path, media_type: str, job: Job) -> FileResponse:
    if not path.is_file():
        raise InputError(404, f"{path.name} of job {job.id} is gone from the jobs folder")
    return FileResponse(path, media_type=media_type)


# -------------------------------------------------------------------------------------------------- the app
def create_app(settings: ServerSettings, token: Token | None = None, device: torch.device | None = None) -> FastAPI:
    """The app; its lifespan recovers the jobs folder, loads the model once and starts the workers."""
    settings = dataclasses.replace(settings, jobs_dir=Path(settings.jobs_dir).expanduser().resolve())
    settings.jobs_dir.mkdir(parents=True, exist_ok=True)
    token = token or resolve_token(settings.host, settings.token_file, settings.jobs_dir)
    state = ServerState(settings, token, device or resolve_device(settings.device))

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        await run_in_threadpool(state.start)
        try:
            yield
        finally:
            await run_in_threadpool(state.stop)

    app = FastAPI(title="Dance Any Beat", version=__version__, lifespan=lifespan, openapi_url=None, docs_url=None,
                  redoc_url=None, description=API_DESCRIPTION)  # fmt: skip
    app.state.dab = state
    _install_error_handlers(app)
    _build_routes(app)
    app.add_middleware(GuardMiddleware, token=token, limits=settings.limits)
    return app


# ---------------------------------------------------------------------------------------------------- serve
def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]  # fmt: skip
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({err.strerror}); choose another --host or --port") from None
    return sock


class _ReadyServer(uvicorn.Server):
    """uvicorn, plus one JSON line on stdout once it takes requests (the model loaded, the workers started)."""

    def __init__(self, config: uvicorn.Config, ready: dict[str, Any]) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            print(json.dumps(self.ready), flush=True)


def serve(settings: ServerSettings) -> int:
    """Run the server until POST /shutdown, SIGINT or SIGTERM. Prints one JSON line when ready:
    {"url", "pid", "token_file", "jobs_dir", "version"}; the token itself is never printed (see auth.py)."""
    if settings.concurrency < 1:
        raise ValueError(f"--concurrency must be at least 1, got {settings.concurrency}")
    jobs_dir = Path(settings.jobs_dir).expanduser().resolve()
    jobs_dir.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(settings, jobs_dir=jobs_dir)
    _lock = lock_folder(jobs_dir)  # held until the process exits
    token = resolve_token(settings.host, settings.token_file, jobs_dir)
    device = resolve_device(settings.device)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    if settings.threads is not None:
        torch.set_num_threads(max(1, settings.threads))
    sock = _bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    app = create_app(settings, token, device)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    ready = {"url": f"http://{f'[{host}]' if ':' in host else host}:{port}", "pid": os.getpid(),
             "token_file": None if token.file is None else str(token.file), "jobs_dir": str(jobs_dir),
             "version": __version__}  # fmt: skip
    server = _ReadyServer(config, ready)

    def request_shutdown() -> None:
        server.should_exit = True

    app.state.dab.request_shutdown = request_shutdown
    server.run(sockets=[sock])
    return 0 if server.started else 1


__all__ = ["ServerSettings", "create_app", "serve"]
