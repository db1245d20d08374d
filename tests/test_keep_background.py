"""Only the dancer moves, the set stays: the starter model, real mediapipe, on the project's stills of a dancer on
a set (examples/dancer_on_set_*.jpg, where keeping the set is automatic) and on procedural clips' first frames
(where it is asked for: the dancer fills most of those)."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from dance_any_beat.data.procedural import list_clips, make_dataset, read_clip
from dance_any_beat.metrics.motion import change_outside, flow_energy_in_mask
from dance_any_beat.pipeline import GenerateParams, generate
from dance_any_beat.video import read_png_frames
from dance_any_beat.vision.person import find_dancer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STARTER = Path(__file__).resolve().parents[1] / "checkpoints" / "starter"
REACH = 0.35  # the dancer's reach: their box grown by this much of its height on every side


def outside_reach(box: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray:
    x, y, w, h = box
    grow = int(REACH * h)
    keep = np.ones(shape, bool)
    keep[max(0, y - grow) : y + h + grow, max(0, x - grow) : x + w + grow] = False
    return keep


def dance_and_measure(still_path: Path, out: Path, keep_background: bool | None) -> dict:
    still = cv2.cvtColor(cv2.imread(str(still_path)), cv2.COLOR_BGR2RGB)
    result = generate(STARTER, still_path, EXAMPLES / "example_track.ogg", out,
                      GenerateParams(seconds=1.5, preset="draft", keep_background=keep_background))  # fmt: skip
    frames = read_png_frames(result.frames_dir)
    dancer, _ = find_dancer(still)
    keep = outside_reach(dancer.box, still.shape[:2])
    return {
        "result": result, "frames": frames, "size": result.size,
        "set_change": change_outside(frames, still, keep),
        "dancer_flow": flow_energy_in_mask(frames, dancer.mask > 0.5),
        "set_flow": flow_energy_in_mask(frames, keep),
    }  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", ["room", "street", "stage"])
def test_a_dancer_on_a_set_moves_alone(name, tmp_path):
    path = EXAMPLES / f"dancer_on_set_{name}.jpg"
    m = dance_and_measure(path, tmp_path / name, keep_background=None)  # automatic: the still is larger
    height, width = cv2.imread(str(path)).shape[:2]
    assert m["size"] == (width, height) and m["result"].dancer_box is not None
    print(f"{name}: set change {m['set_change'] * 255:.3f}/255, dancer flow {m['dancer_flow']:.2f} px, "
          f"set flow {m['set_flow']:.3f} px")
    assert m["set_change"] < 2 / 255  # the set outside the dancer's reach stays as it was
    assert m["dancer_flow"] > 0.3 and m["dancer_flow"] > 10 * m["set_flow"]  # while the dancer moves


@pytest.mark.slow
def test_procedural_stills_keep_their_set_when_asked(tmp_path):
    split = make_dataset(tmp_path / "data", 2, split="test", workers=1)
    for clip_dir in list_clips(split):
        still = read_clip(clip_dir).frames[0]
        path = tmp_path / f"{clip_dir.name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(still, cv2.COLOR_RGB2BGR))
        m = dance_and_measure(path, tmp_path / clip_dir.name, keep_background=True)
        print(f"{clip_dir.name}: set change {m['set_change'] * 255:.3f}/255, dancer flow {m['dancer_flow']:.2f} px, "
              f"set flow {m['set_flow']:.3f} px")
        assert m["size"] == (128, 128)
        assert m["set_change"] < 2 / 255
        assert m["dancer_flow"] > 0.1 and m["dancer_flow"] > 5 * m["set_flow"]


def test_no_keep_background_moves_the_whole_still(tmp_path):
    path = EXAMPLES / "dancer_on_set_room.jpg"
    result = generate(STARTER, path, EXAMPLES / "example_track.ogg", tmp_path / "whole",
                      GenerateParams(seconds=0.5, preset="draft", keep_background=False))  # fmt: skip
    assert result.dancer_box is None and result.size[0] <= 128  # the draft preset's model view, whole still


def test_keep_background_refuses_a_still_without_a_person(tmp_path, capsys):
    from dance_any_beat.cli import main

    empty = cv2.imread(str(EXAMPLES / "dancer_on_set_room.jpg"))[:, 500:]  # the room right of the dancer
    cv2.imwrite(str(tmp_path / "empty.png"), empty)
    code = main(["generate", "--image", str(tmp_path / "empty.png"), "--audio", str(EXAMPLES / "example_track.ogg"),
                 "--out", str(tmp_path / "out"), "--seconds", "0.5", "--preset", "draft", "--keep-background"])
    err = capsys.readouterr().err
    assert code == 2 and "no person found in the still" in err and "--no-keep-background" in err
    assert not (tmp_path / "out").exists()  # nothing written
    # without the flag the same still just moves as a whole
    assert main(["generate", "--image", str(tmp_path / "empty.png"), "--audio", str(EXAMPLES / "example_track.ogg"),
                 "--out", str(tmp_path / "whole"), "--seconds", "0.5", "--preset", "draft"]) == 0
