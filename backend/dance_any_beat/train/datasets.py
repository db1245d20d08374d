"""Training samples for both stages, from the procedural data set or from AIST++.

Stage 1 (LFAE) sees pairs of frames of one video; stage 2 (diffusion) sees windows of T frames at the model's
fps together with the music under them. Both read clips through one small interface (`ClipSource`), so a new
data set is one class.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from dance_any_beat.data.procedural import read_frames
from dance_any_beat.styles import STYLE_NAMES


@dataclass
class Window:
    frames: np.ndarray  # (T, S, S, 3) uint8 RGB at the requested times
    audio: np.ndarray  # (N,) float32 mono, exactly the window's span
    sr: int
    beat_times: np.ndarray  # seconds, relative to the window start
    downbeat_times: np.ndarray
    style: str | None  # None when unknown
    joints: np.ndarray | None = None  # (T, J, 2) skeleton joints in pixels of the S x S frames, x first; None: unknown


class ClipSource:
    """A list of videos with music; subclasses say how to read a time window of one."""

    def __len__(self) -> int:
        raise NotImplementedError

    def seconds(self, index: int) -> float:
        raise NotImplementedError

    def window(self, index: int, start: float, times: np.ndarray, audio_seconds: float, size: int) -> Window:
        """Frames at `start + times` and the audio from `start` for `audio_seconds`."""
        raise NotImplementedError


class ProceduralSource(ClipSource):
    """Clips of a procedural split folder.

    A split whose decoded frames fit in `cache_bytes` is decoded once per process and kept. A larger one is
    read window by window, only the frames and the stretch of audio asked for: the frames are FFV1, every
    frame a key frame, so seeking is exact, and two frames cost a third of decoding a whole clip (random pairs
    across thousands of clips would rarely hit a cache). Each clip.json is parsed once per process.
    """

    def __init__(self, split_dir: str | Path, cache_bytes: int = 2**30, cache_clips: int = 4096):
        from dance_any_beat.data.procedural import list_clips

        self.clips = list_clips(Path(split_dir))
        if not self.clips:
            raise FileNotFoundError(
                f"no finished procedural clips in {split_dir}; make them with "
                f"`dance-any-beat make-dataset --out DIR --split train` and point the config at DIR/train"
            )
        self.cache_bytes = cache_bytes
        self._info: OrderedDict[int, dict] = OrderedDict()
        self._cache_size = cache_clips
        self._decoded: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # index -> all frames, all audio

    def __len__(self) -> int:
        return len(self.clips)

    def info(self, index: int) -> dict:
        """fps, num_frames, sr, style, beat_times, downbeat_times of clip `index` (from its clip.json)."""
        if index in self._info:
            self._info.move_to_end(index)
            return self._info[index]
        import json

        meta = json.loads((self.clips[index] / "clip.json").read_text())
        info = {key: meta[key] for key in ("fps", "num_frames", "sr", "style", "size")}
        for key in ("beat_times", "downbeat_times"):
            info[key] = np.asarray(meta[key], dtype=np.float64)
        info["joints"] = np.asarray(meta["joints"], dtype=np.float32) if "joints" in meta else None  # (N, J, 2)
        self._info[index] = info
        if len(self._info) > self._cache_size:
            self._info.popitem(last=False)
        return info

    def seconds(self, index: int) -> float:
        info = self.info(index)
        return info["num_frames"] / info["fps"]

    def window(self, index: int, start: float, times: np.ndarray, audio_seconds: float, size: int) -> Window:
        import cv2
        import soundfile as sf

        info = self.info(index)
        rows = np.clip(np.round((start + np.asarray(times)) * info["fps"]).astype(int), 0, info["num_frames"] - 1)
        first = int(round(start * info["sr"]))
        audio = np.zeros(int(round(audio_seconds * info["sr"])), np.float32)
        decoded = self._decode(index)
        if decoded is not None:
            frames = decoded[0][rows]
            piece = decoded[1][first : first + len(audio)]
            audio[: len(piece)] = piece
        else:
            frames = read_frames(self.clips[index], rows)
            if len(audio):
                with sf.SoundFile(self.clips[index] / "audio.wav") as f:
                    if first < f.frames:
                        f.seek(first)
                        audio_piece = f.read(len(audio), dtype="float32", always_2d=True).mean(axis=1)
                        audio[: len(audio_piece)] = audio_piece
        joints = None if info["joints"] is None else info["joints"][rows] * (size / frames.shape[1])  # (T, J, 2)
        if frames.shape[1] != size:
            frames = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
        return Window(
            frames=frames, audio=audio, sr=info["sr"], beat_times=info["beat_times"] - start,
            downbeat_times=info["downbeat_times"] - start, style=info["style"], joints=joints,
        )


    def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """All frames and audio of clip `index`, if the whole split fits in `cache_bytes` (else None)."""
        if index in self._decoded:
            return self._decoded[index]
        info = self.info(index)
        height, width = info["size"]
        if len(self) * info["num_frames"] * height * width * 3 > self.cache_bytes:
            return None
        import soundfile as sf

        frames = read_frames(self.clips[index], np.arange(info["num_frames"]))
        audio = sf.read(self.clips[index] / "audio.wav", dtype="float32", always_2d=True)[0].mean(axis=1)
        self._decoded[index] = (frames, audio)
        return frames, audio


class AistSource(ClipSource):
    """AIST++ videos (split by music); beats come from this project's tracker on the window's music."""

    def __init__(self, root: str | Path, split: str = "train", cameras: tuple[str, ...] | None = ("01",)):
        from dance_any_beat.data.aist import list_videos

        self.videos = list_videos(root, split, cameras=cameras)  # type: ignore[arg-type]
        self.max_decode_seconds = 4.0  # times spread wider than this are read by seeking, one frame each
        if not self.videos:
            raise FileNotFoundError(f"no AIST++ videos of split {split!r} (cameras {cameras}) under {root}/videos")
        self._seconds: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.videos)

    def seconds(self, index: int) -> float:
        import cv2

        if index not in self._seconds:
            capture = cv2.VideoCapture(str(self.videos[index].video))
            frames = capture.get(cv2.CAP_PROP_FRAME_COUNT)
            fps = capture.get(cv2.CAP_PROP_FPS) or 60.0
            capture.release()
            self._seconds[index] = float(frames / fps)
        return self._seconds[index]

    def window(self, index: int, start: float, times: np.ndarray, audio_seconds: float, size: int) -> Window:
        from dance_any_beat.data.aist import read_video
        from dance_any_beat.music.audio import load_audio
        from dance_any_beat.music.beats import track_beats

        video = self.videos[index]
        times = np.asarray(times, dtype=np.float64)
        first, last = float(times.min()), float(times.max())
        if last - first <= self.max_decode_seconds:
            # one read from the earliest to the latest time (times need not be sorted: frame pairs are random)
            frames, fps = read_video(video.video, size=size, start_seconds=start + first, seconds=last - first + 0.1)
            rows = np.clip(np.round((times - first) * fps).astype(int), 0, len(frames) - 1)
            picked = frames[rows]
        else:
            # far-apart times (frame pairs of a minutes-long video): seek to each rather than decode the span
            picked = np.stack([read_video(video.video, size=size, start_seconds=start + t, max_frames=1)[0][0]
                               for t in times])
        sr = 22050
        samples = np.zeros(int(round(audio_seconds * sr)), np.float32)
        beats = downbeats = np.zeros(0)
        if len(samples):  # frame pairs need no music
            audio = load_audio(video.music, sr=sr, start=start, seconds=audio_seconds, min_seconds=0.1)
            samples[: len(audio.samples)] = audio.samples[: len(samples)]
            track = track_beats(samples, sr)
            beats, downbeats = track.beats, track.downbeats
        return Window(frames=picked, audio=samples, sr=sr, beat_times=beats, downbeat_times=downbeats,
                      style=video.name.style)


def open_source(kind: str, path: str | Path, split: str) -> ClipSource:
    """`kind` "procedural": `path` is the data set folder (its `split` subfolder is read); "aist": the AIST++ root."""
    if kind == "procedural":
        return ProceduralSource(Path(path) / split)
    if kind == "aist":
        return AistSource(path, "train" if split == "train" else "test")
    raise ValueError(f"unknown data kind {kind!r}; choose procedural or aist")


def to_tensor_images(frames: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)
    return x.movedim(-1, -3)


class FramePairs(Dataset):
    """Stage 1: (reference, driving) frames of one clip, `pairs_per_clip` random pairs per clip per epoch.

    Items: "ref" and "drive" (3, S, S) float in [0, 1], and where the source knows the skeleton "ref_joints" and
    "drive_joints" (J, 2) in pixels of those frames. An item depends only on (seed, epoch, item), so every
    worker process and every rank draws the same pair for it, and a resumed run sees what it would have seen.
    """

    def __init__(self, source: ClipSource, size: int, pairs_per_clip: int = 8, seed: int = 0):
        self.source, self.size, self.pairs_per_clip, self.seed = source, size, pairs_per_clip, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.source) * self.pairs_per_clip

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, item))
        index = item // self.pairs_per_clip
        seconds = self.source.seconds(index)
        times = rng.uniform(0.0, max(seconds - 0.1, 0.0), size=2)  # 0.1 s off the end: the last frame may not decode
        window = self.source.window(index, 0.0, times, audio_seconds=0.0, size=self.size)
        images = to_tensor_images(window.frames)  # (2, 3, S, S)
        item = {"ref": images[0], "drive": images[1]}
        if window.joints is not None:  # the skeleton, for the region prior
            joints = torch.from_numpy(np.ascontiguousarray(window.joints, dtype=np.float32))  # (2, J, 2)
            item.update(ref_joints=joints[0], drive_joints=joints[1])
        return item


class MotionWindows(Dataset):
    """Stage 2: a window of `num_frames` frames at `fps`, its first frame as reference, and its music.

    Items: "ref" (3, S, S) and "frames" (T, 3, S, S) float in [0, 1], "audio" (N,) float32 at the clip's rate
    "sr", covering exactly the T frames (frame k at start + k / fps), "rhythm" (T, RHYTHM_DIM) from the clip's
    beats, "style" the index in STYLE_NAMES (len(STYLE_NAMES) when unknown).
    """

    def __init__(self, source: ClipSource, *, size: int, fps: float, num_frames: int, windows_per_clip: int = 4,
                 seed: int = 0):
        self.source, self.size, self.fps, self.num_frames = source, size, fps, num_frames
        self.windows_per_clip, self.seed = windows_per_clip, seed
        self.epoch = 0

    @property
    def window_seconds(self) -> float:
        return self.num_frames / self.fps

    def __len__(self) -> int:
        return len(self.source) * self.windows_per_clip

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        from dance_any_beat.music.beats import onset_envelope, rhythm_features

        rng = np.random.default_rng((self.seed, self.epoch, item))
        index = item // self.windows_per_clip
        slack = max(0.0, self.source.seconds(index) - self.window_seconds)
        start = float(rng.uniform(0.0, slack))
        times = np.arange(self.num_frames) / self.fps
        window = self.source.window(index, start, times, audio_seconds=self.window_seconds, size=self.size)
        env, rate = onset_envelope(window.audio, window.sr)
        rhythm = rhythm_features(window.beat_times, fps=self.fps, n_frames=self.num_frames,
                                 downbeat_times=window.downbeat_times, onset_envelope=env, onset_rate=rate)
        frames = to_tensor_images(window.frames)  # (T, 3, S, S)
        style = STYLE_NAMES.index(window.style) if window.style in STYLE_NAMES else len(STYLE_NAMES)
        return {
            "ref": frames[0],
            "frames": frames,
            "audio": torch.from_numpy(window.audio),
            "rhythm": torch.from_numpy(rhythm),
            "style": torch.tensor(style, dtype=torch.long),
            "sr": torch.tensor(window.sr, dtype=torch.long),
        }


class EpochSampler(Sampler[int]):
    """`DistributedSampler` (this rank's shard of a seeded per-epoch shuffle) that can start part-way into an epoch.

    `set_epoch(epoch, skip)` also sets the data set's `epoch` (its random pairs/windows change per epoch) and
    drops the first `skip` indices, so a run resumed mid-epoch sees the samples it would have seen. Works with
    one process too (world_size 1).
    """

    def __init__(self, dataset: FramePairs | MotionWindows, *, rank: int = 0, world_size: int = 1, seed: int = 0):
        if len(dataset) < world_size:
            raise ValueError(f"the data set has {len(dataset)} samples, fewer than the {world_size} processes")
        self.dataset = dataset
        self.inner = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                        drop_last=True)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.dataset.epoch = epoch
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.inner), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.inner) - self.skip, 0)


def worker_init(worker_id: int) -> None:
    """DataLoader workers: one OpenCV / torch thread each (the workers already run side by side)."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
