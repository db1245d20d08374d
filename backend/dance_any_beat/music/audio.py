"""Audio loading: one entry point for files and uploaded bytes, with errors an artist can act on.

Everything downstream (beat tracking, music encoders) assumes finite, non-silent mono audio of at least a
second; this module is where that promise is checked, so the errors name the file and the fix.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SUPPORTED_FORMATS = ("wav", "flac", "ogg", "mp3")
MIN_SECONDS = 1.0
# Peak below -80 dBFS: nothing a beat tracker or a music encoder can use.
SILENCE_PEAK = 1e-4


class AudioError(ValueError):
    """Audio that cannot be used; the message names the problem and what to do about it."""


@dataclass
class Audio:
    samples: np.ndarray  # (N,) float32 mono
    sr: int
    source: str  # the path, or "<bytes>" for uploaded data; used in messages only

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sr


def _describe(source: str | os.PathLike | bytes) -> str:
    return "<uploaded audio>" if isinstance(source, bytes | bytearray) else str(source)


def _open(source: str | os.PathLike | bytes, name: str) -> sf.SoundFile:
    if isinstance(source, bytes | bytearray):
        if len(source) == 0:
            raise AudioError(f"{name} is empty (0 bytes); send the audio file's contents")
        handle: str | io.BytesIO = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.exists():
            raise AudioError(f"audio file not found: {path}; check the path")
        if path.is_dir():
            raise AudioError(f"{path} is a folder, not an audio file; give the path of a .wav, .flac, .ogg or .mp3")
        if path.stat().st_size == 0:
            raise AudioError(f"{path} is empty (0 bytes); export the track again")
        handle = str(path)
    try:
        return sf.SoundFile(handle)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(
            f"could not read {name} as audio ({err}); use a {', '.join(SUPPORTED_FORMATS)} file "
            "(export the timeline audio with Render > Render Audio in Blender)"
        ) from None


def load_audio(
    source: str | os.PathLike | bytes,
    sr: int | None = None,
    *,
    start: float = 0.0,
    seconds: float | None = None,
    min_seconds: float = MIN_SECONDS,
) -> Audio:
    """Load `source` (a path or the file's bytes), mix to mono and resample to `sr` (None keeps the file's rate).

    `start`/`seconds` pick a window without decoding the rest. Only the given path is read.
    """
    name = _describe(source)
    if start < 0:
        raise AudioError(f"start must be >= 0 s, got {start}")
    if seconds is not None and seconds <= 0:
        raise AudioError(f"seconds must be > 0, got {seconds}")
    with _open(source, name) as f:
        native_sr = f.samplerate
        total = f.frames
        if total == 0:
            raise AudioError(f"{name} contains no samples (zero-length audio); export the track again")
        first = int(round(start * native_sr))
        if first >= total:
            raise AudioError(
                f"start {start:.2f} s is past the end of {name} ({total / native_sr:.2f} s long); "
                "choose an earlier start"
            )
        count = total - first if seconds is None else min(total - first, int(round(seconds * native_sr)))
        f.seek(first)
        data = f.read(count, dtype="float32", always_2d=True)  # (N, channels)
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{name} contains NaN or infinite samples (a corrupt file); re-export or convert it")
    mono = data.mean(axis=1)
    length = len(mono) / native_sr
    if len(mono) == 0:
        raise AudioError(f"{name} contains no samples in the requested window; check start and seconds")
    if length < min_seconds:
        raise AudioError(
            f"{name} gives only {length:.2f} s of audio; at least {min_seconds:g} s is needed "
            "(use a longer track or a longer time range)"
        )
    peak = float(np.max(np.abs(mono)))
    if peak < SILENCE_PEAK:
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.0f}"
        raise AudioError(
            f"{name} is silent (peak {level} dBFS) in the requested range; check the track is not muted "
            "and the time range holds music"
        )
    if sr is not None and sr != native_sr:
        import librosa  # deferred: librosa's import is slow and not needed for the checks above

        mono = librosa.resample(mono, orig_sr=native_sr, target_sr=sr, res_type="soxr_hq")
        native_sr = sr
    return Audio(samples=np.ascontiguousarray(mono, dtype=np.float32), sr=native_sr, source=name)
