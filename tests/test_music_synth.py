"""The procedural music synthesiser: exact beat grids, determinism, and audio whose energy sits on the beats."""


import numpy as np
import pytest

from dance_any_beat.data.music_synth import SynthMusic, synthesize_music
from dance_any_beat.styles import STYLE_NAMES


def _onset_curve(audio: np.ndarray, sr: int, hop: int = 128) -> tuple[np.ndarray, float]:
    """Positive spectral flux: a plain-numpy onset strength, independent of the code under test."""
    n_fft = 1024
    n_frames = 1 + (len(audio) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    mag = np.log1p(100 * np.abs(np.fft.rfft(audio[idx] * np.hanning(n_fft), axis=1)))
    flux = np.maximum(np.diff(mag, axis=0), 0).sum(axis=1)
    # frame i+1 of the STFT is centred at (i+1)*hop + n_fft/2
    times = (np.arange(1, n_frames) * hop + n_fft / 2) / sr
    return flux, times


def test_deterministic_by_seed():
    a = synthesize_music("break", 112.0, 3.0, seed=7)
    b = synthesize_music("break", 112.0, 3.0, seed=7)
    c = synthesize_music("break", 112.0, 3.0, seed=8)
    assert np.array_equal(a.audio, b.audio)
    assert np.array_equal(a.beat_times, b.beat_times)
    assert not np.array_equal(a.audio, c.audio)
    # a Generator is accepted too and advances, so two draws from one generator differ
    rng = np.random.default_rng(7)
    d, e = synthesize_music("pop", 100.0, 2.0, seed=rng), synthesize_music("pop", 100.0, 2.0, seed=rng)
    assert not np.array_equal(d.audio, e.audio)


@pytest.mark.parametrize("bpm", [55.0, 73.0, 96.0, 128.0, 160.0])
def test_beat_grid_matches_bpm_and_first_beat(bpm):
    seconds = 10.0
    music = synthesize_music("pop", bpm, seconds, first_beat=0.3, seed=1)
    period = 60.0 / bpm
    assert music.beat_times[0] == pytest.approx(0.3)
    np.testing.assert_allclose(np.diff(music.beat_times), period, rtol=1e-9)
    assert music.beat_times[-1] < seconds <= music.beat_times[-1] + period + 1e-9
    assert music.bpm == bpm and music.sr == 22050 and music.audio.shape == (int(seconds * 22050),)


def test_default_first_beat_is_random_within_one_beat():
    firsts = [synthesize_music("house", 120.0, 2.0, seed=s).beat_times[0] for s in range(20)]
    assert all(0.0 <= f < 0.5 for f in firsts)
    assert np.std(firsts) > 0.05  # not always at the same place


def test_downbeats_are_every_fourth_beat():
    music = synthesize_music("lock", 104.0, 12.0, seed=3)
    np.testing.assert_array_equal(music.downbeat_times, music.beat_times[::4])
    assert len(music.downbeat_times) >= 5


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_every_style_renders_finite_audio_in_range(style):
    music = synthesize_music(style, 100.0, 4.0, seed=2)
    assert isinstance(music, SynthMusic) and music.style == style
    assert music.audio.dtype == np.float32
    assert np.all(np.isfinite(music.audio))
    assert 0.3 < np.max(np.abs(music.audio)) <= 1.0
    assert np.sqrt(np.mean(music.audio**2)) > 0.02  # not near-silent


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_energy_peaks_land_on_beats(style):
    """Fold onset strength on the known beat grid: the on-beat phase bin stands out of the eight.

    Off-beat open hats (house, waack) can nearly match it, so "stands out" is: well above the median bin and
    within 15% of the strongest; a grid off by a sixteenth or a random grid fails both."""
    music = synthesize_music(style, 96.0, 12.0, seed=5)
    flux, times = _onset_curve(music.audio, music.sr)
    period = 60.0 / music.bpm
    phase = ((times - music.beat_times[0]) / period) % 1.0
    bins = np.floor((phase + 1 / 16) * 8).astype(int) % 8  # bin 0 = within 1/16 beat of a beat
    keep = times >= music.beat_times[0] - period / 16
    means = np.array([flux[keep & (bins == b)].mean() for b in range(8)])
    assert means[0] > 1.5 * np.median(means), means
    assert means[0] >= 0.85 * means.max(), means


def test_unknown_style_lists_valid_names():
    with pytest.raises(ValueError, match="break.*ballet_jazz"):
        synthesize_music("tango", 100.0, 1.0)


@pytest.mark.parametrize("kwargs", [{"bpm": 0.0}, {"seconds": -1.0}, {"first_beat": 5.0}])
def test_bad_arguments_raise(kwargs):
    args = {"style": "pop", "bpm": 100.0, "seconds": 2.0} | kwargs
    with pytest.raises(ValueError):
        synthesize_music(**args)
