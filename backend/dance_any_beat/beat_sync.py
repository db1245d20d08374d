"""Beat sync: retime a generated dance so the moments it hits a pose land on the music's beats.

The diffusion model decides what the dancer does and roughly when; its "hits" (kinetic beats: minima of the
motion's speed) come out near the beats but not on them. A dancer (or an editor cutting dance to music, as in
Davis & Agrawala's "Visual Rhythm and Beat", SIGGRAPH 2018) fixes that by timing: the motion is played a little
faster or slower so each hit falls on a beat. Here that is a smooth monotone time map from output time to the
model's time, through (music beat, kinetic beat) anchors chosen by dynamic programming:

- a hit may move at most `max_shift` seconds from where the model put it (the dance keeps its own phrasing),
- between anchors the motion plays at 1/max_rate to max_rate times its speed (no visible jumps or freezes),
- as many beats as possible get a hit, preferring even playback speed (a penalty on |log rate|);
- the playback speed is held steady around each anchor and changes smoothly mid-stretch (`TimeMap`), since a
  speed change at a hit would move the hit (the speed seen is the model's times the playback rate).

`strength` blends the map with the identity: 0 = the model's own timing, 1 = every anchored hit on its beat.
Nothing here looks at pixels: it works on the flows (motion energy of the coded x0), before decoding.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from dance_any_beat.metrics.beat_alignment import motion_beats
from dance_any_beat.metrics.motion import motion_energy_from_flows

MIN_MIDDLE_RATE = 0.5  # the rate mid-stretch stays above this share of the stretch's mean rate
ANALYSIS_FPS = 60.0  # the model's motion is looked at on this fine grid (the BAS constants are stated at 60 fps)


@dataclass(frozen=True)
class BeatSyncConfig:
    max_shift: float = 0.3  # seconds a hit may move from the model's timing
    max_rate: float = 1.8  # playback speed between anchors stays within [1 / max_rate, max_rate]
    rate_penalty: float = 0.5  # cost of |log rate| per anchor, in "beats": prefers even playback
    lookback: int = 8  # an anchor may follow one up to this many music beats back (the beats between go unhit)
    refinements: int = 2  # passes that fix what changing the playback speed moved
    refine_shift: float = 0.15  # seconds a hit may move in a refinement pass


@dataclass
class TimeMap:
    """Output time -> model time, both in seconds from the range start.

    Through the anchors, with the playback rate (the map's slope) held steady for the first and last quarter of
    each stretch between anchors, so the speed seen around an anchored hit is the model's times a constant and
    its minimum stays on the beat; the rate changes in the middle of the stretch, where the dancer moves fast."""

    anchors: np.ndarray  # (A, 2) (output s, model s), first (0, 0), last the range end
    hits: int  # music beats that got a kinetic beat

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        """(K,) output times and (K,) playback rates there; the rate is linear between knots."""
        t, s = self.anchors[:, 0], self.anchors[:, 1]
        length, rate = np.diff(t), np.diff(s) / np.diff(t)  # (A - 1,) stretches between anchors
        hold = np.concatenate([rate[:1], np.sqrt(rate[:-1] * rate[1:]), rate[-1:]])  # (A,) rate at each anchor
        for _ in range(8):  # the middle rate keeps each stretch's length; keep it from dipping towards a stop
            middle = 4.0 * rate - 1.5 * (hold[:-1] + hold[1:])
            low = middle < MIN_MIDDLE_RATE * rate
            if not low.any():
                break
            for k in np.flatnonzero(low):
                hold[k], hold[k + 1] = 0.5 * (hold[k] + rate[k]), 0.5 * (hold[k + 1] + rate[k])
        middle = 4.0 * rate - 1.5 * (hold[:-1] + hold[1:])
        times = np.stack([t[:-1], t[:-1] + length / 4, t[:-1] + length / 2, t[1:] - length / 4], axis=1).ravel()
        rates = np.stack([hold[:-1], hold[:-1], middle, hold[1:]], axis=1).ravel()
        return np.append(times, t[-1]), np.append(rates, hold[-1])

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        if len(self.anchors) < 2:
            return t.copy()
        knots, rates = self.knots()
        steps = np.diff(knots)
        values = np.concatenate([[0.0], np.cumsum(0.5 * (rates[:-1] + rates[1:]) * steps)])  # map at the knots
        k = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, len(knots) - 2)
        d = t - knots[k]
        slope = (rates[k + 1] - rates[k]) / steps[k]
        inside = values[k] + rates[k] * d + 0.5 * slope * d**2
        after = values[-1] + rates[-1] * (t - knots[-1])
        return np.where(t > knots[-1], after, np.where(t < 0.0, rates[0] * t, inside))


def lerp_weights(positions: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation in time of `count` frames at fractional frame positions: (lo, hi, a) with each value
    read as frames[lo] * (1 - a) + frames[hi] * a; positions beyond the ends hold the end frame."""
    pos = np.clip(np.asarray(positions, np.float64), 0.0, count - 1)  # (N,)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, count - 1)
    return lo, hi, pos - lo


def kinetic_beat_times(flows: np.ndarray, fps: float, model_times: np.ndarray | None = None) -> np.ndarray:
    """Kinetic beats (speed minima, in seconds) of (M, 2, h, w) flows from the still at `fps`, played along
    model_times (model seconds at each step of a 60 fps output grid; None = the model's own timing), found on
    that fine grid of the linearly interpolated flows, as an output video would show them."""
    flows = np.asarray(flows, dtype=np.float64)
    m = len(flows)
    if model_times is None:
        model_times = np.arange(int(math.floor((m - 1) / fps * ANALYSIS_FPS)) + 1) / ANALYSIS_FPS
    if m < 2 or len(model_times) < 3:
        return np.zeros(0)
    lo, hi, a = lerp_weights(np.asarray(model_times, np.float64) * fps, m)  # (F,) each, in model frames
    a = a[:, None, None, None]
    fine = flows[lo] * (1.0 - a) + flows[hi] * a  # (F, 2, h, w)
    energy = motion_energy_from_flows(fine, kind="from_reference")  # (F,)
    return motion_beats(energy, ANALYSIS_FPS) / ANALYSIS_FPS


def fit_time_map(
    music_beats: np.ndarray,
    kinetic: np.ndarray,
    duration: float,
    model_duration: float,
    config: BeatSyncConfig = BeatSyncConfig(),
) -> TimeMap:
    """The time map putting kinetic beats (model seconds) on music beats (output seconds) over [0, duration];
    the model's motion runs to model_duration (>= duration), which the map never passes."""
    if model_duration < duration - 1e-9:
        raise ValueError(f"the motion ({model_duration:.3f} s) is shorter than the range ({duration:.3f} s)")
    beats = np.sort(np.asarray(music_beats, np.float64))
    beats = beats[(beats > 0.0) & (beats < duration)]
    kinetic = np.sort(np.asarray(kinetic, np.float64))
    kinetic = kinetic[(kinetic > 0.0) & (kinetic < model_duration)]
    lo_rate, hi_rate = 1.0 / config.max_rate, config.max_rate

    # nodes: the start, then every (beat j, kinetic i) pair within max_shift, in beat order
    nodes = [(-1, -1, 0.0, 0.0)]  # (j, i, output s, model s)
    for j, b in enumerate(beats):
        near = np.flatnonzero(np.abs(kinetic - b) <= config.max_shift)
        nodes.extend((j, int(i), float(b), float(kinetic[i])) for i in near)
    score = np.full(len(nodes), -np.inf)
    parent = np.full(len(nodes), -1)
    score[0] = 0.0
    beat_of = np.array([node[0] for node in nodes])
    for n in range(1, len(nodes)):
        j, i, t, s = nodes[n]
        first = int(np.searchsorted(beat_of, j - config.lookback, side="left"))
        last = int(np.searchsorted(beat_of, j, side="left"))
        for p in [0, *range(max(first, 1), last)]:  # the start, or an anchor on one of the lookback beats before
            _, ip, tp, sp = nodes[p]
            if ip >= i or not np.isfinite(score[p]):
                continue
            rate = (s - sp) / (t - tp)
            if lo_rate <= rate <= hi_rate:
                value = score[p] + 1.0 - config.rate_penalty * abs(math.log(rate))
                if value > score[n]:
                    score[n], parent[n] = value, p

    def closes(n: int) -> float | None:
        """The model time at the range end after node n (rate 1 where the motion lasts), or None if no rate in
        bounds can end it inside the motion."""
        _, _, t, s = nodes[n]
        if duration - t <= 1e-9:
            return None
        end = min(s + (duration - t), model_duration)
        return end if lo_rate <= (end - s) / (duration - t) <= hi_rate else None

    ends = [n for n in range(len(nodes)) if np.isfinite(score[n]) and closes(n) is not None]
    last = max(ends, key=lambda n: score[n]) if ends else 0
    chain = []
    n = last
    while n > 0:
        chain.append(nodes[n][2:])
        n = parent[n]
    end = closes(last)
    anchors = [(0.0, 0.0), *reversed(chain), (duration, min(duration, model_duration) if end is None else end)]
    return TimeMap(anchors=np.asarray(anchors, np.float64), hits=len(chain))


def sync_positions(
    flows: np.ndarray,
    model_fps: float,
    music_beats: np.ndarray,
    n_out: int,
    fps: float,
    strength: float = 1.0,
    config: BeatSyncConfig = BeatSyncConfig(),
) -> tuple[np.ndarray, int]:
    """Where (in model frames) each of n_out output frames at `fps` should sample the model's motion: (n_out,)
    positions, nondecreasing, the first 0 (the still), and how many music beats got a hit.
    flows: (M, 2, h, w) at model_fps.

    A first map moves hits by up to max_shift; changing the playback speed moves the speed minima a little
    (the speed seen is the model's times the map's slope), so `refinements` more passes, on the motion as the
    map plays it, move the remaining hits by up to refine_shift."""
    if strength <= 0.0 or n_out < 3:
        return np.arange(n_out) * (model_fps / fps), 0  # the model's own timing, as pipeline.resample_time reads it
    times = np.arange(n_out) / fps
    duration = float(times[-1])
    model_duration = (len(flows) - 1) / model_fps
    grid = np.arange(int(math.floor(duration * ANALYSIS_FPS)) + 1) / ANALYSIS_FPS  # output seconds, 60 fps
    grid = np.append(grid, duration) if grid[-1] < duration else grid
    model_times = grid.copy()  # the map so far, on the grid: the model's own timing
    hits = 0
    passes = [config.max_shift] + [config.refine_shift] * config.refinements
    for shift in passes:
        kinetic = kinetic_beat_times(flows, model_fps, model_times)  # output seconds, as played so far
        time_map = fit_time_map(music_beats, kinetic, duration, duration, dataclasses.replace(config, max_shift=shift))
        played = np.interp(np.clip(time_map(grid), 0.0, duration), grid, model_times)  # compose the maps
        model_times = np.minimum(np.maximum.accumulate(played), model_duration)
        hits = time_map.hits
    model_times = grid + min(strength, 1.0) * (model_times - grid)
    return np.interp(times, grid, model_times) * model_fps, hits
