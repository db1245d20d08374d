"""Metrics on inputs whose answer is known: analytic motion, closed-form SSIM cases, Gaussians with a known
Fréchet distance, and FVD/LPIPS networks saved with random weights and loaded back through the real path."""

import numpy as np
import pytest
import torch
from scipy import linalg

import dance_any_beat  # noqa: F401  (sets the numba cache before librosa is imported)
from dance_any_beat.metrics import (
    LPIPS,
    GaussianFit,
    audio_peaks,
    av_align,
    av_align_from_peaks,
    beat_alignment_from_beats,
    beat_alignment_score,
    frechet_distance,
    fvd,
    gaussian_fit,
    i3d_features,
    keypoint_beat_alignment,
    kinetic_beats,
    load_i3d,
    load_lpips,
    lpips_distance,
    motion_energy_from_flows,
    motion_energy_from_frames,
    psnr,
    ssim,
    video_beat_alignment,
    video_peaks,
)
from dance_any_beat.metrics.beat_alignment import local_minima
from dance_any_beat.metrics.i3d import I3D
from dance_any_beat.metrics.image_quality import gaussian_window
from dance_any_beat.metrics.lpips import BACKBONES
from dance_any_beat.weights import MissingWeightsError, WeightsFormatError


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The networks here are tiny; on a shared 2-core runner torch's second thread only adds spin-waiting
    (measured: I3D features 15x slower with 2 threads under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- synthetic motion with known beats


def pulsing_positions(num_frames: int, period: float, phase: float = 0.0) -> np.ndarray:
    """(T,) positions whose speed 1 - cos(2 pi (t - phase) / period) is exactly 0 at t = phase + k * period."""
    t = np.arange(num_frames, dtype=np.float64)
    w = 2 * np.pi / period
    return t - (np.sin(w * (t - phase)) + np.sin(w * phase)) / w  # integral of the speed from 0


def pulsing_joints(num_frames: int, period: float, phase: float = 0.0, joints: int = 4) -> np.ndarray:
    """(T, J, 2) skeleton translating with the pulsing speed (stops at t = phase + k * period)."""
    x = pulsing_positions(num_frames, period, phase)
    offsets = np.random.default_rng(0).uniform(-5, 5, size=(joints, 2))
    out = offsets[None].repeat(num_frames, axis=0)
    out[:, :, 0] += x[:, None]
    return out


def swinging_positions(num_frames: int, period: float, phase: float = 0.0, amplitude: float = 10.0) -> np.ndarray:
    """(T,) back-and-forth positions (pixels) that stop at the turns, t = phase + k * period."""
    return amplitude * np.cos(np.pi * (np.arange(num_frames) - phase) / period)


def blob_video(positions: np.ndarray, size: int = 64) -> np.ndarray:
    """(T, size, size, 3) uint8: a textured Gaussian blob whose centre follows x = positions[t] (pixels)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = []
    for x in positions:
        cx = size / 2 + x
        blob = np.exp(-((xx - cx) ** 2 + (yy - size / 2) ** 2) / (2 * 6.0**2))
        texture = 0.5 + 0.5 * np.sin(0.9 * (xx - cx)) * np.cos(0.7 * yy)
        gray = 30 + 200 * blob * (0.6 + 0.4 * texture)
        frames.append(np.repeat(gray[:, :, None], 3, axis=2))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- beat alignment score


def test_local_minima_strict_plateaus_and_ends():
    assert local_minima(np.array([3.0, 1.0, 2.0, 0.5, 4.0])).tolist() == [1, 3]
    assert local_minima(np.array([0.0, 1.0, 2.0])).tolist() == []  # the ends never count
    # A held pose: a flat bottom counts once, at its middle.
    assert local_minima(np.array([5.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0])).tolist() == [4]
    # A flat stretch that is not a bottom (a step) is not a minimum.
    assert local_minima(np.array([5.0, 2.0, 2.0, 2.0, 1.0, 3.0])).tolist() == [4]


@pytest.mark.parametrize("fps", [30, 60])
def test_kinetic_beats_are_the_stops_of_the_motion(fps):
    period = fps / 2  # a stop every half second
    joints = pulsing_joints(4 * fps, period, phase=0.25 * period)
    expected = np.arange(0.25 * period, 4 * fps - 1, period)  # every stop inside the clip
    beats = kinetic_beats(joints, fps)
    assert len(beats) == len(expected)
    error = np.abs(beats - expected)
    assert np.max(error[1:-1]) <= 0.5  # the nearest frame
    assert np.max(error) <= 2.0  # next to the ends the mirrored edge pulls the smoothed minimum a little


def test_beat_alignment_from_beats_closed_form():
    # fps 60: sigma = 3 frames. Distances to the nearest kinetic beat: 0, 3, 6 frames.
    score = beat_alignment_from_beats(np.array([10, 20]), np.array([10.0, 13.0, 26.0]), fps=60)
    assert score == pytest.approx(np.mean([1.0, np.exp(-0.5), np.exp(-2.0)]), abs=1e-12)
    # fps 30: sigma = 1.5 frames; a 1.5-frame miss is one sigma.
    assert beat_alignment_from_beats(np.array([10]), np.array([11.5]), fps=30) == pytest.approx(np.exp(-0.5))
    assert beat_alignment_from_beats(np.array([], dtype=int), np.array([5.0]), fps=30) == 0.0
    with pytest.raises(ValueError, match="no music beats"):
        beat_alignment_from_beats(np.array([3]), np.array([]), fps=30)


@pytest.mark.parametrize("fps", [30, 60])
def test_bas_tolerance_is_the_same_time_at_any_fps(fps):
    seconds, beat_period = 4.0, 0.5
    joints = pulsing_joints(int(seconds * fps), beat_period * fps)
    beats = np.arange(beat_period, seconds - 0.2, beat_period)  # the stops, in seconds
    assert beat_alignment_score(joints, beats, fps) == pytest.approx(1.0, abs=1e-9)
    # Every music beat 0.05 s (= sigma) late: exp(-1/2) whatever the frame rate.
    assert beat_alignment_score(joints, beats + 0.05, fps) == pytest.approx(np.exp(-0.5), abs=1e-6)
    # Half a period off, the worst alignment: far lower.
    assert beat_alignment_score(joints, beats + beat_period / 2, fps) < 0.01


def test_bas_ignores_beats_outside_the_clip_and_checks_inputs():
    fps = 30
    joints = pulsing_joints(60, 15.0)  # stops at frames 15, 30, 45
    inside = np.array([0.5, 1.0, 1.5])
    assert beat_alignment_score(joints, np.concatenate([[-1.0], inside, [9.0]]), fps) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="inside the clip"):
        beat_alignment_score(joints, np.array([5.0, 6.0]), fps)
    with pytest.raises(ValueError, match="joints must be"):
        beat_alignment_score(joints[:, :, 0], inside, fps)
    with pytest.raises(ValueError, match="image coordinates"):
        keypoint_beat_alignment(np.concatenate([joints, joints[..., :1]], axis=-1), inside, fps)
    assert keypoint_beat_alignment(joints, inside, fps) == pytest.approx(1.0)


def test_bas_3d_joints_match_2d_when_depth_is_still():
    joints2d = pulsing_joints(90, 15.0, phase=4.0)
    joints3d = np.concatenate([joints2d, np.full(joints2d.shape[:2] + (1,), 7.0)], axis=-1)
    beats = np.array([0.3, 0.9, 1.4, 2.2])
    assert beat_alignment_score(joints3d, beats, 30) == pytest.approx(beat_alignment_score(joints2d, beats, 30))


# ---------------------------------------------------------------- motion energy and 2D-MM align


def test_motion_energy_from_flows_frame_to_frame_and_from_reference():
    t, h, w = 6, 4, 5
    step = np.zeros((t, 2, h, w))
    step[:, 0], step[:, 1] = 3.0, 4.0
    assert np.allclose(motion_energy_from_flows(step), 5.0)
    # Flows from a fixed reference grow by (3, 4) per frame: 5 per frame of motion, as displacements or as
    # sampling grids (the identity grid cancels).
    cumulative = np.cumsum(step, axis=0)
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, w), np.linspace(-1, 1, h)))[None]  # (1, 2, h, w)
    assert np.allclose(motion_energy_from_flows(cumulative, kind="from_reference"), 5.0)
    assert np.allclose(motion_energy_from_flows(cumulative + grid, kind="from_reference"), 5.0)
    with pytest.raises(ValueError, match="kind"):
        motion_energy_from_flows(step, kind="backward")
    with pytest.raises(ValueError, match=r"\(T, 2, h, w\)"):
        motion_energy_from_flows(step.transpose(0, 2, 3, 1))


def test_motion_energy_from_frames_tracks_speed():
    fps, period = 30, 15.0
    positions = swinging_positions(75, period, phase=3.0)
    frames = blob_video(positions)
    energy = motion_energy_from_frames(frames)
    speed = np.abs(np.gradient(positions))
    assert energy.shape == (75,)
    assert np.corrcoef(energy, speed)[0, 1] > 0.9
    # The kinetic beats of the video sit at the stops, like those of the positions themselves.
    music = (3.0 + period * np.arange(1, 5)) / fps
    aligned = video_beat_alignment(frames, music, fps)
    off_beat = video_beat_alignment(frames, music + period / 2 / fps, fps)
    assert aligned > 0.8
    assert off_beat < 0.2
    # An energy track gives the same score as the frames it came from.
    assert video_beat_alignment(energy, music, fps) == pytest.approx(aligned)


# ---------------------------------------------------------------- AV-Align


def test_av_align_from_peaks_counts_hits_as_iou():
    audio = np.array([10.2, 20.5, 30.0])
    video = np.array([10, 21, 40, 50])
    assert av_align_from_peaks(audio, video) == pytest.approx(2 / (3 + 4 - 2))
    assert av_align_from_peaks(audio, audio) == 1.0
    assert av_align_from_peaks(audio, np.array([])) == 0.0
    assert av_align_from_peaks(np.array([]), np.array([])) == 0.0
    assert av_align_from_peaks(np.array([5.0]), np.array([6.0])) == 0.0  # exactly one frame away: a miss
    assert av_align_from_peaks(np.array([5.0]), np.array([7.0]), tol=2.5) == 1.0


def click_track(times: np.ndarray, seconds: float, sr: int) -> np.ndarray:
    audio = np.zeros(int(seconds * sr), dtype=np.float32)
    burst = (np.random.default_rng(1).standard_normal(600) * np.exp(-np.arange(600) / 120)).astype(np.float32)
    for t in times:
        start = int(t * sr)
        if 0 <= start < len(audio):
            audio[start : start + 600] += burst[: len(audio) - start]
    return audio


def test_audio_peaks_are_onsets_in_video_frames():
    sr, fps = 16000, 30  # not 22050: resampled like the reference
    times = np.array([0.5, 1.0, 1.5, 2.25, 2.75])
    peaks = audio_peaks(click_track(times, 3.5, sr), sr, fps)
    assert len(peaks) == len(times)
    assert np.max(np.abs(peaks - times * fps)) < 1.5  # within 50 ms


def test_av_align_rewards_motion_peaks_on_onsets():
    fps, sr, seconds, period = 30, 22050, 3.0, 15.0
    # Motion speed peaks half a period after each stop: at frames 7.5 + 15 k (stops at 15 k).
    frames = blob_video(swinging_positions(int(seconds * fps), period))
    peaks = video_peaks(frames)
    assert len(peaks) >= 4
    on_peaks = click_track(peaks / fps, seconds, sr)
    off_peaks = click_track(peaks / fps + 0.25, seconds, sr)
    aligned, shifted = av_align(frames, on_peaks, sr, fps), av_align(frames, off_peaks, sr, fps)
    assert aligned > 0.6
    assert shifted < 0.2


# ---------------------------------------------------------------- SSIM and PSNR


def reference_ssim_channel(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """Direct definition: weighted moments of every fully-inside 11x11 window, one channel (H, W) floats."""
    w = np.outer(gaussian_window(), gaussian_window())
    px = np.lib.stride_tricks.sliding_window_view(x, (11, 11))  # (H-10, W-10, 11, 11)
    py = np.lib.stride_tricks.sliding_window_view(y, (11, 11))
    mx, my = (px * w).sum(axis=(2, 3)), (py * w).sum(axis=(2, 3))
    vx = (w * (px - mx[..., None, None]) ** 2).sum(axis=(2, 3))
    vy = (w * (py - my[..., None, None]) ** 2).sum(axis=(2, 3))
    cxy = (w * (px - mx[..., None, None]) * (py - my[..., None, None])).sum(axis=(2, 3))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def test_ssim_of_identical_images_is_one_for_every_input_kind():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(2, 3, 24, 20, 3), dtype=np.uint8)
    out = ssim(u8, u8)
    assert isinstance(out, np.ndarray) and out.shape == (2, 3)
    assert np.allclose(out, 1.0)
    f = torch.rand(4, 3, 16, 16)
    assert torch.allclose(ssim(f, f), torch.ones(4, dtype=torch.float64))
    assert float(ssim(u8[0, 0], u8[0, 0])) == pytest.approx(1.0)


def test_ssim_constant_images_is_the_luminance_term():
    a, b = 0.3, 0.7
    x, y = np.full((16, 16, 3), a), np.full((16, 16, 3), b)
    c1 = 0.01**2
    assert float(ssim(x, y)) == pytest.approx((2 * a * b + c1) / (a**2 + b**2 + c1), rel=1e-12)


def test_ssim_constant_shift_is_the_local_luminance_term():
    # y = x + c leaves variances and covariance unchanged, so each window scores
    # (2 mu (mu + c) + C1) / (mu^2 + (mu + c)^2 + C1) with mu the window's Gaussian mean.
    rng = np.random.default_rng(3)
    x = rng.uniform(0.2, 0.6, size=(30, 26))
    c = 0.15
    w = np.outer(gaussian_window(), gaussian_window())
    mu = (np.lib.stride_tricks.sliding_window_view(x, (11, 11)) * w).sum(axis=(2, 3))
    c1 = 0.01**2
    expected = np.mean((2 * mu * (mu + c) + c1) / (mu**2 + (mu + c) ** 2 + c1))
    assert float(ssim(x[..., None], x[..., None] + c)) == pytest.approx(expected, rel=1e-10)


def test_ssim_matches_the_direct_definition_and_its_symmetries():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, size=(20, 23, 3), dtype=np.uint8)
    y = np.clip(x.astype(int) + rng.integers(-40, 41, size=x.shape), 0, 255).astype(np.uint8)
    per_channel = [reference_ssim_channel(x[..., k] / 1.0, y[..., k] / 1.0, 255.0) for k in range(3)]
    value = float(ssim(x, y))
    assert value == pytest.approx(np.mean(per_channel), rel=1e-10)
    assert 0.0 < value < 1.0
    assert float(ssim(y, x)) == pytest.approx(value, rel=1e-12)  # symmetric
    assert float(ssim(x / 255.0, y / 255.0)) == pytest.approx(value, rel=1e-10)  # uint8 == float in [0, 1]
    chw = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
    chw_y = torch.from_numpy(np.ascontiguousarray(y.transpose(2, 0, 1)))
    assert float(ssim(chw, chw_y)) == pytest.approx(value, rel=1e-10)  # torch default layout is (C, H, W)
    assert float(ssim(x, y, channel_axis=-1)) == pytest.approx(value)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(x[:8], y[:8])


def test_psnr_known_values():
    x = np.zeros((2, 8, 8, 3))
    y = x + 0.1  # MSE 0.01, range 1 -> 20 dB
    assert np.allclose(psnr(x, y), 20.0)
    u = np.full((8, 8, 3), 100, dtype=np.uint8)
    v = u + np.uint8(16)  # MSE 256, range 255
    assert float(psnr(u, v)) == pytest.approx(10 * np.log10(255.0**2 / 256.0))
    assert float(psnr(u, u)) == np.inf
    assert torch.allclose(psnr(torch.zeros(3, 4, 4), torch.full((3, 4, 4), 0.1)), torch.tensor(20.0).double())


# ---------------------------------------------------------------- Fréchet distance


def test_frechet_distance_of_known_gaussians():
    # 1-D: (mu1 - mu2)^2 + (s1 - s2)^2.
    a = GaussianFit(np.array([1.0]), np.array([[4.0]]))
    b = GaussianFit(np.array([-2.0]), np.array([[9.0]]))
    assert frechet_distance(a, b) == pytest.approx(9.0 + 1.0)
    # Diagonal covariances: the per-axis sum.
    a = GaussianFit(np.zeros(3), np.diag([1.0, 4.0, 9.0]))
    b = GaussianFit(np.ones(3), np.diag([4.0, 4.0, 1.0]))
    assert frechet_distance(a, b) == pytest.approx(3.0 + 1.0 + 0.0 + 4.0)
    # Non-commuting covariances: tr(S1 + S2 - 2 sqrtm(S1 S2)) with scipy's sqrtm.
    s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    s2 = np.array([[1.0, -0.3], [-0.3, 3.0]])
    expected = 1.0 + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    value = frechet_distance(GaussianFit(np.zeros(2), s1), GaussianFit(np.array([1.0, 0.0]), s2))
    assert value == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(GaussianFit(np.zeros(2), s1), GaussianFit(np.zeros(2), s1)) == pytest.approx(0, abs=1e-9)


def test_frechet_sample_space_shortcut_matches_the_covariance_route():
    rng = np.random.default_rng(5)
    a = gaussian_fit(rng.normal(size=(6, 40)))
    b = gaussian_fit(rng.normal(size=(9, 40)) * 1.5 + 0.2)
    assert a.root is not None and np.allclose(a.root.T @ a.root, a.cov)
    without_roots = frechet_distance(GaussianFit(a.mean, a.cov), GaussianFit(b.mean, b.cov))
    assert frechet_distance(a, b) == pytest.approx(without_roots, rel=1e-7)  # the route via eigh is the less exact
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-10)


def test_gaussian_fit_recovers_the_distribution():
    rng = np.random.default_rng(0)
    fit = gaussian_fit(rng.normal(loc=[1.0, -1.0], scale=[1.0, 2.0], size=(20000, 2)))
    assert np.allclose(fit.mean, [1.0, -1.0], atol=0.05)
    assert np.allclose(fit.cov, np.diag([1.0, 4.0]), atol=0.1)
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_fit(np.zeros((1, 4)))


# ---------------------------------------------------------------- FVD (I3D) with random weights


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory):
    """An I3D with random weights and non-trivial BatchNorm statistics, saved like the public state dict."""
    torch.manual_seed(0)
    model = I3D()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif name.endswith("running_mean") or name.endswith("bn.bias"):
                tensor.normal_(0.0, 0.1)
    path = tmp_path_factory.mktemp("weights") / "i3d_pretrained_400.pt"
    torch.save(model.state_dict(), path)
    return path, model.eval()


def smooth_videos(n: int, seed: int) -> np.ndarray:
    """(n, 8, 40, 40, 3) uint8 slowly drifting colour gradients."""
    rng = np.random.default_rng(seed)
    t, y, x = np.meshgrid(np.arange(8), np.arange(40), np.arange(40), indexing="ij")
    out = []
    for _ in range(n):
        f, ph = rng.uniform(0.05, 0.2, size=3), rng.uniform(0, 6, size=3)
        channels = [np.sin(f[k] * (x + 2 * t) + ph[k]) * np.cos(f[(k + 1) % 3] * y) for k in range(3)]
        out.append(np.stack(channels, axis=-1))
    return ((np.stack(out) * 0.5 + 0.5) * 255).astype(np.uint8)


def test_fvd_with_weights_loaded_from_file(i3d_file):
    path, original = i3d_file
    real, same_kind = smooth_videos(4, seed=1), smooth_videos(4, seed=2)
    noise = np.random.default_rng(3).integers(0, 256, size=real.shape, dtype=np.uint8)
    # The whole path (file -> network -> features -> Fréchet distance): a set against itself is 0.
    far = fvd(real, noise, path, resolution=64)
    assert abs(fvd(real, real, path, resolution=64)) < 1e-6 * far
    # The file round-trips: the loaded network computes what the saved one did.
    model = load_i3d(path)
    feats = i3d_features(model, real, resolution=64)
    assert feats.shape == (4, 1024)
    assert np.allclose(feats, i3d_features(original, real, resolution=64), atol=1e-6)
    # Videos of the same kind are nearer than noise, and not at distance 0.
    near = frechet_distance(gaussian_fit(feats), gaussian_fit(i3d_features(model, same_kind, resolution=64)))
    assert 0 < near < far


def test_i3d_loads_old_and_wrapped_state_dicts(i3d_file, tmp_path):
    path, original = i3d_file
    state = torch.load(path, weights_only=True)
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # pre-1.0 BatchNorm
    torch.save(old, tmp_path / "old.pt")
    wrapped = {f"module.{k}": v for k, v in state.items()}  # saved from DataParallel
    torch.save(wrapped, tmp_path / "wrapped.pt")
    video = smooth_videos(1, seed=5)
    expected = i3d_features(original, video, resolution=32)
    for name in ("old.pt", "wrapped.pt"):
        assert np.allclose(i3d_features(load_i3d(tmp_path / name), video, resolution=32), expected, atol=1e-6)


def test_fvd_missing_weights_says_what_where_and_how(tmp_path):
    videos = smooth_videos(2, seed=0)
    with pytest.raises(MissingWeightsError) as err:
        fvd(videos, videos, None)
    message = str(err.value)
    assert "no path was given" in message
    assert "i3d_pretrained_400.pt" in message and "i3d_path" in message and "pytorch-i3d" in message
    with pytest.raises(MissingWeightsError, match=r"does not exist.*--i3d-weights"):
        load_i3d(tmp_path / "nope.pt", option="--i3d-weights")


def test_fvd_wrong_weights_file_is_a_clear_error(tmp_path):
    wrong = tmp_path / "wrong.pt"
    torch.save({"encoder.weight": torch.randn(3, 3)}, wrong)
    with pytest.raises(
        WeightsFormatError, match=r"missing keys \(\d+\): Conv3d_1a_7x7\.conv3d\.weight.*unexpected keys \(1\): enc"
    ):
        load_i3d(wrong)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsFormatError, match=r"could not read .*Set the i3d_path argument to the file i3d_pre"):
        load_i3d(garbage)
    reshaped = {k: v for k, v in I3D(num_classes=600).state_dict().items()}  # Kinetics-600 head
    torch.save(reshaped, tmp_path / "k600.pt")
    with pytest.raises(WeightsFormatError, match=r"wrong shapes \(2\): logits\.conv3d\.weight"):
        load_i3d(tmp_path / "k600.pt")


# ---------------------------------------------------------------- LPIPS with random weights


def save_lpips_files(directory, net: str, seed: int = 0):
    """A torchvision-style backbone file (with a classifier to ignore) and an LPIPS linear-layer file."""
    torch.manual_seed(seed)
    model = LPIPS(net)
    backbone = {f"features.{k}": v for k, v in model.features.state_dict().items()}
    backbone["classifier.1.weight"] = torch.randn(10, 4)
    linear = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(BACKBONES[net].channels)}
    torch.save(backbone, directory / f"{net}_backbone.pth")
    torch.save(linear, directory / f"{net}.pth")
    return directory / f"{net}_backbone.pth", directory / f"{net}.pth"


def test_lpips_is_zero_on_identical_images_and_grows_with_noise(tmp_path):
    backbone, linear = save_lpips_files(tmp_path, "alex")
    model = load_lpips(backbone, linear, "alex")
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, size=(3, 64, 64, 3))
    noise = rng.standard_normal(x.shape)
    assert np.allclose(lpips_distance(model, x, x), 0.0, atol=1e-7)
    d = [lpips_distance(model, x, np.clip(x + s * noise, 0, 1)) for s in (0.02, 0.1, 0.3)]
    assert d[0].shape == (3,)
    assert np.all(0 < d[0]) and np.all(d[0] < d[1]) and np.all(d[1] < d[2])
    y = np.clip(x + 0.1 * noise, 0, 1)
    assert np.allclose(lpips_distance(model, x, y), lpips_distance(model, y, x))  # symmetric
    u8 = (x * 255).round().astype(np.uint8)
    assert np.allclose(lpips_distance(model, u8, u8 / 255.0), 0.0, atol=1e-6)  # uint8 == float in [0, 1]


def test_lpips_vgg_layout_loads(tmp_path):
    backbone, linear = save_lpips_files(tmp_path, "vgg")
    model = load_lpips(backbone, linear, "vgg")
    x = np.random.default_rng(0).uniform(size=(1, 32, 32, 3))
    assert lpips_distance(model, x, 1 - x)[0] > 0


def test_lpips_missing_and_wrong_files_are_clear_errors(tmp_path):
    backbone, linear = save_lpips_files(tmp_path, "alex")
    with pytest.raises(MissingWeightsError, match=r"alexnet-owt-7be5be79\.pth.*download\.pytorch\.org"):
        load_lpips(None, linear)
    with pytest.raises(MissingWeightsError, match=r"does not exist.*--lpips-linear.*alex\.pth.*PerceptualSimilarity"):
        load_lpips(backbone, tmp_path / "missing.pth", linear_option="--lpips-linear")
    wrong = tmp_path / "wrong.pth"
    torch.save({"lin0.weight": torch.rand(1, 64, 1, 1)}, wrong)
    with pytest.raises(WeightsFormatError, match=r"alex\.pth layout.*missing keys \(5\): lin0\.model\.1\.weight"):
        load_lpips(backbone, wrong)
    with pytest.raises(WeightsFormatError, match=r"alexnet-owt-7be5be79\.pth layout.*missing keys \(10\): 0\.weight"):
        load_lpips(wrong, linear)
    vgg_backbone, _ = save_lpips_files(tmp_path, "vgg")
    with pytest.raises(WeightsFormatError, match="wrong shapes"):
        load_lpips(vgg_backbone, linear, "alex")  # a VGG file given for AlexNet
