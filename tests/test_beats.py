"""Beat tracking (accuracy against known beats) and the per-frame rhythm features built from beat times."""

import importlib.util
import sys
from pathlib import Path

import mir_eval
import numpy as np
import pytest

from dance_any_beat.data.music_synth import synthesize_music
from dance_any_beat.music.beats import (
    RHYTHM_CHANNELS,
    RHYTHM_DIM,
    BeatTrack,
    read_beat_times,
    rhythm_features,
    track_beats,
    track_rhythm_features,
)

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "beat_tracking.py"
SR = 22050


def _load_benchmark():
    """The acceptance tracks live in the benchmark script (one copy), loaded here by path."""
    name = "beat_tracking_benchmark"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARK)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file executes
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def pop_track() -> tuple:
    music = synthesize_music("pop", 104.0, 12.0, seed=11)
    return music, track_beats(music.audio, music.sr)


def click_track(bpm: float, seconds: float, first: float, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """Metronome clicks (2 kHz bursts, accented every 4th) over steady noise, so there is no silence anywhere."""
    rng = np.random.default_rng(0)
    audio = 0.01 * rng.standard_normal(int(seconds * sr))
    beats = np.arange(first, seconds, 60.0 / bpm)
    n = int(0.03 * sr)
    t = np.arange(n) / sr
    click = np.sin(2 * np.pi * 2000 * t) * np.exp(-t / 0.006)
    for i, b in enumerate(beats):
        s = int(round(b * sr))
        seg = audio[s : s + n]
        seg += (0.9 if i % 4 == 0 else 0.5) * click[: len(seg)]
    return audio.astype(np.float32), beats


# ------------------------------------------------------------------------------------------------ tracking


@pytest.mark.slow
def test_acceptance_on_procedural_tracks():
    """The dab tracker's contract: mean F >= 0.95 and tempo within 4% on >= 90% of 20 fixed tracks at 80-150
    BPM with a backbeat, and better than librosa's default on the same tracks."""
    bench = _load_benchmark()
    tracks = bench.evaluation_tracks()
    assert len(tracks) == 20 and all(80.0 <= t.bpm <= 150.0 for t in tracks)
    scores = {m: bench.summarise([bench.score_track(t, m) for t in tracks]) for m in ("dab", "librosa")}
    assert scores["dab"]["mean_f"] >= 0.95, scores
    assert scores["dab"]["tempo_rate"] >= 0.9, scores
    assert scores["dab"]["mean_f"] > scores["librosa"]["mean_f"], scores


@pytest.mark.parametrize("bpm,first", [(100.0, 0.0), (137.0, 0.21)])
def test_click_track_of_known_tempo(bpm, first):
    audio, beats = click_track(bpm, 10.0, first)
    track = track_beats(audio, SR)
    assert track.tempo == pytest.approx(bpm, rel=0.02)
    assert mir_eval.beat.f_measure(beats, track.beats) >= 0.95
    # the accented clicks are the downbeats
    accented = beats[::4]
    assert len(track.downbeats) >= len(accented) - 1
    assert np.abs(track.downbeats[:, None] - accented[None, :]).min(axis=1).max() < 0.03


def test_beat_track_fields(pop_track):
    music, track = pop_track
    assert isinstance(track, BeatTrack)
    assert track.duration == pytest.approx(12.0)
    assert np.all(np.diff(track.beats) > 0) and track.beats[0] >= 0 and track.beats[-1] <= track.duration
    assert set(track.downbeats) <= set(track.beats)
    np.testing.assert_allclose(np.diff(track.downbeats), 4 * 60.0 / track.tempo, rtol=0.05)
    assert track.onset_envelope.min() >= 0 and track.onset_envelope.max() == pytest.approx(1.0)
    assert len(track.onset_envelope) == pytest.approx(track.duration * track.onset_rate, abs=2)
    assert mir_eval.beat.f_measure(music.downbeat_times, track.downbeats) >= 0.9


def test_librosa_method_is_the_baseline():
    music = synthesize_music("house", 124.0, 6.0, seed=3)
    track = track_beats(music.audio, music.sr, method="librosa")
    assert track.tempo > 0 and len(track.beats) > 5
    assert track.onset_envelope.max() == pytest.approx(1.0)


def test_stereo_and_other_sample_rates():
    music = synthesize_music("waack", 118.0, 8.0, seed=4)
    mono = track_beats(music.audio, music.sr)
    stereo = track_beats(np.stack([music.audio, music.audio]), music.sr)
    np.testing.assert_array_equal(mono.beats, stereo.beats)
    import librosa

    resampled = track_beats(librosa.resample(music.audio, orig_sr=music.sr, target_sr=44100), 44100)
    assert mir_eval.beat.f_measure(mono.beats, resampled.beats) >= 0.95


def test_silence_has_no_beats():
    track = track_beats(np.zeros(3 * SR, dtype=np.float32), SR)
    assert track.tempo == 0.0 and len(track.beats) == 0 and len(track.downbeats) == 0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"method": "madmom"}, "dab, librosa"),
        ({"y": np.zeros((2, 2, 100))}, "shape"),
        ({"y": np.full(SR, np.nan)}, "NaN"),
        ({"y": np.zeros(10)}, "too short"),
    ],
)
def test_bad_input_raises(kwargs, match):
    args = {"y": np.zeros(SR, dtype=np.float32), "sr": SR} | kwargs
    with pytest.raises(ValueError, match=match):
        track_beats(**args)


# ---------------------------------------------------------------------------------------- rhythm features


def test_feature_shape_and_ranges(pop_track):
    _, track = pop_track
    feats = track_rhythm_features(track, fps=24.0, n_frames=240, start=1.0)
    assert feats.shape == (240, RHYTHM_DIM) and feats.dtype == np.float32
    assert RHYTHM_DIM == len(RHYTHM_CHANNELS) == 5
    beat, sin, cos, down, onset = feats.T
    for channel in (beat, down, onset):
        assert channel.min() >= 0.0 and channel.max() <= 1.0
    np.testing.assert_allclose(sin**2 + cos**2, 1.0, atol=1e-5)
    assert beat.max() > 0.6 and down.max() > 0.6 and onset.max() > 0.3
    # downbeats are a quarter of the beats
    assert (down > 0.5).sum() < (beat > 0.5).sum()


def test_phase_is_zero_at_beats_and_half_between():
    fps = 20.0
    beats = np.array([1.0, 1.5, 2.0, 3.0])  # the first period is 0.5 s, the last 1.0 s
    feats = rhythm_features(beats, fps=fps, n_frames=80)

    def at(t: float) -> np.ndarray:
        return feats[int(round(t * fps))]

    for b in beats:
        assert at(b)[0] == pytest.approx(1.0)  # impulse peaks at 1
        assert at(b)[1:3] == pytest.approx([0.0, 1.0], abs=1e-6)  # (sin, cos) = (0, 1)
    assert at(1.25)[1:3] == pytest.approx([0.0, -1.0], abs=1e-6)  # half-way: phase 0.5
    assert at(2.5)[1:3] == pytest.approx([0.0, -1.0], abs=1e-6)
    assert at(2.25)[1:3] == pytest.approx([1.0, 0.0], abs=1e-6)  # a quarter of the way
    # before the first beat the first period runs backwards, after the last the last period runs on
    assert at(0.5)[1:3] == pytest.approx([0.0, 1.0], abs=1e-6) and at(0.5)[0] < 1e-6
    assert at(0.75)[1:3] == pytest.approx([0.0, -1.0], abs=1e-6)
    assert at(3.5)[1:3] == pytest.approx([0.0, -1.0], abs=1e-6)
    # the impulse is a Gaussian of one frame: exp(-1/2) one frame from a beat
    assert at(1.05)[0] == pytest.approx(np.exp(-0.5), rel=1e-5)
    assert feats[:, 3].max() == 0.0 and feats[:, 4].max() == 0.0  # no downbeats or envelope given


def test_start_offsets_the_frames():
    beats = np.arange(0.0, 10.0, 0.5)
    late = rhythm_features(beats, fps=20.0, n_frames=50, start=2.05)
    early = rhythm_features(beats, fps=20.0, n_frames=91, start=0.0)
    np.testing.assert_allclose(late, early[41:], atol=1e-6)


def test_zero_and_one_beat():
    none = rhythm_features([], fps=25.0, n_frames=50)
    assert none.shape == (50, RHYTHM_DIM) and not none.any()
    one = rhythm_features([1.0], fps=25.0, n_frames=50)
    assert one[25, 0] == pytest.approx(1.0) and one[:, 0].sum() < 4
    assert not one[:, 1:3].any()  # no period, so the phase is "unknown": (0, 0)
    # unsorted and duplicated times (two markers on one frame) are the same as the clean list
    messy = rhythm_features([2.0, 1.0, 1.5, 1.0], fps=25.0, n_frames=80)
    np.testing.assert_array_equal(messy, rhythm_features([1.0, 1.5, 2.0], fps=25.0, n_frames=80))


def test_onset_channel_samples_the_envelope():
    env = np.zeros(100)
    env[40] = 2.0  # rate 10 Hz: a peak at 4.0 s
    feats = rhythm_features([1.0, 2.0], fps=10.0, n_frames=80, onset_envelope=env, onset_rate=10.0)
    assert feats[40, 4] == pytest.approx(1.0) and feats[41, 4] == 0.0 and feats[39, 4] == 0.0
    with pytest.raises(ValueError, match="together"):
        rhythm_features([1.0], fps=10.0, n_frames=5, onset_envelope=env)


def test_given_times_equal_the_detected_path(pop_track, tmp_path):
    """Beats written out (as the add-on's markers would be) and read back steer the features identically."""
    _, track = pop_track
    detected = track_rhythm_features(track, fps=30.0, n_frames=300, start=0.5)
    beats_file = tmp_path / "beats.txt"
    beats_file.write_text("# beats\n" + "\n".join(repr(float(b)) for b in track.beats) + "\n")
    downs_file = tmp_path / "downbeats.txt"
    downs_file.write_text("\n".join(repr(float(b)) for b in track.downbeats))
    given = rhythm_features(
        read_beat_times(beats_file),
        fps=30.0,
        n_frames=300,
        start=0.5,
        downbeat_times=read_beat_times(downs_file),
        onset_envelope=track.onset_envelope,
        onset_rate=track.onset_rate,
    )
    np.testing.assert_array_equal(given, detected)
    # moving one beat changes the features around it and nowhere far from it
    edited = track.beats.copy()
    edited[10] += 0.1
    moved = rhythm_features(
        edited,
        fps=30.0,
        n_frames=300,
        start=0.5,
        downbeat_times=track.downbeats,
        onset_envelope=track.onset_envelope,
        onset_rate=track.onset_rate,
    )
    changed = np.flatnonzero(np.any(moved != detected, axis=1)) / 30.0 + 0.5
    assert len(changed) > 0 and changed.min() > track.beats[8] and changed.max() < track.beats[12]


def test_read_beat_times(tmp_path):
    path = tmp_path / "beats.txt"
    path.write_text("# exported from Blender\n\n2.5\n  0.5  # first beat\n1.25\n")
    np.testing.assert_array_equal(read_beat_times(path), [0.5, 1.25, 2.5])
    path.write_text("")
    assert read_beat_times(path).shape == (0,)


@pytest.mark.parametrize(
    "text,match",
    [("0.5\n1.0\nabc\n", "line 3"), ("0.5\n\n1.0 2.0\n", "line 3"), ("-1\n", "line 1"), ("0.5\nnan\n", "line 2")],
)
def test_read_beat_times_errors_name_the_line(tmp_path, text, match):
    path = tmp_path / "beats.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_beat_times(path)


def test_onset_envelope_is_the_trackers_own():
    from dance_any_beat.music.beats import onset_envelope

    music = synthesize_music("house", 124.0, 6.0, seed=11)
    env, rate = onset_envelope(music.audio, music.sr)
    track = track_beats(music.audio, music.sr)
    assert rate == track.onset_rate
    np.testing.assert_array_equal(env, track.onset_envelope)
    assert env.max() == 1.0 and env.min() >= 0.0
