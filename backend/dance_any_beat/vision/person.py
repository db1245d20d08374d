"""Finding the people in a still or a video frame: body landmarks, a segmentation mask, a box, and whether the
frame cuts them off.

One small module so that a better detector can replace mediapipe later without touching its callers. The
detector is mediapipe 0.10.14's legacy Pose with model_complexity=1, the only pose model its wheel bundles (0 and
2 are downloaded on first use, which fails offline). The recipe comes from a study on this project's images:
- RGB uint8 input (BGR is accepted silently and detects clearly worse); small images upscaled to DETECT_SIZE
  (mediapipe resizes to its own 256 px inputs anyway, and the upscale finds more people on busy backgrounds);
- when nobody is found: again at a low detection confidence, then once more with the image padded by
  replicating its border (a person close to the frame edge is found more often);
- Pose's own segmentation mask (SelfieSegmentation is a close-range model and misses full bodies);
- the whole-body left/right swap fixed: mediapipe labels 12-18 % of front-facing dancers as if seen from behind.
Pose finds one person per call; several are found by painting out each person found and asking again.

mediapipe is imported when a PersonFinder is made, so importing this module stays light; the module refuses to
import (ImportError) where mediapipe is not installed, so callers can fall back early.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import cv2
import numpy as np

if importlib.util.find_spec("mediapipe") is None:
    raise ImportError("the person detector needs mediapipe: pip install --no-deps mediapipe==0.10.14 (make setup)")

NUM_LANDMARKS = 33  # mediapipe Pose's landmark order (nose, eyes, ears, mouth, shoulders, ..., foot tips)
# mediapipe's landmark indices, by the PERSON's side: a front-facing person's left is on the image right
NOSE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 0, 11, 12, 23, 24
TORSO = (NOSE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP)
HEAD = tuple(range(0, 11))  # nose, eyes, ears, mouth
FEET = tuple(range(27, 33))  # ankles, heels, foot tips
LEFT_RIGHT = ((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22),
              (23, 24), (25, 26), (27, 28), (29, 30), (31, 32))  # fmt: skip
SWAP_SIDES = np.arange(NUM_LANDMARKS)
for _left, _right in LEFT_RIGHT:
    SWAP_SIDES[_left], SWAP_SIDES[_right] = _right, _left

UPSCALE_BELOW = 256  # an image with a shorter short side (and a long side under DETECT_SIZE) is upscaled ...
DETECT_SIZE = 512  # ... so that its long side is this many pixels (INTER_CUBIC)
CONFIDENCE = 0.5  # mediapipe's default detection confidence: the first try
RETRY_CONFIDENCE = 0.1  # the second and third tries, when nobody was found
RETRY_PAD = 0.3  # the third try pads each side by this fraction of the short side (BORDER_REPLICATE)
MASK_THRESHOLD = 0.5  # mask > this = the person
VISIBLE = 0.5  # landmark visibility > this = visible
# a pose counts only when Pose is this sure (mean visibility) that the head, shoulders and hips are in view.
# Measured: good detections of real dancers (whole, or cut off at the knees or hips) >= 0.87; the "people" the
# low-confidence retries find in empty busy sets mostly <= 0.72 (17 of 21 such ghosts on 80 synthetic sets)
MIN_TORSO_VISIBILITY = 0.8
MAX_PEOPLE = 4  # Pose calls per still in `find`: each one finds at most one more person
SAME_PERSON = 0.5  # a new mask this much inside earlier ones is someone found again, not a new person
BLANK_GROW = 0.04  # a found person is painted out with their mask grown by this fraction of their box height
EDGE = 0.01  # a visible head or foot landmark this close to an edge (fraction of the image side) is cut off
EDGE_MIN_PIXELS = 2  # mask pixels on an edge row/column that count as the body touching it
EDGES = ("left", "right", "top", "bottom")


@dataclass
class Person:
    """One person in an image, in that image's pixels."""

    landmarks: np.ndarray  # (33, 2) float32 (x, y) image pixels, pixel centres at integers, mediapipe's order
    visibility: np.ndarray  # (33,) float32 in [0, 1]
    mask: np.ndarray  # (H, W) float32 in [0, 1]: this person's segmentation
    box: tuple[int, int, int, int]  # (x, y, w, h): tight box around mask > 0.5 and the visible landmarks
    cut_off: list[str] = field(default_factory=list)  # edges of EDGES where the frame cuts the body off

    @property
    def area(self) -> int:
        """Pixels of the mask above MASK_THRESHOLD."""
        return int(np.count_nonzero(self.mask > MASK_THRESHOLD))


class PersonError(ValueError):
    """A still that has no usable dancer; the message names the problem and the fix."""


@dataclass
class _Detection:
    """One Pose result mapped back to the input image."""

    landmarks: np.ndarray  # (33, 2) float32 pixels, pixel centres at integers
    visibility: np.ndarray  # (33,) float32
    mask: np.ndarray  # (H, W) float32, writable


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB from uint8 or float-in-[0, 1] grey (H, W), RGB or RGBA (alpha dropped)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None].repeat(3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    image = image[..., :3]
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.floating):
            raise ValueError(f"expected uint8 or float in [0, 1] pixels, got {image.dtype}")
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(image)


# What mediapipe's native code writes to stderr when a graph first runs, past GLOG_minloglevel and TF_CPP_MIN_LOG_LEVEL
# (absl logs before it is initialised, TF Lite prints): notices, no errors, repeated on every job.
NATIVE_NOISE = (
    "inference_feedback_manager.cc",
    "All log messages before absl::InitializeLog()",
    "Created TensorFlow Lite XNNPACK delegate",
)


@contextmanager
def native_noise_dropped() -> Iterator[None]:
    """Hold what native code writes to file descriptor 2 meanwhile, then pass on every line but mediapipe's
    start-up notices: nothing else is lost (a Python write in between is passed on too, after the block)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [
                line for line in held.read().decode(errors="replace").splitlines(keepends=True)
                if not any(noise in line for noise in NATIVE_NOISE)
            ]  # fmt: skip
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class PersonFinder:
    """Holds mediapipe's Pose graphs (one per detection confidence, made on first use); reuse one for many
    images, then close() it or use it as a context manager."""

    def __init__(self) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging: errors only
        import mediapipe as mp  # heavy: imported only when a finder is made

        self._pose_module = mp.solutions.pose
        self._graphs: dict[float, Any] = {}

    def _graph(self, confidence: float) -> Any:
        if confidence not in self._graphs:
            # static_image_mode: every image on its own. Tracking mode reuses the last image's region and, with
            # segmentation, crashes when the image size changes.
            self._graphs[confidence] = self._pose_module.Pose(
                static_image_mode=True, model_complexity=1, enable_segmentation=True,
                min_detection_confidence=confidence,
            )  # fmt: skip
        return self._graphs[confidence]

    def close(self) -> None:
        for graph in self._graphs.values():
            graph.close()
        self._graphs.clear()

    def __enter__(self) -> PersonFinder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _process(self, image: np.ndarray, confidence: float, pad: int) -> _Detection | None:
        """One Pose call on `image` (H, W, 3) uint8 RGB padded by `pad` px a side and upscaled if small."""
        height, width = image.shape[:2]
        if pad:
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        padded_h, padded_w = image.shape[:2]
        if min(padded_h, padded_w) < UPSCALE_BELOW and max(padded_h, padded_w) < DETECT_SIZE:
            scale = DETECT_SIZE / max(padded_h, padded_w)
            size = (max(1, round(padded_w * scale)), max(1, round(padded_h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
        with warnings.catch_warnings():  # protobuf 4 warns on every call that mediapipe uses a deprecated API
            warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
            if confidence in self._graphs:
                result = self._graph(confidence).process(image)
            else:  # a new graph: its first run prints mediapipe's start-up notices
                with native_noise_dropped():
                    result = self._graph(confidence).process(image)
        if result.pose_landmarks is None or result.segmentation_mask is None:
            return None
        det_h, det_w = image.shape[:2]
        # normalised (x by width, y by height, origin at the image corner) -> input pixels, centres at integers
        normalised = np.array([(p.x, p.y) for p in result.pose_landmarks.landmark], np.float64)  # (33, 2)
        landmarks = normalised * (padded_w, padded_h) - pad - 0.5
        visibility = np.array([p.visibility for p in result.pose_landmarks.landmark], np.float32)  # (33,)
        mask = result.segmentation_mask  # (det_h, det_w) float32, read-only
        if (det_h, det_w) != (padded_h, padded_w):
            mask = cv2.resize(mask, (padded_w, padded_h), interpolation=cv2.INTER_AREA)
        mask = np.clip(mask[pad : pad + height, pad : pad + width], 0.0, 1.0).astype(np.float32)  # copy: writable
        return _fix_sides(_Detection(landmarks.astype(np.float32), visibility, mask))

    def _detect(self, image: np.ndarray, retry: bool = True) -> _Detection | None:
        """The first person Pose finds, trying harder (lower confidence, then padded) when it finds nobody."""
        tries = [(CONFIDENCE, 0)]
        if retry:
            pad = max(1, round(RETRY_PAD * min(image.shape[:2])))
            tries += [(RETRY_CONFIDENCE, 0), (RETRY_CONFIDENCE, pad)]
        for confidence, pad in tries:
            found = self._process(image, confidence, pad)
            if found is not None and _plausible(found):
                return found
        return None

    def find(self, image: np.ndarray) -> list[Person]:
        """Everyone in `image` ((H, W, 3) uint8 RGB; floats in [0, 1] are converted), largest (mask area) first.

        Each person found is painted out (their grown mask filled with the image's median border colour) before
        asking again, up to MAX_PEOPLE times; it stops when nobody new turns up. The first person gets the
        retries; later ones only count when Pose finds them at its normal confidence (no ghosts in the set).
        """
        image = as_rgb_uint8(image)
        work = image.copy()
        fill = np.median(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]), axis=0)  # (3,)
        people: list[Person] = []
        taken = np.zeros(image.shape[:2], bool)  # (H, W) pixels of everyone found so far
        for _ in range(MAX_PEOPLE):
            found = self._detect(work, retry=not people)
            if found is None:
                break
            body = found.mask > MASK_THRESHOLD
            if np.count_nonzero(body & taken) > SAME_PERSON * np.count_nonzero(body):
                break  # someone found again (e.g. a painted-out silhouette): nobody new
            person = _person(found)
            people.append(person)
            taken |= body
            grow = max(3, round(BLANK_GROW * person.box[3])) | 1  # odd kernel
            blank = cv2.dilate(body.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
            work[blank > 0] = fill.astype(np.uint8)
        return sorted(people, key=lambda p: -p.area)

    def landmarks(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks of the person Pose finds first (its most confident) in each frame of `frames` (T, H, W, 3)
        uint8 RGB, every frame on its own (with the retries): (T, 33, 2) float32 pixels, NaN where nobody was
        found, and (T, 33) float32 visibility, 0 there."""
        frames = np.asarray(frames)
        if frames.ndim != 4:
            raise ValueError(f"expected (T, H, W, 3) frames, got shape {frames.shape}")
        points = np.full((len(frames), NUM_LANDMARKS, 2), np.nan, np.float32)  # (T, 33, 2)
        visibility = np.zeros((len(frames), NUM_LANDMARKS), np.float32)  # (T, 33)
        for t, frame in enumerate(frames):
            found = self._detect(as_rgb_uint8(frame))
            if found is not None:
                points[t], visibility[t] = found.landmarks, found.visibility
        return points, visibility


def _plausible(found: _Detection) -> bool:
    """A person, not a ghost: a mask, and the torso landmarks seen with confidence."""
    torso_seen = float(found.visibility[list(TORSO)].mean())
    return torso_seen >= MIN_TORSO_VISIBILITY and bool(np.any(found.mask > MASK_THRESHOLD))


def _fix_sides(found: _Detection) -> _Detection:
    """Dancers face the camera: their left shoulder and hip are on the image right. Pose sometimes labels the
    whole body as seen from behind; then every left/right pair is swapped back."""
    x = found.landmarks[:, 0]
    if x[L_SHOULDER] + x[L_HIP] < x[R_SHOULDER] + x[R_HIP]:
        return _Detection(found.landmarks[SWAP_SIDES], found.visibility[SWAP_SIDES], found.mask)
    return found


def _person(found: _Detection) -> Person:
    """A detection's box (mask and visible landmarks, clipped to the image) and the edges that cut it off."""
    height, width = found.mask.shape
    body = found.mask > MASK_THRESHOLD
    visible = found.visibility > VISIBLE
    cols, rows = np.flatnonzero(body.any(axis=0)), np.flatnonzero(body.any(axis=1))
    pixel = np.floor(found.landmarks[visible] + 0.5)  # (V, 2) the pixels the visible landmarks fall in
    xs = np.concatenate([cols[[0, -1]] if len(cols) else [], pixel[:, 0]])
    ys = np.concatenate([rows[[0, -1]] if len(rows) else [], pixel[:, 1]])
    x0, x1 = int(np.clip(xs.min(), 0, width - 1)), int(np.clip(xs.max(), 0, width - 1)) + 1
    y0, y1 = int(np.clip(ys.min(), 0, height - 1)), int(np.clip(ys.max(), 0, height - 1)) + 1
    return Person(found.landmarks, found.visibility, found.mask, (x0, y0, x1 - x0, y1 - y0),
                  _cut_off(body, found.landmarks, visible))  # fmt: skip


def _cut_off(body: np.ndarray, landmarks: np.ndarray, visible: np.ndarray) -> list[str]:
    """Edges the body runs into: the mask touches them, or a visible head or foot landmark is within EDGE."""
    height, width = body.shape
    touches = {
        "left": body[:, 0], "right": body[:, -1], "top": body[0], "bottom": body[-1],
    }  # fmt: skip
    ends = [i for i in HEAD + FEET if visible[i]]
    x, y = landmarks[ends, 0] + 0.5, landmarks[ends, 1] + 0.5  # distances from the left and top edges
    margin_x, margin_y = max(1.0, EDGE * width), max(1.0, EDGE * height)
    near = {
        "left": x < margin_x, "right": width - x < margin_x, "top": y < margin_y, "bottom": height - y < margin_y,
    }  # fmt: skip
    return [e for e in EDGES if np.count_nonzero(touches[e]) >= EDGE_MIN_PIXELS or bool(np.any(near[e]))]


def _box_text(box: tuple[int, int, int, int]) -> str:
    return ",".join(str(v) for v in box)


def find_dancer(
    image: np.ndarray, person: int | None = None, min_height: int = 48, *, finder: PersonFinder | None = None
) -> tuple[Person, list[str]]:
    """The person who dances in `image` ((H, W, 3) uint8 RGB still, any size) and warnings for the artist.

    person: 1-based, in order of size (1 = the largest); None picks the largest and warns when there are more.
    Refuses (PersonError) a still with nobody in it, a `person` beyond those found and a dancer shorter than
    `min_height` pixels. Warns when the frame cuts the dancer off. `finder` is reused when given.
    """
    if person is not None and person < 1:
        raise ValueError(f"person must be >= 1 (1 = the largest person found), got {person}")
    own = finder is None
    finder = PersonFinder() if finder is None else finder
    try:
        people = finder.find(image)
    finally:
        if own:
            finder.close()
    if not people:
        raise PersonError(
            "no person found in the still: the person detector needs a recognisable human body (head, shoulders "
            "and hips in view); use a still where one whole body is visible, or pass --no-keep-background to "
            "animate the whole image"
        )
    index = 1 if person is None else person
    if index > len(people):
        found = f"only {len(people)} {'person was' if len(people) == 1 else 'people were'} found"
        raise PersonError(f"--person {index} but {found}; choose a number from 1 to {len(people)} (1 = the largest)")
    dancer = people[index - 1]
    height = dancer.box[3]
    if height < min_height:
        raise PersonError(
            f"the dancer is only {height} px tall in the still (box {_box_text(dancer.box)}); at least "
            f"{min_height} px are needed: use a larger still, or crop it closer around the dancer"
        )
    notes = []
    if person is None and len(people) > 1:
        notes.append(
            f"found {len(people)} people; dancing person 1 (the largest, box {_box_text(dancer.box)}); choose "
            "another with --person N"
        )
    for edge in dancer.cut_off:
        notes.append(f"the dancer is cut off at the {edge} edge of the still; the missing part cannot dance")
    return dancer, notes
