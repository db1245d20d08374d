"""What a client sends, checked before anything is queued: the job parameters and the uploaded still and audio.

The parameters are a pydantic model (`JobParams`) with the names of `pipeline.GenerateParams` plus `beats`; the
server's own limits (fps 1..120, seconds up to 600, steps up to 1000) are narrower than the pipeline's. Uploads
are decoded and checked here: the still's header is read before its pixels (a 30000 x 30000 PNG of a few bytes is
refused without decoding it), then the whole still is decoded once to find a truncated or damaged file; the audio's
length comes from its header, then the range the job uses is decoded. Every problem is an `InputError` carrying
the HTTP status and a message that says what to change.
"""

from __future__ import annotations

import io
import json
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import soundfile as sf
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dance_any_beat.diffusion import SamplerName
from dance_any_beat.music.audio import SUPPORTED_FORMATS, AudioError, load_audio

MB = 1024 * 1024
FORMATS = ", ".join(SUPPORTED_FORMATS[:-1]) + " or " + SUPPORTED_FORMATS[-1]
MAX_SIDE = 8192  # pixels a side of an uploaded still
MIN_SIDE = 8  # the pipeline's smallest still
MAX_JOB_SECONDS = 600.0  # the longest dance one job makes
MAX_FPS = 120.0
MAX_STEPS = 1000
MAX_BEATS = 20_000  # given beat times per job (15 min at 300 BPM is 4500)
IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg"}  # what PIL calls them -> the file extension stored
AUDIO_EXTENSIONS = {"WAV": "wav", "WAVEX": "wav", "FLAC": "flac", "OGG": "ogg", "MP3": "mp3"}
# Decoding a still to check it costs up to 4 bytes x 8192^2 = 256 MB: only this many checks run at once.
_DECODING = threading.BoundedSemaphore(2)


class InputError(Exception):
    """A request the server refuses: the HTTP status and a message that says what to change."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    """Upload limits; `serve --max-image-mb/--max-audio-mb/--max-audio-minutes` change the first three."""

    max_image_bytes: int = 50 * MB
    max_audio_bytes: int = 200 * MB
    max_audio_seconds: float = 15 * 60.0
    max_side: int = MAX_SIDE

    @property
    def max_body_bytes(self) -> int:
        """A whole request: both files plus room for the multipart framing and the params field."""
        return self.max_image_bytes + self.max_audio_bytes + MB


def _mb(n: float) -> str:
    return f"{n / MB:.3g} MB"


# ----------------------------------------------------------------------------------------------------- params
class JobParams(BaseModel):
    """The JSON object in the `params` field of `POST /jobs`: GenerateParams' names, plus optional `beats`.

    Keys left out keep the pipeline's defaults; steps, sampler, guidance, resolution and window_overlap left out
    come from the quality preset (`preset`, else "standard"; see GET /presets).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    start: float = Field(0.0, ge=0, description="seconds into the audio file where the dance begins")
    seconds: float | None = Field(None, gt=0, le=MAX_JOB_SECONDS,
                                  description="length of the dance; null = from start to the end of the audio")
    fps: float = Field(24.0, ge=1, le=MAX_FPS, description="frames per second of the output")
    seed: int = Field(0, ge=0, lt=2**63, description="the same seed and inputs give the same frames")
    style: str = Field("auto", description="'auto' or a dance style name (GET /presets)")
    steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="sampler steps per window")
    guidance: float | None = Field(None, ge=0, le=30, description="classifier-free guidance over the music")
    resolution: Literal["model", "full"] | None = None
    sampler: SamplerName | None = None
    window_overlap: int | None = Field(None, ge=0, le=1000, description="model frames shared by windows")
    preset: str | None = Field(None, description="quality preset name (GET /presets)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="must be auto or the server's device")
    keep_background: bool | None = Field(
        None, description="move only the person found in the still, the set stays; null = when a person is found in "
        "a still larger than them; true refuses stills without a person",
    )  # fmt: skip
    person: int | None = Field(None, ge=1, le=16, description="which person dances (1 = the largest); null = 1")
    beat_sync: float = Field(1.0, ge=0, le=1, description="retime the dance so its hits land on the beats: 1 = on "
                             "them, 0 = the model's own timing")
    beats: list[Annotated[float, Field(ge=0)]] | None = Field(
        None, max_length=MAX_BEATS,
        description="beat times in seconds from the start of the audio file (e.g. timeline markers); "
        "null = track the beats of the range",
    )  # fmt: skip

    def generate_fields(self) -> dict[str, Any]:
        """The fields the client set, for GenerateParams.from_dict (device and beats are the server's business)."""
        return {k: getattr(self, k) for k in self.model_fields_set if k not in ("beats", "device")}


def _describe_errors(err: ValidationError, prefix: str) -> str:
    names = ", ".join(JobParams.model_fields)
    parts = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(x) for x in e["loc"])
        where = f"{prefix}.{loc}" if loc else prefix
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown parameter {where}; the parameters are: {names}")
        elif e["type"] == "missing":
            parts.append(f"{where} is required")
        else:
            msg = e["msg"][:1].lower() + e["msg"][1:]
            parts.append(f"{where}: {msg}, got {json.dumps(e.get('input'), default=str)[:80]}")
    return "; ".join(parts[:4]) + ("; ..." if len(parts) > 4 else "")


def parse_params(text: str | None) -> JobParams:
    """The `params` form field (a JSON object; empty = all defaults) -> JobParams; InputError(422) otherwise."""
    if text is None or not text.strip():
        return JobParams()
    try:
        values = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise InputError(422, f"params is not valid JSON ({err}); send a JSON object such as "
                              '{"seconds": 4, "fps": 24, "preset": "draft"}') from None  # fmt: skip
    if not isinstance(values, dict):
        raise InputError(422, f"params must be a JSON object of parameters, got {type(values).__name__}; e.g. "
                              '{"seconds": 4, "fps": 24, "preset": "draft"}')  # fmt: skip
    try:
        return JobParams.model_validate(values)
    except ValidationError as err:
        raise InputError(422, _describe_errors(err, "params")) from None


# ------------------------------------------------------------------------------------------------------ image
def _png_header_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


def check_image(data: bytes, limits: Limits, size: int | None = None) -> str:
    """Check an uploaded still (PNG or JPEG, size, not truncated); returns the file extension to store it under.

    data: the upload's first max_image_bytes + 1 bytes (or all of it); size: the whole upload's size, if known."""
    size = max(size or 0, len(data))
    if size == 0:
        raise InputError(422, "the image upload is empty (0 bytes); send the still's PNG or JPEG file")
    if size > limits.max_image_bytes:
        raise InputError(413, f"the image is {_mb(size)}; this server takes stills up to "
                              f"{_mb(limits.max_image_bytes)}: save it smaller (PNG or JPEG)")  # fmt: skip
    side = limits.max_side
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=tuple(IMAGE_FORMATS))  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        size = _png_header_size(data)
        what = f"{size[0]}x{size[1]} pixels" if size else "too many pixels"
        raise InputError(422, f"the image declares {what}; stills may be at most {side} pixels a side (refused "
                              "before decoding: it could be a decompression bomb)") from None  # fmt: skip
    except (OSError, SyntaxError, ValueError):
        raise InputError(422, "the image upload is not a PNG or JPEG image; save the still as PNG or JPEG (in "
                              "Blender: Image > Save As) and send the file's bytes") from None  # fmt: skip
    width, height = image.size
    if max(width, height) > side:
        raise InputError(422, f"the image is {width}x{height} pixels; stills may be at most {side} pixels a side "
                              "(refused before decoding): scale it down")  # fmt: skip
    if min(width, height) < MIN_SIDE:
        raise InputError(422, f"the image is {width}x{height} pixels; a still needs at least {MIN_SIDE} pixels a "
                              "side")  # fmt: skip
    with _DECODING:
        try:
            image.load()  # decodes every pixel: a truncated or corrupt file fails here
        except (OSError, SyntaxError, ValueError) as err:
            raise InputError(422, f"the {image.format} image is damaged or truncated ({err}); save the still "
                                  "again and send the whole file") from None  # fmt: skip
        finally:
            image.close()
    return IMAGE_FORMATS[image.format]


# ------------------------------------------------------------------------------------------------------ audio
@dataclass(frozen=True)
class AudioInfo:
    extension: str  # wav, flac, ogg or mp3: how the stored file is named
    duration: float  # seconds, the whole file
    seconds: float  # the range the job uses: from start, params.seconds or to the end of the file


NO_BEATS_HINT = ("or, when your music is there but its beats cannot be tracked, give the beat times in params "
                 '"beats" (seconds from the start of the audio file, e.g. from the timeline markers)')  # fmt: skip


def check_audio(path: Path, limits: Limits, start: float = 0.0, seconds: float | None = None,
                max_seconds: float | None = MAX_JOB_SECONDS, beats_given: bool = False) -> AudioInfo:  # fmt: skip
    """Check the uploaded audio stored at `path` (format, length, the range [start, start + seconds] decodes and
    holds sound) without naming server paths in the messages. Silent audio is refused also when the beats are
    given: the music encoder needs the music itself."""
    size = path.stat().st_size
    if size == 0:
        raise InputError(422, "the audio upload is empty (0 bytes, zero-length audio); send the audio file's "
                              f"contents ({FORMATS})")  # fmt: skip
    if size > limits.max_audio_bytes:
        raise InputError(413, f"the audio is {_mb(size)}; this server takes audio files up to "
                              f"{_mb(limits.max_audio_bytes)}: send only the range you animate, or a compressed "
                              "file (ogg, mp3, flac)")  # fmt: skip
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        raise InputError(422, f"could not read the audio upload as audio; use a {FORMATS} file (in Blender: "
                              "Render > Render Audio)") from None  # fmt: skip
    extension = AUDIO_EXTENSIONS.get(info.format, "audio")
    if info.frames <= 0 or info.samplerate <= 0:
        raise InputError(422, "the audio upload contains no samples (zero-length audio); export the track again")
    duration = info.frames / info.samplerate
    if duration > limits.max_audio_seconds:
        raise InputError(422, f"the audio is {duration / 60:.1f} min long; this server takes up to "
                              f"{limits.max_audio_seconds / 60:g} min: send the range you animate")  # fmt: skip
    if start >= duration:
        raise InputError(422, f"start {start:g} s is past the end of the audio ({duration:.2f} s long); choose an "
                              "earlier start")  # fmt: skip
    length = min(seconds, duration - start) if seconds is not None else duration - start
    if max_seconds is not None and seconds is None and length > max_seconds:
        raise InputError(422, f"from start {start:g} s to the end of the audio is {length:.1f} s; a job makes at "
                              f"most {max_seconds:g} s: give params.seconds")  # fmt: skip
    try:
        load_audio(path, start=start, seconds=seconds)
    except AudioError as err:
        message = str(err).replace(str(path), "the uploaded audio")
        if " is silent " in message and beats_given:
            message = f"{message}; the beats are given, but the dance also follows the music itself"
        elif " is silent " in message:
            message = (f"no beats were found: {message}. Send the track with its music (is it muted?), "
                       f"{NO_BEATS_HINT}")
        raise InputError(422, message) from None
    return AudioInfo(extension=extension, duration=duration, seconds=seconds if seconds is not None else length)


def save_upload(source: Any, target: Path, limit: int, what: str) -> int:
    """Copy an upload's file object to target in chunks, refusing (413) past `limit` bytes; returns the size."""
    written = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(MB):
            written += len(chunk)
            if written > limit:
                raise InputError(413, f"the {what} is over {_mb(limit)}, the most this server takes for it")
            out.write(chunk)
    return written
