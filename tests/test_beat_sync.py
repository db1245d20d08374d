"""Beat sync on motion whose hits are known: a dancer whose speed drops to zero every half second."""

import numpy as np
import pytest
import torch

from dance_any_beat.beat_sync import BeatSyncConfig, TimeMap, fit_time_map, kinetic_beat_times, sync_positions
from dance_any_beat.metrics.beat_alignment import beat_alignment_from_beats, motion_beats
from dance_any_beat.metrics.motion import motion_energy_from_flows
from dance_any_beat.pipeline import GenerateParams, sample_at

MODEL_FPS = 10.0
OUT_FPS = 30.0
PERIOD = 0.5  # seconds between the dancer's hits
SECONDS = 4.0


def pulsing_flows(seconds: float = SECONDS + 0.5, period: float = PERIOD) -> np.ndarray:
    """(M, 2, 4, 4) flows from the still at MODEL_FPS of a dancer sliding right with speed 1 - cos(2 pi t / period):
    it stops dead at every multiple of `period`."""
    t = np.arange(int(seconds * MODEL_FPS) + 1) / MODEL_FPS
    x = t - np.sin(2 * np.pi * t / period) * period / (2 * np.pi)  # integral of the speed
    flows = np.zeros((len(t), 2, 4, 4))
    flows[:, 0] = 0.02 * x[:, None, None]
    return flows


def played(flows: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The flows read at fractional model frames by the pipeline's own sample_at: (N, 2, h, w)."""
    x0 = torch.from_numpy(flows).transpose(0, 1)[None]  # (1, 2, M, h, w)
    return sample_at(x0, positions)[0].transpose(0, 1).numpy()


def hits_and_bas(flows: np.ndarray, positions: np.ndarray, beats: np.ndarray) -> tuple[np.ndarray, float]:
    energy = motion_energy_from_flows(played(flows, positions), kind="from_reference")
    hits = motion_beats(energy, OUT_FPS)
    inside = beats[beats * OUT_FPS <= len(positions) - 1] * OUT_FPS
    return hits / OUT_FPS, beat_alignment_from_beats(hits, inside, OUT_FPS)


def test_the_model_hits_are_found_where_the_dancer_stops():
    hits = kinetic_beat_times(pulsing_flows(), MODEL_FPS)
    expected = np.arange(1, 9) * PERIOD  # the ends are never minima
    assert len(hits) == len(expected) and np.abs(hits - expected).max() <= 1.5 / 60  # within the 60 fps grid


def test_hits_move_onto_beats_that_come_later():
    flows = pulsing_flows()
    beats = np.arange(1, 8) * PERIOD + 0.15  # the music's beats, 0.15 s after the dancer's hits
    n_out = int(SECONDS * OUT_FPS)
    own = np.arange(n_out) * MODEL_FPS / OUT_FPS
    _, bas_own = hits_and_bas(flows, own, beats)
    positions, hit_count = sync_positions(flows, MODEL_FPS, beats, n_out, OUT_FPS)
    hits, bas_synced = hits_and_bas(flows, positions, beats)
    print(f"BAS own timing {bas_own:.3f}, synced {bas_synced:.3f}; hits {np.round(hits, 3)}")
    assert bas_own < 0.2 and bas_synced > 0.9
    assert hit_count >= 6
    for beat in beats:  # every beat has a hit within one output frame
        assert np.abs(hits - beat).min() <= 1.0 / OUT_FPS + 1e-9, (beat, hits)
    assert positions[0] == 0.0  # the first frame is still the still
    assert np.all(np.diff(positions) >= 0) and positions[-1] <= len(flows) - 1


def test_strength_blends_with_the_models_timing():
    flows = pulsing_flows()
    beats = np.arange(1, 8) * PERIOD + 0.15
    n_out = int(SECONDS * OUT_FPS)
    own = np.arange(n_out) * MODEL_FPS / OUT_FPS
    off, _ = sync_positions(flows, MODEL_FPS, beats, n_out, OUT_FPS, strength=0.0)
    np.testing.assert_allclose(off, own)
    full, _ = sync_positions(flows, MODEL_FPS, beats, n_out, OUT_FPS, strength=1.0)
    half, _ = sync_positions(flows, MODEL_FPS, beats, n_out, OUT_FPS, strength=0.5)
    np.testing.assert_allclose(half, 0.5 * (own + full), atol=1e-9)
    hits, _ = hits_and_bas(flows, half, beats)
    middle = hits[(hits > 0.6) & (hits < 3.3)]  # the hits between the first and last beat sit about half-way
    shift = np.array([h - PERIOD * round(h / PERIOD - 0.15) for h in middle])
    assert np.all((shift > 0.03) & (shift < 0.12)), np.round(middle, 3)


def test_nothing_to_sync_keeps_the_models_timing():
    n_out = int(SECONDS * OUT_FPS)
    own = np.arange(n_out) * MODEL_FPS / OUT_FPS
    for flows, beats in ((pulsing_flows(), np.zeros(0)), (np.zeros((46, 2, 4, 4)), np.arange(1, 8) * PERIOD)):
        positions, hits = sync_positions(flows, MODEL_FPS, beats, n_out, OUT_FPS)
        np.testing.assert_allclose(positions, own, atol=1e-9)
        assert hits == 0


def test_the_map_respects_its_limits_on_any_motion():
    rng = np.random.default_rng(3)
    config = BeatSyncConfig()
    for trial in range(5):
        flows = np.cumsum(rng.normal(size=(61, 2, 4, 4)) * 0.01, axis=0)  # a random walk: minima anywhere
        beats = np.sort(rng.uniform(0.2, 5.8, size=12))
        n_out = 24 * 6
        positions, _ = sync_positions(flows, MODEL_FPS, beats, n_out, 24.0, config=config)
        assert positions[0] == 0.0 and np.all(np.diff(positions) >= 0) and positions[-1] <= len(flows) - 1
        kinetic = kinetic_beat_times(flows, MODEL_FPS)
        time_map = fit_time_map(beats, kinetic, (n_out - 1) / 24.0, 6.0, config)
        anchors = time_map.anchors
        rates = np.diff(anchors[:, 1]) / np.diff(anchors[:, 0])
        assert np.all(rates >= 1 / config.max_rate - 1e-9) and np.all(rates <= config.max_rate + 1e-9), trial
        moved = np.abs(anchors[1:-1, 1] - anchors[1:-1, 0])
        assert np.all(moved <= config.max_shift + 1e-9)  # no hit moves further than max_shift
        grid = np.linspace(0, anchors[-1, 0], 500)
        assert np.all(np.diff(time_map(grid)) > 0)  # the map runs forward: no freeze, no rewind
        np.testing.assert_allclose(time_map(anchors[:, 0]), anchors[:, 1], atol=1e-9)  # through every anchor


def test_the_rate_is_held_around_each_anchor():
    """A speed change right at a hit would move it: the map's slope is constant for a quarter stretch each side."""
    time_map = TimeMap(anchors=np.array([[0.0, 0.0], [0.5, 0.4], [1.0, 1.1], [1.6, 1.6]]), hits=2)
    for t in (0.5, 1.0):
        slopes = np.diff(time_map(np.array([t - 0.1, t - 0.05, t, t + 0.05, t + 0.1]))) / 0.05
        assert np.ptp(slopes) < 1e-6, slopes


def test_generate_params_check_the_strength():
    assert GenerateParams(beat_sync=0).beat_sync == 0.0
    with pytest.raises(ValueError, match="beat_sync must be from 0"):
        GenerateParams(beat_sync=1.5)
