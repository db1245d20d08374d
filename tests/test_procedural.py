"""The procedural dance data set: exact, deterministic ground truth and motion locked to the music's beats."""

import json
import os

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from dance_any_beat.data.moves import STYLE_MOVES, choreograph, ease
from dance_any_beat.data.procedural import (
    SPLIT_SEED_BASE,
    SPLIT_SIZE,
    Clip,
    list_clips,
    make_clip,
    make_dataset,
    read_clip,
    write_clip,
)
from dance_any_beat.data.skeleton import (
    BONES,
    JOINT_NAMES,
    NUM_PARAMS,
    forward_kinematics,
    mirror_pose,
    random_proportions,
)
from dance_any_beat.styles import STYLE_NAMES, get_style

REQUIRED_JOINTS = {
    "head", "neck", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
    "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
}


def _kinetic_beats(joints: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Frames where the smoothed mean joint speed has a strict local minimum (the BAS definition)."""
    speed = np.zeros(len(joints))
    speed[1:-1] = np.linalg.norm(joints[2:] - joints[:-2], axis=-1).mean(axis=-1) / 2  # central differences
    speed[0], speed[-1] = speed[1], speed[-2]
    s = gaussian_filter1d(speed, sigma)
    return np.flatnonzero((s[1:-1] < s[:-2]) & (s[1:-1] < s[2:])) + 1


def _hit_rate(beat_frames: np.ndarray, kinetic: np.ndarray, n_frames: int, tol: float = 1.5) -> tuple[int, int]:
    """(hits, beats): beats away from the clip ends with a kinetic beat within `tol` frames."""
    beats = beat_frames[(beat_frames > 2) & (beat_frames < n_frames - 3)]
    hits = sum(bool(len(kinetic)) and np.min(np.abs(kinetic - b)) <= tol for b in beats)
    return hits, len(beats)


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    """Two 4 s clips per style (20 in all), shared by the tests that only read them."""
    return [make_clip(seed) for seed in range(20)]


def test_same_seed_same_bytes_other_seed_differs():
    a, b = make_clip(123, seconds=1.0), make_clip(123, seconds=1.0)
    assert a.frames.tobytes() == b.frames.tobytes()
    assert a.audio.tobytes() == b.audio.tobytes()
    assert np.array_equal(a.joints, b.joints) and np.array_equal(a.beat_times, b.beat_times)
    assert a.bpm == b.bpm and a.style == b.style and a.moves == b.moves
    c = make_clip(124, seconds=1.0)
    assert not np.array_equal(a.frames, c.frames)


def test_clip_shapes_and_fields(clips):
    for clip in clips[:3]:
        assert clip.frames.shape == (120, 128, 128, 3) and clip.frames.dtype == np.uint8
        assert clip.audio.dtype == np.float32 and clip.audio.shape == (4 * 22050,)
        assert clip.joints.shape == (120, len(JOINT_NAMES), 2) and clip.joints.dtype == np.float32
        assert clip.visibility.shape == (120, len(JOINT_NAMES)) and clip.visibility.dtype == bool
        assert clip.fps == 30 and clip.sr == 22050 and clip.size == 128 and clip.seconds == pytest.approx(4.0)
        lo, hi = get_style(clip.style).bpm
        assert lo <= clip.bpm <= hi
        np.testing.assert_allclose(np.diff(clip.beat_times), 60.0 / clip.bpm, rtol=1e-9)
        assert set(clip.downbeat_times) <= set(clip.beat_times) and clip.downbeat_times[0] == clip.beat_times[0]


def test_joint_names_and_skeleton():
    assert len(JOINT_NAMES) >= 12 and REQUIRED_JOINTS <= set(JOINT_NAMES)
    assert len(set(JOINT_NAMES)) == len(JOINT_NAMES)
    assert all(a in JOINT_NAMES and b in JOINT_NAMES for a, b in BONES)
    # forward kinematics keeps the arm and spine bones rigid whatever the pose
    rng = np.random.default_rng(0)
    props = random_proportions(rng)
    poses = rng.normal(0.0, 0.4, size=(50, NUM_PARAMS))
    joints = forward_kinematics(poses, props)
    j = {n: joints[:, i] for i, n in enumerate(JOINT_NAMES)}
    np.testing.assert_allclose(np.linalg.norm(j["l_elbow"] - j["l_shoulder"], axis=1), props.upper_arm)
    np.testing.assert_allclose(np.linalg.norm(j["r_wrist"] - j["r_elbow"], axis=1), props.forearm)
    np.testing.assert_allclose(np.linalg.norm(j["chest"] - j["pelvis"], axis=1), props.lower_spine)
    # mirroring twice is the identity, and a mirrored pose mirrors the joints about the centre line
    assert np.allclose(mirror_pose(mirror_pose(poses)), poses)
    mirrored = forward_kinematics(mirror_pose(poses), props)
    swap = [JOINT_NAMES.index("r_" + n[2:] if n[:2] == "l_" else "l_" + n[2:] if n[:2] == "r_" else n)
            for n in JOINT_NAMES]
    np.testing.assert_allclose(mirrored[:, swap, 0], -joints[:, :, 0], atol=1e-9)
    np.testing.assert_allclose(mirrored[:, swap, 1], joints[:, :, 1], atol=1e-9)


def test_joints_inside_frame_and_mostly_visible(clips):
    for clip in clips:
        assert clip.joints.min() >= 0.0 and clip.joints.max() <= clip.size - 1
        assert clip.visibility.mean() > 0.9
        # the stored joints sit on the drawn dancer: their pixels differ from the empty background
        # (the background is the median over time, where the dancer keeps moving)
        background = np.median(clip.frames[::6], axis=0).astype(np.int16)
        t = np.arange(clip.num_frames)[:, None]
        x, y = np.round(clip.joints[..., 0]).astype(int), np.round(clip.joints[..., 1]).astype(int)
        wrist = [JOINT_NAMES.index("l_wrist"), JOINT_NAMES.index("r_wrist")]
        diff = np.abs(clip.frames[t, y[:, wrist], x[:, wrist]].astype(np.int16) - background[y[:, wrist], x[:, wrist]])
        assert np.mean(diff.sum(axis=-1) > 20) > 0.6


def test_frames_keep_changing(clips):
    for clip in clips:
        change = np.abs(np.diff(clip.frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))  # (T - 1,)
        assert np.all(change > 0), "two identical consecutive frames: the dancer stopped"
        # never still for half a second: in every 15-frame window some joint travels a few pixels
        step = np.linalg.norm(np.diff(clip.joints, axis=0), axis=-1)  # (T - 1, J)
        path = np.cumsum(np.concatenate([np.zeros((1, step.shape[1])), step]), axis=0)
        travel = (path[15:] - path[:-15]).max(axis=1)
        assert travel.min() > 2.0, f"seed {clip.seed}: almost no motion for half a second"


def test_kinetic_beats_fall_on_music_beats(clips):
    hits = total = shifted_hits = shifted_total = extra = 0
    for clip in clips:
        kinetic = _kinetic_beats(clip.joints)
        frames = clip.beat_times * clip.fps
        h, n = _hit_rate(frames, kinetic, clip.num_frames)
        hits, total = hits + h, total + n
        # the same motion against beats moved by half a beat: it should mostly miss
        h, n = _hit_rate(frames + 0.5 * clip.fps * 60.0 / clip.bpm, kinetic, clip.num_frames)
        shifted_hits, shifted_total = shifted_hits + h, shifted_total + n
        extra += max(len(kinetic) - len(clip.beat_times) - 2, 0)
    assert hits / total >= 0.9, f"only {hits}/{total} music beats have a kinetic beat within 1.5 frames"
    assert shifted_hits / shifted_total <= 0.3
    assert extra <= 0.1 * total, f"{extra} kinetic minima between beats"


def test_choreography_keys_sit_on_beats_with_zero_speed():
    beats = 0.31 + 0.5 * np.arange(8)
    dance = choreograph("house", beats, 4.0, 120.0, np.random.default_rng(5))
    np.testing.assert_allclose(dance.key_times[np.isin(dance.key_times, beats)], beats)
    eps = 1e-4
    for b in beats:
        before, at, after = dance.sample(np.array([b - eps, b, b + eps]))
        np.testing.assert_allclose(dance.sample(np.array([b]))[0], dance.key_poses[list(dance.key_times).index(b)])
        assert np.abs(after - before).max() / (2 * eps) < 0.05  # pose speed ~0 on the beat
    mid = dance.sample(beats[:-1] + 0.25) - dance.sample(beats[:-1] + 0.25 - eps)
    assert np.abs(mid).max(axis=1).min() / eps > 0.05  # and clearly moving between beats
    for kind in ("smooth", "sharp", "snap"):
        u = np.linspace(0, 1, 101)
        w = ease(kind, u)
        assert w[0] == 0 and w[-1] == pytest.approx(1) and np.all(np.diff(w) >= 0)


def test_every_style_renders_with_its_own_moves():
    joints = {}
    for style in STYLE_NAMES:
        clip = make_clip(7, style=style, seconds=2.0)
        assert clip.style == style and clip.frames.shape == (60, 128, 128, 3)
        assert get_style(style).bpm[0] <= clip.bpm <= get_style(style).bpm[1]
        vocabulary = {p.name for p in STYLE_MOVES[style].arms}
        assert all(m.split("/")[0] in vocabulary for m in clip.moves)
        joints[style] = clip.joints
    for i, a in enumerate(STYLE_NAMES):
        for b in STYLE_NAMES[i + 1 :]:
            assert not np.allclose(joints[a], joints[b], atol=1.0), f"{a} and {b} dance the same"
    # vocabularies differ between styles
    arm_sets = [frozenset(p.name for p in STYLE_MOVES[s].arms) | frozenset(p.name for p in STYLE_MOVES[s].legs)
                for s in STYLE_NAMES]
    assert len(set(arm_sets)) == len(STYLE_NAMES)


def test_looks_vary_between_clips(clips):
    # mean colour of the first frame and dancer height vary from clip to clip
    means = np.array([c.frames[0].reshape(-1, 3).mean(axis=0) for c in clips])
    heights = np.array([np.ptp(c.joints[0, :, 1]) for c in clips])
    assert means.std(axis=0).min() > 5.0
    assert heights.std() > 2.0


def test_write_read_round_trip_is_exact(tmp_path, clips):
    clip = clips[3]
    write_clip(clip, tmp_path / "c", pngs=True)
    back = read_clip(tmp_path / "c")
    assert back.frames.tobytes() == clip.frames.tobytes()  # FFV1 is lossless
    assert back.audio.tobytes() == clip.audio.tobytes()
    assert np.array_equal(back.joints, clip.joints) and back.joints.dtype == np.float32
    assert np.array_equal(back.visibility, clip.visibility)
    assert np.array_equal(back.beat_times, clip.beat_times)
    assert np.array_equal(back.downbeat_times, clip.downbeat_times)
    assert (back.sr, back.fps, back.bpm, back.style, back.seed) == (clip.sr, clip.fps, clip.bpm, clip.style, clip.seed)
    assert back.joint_names == clip.joint_names and back.moves == clip.moves
    assert len(list((tmp_path / "c" / "frames").glob("*.png"))) == clip.num_frames
    meta = json.loads((tmp_path / "c" / "clip.json").read_text())
    assert meta["size"] == [128, 128] and len(meta["joints"]) == clip.num_frames
    with pytest.raises(FileNotFoundError, match="clip.json"):
        read_clip(tmp_path / "missing")


def test_make_dataset_resumes_and_refuses_to_overwrite(tmp_path):
    calls = []
    split_dir = make_dataset(tmp_path, 3, split="val", seconds=0.5, workers=1, progress=lambda *a: calls.append(a))
    assert split_dir == tmp_path / "val"
    clips = list_clips(split_dir)
    assert [p.name for p in clips] == [f"{SPLIT_SEED_BASE['val'] + i:07d}" for i in range(3)]
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)
    index = json.loads((split_dir / "index.json").read_text())
    assert index["complete"] and [c["seed"] for c in index["clips"]] == [1_000_000, 1_000_001, 1_000_002]
    assert [c["style"] for c in index["clips"]] == [STYLE_NAMES[s % 10] for s in range(1_000_000, 1_000_003)]

    # interrupt one clip (its clip.json never written), then resume with more clips and two worker processes
    (clips[1] / "clip.json").unlink()
    kept = os.stat(clips[0] / "clip.json").st_mtime_ns
    calls.clear()
    make_dataset(tmp_path, 5, split="val", seconds=0.5, workers=2, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (2, 5) and calls[-1] == (5, 5)
    assert os.stat(clips[0] / "clip.json").st_mtime_ns == kept  # finished clips are not redone
    assert len(list_clips(split_dir)) == 5
    redone = read_clip(clips[1])
    assert redone.frames.tobytes() == make_clip(1_000_001, seconds=0.5).frames.tobytes()

    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_dataset(tmp_path, 2, split="val", seconds=0.5, fps=24, workers=1)
    assert len(list_clips(split_dir)) == 5  # untouched
    make_dataset(tmp_path, 2, split="val", seconds=0.5, fps=24, workers=1, overwrite=True)
    assert len(list_clips(split_dir)) == 2 and read_clip(list_clips(split_dir)[0]).fps == 24

    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "notes.txt").write_text("not a data set")
    with pytest.raises(FileExistsError, match="overwrite"):
        make_dataset(tmp_path, 1, split="test", seconds=0.5, workers=1)


def test_splits_use_disjoint_seeds(tmp_path):
    ranges = sorted((base, base + SPLIT_SIZE) for base in SPLIT_SEED_BASE.values())
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(ranges, ranges[1:], strict=False))
    seeds = {}
    for split in ("train", "test"):
        d = make_dataset(tmp_path, 2, split=split, seconds=0.5, workers=1, styles=["pop", "krump"])
        seeds[split] = {read_clip(p).seed for p in list_clips(d)}
        assert {read_clip(p).style for p in list_clips(d)} == {"pop", "krump"}
    assert seeds["train"] == {0, 1} and seeds["test"] == {2_000_000, 2_000_001}


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown dance style 'salsa'.*break"):
        make_clip(0, style="salsa")
    with pytest.raises(ValueError, match="salsa"):
        make_dataset("/nonexistent/never/written", 1, styles=["salsa"])
    with pytest.raises(ValueError, match="split"):
        make_dataset("/nonexistent/never/written", 1, split="dev")
    with pytest.raises(ValueError, match="seconds"):
        make_clip(0, seconds=0)


def test_read_frames_returns_exactly_the_asked_rows(tmp_path):
    from dance_any_beat.data.procedural import read_frames

    clip = make_clip(3, seconds=2.0, fps=30, size=64)
    write_clip(clip, tmp_path / "c")
    rows = [59, 0, 7, 8, 30, 7]
    np.testing.assert_array_equal(read_frames(tmp_path / "c", rows), clip.frames[rows])
    with pytest.raises(ValueError, match="has no frame 60"):
        read_frames(tmp_path / "c", [60])
