"""The `dance-any-beat` command as a user runs it: real audio files, real outputs, readable errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dance_any_beat.cli import main
from dance_any_beat.data.music_synth import synthesize_music
from dance_any_beat.video import probe_mp4


@pytest.fixture(scope="module")
def track(tmp_path_factory) -> tuple[Path, np.ndarray]:
    music = synthesize_music("pop", 112.0, 8.0, sr=22050, seed=5, first_beat=0.2)
    path = tmp_path_factory.mktemp("audio") / "song.wav"
    sf.write(path, music.audio, music.sr)
    return path, music.beat_times


def test_beats_json_is_one_object_with_the_documented_keys(track, capsys):
    path, truth = track
    assert main(["beats", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"tempo", "beats", "downbeats", "duration"}
    assert result["tempo"] == pytest.approx(112.0, rel=0.04)
    assert result["duration"] == pytest.approx(8.0, abs=0.01)
    hits = sum(np.min(np.abs(truth - t)) < 0.07 for t in result["beats"])
    assert hits >= 0.9 * len(truth)
    assert set(result["downbeats"]) <= set(result["beats"])


def test_beats_window_reports_times_from_the_file_start(track, capsys):
    path, truth = track
    assert main(["beats", str(path), "--start", "2", "--seconds", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["duration"] == pytest.approx(5.0, abs=0.01)
    assert min(result["beats"]) >= 2.0 and max(result["beats"]) <= 7.0
    inside = truth[(truth > 2.1) & (truth < 6.9)]
    assert all(np.min(np.abs(np.asarray(result["beats"]) - t)) < 0.07 for t in inside)


def test_beats_human_output(track, capsys):
    path, _ = track
    assert main(["beats", str(path)]) == 0
    out = capsys.readouterr().out
    assert "BPM" in out and "downbeats (s):" in out


def test_bad_audio_is_one_line_and_exit_2(tmp_path: Path, capsys):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(44100, np.float32), 22050)
    assert main(["beats", str(silent)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dance-any-beat beats: error: ") and "is silent" in err
    assert main(["beats", str(tmp_path / "missing.ogg")]) == 2
    assert "audio file not found" in capsys.readouterr().err


def test_make_dataset_writes_a_resumable_split(tmp_path: Path, capsys):
    args = ["make-dataset", "--out", str(tmp_path / "ds"), "--num-clips", "3", "--seconds", "1.5", "--workers", "1",
            "--split", "val", "--quiet"]
    assert main(args) == 0
    split = tmp_path / "ds" / "val"
    clips = sorted(p for p in split.iterdir() if p.is_dir())
    assert len(clips) == 3 and all((c / "clip.json").exists() for c in clips)
    assert main(args) == 0  # resume: nothing to do, nothing lost
    assert sorted(p for p in split.iterdir() if p.is_dir()) == clips
    changed = [*args[:-1], "--fps", "24", "--quiet"]
    assert main(changed) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_demo_writes_frames_video_and_beats(track, tmp_path: Path, capsys):
    path, _ = track
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--audio", str(path), "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["frames"] == 240 and result["fps"] == 30
    assert len(list((out / "frames").glob("*.png"))) == 240
    info = probe_mp4(out / "dance.mp4")
    assert info["frames"] == 240 and info["has_audio"] == 1.0
    beats = json.loads((out / "beats.json").read_text())
    assert beats["tempo"] == pytest.approx(112.0, rel=0.04)
    assert result["beat_alignment"] > 0.6  # the dancer hits the detected beats


def test_console_script_help_teaches():
    exe = Path(sys.executable).parent / "dance-any-beat"
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    out = subprocess.run([str(exe), "beats", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--json" in out and "example:" in out
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("beats", "make-dataset", "demo"):
        assert command in out
