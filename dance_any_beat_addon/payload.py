"""The HTTP contract with the backend server as dataclasses: job parameters, job state, beats.

Field names are the server's (they match the backend pipeline's parameters dataclass), so `to_json` and
`from_json` are plain mappings. bpy-free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = frozenset({"done", "failed", "cancelled"})


@dataclass
class JobParams:
    """The `params` field of `POST /jobs`. None means "the server (or the preset) decides"."""

    seconds: float
    """Length of the dance in seconds (the frame range's length at the scene's fps)."""
    fps: float
    """Frames per second of the result (the scene's fps, fps_base included)."""
    start: float = 0.0
    """Seconds into the uploaded audio where the dance starts."""
    style: str = "auto"
    """Dance style name from presets/styles.toml ("auto": the music decides)."""
    seed: int = 0
    """Random seed: the same inputs and seed give the same dance."""
    preset: str | None = None
    """Quality preset name from presets/quality.toml; explicit steps/guidance/resolution win over it."""
    steps: int | None = None
    """Sampler steps per window."""
    guidance: float | None = None
    """Classifier-free guidance scale over the music."""
    resolution: str | None = None
    """"model" (the model's own square view) or "full" (the still's own size)."""
    keep_background: bool | None = None
    """True: move only the person in the still, the set stays (refused without a person); False: the whole still
    moves; None: the server keeps the set when it finds a person in a still larger than them."""
    beat_sync: float | None = None
    """How firmly the dance's hits are moved onto the beats: 1 = on them, 0 = the model's own timing; None: 1."""
    beats: list[float] | None = None
    """Explicit beat times in seconds on the audio's clock (same clock as `start`); None: the server tracks them."""

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


# The panel's Background menu -> JobParams.keep_background
BACKGROUND_CHOICES = {"AUTO": None, "KEEP": True, "WHOLE": False}


@dataclass
class JobStatus:
    """`GET /jobs/{id}`."""

    state: str
    """One of JOB_STATES."""
    progress: float = 0.0
    """Fraction done, 0..1."""
    stage: str = ""
    """What the job is doing now, for the progress bar."""
    eta_s: float | None = None
    """Estimated seconds left, when the server knows."""
    error: str | None = None
    """Why the job failed."""
    warnings: list[str] = field(default_factory=list)
    """What the artist should know about a done job's result (the dancer cut off by the frame, several people)."""

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobStatus:
        state = str(data.get("state", ""))
        if state not in JOB_STATES:
            raise ValueError(f"the server sent an unknown job state {state!r} (expected one of {JOB_STATES})")
        eta = data.get("eta_s")
        return cls(state=state, progress=min(max(float(data.get("progress") or 0.0), 0.0), 1.0),
                   stage=str(data.get("stage") or ""), eta_s=None if eta is None else float(eta),
                   error=data.get("error") or None,
                   warnings=[str(w) for w in (data.get("result") or {}).get("warnings") or []])


@dataclass
class BeatInfo:
    """`POST /beats` (and `dance-any-beat beats --json`): times in seconds on the audio's clock."""

    tempo: float
    """Beats per minute."""
    beats: list[float] = field(default_factory=list)
    """Every beat."""
    downbeats: list[float] = field(default_factory=list)
    """The beats that start a bar (a subset of `beats`)."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BeatInfo:
        return cls(tempo=float(data.get("tempo") or 0.0), beats=[float(t) for t in data.get("beats") or []],
                   downbeats=[float(t) for t in data.get("downbeats") or []])
