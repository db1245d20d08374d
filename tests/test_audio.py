"""Audio loading: every format from a path and from bytes, and every bad input with its message."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dance_any_beat.music.audio import AudioError, load_audio

SR = 22050


def tone(seconds: float, sr: int = SR, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    left = 0.5 * np.sin(2 * np.pi * 220 * t)
    right = 0.25 * np.sin(2 * np.pi * 330 * t)
    return np.stack([left, right][:channels], axis=1).astype(np.float32)


@pytest.mark.parametrize(
    "fmt,subtype",
    [("wav", "PCM_16"), ("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")],
)
def test_every_format_from_path_and_bytes(tmp_path: Path, fmt: str, subtype: str):
    path = tmp_path / f"song.{fmt}"
    sf.write(path, tone(2.0), SR, format=fmt.upper(), subtype=subtype)
    from_path = load_audio(path)
    from_bytes = load_audio(path.read_bytes())
    assert from_path.sr == SR and from_bytes.sr == SR
    assert from_path.samples.ndim == 1 and from_path.samples.dtype == np.float32
    # mp3 pads a little at the edges; everything else is sample exact
    assert abs(from_path.duration - 2.0) < 0.1
    np.testing.assert_array_equal(from_path.samples, from_bytes.samples)
    assert from_bytes.source == "<uploaded audio>"


def test_mixes_to_mono_and_resamples(tmp_path: Path):
    path = tmp_path / "stereo.wav"
    stereo = tone(2.0)
    sf.write(path, stereo, SR, subtype="FLOAT")
    mono = load_audio(path)
    np.testing.assert_allclose(mono.samples, stereo.mean(axis=1), atol=1e-6)
    resampled = load_audio(path, sr=16000)
    assert resampled.sr == 16000
    assert len(resampled.samples) == pytest.approx(32000, abs=2)
    # the 220/330 Hz content survives resampling: same RMS within 2 %
    assert np.sqrt(np.mean(resampled.samples**2)) == pytest.approx(np.sqrt(np.mean(mono.samples**2)), rel=0.02)


def test_window_reads_only_the_requested_range(tmp_path: Path):
    path = tmp_path / "ramp.wav"
    ramp = np.linspace(-0.9, 0.9, 5 * SR, dtype=np.float32)
    sf.write(path, ramp, SR, subtype="FLOAT")
    window = load_audio(path, start=1.0, seconds=2.0)
    np.testing.assert_allclose(window.samples, ramp[SR : 3 * SR], atol=1e-7)
    tail = load_audio(path, start=3.5)
    assert tail.duration == pytest.approx(1.5)


def test_missing_file(tmp_path: Path):
    with pytest.raises(AudioError, match="audio file not found: .*nope.wav; check the path"):
        load_audio(tmp_path / "nope.wav")


def test_folder_is_not_audio(tmp_path: Path):
    with pytest.raises(AudioError, match="is a folder, not an audio file"):
        load_audio(tmp_path)


def test_not_audio(tmp_path: Path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my notes, not a song\n" * 20)
    with pytest.raises(AudioError, match=r"could not read .*notes.wav as audio .*use a wav, flac, ogg, mp3 file"):
        load_audio(path)
    with pytest.raises(AudioError, match="could not read <uploaded audio> as audio"):
        load_audio(b"\x89PNG\r\n\x1a\n" + bytes(200))


def test_zero_byte_file_and_empty_bytes(tmp_path: Path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty.wav is empty \(0 bytes\)"):
        load_audio(path)
    with pytest.raises(AudioError, match=r"<uploaded audio> is empty \(0 bytes\)"):
        load_audio(b"")


def test_zero_length_audio(tmp_path: Path):
    path = tmp_path / "nothing.wav"
    sf.write(path, np.zeros((0, 1), dtype=np.float32), SR)
    with pytest.raises(AudioError, match="contains no samples \\(zero-length audio\\)"):
        load_audio(path)


def test_shorter_than_one_second(tmp_path: Path):
    path = tmp_path / "blip.wav"
    sf.write(path, tone(0.4), SR)
    with pytest.raises(AudioError, match=r"gives only 0.40 s of audio; at least 1 s is needed"):
        load_audio(path)


def test_window_past_the_end(tmp_path: Path):
    path = tmp_path / "short.wav"
    sf.write(path, tone(2.0), SR)
    with pytest.raises(AudioError, match=r"start 3.00 s is past the end of .*short.wav \(2.00 s long\)"):
        load_audio(path, start=3.0)
    with pytest.raises(AudioError, match="gives only 0.50 s"):
        load_audio(path, start=1.5)


def test_all_silent(tmp_path: Path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros((2 * SR, 2), dtype=np.float32), SR)
    with pytest.raises(AudioError, match=r"silence.wav is silent \(peak -inf dBFS\)"):
        load_audio(path)
    quiet = tmp_path / "hiss.wav"
    sf.write(quiet, np.full((2 * SR,), 2e-5, dtype=np.float32), SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"is silent \(peak -94 dBFS\)"):
        load_audio(quiet)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path: Path, bad: float):
    samples = tone(2.0, channels=1)[:, 0]
    samples[1000] = bad
    path = tmp_path / "corrupt.wav"
    sf.write(path, samples, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="contains NaN or infinite samples"):
        load_audio(path)


def test_bad_window_arguments(tmp_path: Path):
    path = tmp_path / "song.wav"
    sf.write(path, tone(2.0), SR)
    with pytest.raises(AudioError, match="start must be >= 0"):
        load_audio(path, start=-1)
    with pytest.raises(AudioError, match="seconds must be > 0"):
        load_audio(path, seconds=0)


def test_real_song_from_shared_data():
    song = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio" / "Karissa_Hobbs_-_Lets_Go_Fishin.ogg"
    if not song.exists():
        pytest.skip(f"shared example audio not present at {song}")
    audio = load_audio(song, sr=22050, start=30.0, seconds=10.0)
    assert audio.duration == pytest.approx(10.0, abs=1e-3)
    assert 0.05 < np.abs(audio.samples).max() <= 1.0
