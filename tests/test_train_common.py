"""Training plumbing: config files with nested tables and overrides, resumable state, CSV logs."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import torch

from dance_any_beat.train.common import (
    CsvLog,
    config_to_dict,
    load_config,
    load_train_state,
    read_csv_log,
    save_train_state,
)


@dataclass
class Model:
    channels: int = 32
    sizes: tuple[int, ...] = (1, 2)
    affine: bool = True


@dataclass
class Run:
    lr: float = 1e-3
    steps: int = 100
    device: Literal["auto", "cpu", "cuda"] = "auto"
    out: str | None = None
    model: Model = field(default_factory=Model)


def test_defaults_file_then_overrides(tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text('lr = 0.01\nsteps = 5\n[model]\nchannels = 8\nsizes = [4, 8]\n')
    config = load_config(Run, path, ["steps=7", "model.affine=false", "out=runs/x"])
    assert config == Run(lr=0.01, steps=7, out="runs/x", model=Model(channels=8, sizes=(4, 8), affine=False))
    assert config_to_dict(config)["model"]["sizes"] == [4, 8]
    assert load_config(Run) == Run()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["stepz=3"], r"unknown config keys \['stepz'\]; valid keys: device, lr, model, out, steps"),
        (["model.width=3"], r"unknown config keys \['width'\] in \[model\]"),
        (["device=tpu"], "device must be one of 'auto', 'cpu', 'cuda'; got 'tpu'"),
        (["steps=many"], "steps must be int; got 'many'"),
        (["model.affine=maybe"], "model.affine must be true or false"),
        (["lr"], "must look like key=value"),
    ],
)
def test_bad_settings_are_named(overrides: list[str], message: str):
    with pytest.raises(ValueError, match=message):
        load_config(Run, None, overrides)


def test_train_state_round_trip_and_overwrite(tmp_path: Path):
    assert load_train_state(tmp_path) is None
    model = torch.nn.Linear(3, 2)
    save_train_state(tmp_path, {"model": model.state_dict(), "step": 3})
    save_train_state(tmp_path, {"model": model.state_dict(), "step": 4})
    state = load_train_state(tmp_path)
    assert state["step"] == 4
    torch.testing.assert_close(state["model"]["weight"], model.weight.detach())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_state.pt"]


def test_csv_log_appends_across_runs(tmp_path: Path):
    log = CsvLog(tmp_path / "log.csv", ["loss"])
    log.write(1, {"loss": 0.5})
    log.close()
    log = CsvLog(tmp_path / "log.csv", ["loss"])  # a resumed run keeps the earlier rows
    log.write(2, {"loss": 0.25})
    log.close()
    assert read_csv_log(tmp_path / "log.csv") == [{"step": 1.0, "loss": 0.5}, {"step": 2.0, "loss": 0.25}]
