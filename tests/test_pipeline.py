"""The generate pipeline end to end with a tiny random-weight DabFusion: frame counts, sizes, the full-resolution
warp, beats.json, determinism, cancel, progress, output-folder safety, input errors, and the presets."""

import dataclasses
import json
import threading
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch

from dance_any_beat import pipeline
from dance_any_beat.data.music_synth import synthesize_music
from dance_any_beat.models.dabfusion import DabFusion
from dance_any_beat.pipeline import (
    Framing,
    GenerateParams,
    GenerationCancelled,
    ImageError,
    WindowPlan,
    generate,
)
from dance_any_beat.presets import (
    PRESET_FIELDS,
    PRESETS_DIR,
    apply_preset,
    load_quality_presets,
    load_style_presets,
)
from dance_any_beat.styles import STYLES
from dance_any_beat.video import probe_mp4, read_png_frames

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"steps": 2, "resolution": "model", "window_overlap": 2}  # a tiny model needs no more for plumbing


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> DabFusion:
    return DabFusion.from_checkpoint(checkpoint)


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> tuple[Path, np.ndarray]:
    music = synthesize_music("pop", 112.0, 4.0, sr=22050, seed=5, first_beat=0.2)
    path = tmp_path_factory.mktemp("audio") / "song.wav"
    sf.write(path, music.audio, music.sr)
    return path, music.beat_times


def write_still(path: Path, width: int, height: int, seed: int = 0) -> np.ndarray:
    """A textured RGB still (smooth blobs + noise), written as PNG; returns it as uint8 RGB."""
    rng = np.random.default_rng(seed)
    small = rng.random((4, 4, 3)).astype(np.float32)
    smooth = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    image = (np.clip(smooth + 0.1 * rng.random((height, width, 3)), 0, 1) * 255).astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return image


@pytest.fixture(scope="module")
def still(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("image") / "still.png"
    write_still(path, 70, 45)  # wide, odd height
    return path


def frame_files(out: Path) -> list[Path]:
    return sorted((out / "frames").glob("*.png"))


# ------------------------------------------------------------------------------------------------ frame counts
@pytest.mark.parametrize(("seconds", "fps"), [(1.0, 24.0), (1.3, 30.0), (2.05, 12.5), (1.0, 7.0)])
def test_exactly_round_seconds_times_fps_frames(model, still, song, tmp_path, seconds, fps):
    params = GenerateParams(seconds=seconds, fps=fps, **FAST)
    result = generate(model, still, song[0], tmp_path / "out", params)
    expected = round(seconds * fps)
    files = frame_files(tmp_path / "out")
    assert result.frames == expected == len(files)
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(1, expected + 1)]
    # windows of 0.8 s overlapping by 2 frames: 1 s needs 2 windows, 2.05 s needs 3
    assert result.windows == len(WindowPlan.cover(expected, fps, 10.0, 8, 2).starts) >= 2
    if seconds == 1.3:
        probe = probe_mp4(result.video)
        assert probe["frames"] == expected and probe["has_audio"] and probe["fps"] == pytest.approx(fps)


def test_window_plan_covers_every_output_frame():
    for n, fps in [(1, 24.0), (24, 24.0), (100, 30.0), (7, 7.0), (401, 24.0)]:
        plan = WindowPlan.cover(n, fps, 10.0, 8, 3)
        last_needed = (n - 1) * 10.0 / fps
        assert plan.frames - 1 >= last_needed - 1e-9 and plan.covered >= plan.frames
        assert all(b - a == 5 for a, b in zip(plan.starts, plan.starts[1:], strict=False))


# ------------------------------------------------------------------------------------------------ sizes, warp
def test_full_resolution_frames_have_the_stills_own_size(model, song, tmp_path):
    for width, height in [(70, 45), (21, 40), (33, 33)]:
        path = tmp_path / f"still_{width}x{height}.png"
        write_still(path, width, height)
        params = GenerateParams(seconds=1.0, fps=6.0, steps=2, resolution="full", window_overlap=1)
        result = generate(model, path, song[0], tmp_path / f"full_{width}x{height}", params)
        frames = read_png_frames(result.frames_dir)
        assert result.size == (width, height) and frames.shape == (6, height, width, 3)
        # model resolution: the still's part of the model's 32 px view
        params = GenerateParams(seconds=1.0, fps=6.0, **FAST)
        result = generate(model, path, song[0], tmp_path / f"model_{width}x{height}", params)
        framing = Framing.fit(width, height, 32)
        assert result.size == framing.box[2:] and max(result.size) == 32
        assert read_png_frames(result.frames_dir).shape == (6, framing.box[3], framing.box[2], 3)


def fake_sampler(flow_x: float = 0.0, flow_y: float = 0.0):
    """Stands in for diffusion.sample: x0 with a constant flow (x0 units) and full visibility."""

    def fake(model_fn, shape, cond, sampler, **kwargs):
        x0 = torch.zeros(shape)
        x0[:, 0], x0[:, 1], x0[:, 2] = flow_x, flow_y, 1.0
        return x0

    return fake


def test_zero_motion_and_full_visibility_give_back_the_still(model, song, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "sample", fake_sampler())
    for width, height in [(70, 45), (19, 50)]:
        image = write_still(tmp_path / "still.png", width, height, seed=3)
        params = GenerateParams(seconds=1.0, fps=5.0, steps=2, resolution="full")
        result = generate(model, tmp_path / "still.png", song[0], tmp_path / f"out{width}", params)
        frames = read_png_frames(result.frames_dir)
        assert frames.shape == (5, height, width, 3)
        assert np.abs(frames.astype(int) - image[None].astype(int)).max() <= 1


def test_flows_are_mapped_back_through_the_framing(model, tiny_dabfusion_config, song, tmp_path, monkeypatch):
    """A flow of one still pixel (in the view's units, through the letterbox) shifts the still by one pixel."""
    width, height = 70, 45
    image = write_still(tmp_path / "still.png", width, height, seed=4).astype(int)
    _, _, w, h = Framing.fit(width, height, 32).box
    scale = tiny_dabfusion_config.data.flow_scale
    # one still pixel = 2 / W still-normalised = (2 / W) (w / S) view-normalised; x0 holds flow / flow_scale
    for fx, fy in [(1, 0), (0, 1)]:
        flow_x = fx * (2.0 / width) * (w / 32) / scale
        flow_y = fy * (2.0 / height) * (h / 32) / scale
        monkeypatch.setattr(pipeline, "sample", fake_sampler(flow_x, flow_y))
        params = GenerateParams(seconds=1.0, fps=2.0, steps=2, resolution="full")
        result = generate(model, tmp_path / "still.png", song[0], tmp_path / f"shift{fx}{fy}", params)
        frame = read_png_frames(result.frames_dir)[0].astype(int)
        expected = image[fy:, fx:]  # out(p) = still(p + flow): content moves left / up
        assert np.abs(frame[: height - fy, : width - fx] - expected).max() <= 2


def test_a_learned_upsampler_gives_the_full_resolution_warp_its_flow(
    tiny_dabfusion_config, song, tmp_path, monkeypatch
):
    """An LFAE with learned upsampling warps the still by its own 4x flow: the one-pixel shift stays exact (a
    convex mix of equal flows is that flow) and the upsampler runs for the full-resolution frames too."""
    lfae = dataclasses.replace(tiny_dabfusion_config.lfae, composite_reference=True, decoder_guide=True,
                               learned_upsampling=True)  # fmt: skip
    torch.manual_seed(1)
    learned = DabFusion(dataclasses.replace(tiny_dabfusion_config, lfae=lfae)).eval()
    torch.nn.init.normal_(learned.lfae.decoder.upsampler.net[-1].weight, std=0.5)  # far from bilinear
    calls = []
    learned.lfae.decoder.upsampler.register_forward_hook(lambda module, args, out: calls.append(out[0].shape))
    width, height = 70, 45
    image = write_still(tmp_path / "still.png", width, height, seed=4).astype(int)
    _, _, w, _ = Framing.fit(width, height, 32).box
    flow_x = (2.0 / width) * (w / 32) / tiny_dabfusion_config.data.flow_scale  # one still pixel to the right
    monkeypatch.setattr(pipeline, "sample", fake_sampler(flow_x, 0.0))
    params = GenerateParams(seconds=1.0, fps=2.0, steps=2, resolution="full")
    result = generate(learned, tmp_path / "still.png", song[0], tmp_path / "shifted", params)
    frame = read_png_frames(result.frames_dir)[0].astype(int)
    assert np.abs(frame[:, : width - 1] - image[:, 1:]).max() <= 2
    assert calls == [(2, 2, 32, 32)] * 2  # the model's own frames, then the full-resolution warp's flow


def test_windows_are_cross_faded_and_resampled_in_time(model, monkeypatch):
    """Window k of a fake sampler is all k: the overlap frames blend k-1 into k, and the time resampling is linear."""
    calls = []

    def fake(model_fn, shape, cond, sampler, **kwargs):
        calls.append(kwargs["latents"])
        return torch.full(shape, float(len(calls) - 1))

    monkeypatch.setattr(pipeline, "sample", fake)
    still = np.full((32, 32, 3), 0.5, np.float32)
    samples = np.zeros(22050 * 3, np.float32)
    params = pipeline.resolve_for_model(GenerateParams(fps=10.0, seconds=1.4, window_overlap=2, steps=2), model)
    motion = pipeline.generate_motion(model, still, samples, 22050, 14, params, np.array([0.5]), np.zeros(0))
    track = motion.x0[0, 0, :, 0, 0].tolist()  # the flow channel per model frame (10 fps in = 10 fps out)
    assert len(calls) == 2 and motion.plan.starts == (0, 6)
    assert track == pytest.approx([0] * 6 + [1 / 3, 2 / 3] + [1] * 6)
    # at 25 fps, output frame k is at model frame k * 10 / 25
    motion = pipeline.generate_motion(model, still, samples, 22050, 35, dataclasses.replace(params, fps=25.0),
                                      np.array([0.5]), np.zeros(0))  # fmt: skip
    assert motion.plan.starts == (0, 6, 12) and motion.plan.frames == 15  # frame 34 is at model frame 13.6
    model_track = [2] * 6 + [2 + 1 / 3, 2 + 2 / 3] + [3] * 4 + [3 + 1 / 3, 3 + 2 / 3, 4]  # windows 2, 3, 4
    expected = np.interp(np.arange(35) * 10 / 25, np.arange(15), model_track)
    assert motion.x0[0, 0, :, 0, 0].numpy() == pytest.approx(expected, abs=1e-5)


# ------------------------------------------------------------------------------------------------ beats.json
def test_beats_json_for_given_and_tracked_beats(model, still, song, tmp_path):
    path, truth = song
    given = np.array([0.2, 0.7, 1.2, 1.7, 2.2, 2.7, 3.2])
    params = GenerateParams(start=0.5, seconds=2.0, fps=5.0, **FAST)
    result = generate(model, still, path, tmp_path / "given", params, beat_times=given)
    beats = json.loads(result.beats_json.read_text())
    assert beats["source"] == "given" and beats["start"] == 0.5 and beats["duration"] == 2.0
    assert beats["beats"] == pytest.approx([0.2, 0.7, 1.2, 1.7])  # relative to the start, inside the range
    assert beats["downbeats"] == pytest.approx([1.7])  # every 4th given beat, from the first (0.2 s)
    assert beats["tempo"] == pytest.approx(120.0)
    assert result.beat_times == pytest.approx(beats["beats"])

    result = generate(model, still, path, tmp_path / "tracked", params)
    beats = json.loads(result.beats_json.read_text())
    assert beats["source"] == "tracked" and beats["tempo"] == pytest.approx(112.0, rel=0.05)
    expected = truth[(truth >= 0.5) & (truth <= 2.5)] - 0.5
    assert len(beats["beats"]) == len(expected)
    assert np.abs(np.array(beats["beats"]) - expected).max() < 0.05
    assert set(beats["downbeats"]) <= set(beats["beats"])


# ------------------------------------------------------------------------------------------------ seeds, cancel
def test_same_seed_same_frames_other_seed_other_frames(model, still, song, tmp_path):
    def run(seed: int, name: str) -> np.ndarray:
        params = GenerateParams(seconds=1.0, fps=8.0, seed=seed, **FAST)
        return read_png_frames(generate(model, still, song[0], tmp_path / name, params).frames_dir)

    first = run(1, "a")
    assert np.array_equal(first, run(1, "b"))
    assert not np.array_equal(first, run(2, "c"))


def test_cancel_raises_and_leaves_no_video(model, still, song, tmp_path):
    params = GenerateParams(seconds=2.0, fps=8.0, **FAST)
    event = threading.Event()

    def progress(fraction: float, stage: str) -> None:
        if stage.startswith("denoising window 2"):
            event.set()

    with pytest.raises(GenerationCancelled, match="cancelled while denoising window 2"):
        generate(model, still, song[0], tmp_path / "a", params, progress=progress, cancel=event)
    assert not (tmp_path / "a" / "dance.mp4").exists() and not frame_files(tmp_path / "a")

    # cancelled while frames are written (a callable flag): they are removed again, and no video is left
    stages: list[str] = []
    with pytest.raises(GenerationCancelled):
        generate(model, still, song[0], tmp_path / "b", params, progress=lambda f, s: stages.append(s),
                 cancel=lambda: stages.count("decoding") >= 5)  # fmt: skip
    out = tmp_path / "b"
    assert not frame_files(out) and not any(out.glob("*.mp4")) and not (out / "generate.json").exists()
    assert isinstance(GenerationCancelled("x"), InterruptedError)


def test_progress_is_monotone_and_ends_at_one(model, still, song, tmp_path):
    seen: list[tuple[float, str]] = []
    generate(model, still, song[0], tmp_path / "out", GenerateParams(seconds=1.5, fps=8.0, **FAST),
             progress=lambda f, s: seen.append((f, s)))  # fmt: skip
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and seen[-1] == (1.0, "done")
    stages = [s for _, s in seen]
    for stage in ("checking inputs", "tracking beats", "encoding", "denoising window 1/", "decoding",
                  "writing video"):  # fmt: skip
        assert any(s.startswith(stage) for s in stages), stage


# ------------------------------------------------------------------------------------------------ output folder
def test_output_folder_of_foreign_files_is_refused_own_output_is_replaced(model, still, song, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"already holds files that generate did not make \(notes.txt\)"):
        generate(model, still, song[0], foreign, GenerateParams(seconds=1.0, fps=4.0, **FAST))
    assert (foreign / "notes.txt").read_text() == "keep me" and not (foreign / "frames").exists()

    out = tmp_path / "out"
    generate(model, still, song[0], out, GenerateParams(seconds=2.0, fps=6.0, **FAST))
    assert len(frame_files(out)) == 12
    generate(model, still, song[0], out, GenerateParams(seconds=1.0, fps=6.0, **FAST))  # its own output: fine
    assert len(frame_files(out)) == 6  # no stale frames of the longer run
    assert json.loads((out / "generate.json").read_text())["frames"] == 6
    (out / "frames" / "other.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="frames/"):
        generate(model, still, song[0], out, GenerateParams(seconds=1.0, fps=6.0, **FAST))


# ------------------------------------------------------------------------------------------------ input errors
def test_bad_images_are_named_with_the_fix(model, song, tmp_path):
    bad = tmp_path / "still.png"
    bad.write_text("not an image")
    with pytest.raises(ImageError, match=r"could not read .*still.png as an image; save the still as PNG or JPEG"):
        generate(model, bad, song[0], tmp_path / "out")
    with pytest.raises(ValueError, match=r"image .*missing.png does not exist; give the path of a PNG or JPEG"):
        generate(model, tmp_path / "missing.png", song[0], tmp_path / "out")
    with pytest.raises(ValueError, match="the uploaded image is empty"):
        generate(model, b"", song[0], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_images_as_bytes_and_arrays_and_rgba(model, song, tmp_path):
    image = write_still(tmp_path / "still.png", 40, 30)
    data = (tmp_path / "still.png").read_bytes()
    params = GenerateParams(seconds=1.0, fps=3.0, steps=2, resolution="full")
    a = generate(model, data, song[0], tmp_path / "bytes", params)
    b = generate(model, image, song[0], tmp_path / "array", params)
    assert np.array_equal(read_png_frames(a.frames_dir), read_png_frames(b.frames_dir))
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    assert np.allclose(pipeline.read_still(rgba), image / 255.0, atol=1e-6)
    transparent = rgba.copy()
    transparent[..., 3] = 0
    assert np.allclose(pipeline.read_still(transparent), 1.0)  # transparent parts go on white


def test_bad_parameters_list_the_valid_values(model, still, song, tmp_path):
    with pytest.raises(ValueError, match="resolution must be one of model, full; got 'high'"):
        GenerateParams(resolution="high")
    with pytest.raises(ValueError, match="sampler must be one of ddpm, ddim, dpmpp_2m"):
        GenerateParams(sampler="euler")
    with pytest.raises(ValueError, match="unknown style 'tango'; choose one of: auto, break, pop"):
        GenerateParams(style="tango")
    with pytest.raises(ValueError, match="unknown preset 'best'; choose one of: draft, standard, final"):
        GenerateParams(preset="best")
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda"):
        GenerateParams(device="tpu")
    with pytest.raises(ValueError, match="fps must be a number in"):
        GenerateParams(fps=0)
    with pytest.raises(ValueError, match="steps must be an integer from 1 to 1000"):
        GenerateParams(steps=True)
    with pytest.raises(ValueError, match="unknown parameter.s. colour; the parameters are: start, seconds"):
        GenerateParams.from_dict({"colour": "red"})
    # an overlap from a preset is capped at half the model's window; one the user gives must fit
    assert pipeline.resolve_for_model(GenerateParams(preset="final"), model).window_overlap == 4
    with pytest.raises(ValueError, match="window_overlap must be smaller than the model's window of 8 frames"):
        generate(model, still, song[0], tmp_path / "out", GenerateParams(window_overlap=8, steps=2))
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ presets
def test_presets_fill_only_what_the_user_did_not_set():
    presets = load_quality_presets()
    assert list(presets)[:3] == ["draft", "standard", "final"]
    draft, standard, final = presets["draft"], presets["standard"], presets["final"]
    assert draft.steps <= 10 and draft.resolution == "model" and draft.guidance <= standard.guidance <= final.guidance
    assert final.steps > standard.steps and final.resolution == "full" and final.window_overlap > 0

    params = apply_preset(GenerateParams(steps=7, fps=30.0), "draft")
    assert params.steps == 7 and params.fps == 30.0  # explicit values stay
    assert (params.resolution, params.guidance, params.sampler) == ("model", draft.guidance, draft.sampler)
    assert params.preset == "draft"
    # an explicit set names what the user set, even when it equals a default
    params = apply_preset(GenerateParams(steps=25, resolution="full"), "draft", explicit={"steps"})
    assert params.steps == 25 and params.resolution == "model"
    with pytest.raises(ValueError, match="unknown preset 'fast'; choose one of: draft, standard, final"):
        apply_preset(GenerateParams(), "fast")

    # resolved(): the named preset, else the standard one, for the fields left None
    plain = GenerateParams().resolved()
    assert {f: getattr(plain, f) for f in PRESET_FIELDS} == standard.settings() and plain.preset == "standard"
    named = GenerateParams(preset="final", guidance=1.0).resolved()
    assert named.guidance == 1.0 and named.steps == final.steps and named.resolution == "full"
    # the HTTP API's JSON: keys present are explicit
    from_json = GenerateParams.from_dict({"preset": "draft", "steps": 25, "fps": 24}).resolved()
    assert from_json.steps == 25 and from_json.resolution == "model" and from_json.fps == 24.0


def test_style_presets_agree_with_the_styles_module():
    styles = load_style_presets()
    assert list(styles) == ["auto", *(s.name for s in STYLES)]
    for style in STYLES:
        assert styles[style.name].display_name == style.display_name
        assert styles[style.name].description == style.description
    with open(PRESETS_DIR / "quality.toml", "rb") as f:
        assert set(tomllib.load(f)["standard"]) == {"display_name", "description", *PRESET_FIELDS}
