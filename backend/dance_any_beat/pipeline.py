"""Image + music (+ beat times) -> a dance: numbered PNG frames, an MP4 with the music, and the beats used.

`generate` is the one entry point the CLI, the HTTP server and the tests call. It never prints: progress goes to
a `(fraction, stage)` callback and a cancel flag is polled between windows, sampler steps and frames.

The steps (numbered in `generate`):
1. check inputs: parameters, the still, the output folder, the model, the audio range.
1b. find the dancer (`keep_background`): a person in a still larger than them is cut out of the set, the set
   behind them filled in; the model sees the part of the still around them, framed as in training, and only
   they move (at the still's own size), so the artist's set stays crisp and still.
2. beats: the given beat times (timeline markers, a --beats file) or the tracker's on the audio range.
3. encode: frame the still into the model's square view (letterboxed, whole still visible), encode it once as
   the reference latent; encode the music of every window (its audio + rhythm features of its frames).
4. prepare latents + denoise: the model makes `num_frames` frames at its own fps per window. Windows follow one
   another, each from the ORIGINAL still (flows are relative to it, so the look never drifts), overlapping by
   `window_overlap` model frames: the overlap frames of the next window are steered towards the previous
   window's result while sampling (the known frames are re-noised to each step's level and put back, RePaint
   style), then cross-faded, so the motion runs on without a jump.
5. interpolate the flow/occlusion stack linearly in time from the model fps to the requested fps: exactly
   round(seconds * fps) frames; with beat sync (`beat_sync.py`) read along a smooth time map that puts the
   motion's hits (speed minima) on the music's beats.
6. decode in chunks: "model" resolution = the LFAE's rendering, cropped to the still's part of the view;
   "full" = the original still warped at its own size by the upsampled flow (mapped back through the framing),
   with the decoder's frame (upsampled) only where the occlusion map says the reference is hidden.
7. write out_dir/frames/000001.png ..., out_dir/dance.mp4 (the music range muxed) and out_dir/beats.json, then
   out_dir/generate.json, which marks a finished run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch import Tensor

from dance_any_beat import __version__
from dance_any_beat.beat_sync import lerp_weights, sync_positions
from dance_any_beat.diffusion import SAMPLER_NAMES, SamplerName, SamplingCancelled, make_sampler, sample
from dance_any_beat.framing import Framing, FullResolution, PersonLayer, cut_out, dancer_region
from dance_any_beat.models.dabfusion import DabFusion, FlowCoding, x0_to_motion
from dance_any_beat.music.audio import load_audio
from dance_any_beat.music.beats import onset_envelope, rhythm_features, track_beats
from dance_any_beat.music.encoder import MusicEmbedding, prepare_audio
from dance_any_beat.presets import (
    AUTO_STYLE,
    DEFAULT_PRESET,
    PRESET_FIELDS,
    RESOLUTIONS,
    apply_preset,
    load_quality_presets,
)
from dance_any_beat.styles import STYLE_NAMES
from dance_any_beat.video import FRAME_NAME, frame_path, write_mp4, write_png_frames

Resolution = Literal["model", "full"]
DeviceName = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
MAX_FPS = 240.0
MAX_STILL_SIDE = 16384  # pixels; beyond this one frame alone is gigabytes

# The bundled starter model (trained on the procedural data set; see checkpoints/starter/MODEL_CARD.md).
STARTER_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "starter"
STARTER_TRAINING = (
    "dance-any-beat make-dataset --out datasets/procedural --num-clips 2000 --split train; "
    "dance-any-beat train lfae --config configs/lfae_starter.toml; "
    "dance-any-beat train diffusion --config configs/diffusion_starter.toml; "
    "then copy checkpoints/starter/training/diffusion/checkpoint/* to checkpoints/starter"
)

# Output files; a folder holding only these (and OS clutter) is this pipeline's own and may be overwritten.
FRAMES_DIR = "frames"
VIDEO_FILE = "dance.mp4"
PARTIAL_VIDEO_FILE = "dance.partial.mp4"  # the video while it is written; renamed when complete
BEATS_FILE = "beats.json"
RECORD_FILE = "generate.json"  # written last: the parameters and timings of a finished run
OWN_FILES = frozenset({FRAMES_DIR, VIDEO_FILE, PARTIAL_VIDEO_FILE, BEATS_FILE, RECORD_FILE})
OS_CLUTTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})

BEATS_PER_BAR = 4  # given beats carry no downbeats: every 4th given beat, from the first, is taken as one
MUSIC_BATCH = 16  # windows whose music is encoded in one forward
DECODE_CHUNK = 16  # frames through the LFAE decoder at once
AUTO_KEEP_AREA = 0.9  # keep_background=None keeps the set when the dancer's framed part is under 90% of the still

# Progress: the share of the bar each stage ends at.
_STAGE_END = {"checking inputs": 0.02, "loading model": 0.05, "beats": 0.10, "encoding": 0.12, "denoising": 0.80,
              "decoding": 0.95, "writing video": 1.0}  # fmt: skip


class GenerationCancelled(InterruptedError):
    """The cancel flag was set; no video was written and this run's frames were removed."""


class PersonDetectionUnavailable(ImportError):
    """--keep-background was asked for, but the person detector (mediapipe) is not installed."""


class ImageError(ValueError):
    """A still that cannot be used; the message names the file and what to do."""


# ----------------------------------------------------------------------------------------------------------------
# Parameters and result


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class GenerateParams:
    """Everything that shapes one generation; the HTTP API's JSON `params` uses these names.

    The preset fields (steps, sampler, guidance, resolution, window_overlap) default to None: "take it from the
    preset", `preset` if one is named, else the "standard" preset (presets/quality.toml). A value given for one
    of them always wins over the preset. Invalid values raise ValueError listing the valid ones.
    """

    start: float = 0.0  # seconds into the audio file where the dance (and the muxed music) begins
    seconds: float | None = None  # length of the dance in seconds; None = from start to the end of the audio
    fps: float = 24.0  # frames per second of the output; exactly round(seconds * fps) frames are written
    seed: int = 0  # the same seed, inputs and settings give the same frames
    style: str = AUTO_STYLE  # "auto" (the music decides) or a dance style name (presets/styles.toml)
    steps: int | None = None  # sampler steps per window (standard: 25)
    guidance: float | None = None  # classifier-free guidance over the music; 1 = none, higher = follow it more
    resolution: Resolution | None = None  # "model": the model's view (e.g. 128 px); "full": the still's own size
    sampler: SamplerName | None = None  # "ddim", "ddpm" or "dpmpp_2m"
    window_overlap: int | None = None  # model frames shared by consecutive windows (cross-faded; 0 = none)
    preset: str | None = None  # quality preset filling the fields above that are None: draft, standard, final
    device: DeviceName = "auto"  # "auto" (CUDA when available), "cpu" or "cuda"
    keep_background: bool | None = None  # move only the dancer, the set stays; None: when a dancer is found
    person: int | None = None  # which person dances when the still shows several (1 = the largest); None: 1
    beat_sync: float = 1.0  # retime the motion so its hits land on the beats: 0 = the model's timing, 1 = on them

    def __post_init__(self) -> None:
        for name in ("start", "seconds", "fps", "guidance", "beat_sync"):  # 24 means 24.0 (JSON, CLI)
            if _is_int(getattr(self, name)):
                setattr(self, name, float(getattr(self, name)))
        self.check()

    def check(self) -> None:
        """Raise ValueError naming the first invalid field and its valid values (model limits come later)."""
        if not _is_number(self.start) or self.start < 0:
            raise ValueError(f"start must be a number of seconds >= 0, got {self.start!r}")
        if self.seconds is not None and (not _is_number(self.seconds) or self.seconds <= 0):
            raise ValueError(f"seconds must be a number > 0 (or None: to the end of the audio), got {self.seconds!r}")
        if not _is_number(self.fps) or not 0 < self.fps <= MAX_FPS:
            raise ValueError(f"fps must be a number in (0, {MAX_FPS:g}], got {self.fps!r}")
        if not _is_int(self.seed) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an integer in [0, 2**63), got {self.seed!r}")
        styles = (AUTO_STYLE, *STYLE_NAMES)
        if self.style not in styles:
            raise ValueError(f"unknown style {self.style!r}; choose one of: {', '.join(styles)}")
        if self.steps is not None and (not _is_int(self.steps) or not 1 <= self.steps <= 1000):
            raise ValueError(f"steps must be an integer from 1 to 1000, got {self.steps!r}")
        if self.guidance is not None and (not _is_number(self.guidance) or not 0 <= self.guidance <= 30):
            raise ValueError(f"guidance must be a number from 0 to 30 (1 = no guidance), got {self.guidance!r}")
        if self.resolution is not None and self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}; got {self.resolution!r}")
        if self.sampler is not None and self.sampler not in SAMPLER_NAMES:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLER_NAMES)}; got {self.sampler!r}")
        if self.window_overlap is not None and (not _is_int(self.window_overlap) or self.window_overlap < 0):
            raise ValueError(f"window_overlap must be an integer >= 0 (model frames), got {self.window_overlap!r}")
        if self.preset is not None:
            names = list(load_quality_presets())
            if self.preset not in names:
                raise ValueError(f"unknown preset {self.preset!r}; choose one of: {', '.join(names)}")
        if self.keep_background not in (None, True, False):
            raise ValueError(f"keep_background must be true, false or null (auto), got {self.keep_background!r}")
        if self.person is not None and (not _is_int(self.person) or self.person < 1):
            raise ValueError(f"person must be an integer >= 1 (1 = the largest person found), got {self.person!r}")
        if not _is_number(self.beat_sync) or not 0.0 <= self.beat_sync <= 1.0:
            raise ValueError(f"beat_sync must be from 0 (the model's own timing) to 1, got {self.beat_sync!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {self.device!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GenerateParams:
        """From the HTTP API's JSON params: keys left out keep their defaults (preset fields: the preset's)."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; the parameters are: {', '.join(names)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved(self) -> GenerateParams:
        """These params with every preset field filled: from `preset`, else from the standard preset."""
        if self.preset is not None:
            return apply_preset(self, self.preset)
        if any(getattr(self, f) is None for f in PRESET_FIELDS):
            return apply_preset(self, DEFAULT_PRESET)
        return self


@dataclass
class GenerateResult:
    frames_dir: Path  # out_dir/frames, holding 000001.png ... (1-based, as Blender numbers image sequences)
    video: Path  # out_dir/dance.mp4: H.264 with the music of the range as AAC
    beats_json: Path  # out_dir/beats.json: {tempo, beats, downbeats, duration, source, start}
    frames: int  # frames written: round(seconds * fps)
    fps: float
    size: tuple[int, int]  # (width, height) of the frames
    beat_times: list[float]  # the beats the dance followed, seconds from the range start, inside the range
    seconds: dict[str, float]  # wall time of each stage
    params: GenerateParams  # as used: preset fields filled, device resolved
    windows: int = 1  # model windows generated
    warnings: list[str] = field(default_factory=list)  # what the artist should know (several people, cut off, ...)
    dancer_box: tuple[int, int, int, int] | None = None  # (x, y, w, h) of the dancer in the still, if one moved alone

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the CLI's --json line, the server's job result)."""
        return {
            "frames": self.frames, "fps": self.fps, "size": list(self.size), "frames_dir": str(self.frames_dir),
            "video": str(self.video), "beats_json": str(self.beats_json), "seconds": self.seconds,
            "beats": len(self.beat_times), "windows": self.windows, "params": self.params.to_dict(),
            "warnings": self.warnings, "dancer_box": None if self.dancer_box is None else list(self.dancer_box),
        }  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Progress, cancel and timing


class _Run:
    """Monotone progress, cancel polling and per-stage wall times for one `generate` call."""

    def __init__(
        self,
        progress: Callable[[float, str], None] | None,
        cancel: threading.Event | Callable[[], bool] | None,
    ) -> None:
        self._progress = progress
        self._cancel = cancel
        self._fraction = 0.0
        self._clock = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def report(self, fraction: float, stage: str) -> None:
        self._fraction = max(self._fraction, min(float(fraction), 1.0))
        if self._progress is not None:
            self._progress(self._fraction, stage)

    def cancelled(self) -> bool:
        if self._cancel is None:
            return False
        if isinstance(self._cancel, threading.Event):
            return self._cancel.is_set()
        return bool(self._cancel())

    def check_cancel(self, stage: str) -> None:
        if self.cancelled():
            raise GenerationCancelled(f"generation cancelled while {stage}")

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._clock  # summed over laps, rounded on output
        self._clock = now


# ----------------------------------------------------------------------------------------------------------------
# Step 1 helpers: the still, the output folder, the model, the audio


def read_still(image: str | os.PathLike | bytes | np.ndarray) -> np.ndarray:
    """A still from a path, the file's bytes or an array -> (H, W, 3) float32 RGB in [0, 1].

    Arrays: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA; uint8, uint16 or float in [0, 1]. Transparent parts
    (a render with a transparent film) are put on white.
    """
    if isinstance(image, np.ndarray):
        name, pixels, rgb = "the image array", image, True
    else:
        if isinstance(image, bytes | bytearray):
            name, data = "the uploaded image", np.frombuffer(bytes(image), dtype=np.uint8)
            if data.size == 0:
                raise ImageError("the uploaded image is empty (0 bytes); send the image file's contents")
        else:
            path = Path(image)
            name = str(path)
            if not path.is_file():
                what = "is a folder, not an image file" if path.is_dir() else "does not exist"
                raise ImageError(f"image {path} {what}; give the path of a PNG or JPEG still")
            data = np.fromfile(path, dtype=np.uint8)
        pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if pixels is None:
            raise ImageError(
                f"could not read {name} as an image; save the still as PNG or JPEG (in Blender: Image > Save As) "
                "and try again"
            )
        rgb = False  # OpenCV decodes to BGR(A)
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise ImageError(f"{name} must be grey, RGB or RGBA (H, W[, 1|3|4]), got shape {pixels.shape}")
    if pixels.dtype == np.uint8:
        x = pixels.astype(np.float32) / 255.0
    elif pixels.dtype == np.uint16:
        x = pixels.astype(np.float32) / 65535.0
    elif np.issubdtype(pixels.dtype, np.floating):
        x = np.clip(np.nan_to_num(pixels.astype(np.float32)), 0.0, 1.0)
    else:
        raise ImageError(f"{name} has pixel type {pixels.dtype}; use 8- or 16-bit or float pixels")
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    if x.shape[2] == 4:
        alpha = x[:, :, 3:]
        x = x[:, :, :3] * alpha + (1.0 - alpha)
    if not rgb:
        x = x[:, :, ::-1]
    h, w = x.shape[:2]
    if min(h, w) < 8 or max(h, w) > MAX_STILL_SIDE:
        raise ImageError(f"{name} is {w}x{h} pixels; a still must be 8 to {MAX_STILL_SIDE} pixels on each side")
    return np.ascontiguousarray(x, dtype=np.float32)


def _is_own_frames_dir(path: Path) -> bool:
    return path.is_dir() and all(p.is_file() and _is_frame_name(p.name) for p in path.iterdir())


def _is_frame_name(name: str) -> bool:
    stem, _, ext = name.partition(".")
    return ext == "png" and len(stem) == 6 and stem.isdigit()


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """The output folder, if it is new, empty or holds only an earlier generate run's files; else FileExistsError."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output folder {out} is a file; choose a folder for the frames, video and beats")
    if not out.exists():
        return out
    foreign = []
    for entry in sorted(out.iterdir()):
        if entry.name in OS_CLUTTER:
            continue
        own = entry.name in OWN_FILES and (entry.is_dir() if entry.name == FRAMES_DIR else entry.is_file())
        if entry.name == FRAMES_DIR and own:
            own = _is_own_frames_dir(entry)
        if not own:
            foreign.append(entry.name + ("/" if entry.is_dir() else ""))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FileExistsError(
            f"output folder {out} already holds files that generate did not make ({shown}); choose a new or "
            "empty folder (generate only overwrites its own earlier output)"
        )
    return out


def _clear_outputs(out: Path) -> None:
    """Remove an earlier run's outputs (check_out_dir has made sure nothing else is there)."""
    for name in (RECORD_FILE, VIDEO_FILE, PARTIAL_VIDEO_FILE, BEATS_FILE):
        (out / name).unlink(missing_ok=True)
    frames = out / FRAMES_DIR
    if frames.is_dir():
        for p in frames.iterdir():
            if _is_frame_name(p.name):
                p.unlink()


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but PyTorch sees no CUDA GPU here; use --device cpu or auto")
    return torch.device(device)


def load_model(
    model: DabFusion | str | os.PathLike, device: str, music_weights: Mapping[str, str | None] | None = None
) -> DabFusion:
    """A DabFusion model from a checkpoint folder (CheckpointError says what is wrong), or the given one.

    A given model stays where it is with device "auto" and is moved to the device asked for otherwise.
    music_weights: local tower weight files for a checkpoint folder (see `DabFusion.from_checkpoint`).
    """
    if isinstance(model, DabFusion):
        if device != "auto":
            model.to(resolve_device(device))
        return model
    return DabFusion.from_checkpoint(Path(model), device=resolve_device(device), music_weights=music_weights)


def _check_beat_times(beat_times: Any) -> np.ndarray | None:
    if beat_times is None:
        return None
    beats = np.asarray(beat_times, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(beats)):
        raise ValueError("beat times must be finite numbers of seconds")
    return np.unique(beats)


def check_inputs(
    model: DabFusion, params: GenerateParams, still: np.ndarray, out_dir: str | os.PathLike
) -> tuple[GenerateParams, Path]:
    """Params resolved and checked against the model; the output folder checked. ValueError lists valid values."""
    params = resolve_for_model(params, model)
    assert still.ndim == 3 and still.shape[2] == 3, f"still must be (H, W, 3), got {still.shape}"
    return params, check_out_dir(out_dir)


def resolve_for_model(params: GenerateParams, model: DabFusion) -> GenerateParams:
    """Params with the preset filled in and checked against the model. An overlap that came from the preset is
    capped at half the model's window (a preset cannot know every model); one the user gave must fit."""
    params.check()
    resolved = params.resolved()
    half = model.config.data.num_frames // 2
    if params.window_overlap is None and resolved.window_overlap > half:
        resolved = dataclasses.replace(resolved, window_overlap=half)
    check_model_params(model, resolved)
    return resolved


def check_model_params(model: DabFusion, params: GenerateParams) -> None:
    """Resolved params against what this model can do: its window length, diffusion steps and styles."""
    data = model.config.data
    if params.window_overlap >= data.num_frames:
        raise ValueError(
            f"window_overlap must be smaller than the model's window of {data.num_frames} frames, got "
            f"{params.window_overlap}"
        )
    if params.steps > model.config.diffusion.num_train_timesteps:
        raise ValueError(
            f"steps must be at most the model's {model.config.diffusion.num_train_timesteps} diffusion steps"
        )
    if params.style != AUTO_STYLE and params.style not in data.styles:
        raise ValueError(
            f"this model does not know the style {params.style!r}; it knows: auto, {', '.join(data.styles)}"
        )


# ----------------------------------------------------------------------------------------------------------------
# Step 3 helpers: framing the still into the model's square view


# ----------------------------------------------------------------------------------------------------------------
# Step 4 helpers: windows, their music, prepare latents, denoise


@dataclass(frozen=True)
class WindowPlan:
    """Model frames needed for the output and how consecutive windows of the model cover them."""

    frames: int  # M: model frames needed (model frame j is at j / model_fps from the range start)
    length: int  # T: frames per window
    overlap: int  # O: frames each window shares with the one before
    starts: tuple[int, ...]  # first model frame of each window

    @classmethod
    def cover(cls, n_out: int, fps: float, model_fps: float, length: int, overlap: int) -> WindowPlan:
        # the last output frame is at (n_out - 1) / fps; linear interpolation needs the model frame at or after it
        needed = max(1, math.ceil((n_out - 1) * model_fps / fps - 1e-9) + 1)
        stride = length - overlap
        count = 1 if needed <= length else 1 + math.ceil((needed - length) / stride)
        return cls(frames=needed, length=length, overlap=overlap, starts=tuple(i * stride for i in range(count)))

    @property
    def covered(self) -> int:
        return self.starts[-1] + self.length


def window_music(
    model: DabFusion,
    plan: WindowPlan,
    samples: np.ndarray,
    sr: int,
    beats: np.ndarray,
    downbeats: np.ndarray,
    device: torch.device,
) -> list[tuple[Tensor, Tensor]]:
    """The music embedding (global (1, G), frames (1, T, F)) of every window, as in training: the window's own
    audio (zero past the end of the file) and the rhythm features of its frames from beats relative to it."""
    fps, t = model.config.data.fps, plan.length
    n = int(round(t / fps * sr))
    audios, rhythms = [], []
    for first in plan.starts:
        offset = int(round(first / fps * sr))
        piece = np.zeros(n, dtype=np.float32)
        chunk = samples[offset : offset + n]
        piece[: len(chunk)] = chunk
        env, rate = onset_envelope(piece, sr)
        shift = first / fps
        rhythms.append(rhythm_features(beats - shift, fps=fps, n_frames=t, downbeat_times=downbeats - shift,
                                       onset_envelope=env, onset_rate=rate))  # fmt: skip
        audios.append(piece)
    out: list[tuple[Tensor, Tensor]] = []
    for i in range(0, len(audios), MUSIC_BATCH):
        inputs = prepare_audio(np.stack(audios[i : i + MUSIC_BATCH]), sr, model.config.music).to(device)
        rhythm = torch.from_numpy(np.stack(rhythms[i : i + MUSIC_BATCH])).to(device)  # (b, T, R)
        music = model.encode_music(inputs, rhythm, t)
        out += [(music.global_[j : j + 1], music.frames[j : j + 1]) for j in range(rhythm.shape[0])]
    return out


def prepare_latents(
    shape: tuple[int, ...],
    generator: torch.Generator,
    device: torch.device,
    known: Tensor | None,
    t_first: int,
    sampler: Any,
) -> Tensor:
    """x_T: Gaussian noise (drawn on the CPU generator, so a seed gives the same result on any device), with the
    overlap frames set to the previous window's x0 noised to the first timestep."""
    x = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
    if known is not None:
        noise = torch.randn(known.shape, generator=generator, dtype=torch.float32).to(device)
        x[:, :, : known.shape[2]] = sampler.add_noise(known, noise, torch.tensor([t_first], device=device))
    return x


def _denoise(
    model: DabFusion,
    plan: WindowPlan,
    ref_latent: Tensor,
    music: list[tuple[Tensor, Tensor]],
    style: Tensor,
    params: GenerateParams,
    run: _Run,
) -> Tensor:
    """x0 (1, 3, M, h, w) for the whole range: window after window from the same reference latent."""
    device = ref_latent.device
    generator = torch.Generator().manual_seed(params.seed)
    sampler = make_sampler(params.sampler, model.config.diffusion)
    sampler.set_timesteps(params.steps)
    t_first = int(sampler.timesteps[0])
    shape = model.latent_shape(1, plan.length)  # (1, 3, T, h, w)
    o = plan.overlap
    # cross-fade weights of the new window over the overlap frames: (O,) rising from ~0 to ~1
    ramp = torch.arange(1, o + 1, dtype=torch.float32, device=device) / (o + 1)
    stack = torch.zeros((1, 3, plan.covered, *shape[3:]), device=device)  # (1, 3, covered, h, w)
    start, span = _STAGE_END["encoding"], _STAGE_END["denoising"] - _STAGE_END["encoding"]
    n_windows = len(plan.starts)
    for w, first in enumerate(plan.starts):
        stage = f"denoising window {w + 1}/{n_windows}"
        run.check_cancel(stage)
        known = stack[:, :, first : first + o].clone() if w > 0 and o > 0 else None

        def callback(i: int, n: int, t: int, x: Tensor, known: Tensor | None = known, w: int = w,
                     stage: str = stage) -> bool:  # fmt: skip
            t_next = sampler.previous_timestep(t)
            if known is not None and t_next >= 0:  # steer the overlap towards the previous window (RePaint)
                noise = torch.randn(known.shape, generator=generator, dtype=torch.float32).to(device)
                x[:, :, :o] = sampler.add_noise(known, noise, torch.tensor([t_next], device=device))
            run.report(start + span * (w + (i + 1) / n) / n_windows, stage)
            return not run.cancelled()

        latents = prepare_latents(shape, generator, device, known, t_first, sampler)
        cond = model.conditioning(ref_latent, MusicEmbedding(*music[w]), style)
        try:
            x0 = sample(model.unet, shape, cond, sampler, steps=params.steps, guidance_scale=params.guidance,
                        generator=generator, callback=callback, latents=latents)  # fmt: skip
        except SamplingCancelled:
            raise GenerationCancelled(f"generation cancelled while {stage}") from None
        x0 = x0.float()  # (1, 3, T, h, w)
        if known is not None:  # cross-fade the overlap: the previous window hands over to this one
            a = ramp.view(1, 1, o, 1, 1)
            x0[:, :, :o] = (1.0 - a) * known + a * x0[:, :, :o]
        stack[:, :, first : first + plan.length] = x0
    return stack[:, :, : plan.frames]


# ----------------------------------------------------------------------------------------------------------------
# Step 5: model fps -> output fps


def resample_time(x0: Tensor, model_fps: float, fps: float, n_out: int) -> Tensor:
    """(B, C, M, h, w) at model_fps -> (B, C, n_out, h, w) at fps; output frame k is at k / fps, linear in time."""
    return sample_at(x0, np.arange(n_out) * (model_fps / fps))


def sample_at(x0: Tensor, positions: np.ndarray) -> Tensor:
    """(B, C, M, h, w) -> (B, C, N, h, w) read at N fractional model-frame positions, linear in time."""
    lo, hi, a = (torch.from_numpy(v).to(x0.device) for v in lerp_weights(positions, x0.shape[2]))  # (N,) each
    a = a.to(x0.dtype).view(1, 1, -1, 1, 1)
    return x0[:, :, lo] * (1.0 - a) + x0[:, :, hi] * a  # (B, C, N, h, w)


def beat_synced(model: DabFusion, x0: Tensor, fps: float, n_out: int, beats: np.ndarray, strength: float) -> Tensor:
    """Step 5 with beat sync: (1, 3, M, h, w) at the model's fps -> (1, 3, n_out, h, w) at fps, retimed so the
    motion's hits land on `beats` (seconds from the range start); strength 0 = the model's own timing."""
    flow, _ = model.x0_to_motion(x0)  # (1, 2, M, h, w)
    flows = flow[0].transpose(0, 1).float().cpu().numpy()  # (M, 2, h, w)
    positions, _hits = sync_positions(flows, model.config.data.fps, beats, n_out, fps, strength)  # strength 0: as is
    return sample_at(x0, positions)


# ----------------------------------------------------------------------------------------------------------------
# Step 6: decode


def decode_frames(
    model: DabFusion, motion: Motion, still: np.ndarray, resolution: str, lap: Callable[[str], None] | None = None
) -> Iterator[np.ndarray]:
    """The motion's x0 -> (H, W, 3) uint8 RGB frames, decoded a chunk at a time (caps memory for long output).
    With a person layer in the motion, only the dancer moves, over the set, at the still's size.

    lap(stage), when given, is called after each chunk's decoding ("decode") and each full-resolution frame
    ("warp"), so a caller's stage clock can tell them apart."""
    lap = lap or (lambda _stage: None)
    ref_latent, view, x0, framing = motion.ref_latent, motion.view, motion.x0, motion.framing
    at_still_size = resolution == "full" or motion.person is not None  # a dancer over the set: always the still's size
    learned = model.lfae.decoder.upsampler is not None  # its full-resolution motion beats bilinear from h x h
    flow_size = model.lfae.config.image_size if learned else x0.shape[-1]
    sampling = model.lfae.config.reference_warp  # the still is read as the model's LFAE reads it
    full = FullResolution(framing, still, flow_size, motion.person, sampling) if at_still_size else None
    for i in range(0, x0.shape[2], DECODE_CHUNK):
        part = x0[:, :, i : i + DECODE_CHUNK]  # (1, 3, c, h, w)
        decoded = model.render(ref_latent, part, ref_image=view)[0].transpose(0, 1).float()  # (c, 3, S, S)
        if full is None:
            pixels = frames_to_uint8(framing.crop(decoded))  # (c, h_box, w_box, 3)
            lap("decode")
            yield from pixels
            continue
        pixels = frames_to_uint8(decoded)  # (c, S, S, 3)
        flow, occlusion = model.x0_to_motion(part)  # (1, 2, c, h, w), (1, 1, c, h, w)
        flow, occlusion = flow[0].transpose(0, 1), occlusion[0].transpose(0, 1)  # (c, 2, h, w), (c, 1, h, w)
        if learned:  # (c, 2, S, S), (c, 1, S, S)
            with torch.no_grad():
                flow, occlusion = flow.to(ref_latent.dtype), occlusion.to(ref_latent.dtype)  # the model's dtype
                flow, occlusion = model.lfae.upsample_motion(view.expand(len(flow), -1, -1, -1), flow, occlusion)
        flow = flow.float().cpu().numpy()  # (c, 2, n, n), view-normalised, n = flow_size
        occlusion = occlusion[:, 0].float().cpu().numpy()  # (c, n, n)
        lap("decode")
        for k in range(len(pixels)):
            frame = full.frame(flow[k], occlusion[k], pixels[k])
            lap("warp")
            yield frame


def frames_to_uint8(frames: Tensor) -> np.ndarray:
    """(c, 3, H, W) float in [0, 1] -> (c, H, W, 3) uint8 numpy."""
    return (frames.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


# ----------------------------------------------------------------------------------------------------------------
# The pipeline


@dataclass
class _Beats:
    beats: np.ndarray  # seconds from the range start (all known, also outside the range)
    downbeats: np.ndarray
    tempo: float
    source: str  # "tracked" | "given"
    inside: list[float] = field(default_factory=list)  # the beats inside the range, rounded, for beats.json


def _beats(samples: np.ndarray, sr: int, seconds: float, start: float, given: np.ndarray | None) -> _Beats:
    if given is None:
        track = track_beats(samples, sr)
        beats, downbeats, tempo, source = track.beats, track.downbeats, float(track.tempo), "tracked"
    else:
        beats = given - start
        downbeats = beats[::BEATS_PER_BAR]
        source = "given"
    inside = beats[(beats >= 0) & (beats <= seconds)]
    if given is not None:
        tempo = float(60.0 / np.median(np.diff(inside))) if len(inside) >= 2 else 0.0
    return _Beats(beats=np.asarray(beats, np.float64), downbeats=np.asarray(downbeats, np.float64), tempo=tempo,
                  source=source, inside=[round(float(b), 4) for b in inside])  # fmt: skip


@dataclass
class Dancer:
    """The person who dances, found in the still (step 1b)."""

    box: tuple[int, int, int, int]  # (x, y, w, h) of the dancer in the still, pixels
    region: tuple[int, int, int, int]  # the part of the still the model sees (framing.dancer_region)
    layer: PersonLayer  # the dancer cut out, the set filled in behind them


def find_dancer_layer(still: np.ndarray, params: GenerateParams) -> tuple[Dancer | None, list[str]]:
    """Step 1b: the dancer of `still` (H, W, 3) float in [0, 1] and the artist's warnings, when only the dancer
    is to move: keep_background True (refuses with PersonError when no usable person is found), or None (auto:
    when a person is found and the still is larger than the part around them; otherwise the whole still moves)."""
    if params.keep_background is False:
        return None, []
    try:
        from dance_any_beat.vision.person import PersonError, find_dancer
    except ImportError as error:  # mediapipe missing from this environment
        if params.keep_background:
            raise PersonDetectionUnavailable(
                f"--keep-background needs the person detector, which cannot be imported here ({error}); install it "
                "with `make setup` (pip install --no-deps mediapipe==0.10.14), or pass --no-keep-background"
            ) from error
        return None, [f"person detection is not available ({error}), so the whole still moves"]
    try:
        person, warnings = find_dancer(still, params.person)  # converts the float still to uint8 itself
    except PersonError:
        if params.keep_background or params.person is not None:
            raise
        return None, []  # auto, and no usable person: the whole still moves, as for any other picture
    height, width = still.shape[:2]
    region = dancer_region(person.box, (width, height))
    if params.keep_background is None and region[2] * region[3] > AUTO_KEEP_AREA * width * height:
        return None, warnings  # the dancer fills the still: framing it whole is the same picture
    return Dancer(box=person.box, region=region, layer=cut_out(still, person.mask)), warnings


@dataclass
class Motion:
    """What the model made for one range, before decoding."""

    x0: Tensor  # (1, 3, N, h, w) coded flows and occlusions in [-1, 1], at the output fps
    ref_latent: Tensor  # (1, C, h, w) the still's latent in the model's view
    view: Tensor  # (1, 3, S, S) the still framed into the model's view, RGB in [0, 1]
    framing: Framing  # where the still (or the part around the dancer) sits in the model's view
    plan: WindowPlan  # the model windows that made it
    person: PersonLayer | None = None  # the dancer cut out of the set: only it moves (None: the whole still)

    def flows(self, coding: FlowCoding | float) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2, h, w) view-normalised backward flows from the still and (N, 1, h, w) occlusions, numpy."""
        flow, occlusion = x0_to_motion(self.x0, coding)  # (1, 2, N, h, w), (1, 1, N, h, w)
        return flow[0].transpose(0, 1).cpu().numpy(), occlusion[0].transpose(0, 1).cpu().numpy()


@torch.no_grad()
def generate_motion(
    model: DabFusion,
    still: np.ndarray,
    samples: np.ndarray,
    sr: int,
    n_out: int,
    params: GenerateParams,
    beats: np.ndarray,
    downbeats: np.ndarray,
    run: _Run | None = None,
    dancer: Dancer | None = None,
) -> Motion:
    """Steps 3-5 in memory (what `generate` and `evaluate` share): the still (H, W, 3) float in [0, 1], mono
    `samples` at `sr` from the range start (past the range too, where there is more music), beats and downbeats
    in seconds from the range start, params resolved -> the flows and occlusions of n_out frames at params.fps.
    dancer: the person found in the still (`find_dancer_layer`): the model sees the part around them."""
    run = run or _Run(None, None)
    check_model_params(model, params)
    data = model.config.data
    device = next(model.parameters()).device

    # 3. encode: the still framed into the model's view -> reference latent; every window's music
    run.report(_STAGE_END["beats"], "encoding")
    still_h, still_w = still.shape[:2]
    framing = Framing.fit(still_w, still_h, data.image_size, None if dancer is None else dancer.region)
    view = torch.from_numpy(framing.frame(still)).permute(2, 0, 1)[None].to(device)  # (1, 3, S, S)
    ref_latent = model.encode_reference(view)  # (1, C, h, w)
    plan = WindowPlan.cover(n_out, params.fps, data.fps, data.num_frames, params.window_overlap)
    music = window_music(model, plan, samples, sr, np.asarray(beats, np.float64), np.asarray(downbeats, np.float64),
                         device)  # fmt: skip
    style = model.style_labels([None if params.style == AUTO_STYLE else params.style], device=device)
    run.lap("encode")

    # 4. prepare latents + denoise, window after window
    x0 = _denoise(model, plan, ref_latent, music, style, params, run)  # (1, 3, M, h, w)
    run.lap("denoise")

    # 5. model fps -> output fps, retimed so the motion's hits land on the beats
    x0 = beat_synced(model, x0, params.fps, n_out, np.asarray(beats, np.float64), params.beat_sync)  # (1, 3, N, h, w)
    return Motion(x0=x0, ref_latent=ref_latent, view=view, framing=framing, plan=plan,
                  person=None if dancer is None else dancer.layer)


@torch.no_grad()
def generate(
    model: DabFusion | str | os.PathLike,
    image: str | os.PathLike | np.ndarray | bytes,
    audio: str | os.PathLike | bytes,
    out_dir: str | os.PathLike,
    params: GenerateParams | None = None,
    *,
    beat_times: np.ndarray | list[float] | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    music_weights: Mapping[str, str | None] | None = None,
) -> GenerateResult:
    """Make the still `image` dance to `audio` from params.start for params.seconds; write the results to out_dir.

    model: a DabFusion model or its checkpoint folder. image: a path, the file's bytes or an (H, W, 3) RGB
    array. audio: a path or the file's bytes (wav, flac, ogg, mp3). beat_times: seconds from the start of the
    audio FILE (the clock of `dance-any-beat beats` and of params.start), e.g. from timeline markers; None =
    track the beats of the range. progress(fraction, stage): fraction rises to 1.0. cancel: an Event or a
    callable; when it is set, GenerationCancelled is raised, no video is left and this run's frames are removed.
    music_weights: {"clap"/"wav2clip": FILE} for a checkpoint folder (see `DabFusion.from_checkpoint`).
    Deterministic for a given seed. Raises ValueError (bad parameters or image), AudioError, CheckpointError,
    FileExistsError (out_dir holds other files).
    """
    params = GenerateParams() if params is None else params
    run = _Run(progress, cancel)

    # 1. check inputs
    run.report(0.0, "checking inputs")
    params.check()
    still = read_still(image)
    check_out_dir(out_dir)
    given = _check_beat_times(beat_times)
    run.lap("inputs")
    if not isinstance(model, DabFusion):
        run.report(_STAGE_END["checking inputs"], "loading model")
    model = load_model(model, params.device, music_weights)
    run.lap("load_model")
    was_training = model.training
    model.eval()
    try:
        return _generate(model, still, audio, out_dir, params, given, run)
    finally:
        model.train(was_training)


def _generate(
    model: DabFusion,
    still: np.ndarray,
    audio: str | os.PathLike | bytes,
    out_dir: str | os.PathLike,
    params: GenerateParams,
    given: np.ndarray | None,
    run: _Run,
) -> GenerateResult:
    params, out = check_inputs(model, params, still, out_dir)
    run.lap("inputs")
    dancer, warnings = find_dancer_layer(still, params)  # 1b. the dancer, when only they are to move
    run.lap("dancer")
    device = next(model.parameters()).device
    params = dataclasses.replace(params, device=device.type)
    data = model.config.data
    window_seconds = data.num_frames / data.fps
    # the range, plus up to one window past its end: the last window's music where the file has it
    extra = None if params.seconds is None else params.seconds + window_seconds
    music = load_audio(audio, start=params.start, seconds=extra)
    seconds = music.duration if params.seconds is None else params.seconds
    n_out = int(round(seconds * params.fps))
    if n_out < 1:
        raise ValueError(f"{seconds:g} s at {params.fps:g} fps is less than one frame; give more seconds or fps")
    n_range = int(round(seconds * music.sr))
    range_audio = np.zeros(n_range, dtype=np.float32)  # the range's music, silence past the end of the file
    range_audio[: min(n_range, len(music.samples))] = music.samples[:n_range]
    run.lap("inputs")

    # 2. beats
    run.report(_STAGE_END["loading model"], "reading beats" if given is not None else "tracking beats")
    beats = _beats(range_audio, music.sr, seconds, params.start, given)
    run.lap("beats")
    run.check_cancel("tracking beats")

    # 3.-5. encode, denoise window after window, model fps -> output fps
    motion = generate_motion(model, still, music.samples, music.sr, n_out, params, beats.beats, beats.downbeats, run,
                             dancer)  # fmt: skip
    plan = motion.plan

    # 6. decode, writing the frames as they come; 7. the video, beats.json and the record
    run.check_cancel("decoding")
    out.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out)
    frames_dir = out / FRAMES_DIR
    partial = out / PARTIAL_VIDEO_FILE
    try:
        size = _write_frames(model, motion, still, params.resolution, frames_dir, run)
        run.report(_STAGE_END["decoding"], "writing video")
        n_audio = int(round(n_out / params.fps * music.sr))  # the video's length: -shortest keeps every frame
        mux = np.zeros(n_audio, dtype=np.float32)
        mux[: min(n_audio, n_range)] = range_audio[:n_audio]
        write_mp4(_read_back(frames_dir, n_out, run), partial, fps=params.fps, audio=mux, sr=music.sr)
        os.replace(partial, out / VIDEO_FILE)
    except BaseException:
        partial.unlink(missing_ok=True)
        _clear_outputs(out)
        raise
    beats_json = out / BEATS_FILE
    beats_json.write_text(json.dumps({
        "tempo": round(beats.tempo, 2), "beats": beats.inside,
        "downbeats": [round(float(b), 4) for b in beats.downbeats if 0 <= b <= seconds],
        "duration": round(float(seconds), 4), "source": beats.source, "start": params.start,
    }, indent=1))  # fmt: skip
    run.lap("video")
    result = GenerateResult(
        frames_dir=frames_dir, video=out / VIDEO_FILE, beats_json=beats_json, frames=n_out, fps=params.fps,
        size=size, beat_times=beats.inside, seconds={k: round(v, 3) for k, v in run.seconds.items()}, params=params,
        windows=len(plan.starts), warnings=warnings, dancer_box=None if dancer is None else dancer.box,
    )  # fmt: skip
    record = {"version": __version__, **result.to_dict()}
    (out / RECORD_FILE).write_text(json.dumps(record, indent=1))
    run.report(1.0, "done")
    return result


def _write_frames(
    model: DabFusion, motion: Motion, still: np.ndarray, resolution: str, frames_dir: Path, run: _Run
) -> tuple[int, int]:
    """Decode and write frames_dir/000001.png ...; returns (width, height)."""
    n = motion.x0.shape[2]
    start, span = _STAGE_END["denoising"], _STAGE_END["decoding"] - _STAGE_END["denoising"]
    size = (0, 0)
    for k, frame in enumerate(decode_frames(model, motion, still, resolution, run.lap), start=1):
        run.check_cancel("decoding")
        write_png_frames([frame], frames_dir, start=k)
        run.lap("write_frames")  # PNG encoding: timed apart from decoding (at 1080p it is the larger part)
        size = (frame.shape[1], frame.shape[0])
        run.report(start + span * k / n, "decoding")
    return size


def _read_back(frames_dir: Path, n: int, run: _Run) -> Iterator[np.ndarray]:
    """The written PNG frames in order, for the video encoder (full-resolution frames are not all kept in memory).

    Odd sizes get one repeated row / column, so the encoder does not rescale the picture to even sides."""
    start, span = _STAGE_END["decoding"], 1.0 - _STAGE_END["decoding"]
    for k in range(1, n + 1):
        run.check_cancel("writing video")
        bgr = cv2.imread(str(frame_path(frames_dir, k)), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f"frame {frames_dir / FRAME_NAME.format(k)} could not be read back for the video")
        h, w = bgr.shape[:2]
        if h % 2 or w % 2:  # H.264 in yuv420p needs even sides: repeat the last row / column
            bgr = cv2.copyMakeBorder(bgr, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        run.report(start + 0.99 * span * k / n, "writing video")
