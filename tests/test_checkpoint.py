"""Checkpoint round trip and every way a wrong file is refused with a readable message."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from dance_any_beat.checkpoint import CheckpointError, load_checkpoint, load_part, read_config, save_checkpoint


def two_parts() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {"lfae": nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), "unet": nn.Linear(5, 2)}


def test_round_trip_restores_weights_and_config(tmp_path: Path):
    modules = two_parts()
    config = {"lfae": {"channels": 4}, "data": {"fps": 24, "frames": 16}}
    save_checkpoint(tmp_path, {k: m.state_dict() for k, m in modules.items()}, config, kind="dabfusion")
    loaded_config, parts = load_checkpoint(tmp_path, kind="dabfusion")
    assert loaded_config["lfae"] == {"channels": 4} and loaded_config["data"]["fps"] == 24
    assert loaded_config["parts"] == ["lfae", "unet"]
    fresh = {"lfae": nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), "unet": nn.Linear(5, 2)}
    for name, module in fresh.items():
        load_part(module, parts[name], part=name, source=tmp_path)
        for key, value in modules[name].state_dict().items():
            torch.testing.assert_close(module.state_dict()[key], value, rtol=0, atol=0)


def test_half_precision_shrinks_and_loads_back_as_float32(tmp_path: Path):
    modules = two_parts()
    save_checkpoint(tmp_path / "full", {k: m.state_dict() for k, m in modules.items()}, {}, kind="x")
    save_checkpoint(tmp_path / "half", {k: m.state_dict() for k, m in modules.items()}, {}, kind="x",
                    dtype=torch.float16)
    assert (tmp_path / "half/model.safetensors").stat().st_size < (tmp_path / "full/model.safetensors").stat().st_size
    _, parts = load_checkpoint(tmp_path / "half")
    weight = parts["unet"]["weight"]
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight, modules["unet"].weight.detach(), atol=1e-3, rtol=1e-3)
    assert parts["lfae"]["1.num_batches_tracked"].dtype == torch.int64  # integer buffers untouched


def test_lone_weights_file_carries_its_config(tmp_path: Path):
    save_checkpoint(tmp_path, {"unet": nn.Linear(2, 2).state_dict()}, {"data": {"fps": 30}}, kind="x")
    (tmp_path / "config.json").unlink()
    assert read_config(tmp_path / "model.safetensors")["data"] == {"fps": 30}


def test_missing_checkpoint(tmp_path: Path):
    with pytest.raises(CheckpointError, match="weights not found: .*model.safetensors; give the checkpoint"):
        load_checkpoint(tmp_path)


def test_not_a_safetensors_file(tmp_path: Path):
    (tmp_path / "model.safetensors").write_bytes(b"PK\x03\x04 a zip, not weights")
    with pytest.raises(CheckpointError, match="is not a safetensors checkpoint"):
        load_checkpoint(tmp_path)


def test_foreign_safetensors_file(tmp_path: Path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "model.safetensors"), metadata={"config": json.dumps({"a": 1})})
    with pytest.raises(CheckpointError, match="is not a Dance Any Beat checkpoint"):
        load_checkpoint(tmp_path)


def test_wrong_kind_and_future_version(tmp_path: Path):
    save_checkpoint(tmp_path, {"lfae": nn.Linear(2, 2).state_dict()}, {}, kind="lfae")
    with pytest.raises(CheckpointError, match="holds a 'lfae' model, but a 'dabfusion' model is needed"):
        load_checkpoint(tmp_path, kind="dabfusion")
    config = json.loads((tmp_path / "config.json").read_text())
    config["version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="format version 99; this program reads version 1"):
        load_checkpoint(tmp_path)


def test_weights_that_do_not_fit_the_config(tmp_path: Path):
    save_checkpoint(tmp_path, {"unet": nn.Linear(5, 2).state_dict()}, {}, kind="x")
    _, parts = load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="'unet' weights in .* do not fit .*size mismatch"):
        load_part(nn.Linear(6, 2), parts["unet"], part="unet", source=tmp_path)
    with pytest.raises(CheckpointError, match="missing 1 weights"):
        load_part(nn.Linear(5, 2), {"weight": parts["unet"]["weight"]}, part="unet", source=tmp_path)
    with pytest.raises(CheckpointError, match="1 unexpected weights \\(e.g. extra\\)"):
        load_part(nn.Linear(5, 2), {**parts["unet"], "extra": torch.zeros(1)}, part="unet", source=tmp_path)


def test_save_replaces_and_leaves_no_temporary_files(tmp_path: Path):
    save_checkpoint(tmp_path, {"unet": nn.Linear(2, 2).state_dict()}, {"step": 1}, kind="x")
    save_checkpoint(tmp_path, {"unet": nn.Linear(2, 2).state_dict()}, {"step": 2}, kind="x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert read_config(tmp_path)["step"] == 2
