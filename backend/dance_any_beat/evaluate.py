"""Scores a DabFusion checkpoint on held-out procedural clips (a split never used in training, e.g. DIR/test).

Per clip, with the clip's first frame as the still and the clip's own music and beats:
- LFAE reconstruction: SSIM and PSNR of each frame rebuilt from the first one (frames at the model's fps).
- Beat alignment (BAS) of the generated dance against the clip's music beats, next to the ground truth video's
  BAS on the same beats. Both are measured the same way, from the rendered frames (2D-MM Align): motion energy =
  frame-centred mean Farneback flow magnitude, kinetic beats = its smoothed local minima. The model's own latent
  flows would give the generated video an unfair, noise-free energy track, so they are not used for BAS.
- The same beat alignment from the dancer's body instead of the whole frame's motion (2D-MM Align as the paper
  measures it): body landmarks found by mediapipe Pose in every frame, kinetic beats from their speed
  (metrics.pose_alignment), for the generated and the ground-truth video. Flow energy also moves with the
  background and the camera; landmarks follow only the person. One PersonFinder serves the whole run.
- AV-Align (motion peaks vs audio onsets) of the generated and the ground-truth video.
- Music swap: the same still and seed with the NEXT clip's music and beats; its BAS is still measured against
  the clip's own beats. A model that follows the music scores clearly higher with the matching music.
- "Not the still repeated": mean magnitude of the generated flows, in pixels of the model's view, next to the
  LFAE's flows of the ground-truth frames. "Not noise": SSIM of generated frame 0 to the still.

Drift (with `drift_seconds` > 0): long dances from the first clip's still, to music synthesised in its style
(the clips are only a few seconds long), generated window after window as `generate` does. The first and last
`DRIFT_SEGMENT_SECONDS` of each are compared: sharpness (variance of the Laplacian), colour-histogram distance to
the still (Bhattacharyya) and BAS, each averaged over `drift_dances` dances (other seeds for the music and the
sampling). Segments longer than one model window, because BAS over a 1.6 s window holds only three or four
beats and is mostly noise; and several dances, because even a 4 s segment holds only about seven beats: for the
starter, one dance's change (last minus first segment's BAS) varies by about 0.22 (standard deviation) between
seeds, so the mean change over 8 dances is uncertain by about 0.08, as much as the 10% limit allows at a BAS of
0.75; over 16 dances (the default) by about 0.055.
`drift_start` > 0 starts the dances that many seconds into the synthesised track, as a shot cut from the middle
of a song starts, instead of at its first sample: the very start of a track weighs on the first segment's BAS
(for the starter, 0.56 from the track's start, 0.67 from 2 s in) and hides what the check is for.

Generation goes through the pipeline's own steps (`pipeline.generate_motion`) at the model's resolution and the
clip's fps, with the chosen quality preset.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from dance_any_beat.data.procedural import Clip, list_clips, read_clip
from dance_any_beat.metrics import av_align, landmark_beat_alignment, psnr, ssim, video_beat_alignment
from dance_any_beat.models.dabfusion import DabFusion
from dance_any_beat.pipeline import GenerateParams, decode_frames, generate_motion, load_model, resolve_for_model

if TYPE_CHECKING:
    from dance_any_beat.vision.person import PersonFinder

# The "done when" thresholds, shown beside the scores: metric -> (comparison, target)
TARGETS: dict[str, tuple[str, float]] = {
    "lfae_ssim": (">=", 0.90),
    "lfae_psnr": (">=", 26.0),
    "bas_ratio": (">=", 0.8),  # generated BAS / ground-truth BAS
    "music_swap_ratio": (">=", 1.3),  # BAS with own music / BAS with another clip's music
    "motion_ratio": (">=", 0.25),  # generated / ground-truth mean flow magnitude: clearly not a still
    "first_frame_ssim": (">=", 0.8),
}
# Drift: last segment vs first. metric -> (comparison, target)
DRIFT_TARGETS: dict[str, tuple[str, float]] = {
    "sharpness_ratio": (">=", 0.9),  # last / first variance of the Laplacian
    "histogram_ratio": ("<=", 1.1),  # last / first colour-histogram distance to the still
    "bas_change": ("<=", 0.1),  # |last - first| / first BAS
}
DRIFT_SEGMENT_SECONDS = 4.0
LFAE_CHUNK = 16  # frame pairs per LFAE forward


@dataclass
class ClipScores:
    clip: str  # clip folder name
    style: str
    lfae_ssim: float
    lfae_psnr: float
    bas_generated: float  # BAS of the generated video against the clip's beats
    bas_ground_truth: float  # BAS of the clip's own video, measured the same way
    bas_swapped: float | None  # BAS (against this clip's beats) of a dance made to another clip's music
    pose_bas_generated: float  # 2D-MM Align from body landmarks of the generated video (NaN: no dancer found)
    pose_bas_ground_truth: float  # the same for the clip's own video
    av_align_generated: float
    av_align_ground_truth: float
    flow_px_generated: float  # mean generated flow magnitude, pixels of the model's view
    flow_px_ground_truth: float  # mean LFAE flow magnitude of the real frames from the first one
    first_frame_ssim: float  # generated frame 0 vs the still


@dataclass
class DriftScores:
    seconds: float  # length of the generated dance
    windows: int  # model windows that made it
    sharpness_first: float  # mean variance of the Laplacian over the first segment's frames
    sharpness_last: float
    histogram_first: float  # mean Bhattacharyya distance of the segment's colour histograms to the still's
    histogram_last: float
    bas_first: float  # BAS of the segment against the music's beats
    bas_last: float
    dances: int = 1  # the scores above are means over this many dances (seeds seed, seed + 1, ...)
    music_start: float = 0.0  # the dances start this many seconds into their synthesised track
    bas_per_dance: list[tuple[float, float]] = field(default_factory=list)  # (first, last) BAS of each dance

    def ratios(self) -> dict[str, float]:
        return {
            "sharpness_ratio": _ratio(self.sharpness_last, self.sharpness_first),
            "histogram_ratio": _ratio(self.histogram_last, self.histogram_first),
            "bas_change": _ratio(abs(self.bas_last - self.bas_first), self.bas_first),
        }

    def checks(self) -> dict[str, bool | None]:
        return _checks(self.ratios(), DRIFT_TARGETS)


def _checks(values: dict[str, float], targets: dict[str, tuple[str, float]]) -> dict[str, bool | None]:
    """Metric -> whether it meets its target (None when it could not be measured)."""
    out: dict[str, bool | None] = {}
    for name, (op, target) in targets.items():
        value = values[name]
        out[name] = None if not math.isfinite(value) else bool(value >= target if op == ">=" else value <= target)
    return out


VERDICT = {True: "ok", False: "MISSED", None: ""}


def _mean(values: list[float | None]) -> float:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(kept)) if kept else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


@dataclass
class EvaluationReport:
    checkpoint: str
    data: str
    params: dict[str, Any]  # generation settings used
    clips: list[ClipScores] = field(default_factory=list)
    drift: DriftScores | None = None
    seconds: float = 0.0  # wall time

    def summary(self) -> dict[str, float]:
        """Means over clips and the ratios the targets are stated in."""
        c = self.clips
        s = {name: _mean([getattr(x, name) for x in c]) for name in (
            "lfae_ssim", "lfae_psnr", "bas_generated", "bas_ground_truth", "bas_swapped", "pose_bas_generated",
            "pose_bas_ground_truth", "av_align_generated", "av_align_ground_truth", "flow_px_generated",
            "flow_px_ground_truth", "first_frame_ssim")}  # fmt: skip
        s["bas_ratio"] = _ratio(s["bas_generated"], s["bas_ground_truth"])
        s["pose_bas_ratio"] = _ratio(s["pose_bas_generated"], s["pose_bas_ground_truth"])
        s["music_swap_ratio"] = _ratio(s["bas_generated"], s["bas_swapped"])
        s["motion_ratio"] = _ratio(s["flow_px_generated"], s["flow_px_ground_truth"])
        return s

    def checks(self) -> dict[str, bool | None]:
        """Metric -> whether it meets its target (None when it could not be measured)."""
        return _checks(self.summary(), TARGETS)

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:  # JSON has no NaN
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "checkpoint": self.checkpoint, "data": self.data, "clips": len(self.clips), "params": self.params,
            "seconds": round(self.seconds, 2),
            "summary": {k: clean(round(v, 4)) for k, v in self.summary().items()},
            "targets": {k: f"{op} {t:g}" for k, (op, t) in TARGETS.items()}, "checks": self.checks(),
            "per_clip": [{k: clean(v) for k, v in dataclasses.asdict(x).items()} for x in self.clips],
            "drift": None if self.drift is None else {
                **{k: clean(v) for k, v in dataclasses.asdict(self.drift).items()},
                **{k: clean(round(v, 4)) for k, v in self.drift.ratios().items()}, "checks": self.drift.checks(),
                "targets": {k: f"{op} {t:g}" for k, (op, t) in DRIFT_TARGETS.items()},
            },
        }  # fmt: skip

    def table(self) -> str:
        """The scores as a plain-text table, targets beside them."""
        s, checks = self.summary(), self.checks()
        rows = [
            ("LFAE reconstruction SSIM", "lfae_ssim", "{:.3f}"),
            ("LFAE reconstruction PSNR (dB)", "lfae_psnr", "{:.2f}"),
            ("BAS generated", "bas_generated", "{:.3f}"),
            ("BAS ground truth", "bas_ground_truth", "{:.3f}"),
            ("BAS generated / ground truth", "bas_ratio", "{:.2f}"),
            ("BAS with another clip's music", "bas_swapped", "{:.3f}"),
            ("music swap: own / other music BAS", "music_swap_ratio", "{:.2f}"),
            ("2D-MM Align (landmarks) generated", "pose_bas_generated", "{:.3f}"),
            ("2D-MM Align (landmarks) ground truth", "pose_bas_ground_truth", "{:.3f}"),
            ("landmarks generated / ground truth", "pose_bas_ratio", "{:.2f}"),
            ("AV-Align generated", "av_align_generated", "{:.3f}"),
            ("AV-Align ground truth", "av_align_ground_truth", "{:.3f}"),
            ("mean flow generated (px)", "flow_px_generated", "{:.2f}"),
            ("mean flow ground truth (px)", "flow_px_ground_truth", "{:.2f}"),
            ("motion generated / ground truth", "motion_ratio", "{:.2f}"),
            ("SSIM frame 0 vs still", "first_frame_ssim", "{:.3f}"),
        ]
        lines = [f"{'metric':<36} {'value':>8}  target", "-" * 60]
        for label, key, fmt in rows:
            value = s[key]
            text = fmt.format(value) if math.isfinite(value) else "n/a"
            target = ""
            if key in TARGETS:
                op, t = TARGETS[key]
                verdict = VERDICT[checks[key]]
                target = f"{op} {t:g}  {verdict}"
            lines.append(f"{label:<36} {text:>8}  {target}")
        if self.drift is not None:
            d, ratios, drift_checks = self.drift, self.drift.ratios(), self.drift.checks()
            segment = f"last {DRIFT_SEGMENT_SECONDS:g} s vs first"
            lines.append(f"drift over {d.seconds:g} s ({d.windows} windows), {segment}, mean of {d.dances} dances:")
            for label, key, first, last in (
                ("sharpness last / first", "sharpness_ratio", d.sharpness_first, d.sharpness_last),
                ("colour distance last / first", "histogram_ratio", d.histogram_first, d.histogram_last),
                ("BAS change |last - first| / first", "bas_change", d.bas_first, d.bas_last),
            ):
                op, t = DRIFT_TARGETS[key]
                verdict = VERDICT[drift_checks[key]]
                value = f"{ratios[key]:.2f}" if math.isfinite(ratios[key]) else "n/a"
                lines.append(f"  {label:<34} {value:>8}  {op} {t:g}  {verdict}   ({first:.4g} -> {last:.4g})")
        lines.append(f"{len(self.clips)} clips from {self.data}, {self.seconds:.0f} s")
        return "\n".join(lines)


def _frames_at_size(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def _to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """(T, S, S, 3) uint8 -> (T, 3, S, S) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def _lfae_scores(model: DabFusion, frames: np.ndarray, fps: float, device: torch.device) -> tuple[float, float, float]:
    """Mean SSIM, PSNR of frames rebuilt from the first one, and the mean flow magnitude (view pixels)."""
    model_fps = model.config.data.fps
    times = np.arange(1, int(len(frames) / fps * model_fps)) / model_fps  # model-fps frames after the first
    rows = np.unique(np.clip(np.round(times * fps).astype(int), 1, len(frames) - 1))
    ref = _to_tensor(frames[:1], device)  # (1, 3, S, S)
    ssims, psnrs, flows = [], [], []
    half = model.config.data.image_size / 2.0
    for i in range(0, len(rows), LFAE_CHUNK):
        drive = _to_tensor(frames[rows[i : i + LFAE_CHUNK]], device)  # (c, 3, S, S)
        out = model.lfae(ref.expand(len(drive), -1, -1, -1), drive)
        recon = out.reconstruction.float().clamp(0.0, 1.0)
        ssims += ssim(recon, drive).tolist()
        psnrs += psnr(recon, drive).clamp(max=100.0).tolist()
        flows += (out.motion.flow.float().norm(dim=1).mean(dim=(1, 2)) * half).tolist()
    return _mean(ssims), _mean(psnrs), _mean(flows)


def _dance(
    model: DabFusion,
    clip: Clip,
    still: np.ndarray,
    audio: np.ndarray,
    beats: np.ndarray,
    downbeats: np.ndarray,
    params: GenerateParams,
) -> tuple[np.ndarray, float]:
    """Generated (N, S, S, 3) uint8 frames at the clip's fps and the mean flow magnitude in view pixels."""
    motion = generate_motion(model, still, audio, clip.sr, clip.num_frames, params, beats, downbeats)
    frames = np.stack(list(decode_frames(model, motion, still, "model")))  # (N, S, S, 3)
    flow, _ = motion.flows(model.config.data.flow_coding)  # (N, 2, h, w) view-normalised
    magnitude = float(np.mean(np.hypot(flow[:, 0], flow[:, 1]))) * model.config.data.image_size / 2.0
    return frames, magnitude


def frame_sharpness(frame: np.ndarray) -> float:
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    hist = cv2.calcHist([frame], [0, 1, 2], None, [8, 8, 8], [0, 256, 0, 256, 0, 256])
    return cv2.normalize(hist, hist).flatten()


def drift_scores(
    model: DabFusion, still: np.ndarray, style: str, seconds: float, params: GenerateParams, seed: int = 0,
    dances: int = 1, music_start: float = 0.0,
) -> DriftScores:
    """`dances` dances of `seconds` from `still` (S, S, 3) uint8 to synthesised music in `style` (seeds seed,
    seed + 1, ...: music and sampling); first vs last segment of each, averaged (see the module docstring)."""
    from dance_any_beat.data.music_synth import synthesize_music

    fps = params.fps
    n = int(round(seconds * fps))
    k = min(n // 2, int(round(DRIFT_SEGMENT_SECONDS * fps)))
    still_hist = colour_histogram(still)
    still_float = still.astype(np.float32) / 255.0
    scores, windows = [], 0
    for d in range(dances):
        music = synthesize_music(style, 110.0, music_start + seconds, seed=seed + d)
        audio = music.audio[int(round(music_start * music.sr)) :]
        beat_times = music.beat_times[music.beat_times >= music_start] - music_start  # on the dance's clock
        downbeat_times = music.downbeat_times[music.downbeat_times >= music_start] - music_start
        dance_params = resolve_for_model(dataclasses.replace(params, seconds=seconds, seed=seed + d), model)
        motion = generate_motion(model, still_float, audio, music.sr, n, dance_params, beat_times, downbeat_times)
        frames = np.stack(list(decode_frames(model, motion, still_float, "model")))  # (n, S, S, 3)
        windows = len(motion.plan.starts)

        def segment(lo: int, frames: np.ndarray = frames, beat_times: np.ndarray = beat_times) -> list[float]:
            part = frames[lo : lo + k]
            sharp = float(np.mean([frame_sharpness(f) for f in part]))
            dist = float(np.mean([cv2.compareHist(colour_histogram(f), still_hist, cv2.HISTCMP_BHATTACHARYYA)
                                  for f in part]))  # fmt: skip
            beats = beat_times[(beat_times >= lo / fps) & (beat_times < (lo + k) / fps)] - lo / fps
            return [sharp, dist, _safe(video_beat_alignment, part, beats, fps)]

        scores.append(segment(0) + segment(n - k))
    mean = [_mean([s[i] for s in scores]) for i in range(6)]  # first: sharp, dist, BAS; then last
    return DriftScores(seconds=seconds, windows=windows, sharpness_first=mean[0], sharpness_last=mean[3],
                       histogram_first=mean[1], histogram_last=mean[4], bas_first=mean[2], bas_last=mean[5],
                       dances=dances, bas_per_dance=[(s[2], s[5]) for s in scores],
                       music_start=music_start)  # fmt: skip


def _safe(score: Callable[..., float], *args: Any) -> float:
    try:
        return float(score(*args))
    except ValueError:  # e.g. no music beat inside the clip: the score is undefined
        return float("nan")


def _person_finder() -> PersonFinder | None:
    """The landmark detector for the whole run, or None (with a warning) where mediapipe is not installed."""
    try:
        from dance_any_beat.vision.person import PersonFinder
    except ImportError as error:
        warnings.warn(f"2D-MM Align from landmarks is skipped: {error}", stacklevel=3)
        return None
    return PersonFinder()


def _pose_bas(finder: PersonFinder | None, frames: np.ndarray, beat_times: np.ndarray, fps: float) -> float:
    if finder is None:
        return float("nan")
    return _safe(landmark_beat_alignment, frames, beat_times, fps, finder)


def evaluate(
    model: DabFusion | str | os.PathLike,
    data: str | os.PathLike,
    *,
    clips: int = 8,
    preset: str = "standard",
    seed: int = 0,
    device: str = "auto",
    drift_seconds: float = 16.0,
    drift_dances: int = 16,
    drift_start: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    overrides: dict[str, Any] | None = None,
) -> EvaluationReport:
    """Score `model` (or its checkpoint folder) on the first `clips` clips of the procedural split folder `data`.

    progress(done, total) is called after each clip. Needs at least 2 clips for the music-swap test.
    drift_seconds > 0 adds the drift measurement over drift_dances dances that long (0 skips it), starting
    drift_start seconds into their music. overrides:
    GenerateParams fields that win over the preset (steps, sampler, guidance, window_overlap, beat_sync).
    """
    if drift_start < 0:
        raise ValueError(f"drift_start must be >= 0 seconds into the music, got {drift_start}")
    clock = time.perf_counter()
    paths = list_clips(Path(data))
    if not paths:
        raise FileNotFoundError(
            f"no procedural clips in {data}; make a held-out split with `dance-any-beat make-dataset --out "
            "datasets/procedural --num-clips 50 --split test` and pass --data datasets/procedural/test"
        )
    if clips < 1:
        raise ValueError(f"clips must be >= 1, got {clips}")
    paths = paths[:clips]
    source = str(model) if not isinstance(model, DabFusion) else "<model>"
    model = load_model(model, device)
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    size = model.config.data.image_size
    base = GenerateParams(preset=preset, seed=seed, resolution="model", **(overrides or {}))
    report = EvaluationReport(checkpoint=source, data=str(data), params={})
    loaded = [read_clip(p) for p in paths]
    finder = _person_finder()
    try:
        for i, clip in enumerate(loaded):
            frames = _frames_at_size(clip.frames, size)  # (T, S, S, 3) uint8
            still = frames[0].astype(np.float32) / 255.0
            params = resolve_for_model(dataclasses.replace(base, fps=float(clip.fps), seconds=clip.seconds), model)
            if i == 0:
                report.params = {**params.to_dict(), "device": dev.type}
            lfae_ssim, lfae_psnr, flow_gt = _lfae_scores(model, frames, clip.fps, dev)
            generated, flow_gen = _dance(model, clip, still, clip.audio, clip.beat_times, clip.downbeat_times, params)
            bas_swapped = None
            if len(loaded) > 1:
                other = loaded[(i + 1) % len(loaded)]
                audio = np.zeros_like(clip.audio)
                audio[: min(len(audio), len(other.audio))] = other.audio[: len(audio)]
                swapped, _ = _dance(model, clip, still, audio, other.beat_times, other.downbeat_times, params)
                bas_swapped = _safe(video_beat_alignment, swapped, clip.beat_times, clip.fps)
            report.clips.append(ClipScores(
                clip=paths[i].name, style=clip.style, lfae_ssim=lfae_ssim, lfae_psnr=lfae_psnr,
                bas_generated=_safe(video_beat_alignment, generated, clip.beat_times, clip.fps),
                bas_ground_truth=_safe(video_beat_alignment, frames, clip.beat_times, clip.fps),
                bas_swapped=bas_swapped,
                pose_bas_generated=_pose_bas(finder, generated, clip.beat_times, clip.fps),
                pose_bas_ground_truth=_pose_bas(finder, frames, clip.beat_times, clip.fps),
                av_align_generated=_safe(av_align, generated, clip.audio, clip.sr, clip.fps),
                av_align_ground_truth=_safe(av_align, frames, clip.audio, clip.sr, clip.fps),
                flow_px_generated=flow_gen, flow_px_ground_truth=flow_gt,
                first_frame_ssim=float(ssim(generated[0], frames[0])),
            ))  # fmt: skip
            if progress is not None:
                progress(i + 1, len(loaded))
        if drift_seconds > 0:
            first = loaded[0]
            report.drift = drift_scores(model, _frames_at_size(first.frames[:1], size)[0], first.style,
                                        drift_seconds, dataclasses.replace(base, fps=float(first.fps)), seed,
                                        drift_dances, drift_start)  # fmt: skip
    finally:
        model.train(was_training)
        if finder is not None:
            finder.close()
    report.seconds = time.perf_counter() - clock
    return report
