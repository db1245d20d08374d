"""`dance-any-beat generate` and `evaluate` as a user runs them, with a tiny random-weight checkpoint."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from dance_any_beat import pipeline
from dance_any_beat.cli import main
from dance_any_beat.data.music_synth import synthesize_music
from dance_any_beat.data.procedural import make_dataset
from dance_any_beat.evaluate import DRIFT_TARGETS, TARGETS, colour_histogram, evaluate, frame_sharpness
from dance_any_beat.presets import load_quality_presets

pytestmark = pytest.mark.usefixtures("one_thread")
# `checkpoint` (conftest.py): a ~40 k-parameter DabFusion with random weights


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    music = synthesize_music("house", 124.0, 3.0, sr=22050, seed=2, first_beat=0.1)
    sf.write(folder / "song.wav", music.audio, music.sr)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "still.png"), (rng.random((36, 50, 3)) * 255).astype(np.uint8))
    return folder / "still.png", folder / "song.wav"


def run_generate(checkpoint: Path, inputs: tuple[Path, Path], out: Path, *flags: str) -> int:
    image, audio = inputs
    return main(["generate", "--image", str(image), "--audio", str(audio), "--out", str(out),
                 "--checkpoint", str(checkpoint), *flags])  # fmt: skip


def test_generate_json_is_the_last_line_with_the_documented_keys(checkpoint, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    code = run_generate(checkpoint, inputs, out, "--seconds", "1.5", "--fps", "12", "--steps", "2",
                        "--resolution", "full", "--json")  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"frames", "fps", "size", "frames_dir", "video", "beats_json", "seconds"} <= set(result)
    assert result["frames"] == 18 and result["fps"] == 12.0 and result["size"] == [50, 36]
    assert Path(result["frames_dir"]) == out / "frames" and len(list(out.glob("frames/*.png"))) == 18
    assert Path(result["video"]).is_file() and Path(result["beats_json"]).is_file()
    assert {"beats", "encode", "denoise", "decode", "warp", "write_frames", "video"} <= set(result["seconds"])
    assert all(v >= 0 for v in result["seconds"].values())


def test_beats_file_and_preset_with_overrides(checkpoint, inputs, tmp_path, capsys):
    beats = tmp_path / "beats.txt"
    beats.write_text("# my beats\n0.5\n1.0\n\n1.5\n")
    out = tmp_path / "out"
    assert run_generate(checkpoint, inputs, out, "--seconds", "1", "--fps", "6", "--beats", str(beats),
                        "--preset", "draft", "--steps", "3", "--style", "house") == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "6 frames at 6 fps" in printed and "2 beats (given)" in printed  # 1.5 s lies past the 1 s range
    record = json.loads((out / "generate.json").read_text())["params"]
    draft = load_quality_presets()["draft"]
    assert record["steps"] == 3  # the flag wins over the preset
    assert (record["resolution"], record["guidance"]) == (draft.resolution, draft.guidance)
    assert record["preset"] == "draft" and record["style"] == "house"
    assert json.loads((out / "beats.json").read_text())["source"] == "given"


def test_missing_checkpoints_say_how_to_get_one(inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "STARTER_CHECKPOINT", tmp_path / "checkpoints" / "starter")
    image, audio = inputs
    assert main(["generate", "--image", str(image), "--audio", str(audio), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "the starter model is not trained yet" in err and "dance-any-beat train diffusion" in err
    assert "--checkpoint DIR" in err and len(err.strip().splitlines()) == 1

    assert run_generate(tmp_path / "nowhere", inputs, tmp_path / "o") == 2
    assert "checkpoint folder" in capsys.readouterr().err


def test_errors_are_one_line_with_exit_status_2(checkpoint, inputs, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_text("text")
    code = main(["generate", "--image", str(bad), "--audio", str(inputs[1]), "--out", str(tmp_path / "o"),
                 "--checkpoint", str(checkpoint)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("dance-any-beat generate: error: could not read")
    assert run_generate(checkpoint, inputs, tmp_path / "o", "--preset", "ultra") == 2
    assert "unknown preset 'ultra'; choose one of: draft, standard, final" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    assert run_generate(checkpoint, inputs, tmp_path / "o", "--beats", str(empty)) == 2
    assert "holds no beat times" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_evaluate_scores_two_clips_with_every_metric(checkpoint, tmp_path, capsys):
    data = make_dataset(tmp_path / "data", 2, split="test", seconds=1.5, size=32, workers=1)
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--clips", "2",
                 "--preset", "draft", "--guidance", "3", "--steps", "3", "--drift-seconds", "4",
                 "--drift-dances", "2", "--drift-start", "1.5", "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["params"]["guidance"] == 3.0 and report["params"]["steps"] == 3  # flags win over the preset
    assert report["params"]["sampler"] == "ddim"  # the rest comes from it
    summary = report["summary"]
    for key in ("lfae_ssim", "lfae_psnr", "bas_generated", "bas_ground_truth", "bas_ratio", "bas_swapped",
                "music_swap_ratio", "pose_bas_generated", "pose_bas_ground_truth", "pose_bas_ratio",
                "av_align_generated", "av_align_ground_truth", "flow_px_generated", "flow_px_ground_truth",
                "motion_ratio", "first_frame_ssim"):  # fmt: skip
        assert key in summary, key
    assert {"pose_bas_generated", "pose_bas_ground_truth"} <= set(report["per_clip"][0])
    assert report["clips"] == 2 and len(report["per_clip"]) == 2 and set(report["checks"]) == set(TARGETS)
    assert 0 <= summary["lfae_ssim"] <= 1 and summary["flow_px_generated"] > 0
    assert summary["bas_ground_truth"] > 0.5  # the procedural dancer hits its beats

    # drift: a 4 s dance (several model windows), its last 2 s against its first 2 s (segments cap at half)
    drift = report["drift"]
    assert drift["seconds"] == 4 and drift["windows"] >= 3 and set(drift["checks"]) == set(DRIFT_TARGETS)
    assert drift["sharpness_first"] > 0 and drift["histogram_first"] >= 0
    assert drift["sharpness_ratio"] == pytest.approx(drift["sharpness_last"] / drift["sharpness_first"], rel=1e-3)
    assert drift["dances"] == 2 and len(drift["bas_per_dance"]) == 2  # the BAS means are over both dances
    assert drift["music_start"] == 1.5  # the dances began 1.5 s into their music
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--drift-start", "-1"]) == 2
    assert "drift_start must be >= 0 seconds into the music" in capsys.readouterr().err
    firsts = [first for first, _ in drift["bas_per_dance"] if first is not None]  # None: no beat in the segment
    assert drift["bas_first"] == pytest.approx(np.mean(firsts), rel=1e-6) if firsts else drift["bas_first"] is None

    table = evaluate(checkpoint, data, clips=1, preset="draft", drift_seconds=0).table()
    assert "LFAE reconstruction SSIM" in table and "music swap" in table and "1 clips from" in table
    assert "2D-MM Align (landmarks) ground truth" in table
    assert "drift over" not in table


def test_drift_measures_see_blur_and_colour_change():
    rng = np.random.default_rng(0)
    still = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(still, (5, 5), 2.0)
    assert frame_sharpness(blurred) < 0.5 * frame_sharpness(still)
    tinted = np.clip(still.astype(int) + 60, 0, 255).astype(np.uint8)
    same = cv2.compareHist(colour_histogram(still), colour_histogram(still), cv2.HISTCMP_BHATTACHARYYA)
    moved = cv2.compareHist(colour_histogram(tinted), colour_histogram(still), cv2.HISTCMP_BHATTACHARYYA)
    assert same < 1e-6 < 0.2 < moved


def test_export_writes_a_half_size_checkpoint_that_generates_the_same_model(checkpoint, tmp_path, capsys):
    import torch

    from dance_any_beat.models.dabfusion import DabFusion

    out = tmp_path / "shipped"
    assert main(["export", str(checkpoint), str(out), "--fp16"]) == 0
    assert "fp16" in capsys.readouterr().out
    full, half = DabFusion.from_checkpoint(checkpoint), DabFusion.from_checkpoint(out)
    assert half.config == full.config
    for (name, a), (_, b) in zip(full.state_dict().items(), half.state_dict().items(), strict=True):
        torch.testing.assert_close(b, a, atol=2e-3, rtol=2e-3, msg=name)
    size = (out / "model.safetensors").stat().st_size
    assert size < 0.6 * (checkpoint / "model.safetensors").stat().st_size
    # an existing checkpoint is never replaced without --overwrite
    assert main(["export", str(checkpoint), str(out)]) == 2
    assert "already holds a checkpoint; pass --overwrite" in capsys.readouterr().err
    assert (out / "model.safetensors").stat().st_size == size
