"""A checkpoint trained with a frozen music tower, loaded on a machine that keeps the tower's weights elsewhere.

The Wav2CLIP tower is built with random weights and saved in the public Wav2CLIP.pt layout (as in
test_music_encoder.py); no real weights are needed.
"""

import dataclasses
from pathlib import Path

import pytest
import torch

from dance_any_beat.cli import build_parser
from dance_any_beat.models.dabfusion import DabFusion, DabFusionConfig
from dance_any_beat.music.wav2clip_branch import Wav2ClipTower
from dance_any_beat.weights import MissingWeightsError

pytestmark = pytest.mark.usefixtures("one_thread")


def save_wav2clip(path: Path, seed: int) -> dict[str, torch.Tensor]:
    """A random Wav2CLIP in the public Wav2CLIP.pt layout at `path`; returns the tower's own state."""
    torch.manual_seed(seed)
    tower = Wav2ClipTower()
    with tower.own_weights():
        own = {k: v.clone() for k, v in tower.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tower.public_state_dict(), path)
    return own


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dabfusion_config: DabFusionConfig) -> tuple[Path, Path]:
    """A tiny ("wav2clip", "beats") DabFusion saved as a checkpoint; the Wav2CLIP file of its training machine."""
    root = tmp_path_factory.mktemp("override")
    training_file = root / "training-machine" / "Wav2CLIP.pt"
    save_wav2clip(training_file, seed=0)
    music = dataclasses.replace(tiny_dabfusion_config.music, parts=("wav2clip", "beats"),
                                wav2clip_checkpoint=str(training_file))
    c = tiny_dabfusion_config
    config = DabFusionConfig.assemble(c.lfae, c.unet, c.diffusion, music, c.data)
    torch.manual_seed(0)
    checkpoint = DabFusion(config).save(root / "checkpoint")
    return checkpoint, training_file


def test_override_loads_the_local_file(trained, tmp_path):
    checkpoint, training_file = trained
    local = tmp_path / "artist" / "Wav2CLIP.pt"
    own = save_wav2clip(local, seed=1)
    model = DabFusion.from_checkpoint(checkpoint, music_weights={"wav2clip": str(local), "clap": "/not/used.pt"})
    assert model.config.music.wav2clip_checkpoint == str(local)
    with model.music.towers["wav2clip"].own_weights() as tower:
        loaded = tower.state_dict()
    assert loaded.keys() == own.keys()
    for key, value in own.items():
        torch.testing.assert_close(loaded[key], value)
    # without the override the recorded path is used (it exists on this "training machine")
    assert DabFusion.from_checkpoint(checkpoint).config.music.wav2clip_checkpoint == str(training_file)


def test_missing_files_name_the_option(trained, tmp_path, monkeypatch):
    checkpoint, _ = trained
    monkeypatch.setenv("DANCE_ANY_BEAT_CACHE", str(tmp_path / "cache"))
    missing = tmp_path / "nowhere" / "Wav2CLIP.pt"
    with pytest.raises(MissingWeightsError) as info:
        DabFusion.from_checkpoint(checkpoint, music_weights={"wav2clip": str(missing)})
    message = str(info.value)
    assert info.value.option == "--wav2clip-weights" and info.value.path == missing
    for text in [str(missing), "does not exist", "--wav2clip-weights", "Wav2CLIP.pt", "descriptinc/lyrebird-wav2clip"]:
        assert text in message
    # the path recorded at training time is not on this machine: the error says how to point at a local copy
    trainer_file = tmp_path / "trainer" / "Wav2CLIP.pt"
    save_wav2clip(trainer_file, seed=2)
    elsewhere = DabFusion.from_checkpoint(checkpoint, music_weights={"wav2clip": str(trainer_file)})
    elsewhere = elsewhere.save(tmp_path / "moved")
    trainer_file.unlink()
    with pytest.raises(MissingWeightsError, match=r"does not exist.*--wav2clip-weights") as info:
        DabFusion.from_checkpoint(elsewhere)
    assert str(trainer_file) in str(info.value)
    with pytest.raises(ValueError, match="music_weights keys"):
        DabFusion.from_checkpoint(checkpoint, music_weights={"wav2clp": str(missing)})


def test_cli_options_reach_the_loader():
    parser = build_parser()
    args = parser.parse_args(["serve", "--clap-weights", "/w/630k-audioset-best.pt", "--wav2clip-weights", "/w/W.pt"])
    from dance_any_beat.cli import _music_weights

    assert _music_weights(args) == {"clap": "/w/630k-audioset-best.pt", "wav2clip": "/w/W.pt"}
    args = parser.parse_args(["generate", "--image", "a.png", "--audio", "b.wav", "--out", "o",
                              "--wav2clip-weights", "/w/W.pt"])
    assert _music_weights(args) == {"wav2clip": "/w/W.pt"}
