"""Both training stages end to end on a tiny procedural data set: losses fall, runs resume, DDP ranks agree,
the stage-2 checkpoint is a complete model, and wrong checkpoints or settings get clear errors."""

import dataclasses
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dance_any_beat.checkpoint import CheckpointError, read_config
from dance_any_beat.cli import main
from dance_any_beat.diffusion import make_sampler, sample
from dance_any_beat.models.dabfusion import (
    DabFusion,
    DabFusionConfig,
    DataConfig,
    FlowCoding,
    lfae_targets,
    load_lfae_checkpoint,
    motion_to_x0,
    x0_to_motion,
)
from dance_any_beat.models.lfae import LFAEConfig
from dance_any_beat.models.unet3d import UNet3DConfig
from dance_any_beat.music.encoder import prepare_audio
from dance_any_beat.train.common import RunLog, load_config, params_digest, read_csv_log
from dance_any_beat.train.datasets import MotionWindows, open_source
from dance_any_beat.train.diffusion import DiffusionTrainConfig, train_diffusion
from dance_any_beat.train.lfae import LFAETrainConfig, train_lfae

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_dir(procedural_data) -> Path:
    return procedural_data(4)


def lfae_config(data_dir: Path, out: Path, *overrides: str) -> LFAETrainConfig:
    base = [f"data_path={data_dir}", f"out={out}", "progress=false"]
    return load_config(LFAETrainConfig, CONFIGS / "lfae_tiny.toml", [*base, *overrides])


def diffusion_config(data_dir: Path, out: Path, lfae_checkpoint: Path | str, *overrides: str) -> DiffusionTrainConfig:
    base = [f"data_path={data_dir}", f"out={out}", f"lfae_checkpoint={lfae_checkpoint}", "progress=false"]
    return load_config(DiffusionTrainConfig, CONFIGS / "diffusion_tiny.toml", [*base, *overrides])


@pytest.fixture(scope="module")
def lfae_run(data_dir: Path, tmp_path_factory) -> Path:
    """The tiny stage-1 run (80 steps) that the stage-2 tests build on (one thread: `one_thread` is module-scoped)."""
    return train_lfae(lfae_config(data_dir, tmp_path_factory.mktemp("runs") / "lfae"))


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


# ---------------------------------------------------------------------------------------------------- stage 1
@pytest.mark.slow
def test_tiny_lfae_run_halves_its_reconstruction_loss(lfae_run: Path):
    rows = read_csv_log(lfae_run / "log.csv")
    assert [int(r["step"]) for r in rows] == list(range(5, 81, 5))
    l1 = [r["l1"] for r in rows]
    print("lfae l1 curve:", [round(v, 4) for v in l1])
    assert mean(l1[-3:]) <= 0.5 * mean(l1[:3]), l1
    assert all(r["steps_per_s"] > 0 and r["lr"] > 0 for r in rows)
    lfae = load_lfae_checkpoint(lfae_run / "checkpoint")
    assert lfae.config == load_config(LFAETrainConfig, CONFIGS / "lfae_tiny.toml").model
    assert read_config(lfae_run / "checkpoint")["training"]["step"] == 80
    assert not any(p.requires_grad for p in lfae.parameters()) and not lfae.training


def test_a_killed_lfae_run_resumes_from_its_saved_step(data_dir: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "run"
    config = lfae_config(data_dir, out, "steps=12", "checkpoint_every=5", "log_every=1", "batch_size=4")
    write = RunLog.write

    def killed_at_step_8(self, step: int):
        row = write(self, step)
        if step == 8:
            raise KeyboardInterrupt
        return row

    monkeypatch.setattr(RunLog, "write", killed_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        train_lfae(config)
    assert torch.load(out / "train_state.pt", weights_only=False)["step"] == 5  # the last save before the kill
    assert [int(r["step"]) for r in read_csv_log(out / "log.csv")] == list(range(1, 9))

    monkeypatch.setattr(RunLog, "write", write)
    train_lfae(config)
    steps = [int(r["step"]) for r in read_csv_log(out / "log.csv")]
    assert steps == list(range(1, 13))  # 6..8 were dropped and redone once: no step twice
    assert torch.load(out / "train_state.pt", weights_only=False)["step"] == 12
    assert read_config(out / "checkpoint")["training"]["step"] == 12

    # a fresh checkout has the finished run's state but not its checkpoint: the same command writes it back
    weights = (out / "checkpoint" / "model.safetensors").read_bytes()
    shutil.rmtree(out / "checkpoint")
    train_lfae(config)
    assert (out / "checkpoint" / "model.safetensors").read_bytes() == weights
    assert [int(r["step"]) for r in read_csv_log(out / "log.csv")] == list(range(1, 13))  # nothing trained


def test_resuming_with_another_model_is_refused(data_dir: Path, lfae_run: Path, tmp_path: Path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "train_state.pt").write_bytes((lfae_run / "train_state.pt").read_bytes())
    config = lfae_config(data_dir, out, "model.latent_channels=8", "steps=100")
    with pytest.raises(ValueError, match=r"was trained with other model settings \(model.latent_channels was 16, "
                                         r"now 8\); resume with the settings it was started with, or give a new"):
        train_lfae(config)
    # a stage-2 run in a stage-1 folder is refused too
    with pytest.raises(ValueError, match="state of a 'lfae' run, not a 'diffusion' one"):
        train_diffusion(diffusion_config(data_dir, out, lfae_run / "checkpoint"))


def test_decoder_fine_tune_trains_the_decoder_alone_and_ships_with_the_stage_2_model(
    data_dir: Path, lfae_run: Path, tmp_path: Path, capsys
):
    out = tmp_path / "decoder"
    fine = ["trainable=decoder", f"init_weights={lfae_run / 'train_state.pt'}", "steps=30", "log_every=10",
            "loss.equivariance_shift_weight=0", "loss.equivariance_affine_weight=0"]  # fmt: skip
    train_lfae(lfae_config(data_dir, out, *fine))
    before, after = load_lfae_checkpoint(lfae_run / "checkpoint"), load_lfae_checkpoint(out / "checkpoint")
    old, new = before.state_dict(), after.state_dict()
    decoder = [k for k in old if k.startswith("decoder.")]
    assert decoder and all(not torch.equal(old[k], new[k]) for k in decoder if k.endswith("weight"))
    assert all(torch.equal(old[k], new[k]) for k in old if k not in decoder)  # stage 2's flows are unchanged
    # the run resumes like any other, and a later all-weights run in its folder is refused
    train_lfae(lfae_config(data_dir, out, *fine[:2], "steps=35", *fine[3:]))
    assert torch.load(out / "train_state.pt", weights_only=False)["step"] == 35
    with pytest.raises(ValueError, match="trainable was 'decoder', now 'all'"):
        train_lfae(lfae_config(data_dir, out, "steps=40"))
    # settings that cannot work are named with their fix
    with pytest.raises(ValueError, match="set loss.equivariance_shift_weight = 0"):
        lfae_config(data_dir, out, *fine[:2])
    with pytest.raises(ValueError, match="set init_weights to it"):
        lfae_config(data_dir, out, "trainable=decoder", *fine[4:])

    # export --lfae ships the fine-tuned decoder with a stage-2 model made on the original stage 1 ...
    tiny = load_config(DiffusionTrainConfig, CONFIGS / "diffusion_tiny.toml")
    bundle_config = DabFusionConfig.assemble(before.config, tiny.model, tiny.diffusion, tiny.music, tiny.data)
    stage2 = DabFusion(bundle_config, lfae=before).save(tmp_path / "stage2")
    assert main(["export", str(stage2), str(tmp_path / "shipped"), "--lfae", str(out / "checkpoint")]) == 0
    shipped = DabFusion.from_checkpoint(tmp_path / "shipped")
    assert params_digest(shipped.lfae) == params_digest(load_lfae_checkpoint(out / "checkpoint"))  # step 35
    assert read_config(tmp_path / "shipped")["training"]["lfae_decoder"]["step"] == 35
    # ... and refuses an LFAE whose flows differ (stage 2 would be generating flows for another motion network)
    capsys.readouterr()
    other = train_lfae(lfae_config(data_dir, tmp_path / "other", "steps=6", "seed=3"))
    assert main(["export", str(stage2), str(tmp_path / "refused"), "--lfae", str(other / "checkpoint")]) == 2
    assert "differs from the LFAE stage 2 was trained on outside its decoder" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()


def test_a_guided_decoder_fine_tunes_from_an_unguided_lfae_and_ships_with_its_stage_2_model(
    data_dir: Path, tmp_path: Path, capsys
):
    # a guide needs a compositing stage 1 (the shared tiny run decodes alone)
    base = train_lfae(lfae_config(data_dir, tmp_path / "base", "model.composite_reference=true", "steps=6"))
    before = load_lfae_checkpoint(base / "checkpoint")
    out = tmp_path / "guided"
    fine = ["trainable=decoder", f"init_weights={base / 'train_state.pt'}", "model.composite_reference=true",
            "model.decoder_guide=true", "model.learned_upsampling=true", "model.reference_warp=bicubic",
            "loss.equivariance_shift_weight=0",
            "loss.equivariance_affine_weight=0", "grown_lr_scale=10"]
    train_lfae(lfae_config(data_dir, out, *fine, "steps=20", "log_every=10"))  # fmt: skip
    after = load_lfae_checkpoint(out / "checkpoint")
    assert after.config.decoder_guide and after.config.learned_upsampling
    old, new = before.state_dict(), after.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if not k.startswith("decoder."))  # same flows
    assert any(new[k].abs().max() > 0 for k in new if k.startswith("decoder.guides.") and k.endswith("conv2.weight"))
    assert new["decoder.upsampler.net.6.weight"].abs().max() > 0  # the upsampler's zero start was trained too
    # the grown layers (guides, upsampler) learn at 10x the rate of the decoder they were grown on
    groups = torch.load(out / "train_state.pt", weights_only=False)["optimizer"]["param_groups"]
    grown = [n for n in new if n.startswith(("decoder.guides.", "decoder.upsampler.")) and "prior" not in n]
    assert [g["lr_scale"] for g in groups] == [1.0, 10.0] and len(groups[1]["params"]) == len(grown)
    assert groups[1]["lr"] == pytest.approx(10.0 * groups[0]["lr"])

    # it ships with the stage-2 model made on the unguided stage 1, which then renders with the guide
    tiny = load_config(DiffusionTrainConfig, CONFIGS / "diffusion_tiny.toml")
    bundle_config = DabFusionConfig.assemble(before.config, tiny.model, tiny.diffusion, tiny.music, tiny.data)
    stage2 = DabFusion(bundle_config, lfae=before).save(tmp_path / "stage2")
    assert main(["export", str(stage2), str(tmp_path / "shipped"), "--lfae", str(out / "checkpoint")]) == 0
    shipped = DabFusion.from_checkpoint(tmp_path / "shipped")
    assert shipped.config.lfae.learned_upsampling and shipped.config.lfae.reference_warp == "bicubic"
    assert params_digest(shipped.lfae) == params_digest(after)

    # init weights that do not fit the model are refused by name, not with a wall of missing keys
    with pytest.raises(ValueError, match="does not fit this run's .model."):
        train_lfae(lfae_config(data_dir, tmp_path / "wrong", *fine, "model.latent_channels=8", "steps=2"))
    # and an LFAE that differs outside the decoder's settings is still refused at export
    capsys.readouterr()
    other = train_lfae(lfae_config(data_dir, tmp_path / "other", "model.composite_reference=true",
                                   "model.num_regions=3", "steps=2"))  # fmt: skip
    assert main(["export", str(stage2), str(tmp_path / "refused"), "--lfae", str(other / "checkpoint")]) == 2
    assert "only the decoder's settings" in capsys.readouterr().err


def test_all_but_encoder_fine_tune_keeps_the_reference_latents_stage_2_is_conditioned_on(
    data_dir: Path, lfae_run: Path, tmp_path: Path
):
    out = tmp_path / "motion"
    train_lfae(lfae_config(data_dir, out, "trainable=all_but_encoder", f"init_weights={lfae_run / 'train_state.pt'}",
                           "steps=20", "log_every=5", "loss.region_prior_weight=1.0"))  # fmt: skip
    prior = [row["region_prior"] for row in read_csv_log(out / "log.csv")]  # the regions find the body parts
    assert len(prior) == 4 and prior[-1] < 0.8 * prior[0], prior
    old = load_lfae_checkpoint(lfae_run / "checkpoint").state_dict()
    new = load_lfae_checkpoint(out / "checkpoint").state_dict()
    encoder = [k for k in old if k.startswith("encoder.")]
    assert encoder and all(torch.equal(old[k], new[k]) for k in encoder)
    for part in ("region_predictor.", "dense_motion.", "decoder."):
        assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith(part)), part
    with pytest.raises(ValueError, match="one of 'all', 'decoder', 'all_but_encoder', 'joints', "
                                         "'occlusion_and_decoder'; got 'encoder'"):
        lfae_config(data_dir, out, "trainable=encoder", f"init_weights={lfae_run / 'train_state.pt'}")
    with pytest.raises(ValueError, match="trainable = 'all_but_encoder' fine-tunes an existing LFAE"):
        lfae_config(data_dir, out, "trainable=all_but_encoder")


def test_a_joint_head_grows_on_an_lfae_trains_alone_then_its_bones_move_the_regions(
    data_dir: Path, lfae_run: Path, tmp_path: Path
):
    no_image_terms = ["loss.l1_weight=0", "loss.ssim_weight=0", "loss.equivariance_shift_weight=0",
                      "loss.equivariance_affine_weight=0"]  # fmt: skip
    joints = train_lfae(lfae_config(
        data_dir, tmp_path / "joints", "model.bone_motion=true", "trainable=joints", "loss.joint_weight=1.0",
        f"init_weights={lfae_run / 'train_state.pt'}", "steps=30", "log_every=10", "lr=3e-3", *no_image_terms,
    ))  # fmt: skip
    found = [row["joints"] for row in read_csv_log(joints / "log.csv")]
    assert len(found) == 3 and found[-1] < 0.7 * found[0], found
    old = load_lfae_checkpoint(lfae_run / "checkpoint").state_dict()
    new = load_lfae_checkpoint(joints / "checkpoint").state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old)  # only the grown head trained
    assert any(k.startswith("region_predictor.joint_head.") for k in new)
    # then the motion networks learn to use the bones, the joints still taught by the data's
    bones = train_lfae(lfae_config(
        data_dir, tmp_path / "bones", "model.bone_motion=true", "trainable=all_but_encoder", "loss.joint_weight=1.0",
        "loss.mask_prior_weight=1.0", f"init_weights={joints / 'train_state.pt'}", "steps=10", "log_every=5",
    ))  # fmt: skip
    rows = read_csv_log(bones / "log.csv")
    assert len(rows) == 2 and all(row["joints"] > 0 and row["l1"] > 0 for row in rows)
    assert rows[-1]["mask_prior"] < rows[0]["mask_prior"], rows  # the parts' pixels go to the parts' regions
    assert load_lfae_checkpoint(bones / "checkpoint").config.bone_motion
    with pytest.raises(ValueError, match="trainable = 'joints' trains the joint head of a bone_motion LFAE"):
        lfae_config(data_dir, tmp_path / "x", "trainable=joints", f"init_weights={lfae_run}", *no_image_terms)
    with pytest.raises(ValueError, match="loss.joint_weight scores the joints of a bone_motion LFAE"):
        lfae_config(data_dir, tmp_path / "x", "loss.joint_weight=1.0", f"init_weights={lfae_run}")
    with pytest.raises(ValueError, match="trainable = 'joints' freezes the region maps"):
        lfae_config(data_dir, tmp_path / "x", "trainable=joints", "model.bone_motion=true",
                    f"init_weights={lfae_run}")  # fmt: skip


def test_a_price_on_hiding_opens_the_occlusion_map_and_keeps_the_flows(data_dir: Path, lfae_run: Path, tmp_path: Path):
    out = train_lfae(lfae_config(
        data_dir, tmp_path / "visible", "trainable=occlusion_and_decoder", "loss.hidden_weight=1.0",
        "loss.equivariance_shift_weight=0", "loss.equivariance_affine_weight=0",
        f"init_weights={lfae_run / 'train_state.pt'}", "steps=20", "log_every=5", "lr=1e-2",
    ))  # fmt: skip
    hidden = [row["hidden"] for row in read_csv_log(out / "log.csv")]
    assert len(hidden) == 4 and hidden[-1] < 0.5 * hidden[0], hidden  # the mean of (1 - occlusion) falls
    old, new = load_lfae_checkpoint(lfae_run / "checkpoint"), load_lfae_checkpoint(out / "checkpoint")
    before, after = old.state_dict(), new.state_dict()
    changed = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("dense_motion.") else "")
               for k in before if not torch.equal(before[k], after[k])}  # fmt: skip
    assert changed == {"dense_motion.occlusion", "decoder"}, changed
    frames = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        was, now = old.eval()(frames[:1], frames[1:]).motion, new.eval()(frames[:1], frames[1:]).motion
    torch.testing.assert_close(now.flow, was.flow)  # stage 2's flow targets stay what they were
    assert float(now.occlusion.mean()) > float(was.occlusion.mean())
    with pytest.raises(ValueError, match="trainable = 'occlusion_and_decoder' freezes the region maps"):
        lfae_config(data_dir, tmp_path / "x", "trainable=occlusion_and_decoder", f"init_weights={lfae_run}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_run_keeps_the_ranks_equal(data_dir: Path, tmp_path: Path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        "-m", "dance_any_beat.cli", "train", "lfae", "--config", str(CONFIGS / "lfae_tiny.toml"),
        "--set", f"data_path={data_dir}", "--set", f"out={out}", "--set", "steps=6", "--set", "batch_size=4",
        "--set", "log_every=2", "--set", "progress=false", "--set", "dump_rank_params=true",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.count("lfae: step 6 done") == 1  # only rank 0 reports
    rank0, rank1 = ((out / f"params_rank{r}.txt").read_text().strip() for r in (0, 1))
    assert rank0 == rank1
    assert params_digest(load_lfae_checkpoint(out / "checkpoint")) == rank0  # rank 0 saved what both hold
    assert [int(r["step"]) for r in read_csv_log(out / "log.csv")] == [2, 4, 6]


# ---------------------------------------------------------------------------------------------------- stage 2
@pytest.mark.slow
def test_tiny_diffusion_run_learns_and_its_checkpoint_generates(data_dir: Path, lfae_run: Path, tmp_path: Path):
    run = train_diffusion(diffusion_config(data_dir, tmp_path / "diffusion", lfae_run / "checkpoint"))
    rows = read_csv_log(run / "log.csv")
    losses = [r["loss"] for r in rows]
    print("diffusion loss curve:", [round(v, 4) for v in losses])
    assert mean(losses[-2:]) < 0.75 * mean(losses[:2]), losses

    model = DabFusion.from_checkpoint(run / "checkpoint")
    header = read_config(run / "checkpoint", kind="dabfusion")
    assert header["parts"] == ["lfae", "music", "unet"] and header["training"]["ema"] is True
    tiny = load_config(DiffusionTrainConfig, CONFIGS / "diffusion_tiny.toml")
    assert model.config.unet.ref_channels == model.config.lfae.latent_channels == 16  # set from the LFAE
    assert model.config.unet.music_global_dim == tiny.music.global_dim
    assert model.config.unet.music_frame_dim == tiny.music.frame_dim
    assert model.config.data.image_size == 64 and model.config.data.num_frames == 8
    # the frozen LFAE went into the bundle unchanged
    assert params_digest(model.lfae) == params_digest(load_lfae_checkpoint(lfae_run / "checkpoint"))

    # one window's music -> DDIM in 4 steps -> x0 -> frames
    window = MotionWindows(open_source("procedural", data_dir, "train"), size=64, fps=10, num_frames=8)[0]
    music_in = prepare_audio(window["audio"], int(window["sr"]), model.config.music)
    with torch.no_grad():
        music = model.encode_music(music_in, window["rhythm"][None], 8)
        ref_latent = model.encode_reference(window["ref"][None])
    cond = model.conditioning(ref_latent, music, model.style_labels(["lock"]))
    sampler = make_sampler("ddim", model.config.diffusion)
    x0 = sample(model.unet, model.latent_shape(1, 8), cond, sampler, steps=4, guidance_scale=2.0,
                generator=torch.Generator().manual_seed(0))
    assert x0.shape == (1, 3, 8, 16, 16) and torch.isfinite(x0).all()
    flow, occlusion = model.x0_to_motion(x0)
    assert flow.shape == (1, 2, 8, 16, 16) and occlusion.shape == (1, 1, 8, 16, 16)
    frames = model.render(ref_latent, x0)
    assert frames.shape == (1, 3, 8, 64, 64) and 0.0 <= frames.min() and frames.max() <= 1.0

    # asked for more steps, the same command resumes (optimiser, averaged weights) and goes on from step 60
    train_diffusion(diffusion_config(data_dir, tmp_path / "diffusion", lfae_run / "checkpoint", "steps=64"))
    assert [int(r["step"]) for r in read_csv_log(run / "log.csv")] == [*range(5, 61, 5), 64]
    assert read_config(run / "checkpoint")["training"]["step"] == 64

    # a new run from these weights (after stage 1 changed) starts at step 0 with the averaged weights of this one
    tune = ["steps=1", "lr=1e-12", "min_lr=1e-12", "warmup_steps=0", "log_every=1"]
    averaged = DabFusion.from_checkpoint(run / "checkpoint")
    for init in (run / "train_state.pt", run / "checkpoint"):
        tuned = train_diffusion(diffusion_config(data_dir, tmp_path / init.name, lfae_run / "checkpoint",
                                                 f"init_weights={init}", *tune))  # fmt: skip
        assert [int(r["step"]) for r in read_csv_log(tuned / "log.csv")] == [1]
        start = DabFusion.from_checkpoint(tuned / "checkpoint")
        for part in ("music", "unet"):
            ours, theirs = getattr(start, part).state_dict(), getattr(averaged, part).state_dict()
            for name, value in theirs.items():
                torch.testing.assert_close(ours[name], value, atol=1e-6, rtol=1e-6, msg=name)
    with pytest.raises(ValueError, match="is not the train_state.pt of a stage-2 .diffusion. run"):
        train_diffusion(diffusion_config(data_dir, tmp_path / "wrong", lfae_run / "checkpoint",
                                         f"init_weights={lfae_run / 'train_state.pt'}", *tune))  # fmt: skip
    with pytest.raises(ValueError, match="its unet weights do not fit this run's model settings"):
        train_diffusion(diffusion_config(data_dir, tmp_path / "wider", lfae_run / "checkpoint",
                                         f"init_weights={run / 'train_state.pt'}", "model.base_channels=8", *tune))


def test_target_cache_gives_the_on_the_fly_targets_and_is_refused_when_stale(
    data_dir: Path, lfae_run: Path, tmp_path: Path
):
    cache = tmp_path / "targets.pt"
    run = train_diffusion(diffusion_config(data_dir, tmp_path / "cached", lfae_run / "checkpoint",
                                           f"target_cache={cache}", "steps=10", "windows_per_clip=2"))
    assert cache.is_file() and read_config(run / "checkpoint")["training"]["step"] == 10

    # the cached targets are the frozen LFAE's targets of epoch 0's windows, in fp16
    saved = torch.load(cache, weights_only=True)["tensors"]
    windows = MotionWindows(open_source("procedural", data_dir, "train"), size=64, fps=10, num_frames=8,
                            windows_per_clip=2, seed=0)
    assert len(saved["x0"]) == len(windows) == 8
    lfae = load_lfae_checkpoint(lfae_run / "checkpoint")
    for i in (0, 5):
        item = windows[i]
        with torch.no_grad():
            x0, ref_latent = lfae_targets(lfae, item["frames"].transpose(0, 1)[None], 0.5)
        torch.testing.assert_close(saved["x0"][i].float(), x0[0], atol=2e-3, rtol=2e-3)
        torch.testing.assert_close(saved["ref_latent"][i].float(), ref_latent[0], atol=2e-2, rtol=2e-3)
        torch.testing.assert_close(saved["rhythm"][i], item["rhythm"])

    # resuming reads the cache; other windows or another LFAE make it stale, and the error says so
    train_diffusion(diffusion_config(data_dir, tmp_path / "cached", lfae_run / "checkpoint",
                                     f"target_cache={cache}", "steps=12", "windows_per_clip=2"))
    assert read_config(run / "checkpoint")["training"]["step"] == 12
    with pytest.raises(ValueError, match=r"made for other settings \(windows_per_clip: 2 -> 3\); delete it"):
        train_diffusion(diffusion_config(data_dir, tmp_path / "other", lfae_run / "checkpoint",
                                         f"target_cache={cache}", "steps=2", "windows_per_clip=3"))


def test_wrong_checkpoints_are_named(data_dir: Path, lfae_run: Path, tmp_path: Path):
    with pytest.raises(CheckpointError, match="lfae_checkpoint .*missing does not exist: give the checkpoint folder "
                                              "of a `dance-any-beat train lfae` run"):
        train_diffusion(diffusion_config(data_dir, tmp_path / "a", tmp_path / "missing"))
    with pytest.raises(CheckpointError, match="lfae_checkpoint is not set: stage 2 needs a trained stage-1 LFAE"):
        train_diffusion(diffusion_config(data_dir, tmp_path / "a", "none"))

    # a full model where the stage-1 one is needed
    lfae = load_lfae_checkpoint(lfae_run / "checkpoint")
    tiny = load_config(DiffusionTrainConfig, CONFIGS / "diffusion_tiny.toml")
    bundle_config = DabFusionConfig.assemble(lfae.config, tiny.model, tiny.diffusion, tiny.music, tiny.data)
    bundle = DabFusion(bundle_config, lfae=lfae)
    full = bundle.save(tmp_path / "full")
    with pytest.raises(CheckpointError, match="is a full DabFusion checkpoint .kind 'dabfusion'., but a stage-1 "
                                              "LFAE checkpoint .kind 'lfae'. is needed here"):
        train_diffusion(diffusion_config(data_dir, tmp_path / "b", full))
    # ... and the reverse: the pipeline given the stage-1 checkpoint
    with pytest.raises(CheckpointError, match="is a stage-1 checkpoint .kind 'lfae'.: it holds the flow auto-encoder "
                                              "only and cannot generate motion. Train stage 2"):
        DabFusion.from_checkpoint(lfae_run / "checkpoint")
    # the full one loads and equals what was saved
    loaded = DabFusion.from_checkpoint(full)
    assert loaded.config == bundle_config
    for part in ("lfae", "music", "unet"):
        assert params_digest(getattr(loaded, part)) == params_digest(getattr(bundle, part))
    with pytest.raises(CheckpointError, match="checkpoint weights not found"):
        DabFusion.from_checkpoint(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------------- pieces
def test_dabfusion_config_round_trips_through_json():
    config = DabFusionConfig.assemble(
        LFAEConfig(image_size=64, latent_size=16, latent_channels=24),
        UNet3DConfig.cpu_starter(),
        load_config(DiffusionTrainConfig).diffusion,
        load_config(DiffusionTrainConfig, None, ["music.global_dim=48", "music.frame_dim=12"]).music,
        DataConfig(num_frames=12, styles=("pop", "lock")),
    )
    assert config.unet.ref_channels == 24 and config.unet.music_global_dim == 48
    assert config.unet.music_frame_dim == 12 and config.unet.num_frames == 12 and config.unet.num_styles == 2
    assert config.data.image_size == 64
    back = DabFusionConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert back == config and isinstance(back.data.styles, tuple) and isinstance(back.unet.channel_mults, tuple)
    default = DabFusionConfig()  # the CPU starter model, its parts fitted together
    assert default.unet.music_frame_dim == default.music.frame_dim and default.unet.base_channels == 32
    with pytest.raises(ValueError, match="unet.ref_channels = 64 but must be 24"):
        DabFusionConfig(lfae=config.lfae, unet=UNet3DConfig.cpu_starter(), music=config.music, data=config.data)


def test_x0_holds_flows_and_occlusions_in_minus_one_to_one():
    flow = torch.tensor([-0.9, -0.25, 0.0, 0.1, 0.6]).reshape(1, 1, 5, 1, 1).expand(1, 2, 5, 1, 1)
    occlusion = torch.tensor([0.0, 0.3, 0.5, 0.9, 1.0]).reshape(1, 1, 5, 1, 1)
    for coding in (0.5, FlowCoding(0.5), FlowCoding(0.5, knee=0.005)):
        x0 = motion_to_x0(flow, occlusion, coding)
        assert x0.shape == (1, 3, 5, 1, 1) and x0.min() >= -1 and x0.max() <= 1
        back_flow, back_occlusion = x0_to_motion(x0, coding)
        torch.testing.assert_close(back_occlusion, occlusion)
        torch.testing.assert_close(back_flow, flow.clamp(-0.5, 0.5))  # beyond the scale: clamped
    # the knee lifts small flows: 0.3 px at 128 px is 0.9% of x0's range linearly, 16% with the knee at 0.005
    small = torch.full((1, 2, 1, 1, 1), 0.3 * 2 / 128)
    linear, kneed = FlowCoding(0.5).encode(small), FlowCoding(0.5, knee=0.005).encode(small)
    assert float(linear[0, 0]) == pytest.approx(0.0094, abs=1e-4) and float(kneed[0, 0]) > 0.1
    with pytest.raises(ValueError, match="flow_knee must be >= 0"):
        DataConfig(flow_knee=-1.0)


def test_example_configs_load_and_the_starters_are_the_documented_models():
    lfae = load_config(LFAETrainConfig, CONFIGS / "lfae_starter.toml")
    assert lfae.model == LFAEConfig(composite_reference=True)  # the 1.75 M-parameter CPU starter, compositing
    diffusion = load_config(DiffusionTrainConfig, CONFIGS / "diffusion_starter.toml")
    bundle = DabFusionConfig.assemble(lfae.model, diffusion.model, diffusion.diffusion, diffusion.music,
                                      diffusion.data)
    starter = UNet3DConfig.cpu_starter()
    derived = set(bundle.derived_unet_fields())
    assert {k: v for k, v in vars(bundle.unet).items() if k not in derived} == {
        k: v for k, v in vars(starter).items() if k not in derived
    }
    assert bundle.unet.num_frames == starter.num_frames == 16 and diffusion.music.parts == ("mel", "beats")
    assert diffusion.target_cache and not diffusion.target_cache.startswith("checkpoints")  # never committed
    # the shipped LFAE: stage 1, its motion networks and decoder trained on, then its decoder alone; stage 2 trained
    # on stage 1's flows, then fine-tuned on the motion run's
    motion = load_config(LFAETrainConfig, CONFIGS / "lfae_motion_starter.toml")
    decoder = load_config(LFAETrainConfig, CONFIGS / "lfae_decoder_starter.toml")
    assert motion.model == decoder.model == lfae.model
    assert (motion.trainable, decoder.trainable) == ("all_but_encoder", "decoder")
    assert decoder.init_weights == f"{motion.out}/train_state.pt"
    # then, with the image guide grown on its decoder, the motion networks and decoder trained on again: what ships
    guided = load_config(LFAETrainConfig, CONFIGS / "lfae_motion_guided_starter.toml")
    assert guided.model == dataclasses.replace(lfae.model, decoder_guide=True)
    assert (guided.trainable, guided.init_weights) == ("all_but_encoder", f"{decoder.out}/train_state.pt")
    assert diffusion.lfae_checkpoint == f"{lfae.out}/checkpoint"
    finetune = load_config(DiffusionTrainConfig, CONFIGS / "diffusion_finetune_starter.toml")
    assert finetune.lfae_checkpoint == f"{motion.out}/checkpoint"
    assert finetune.init_weights == f"{diffusion.out}/train_state.pt"
    assert (finetune.model, finetune.data, finetune.music) == (diffusion.model, diffusion.data, diffusion.music)
    assert finetune.target_cache != diffusion.target_cache  # another LFAE's targets
    # stage 2 fine-tuned again on the guided motion run's flows, from the first fine-tune, into its folder
    finetune2 = load_config(DiffusionTrainConfig, CONFIGS / "diffusion_finetune2_starter.toml")
    assert finetune2.lfae_checkpoint == f"{guided.out}/checkpoint" and finetune2.out == finetune.out
    assert (finetune2.model, finetune2.data, finetune2.music) == (diffusion.model, diffusion.data, diffusion.music)
    assert finetune2.target_cache not in (diffusion.target_cache, finetune.target_cache)
    assert finetune2.init_weights and not finetune2.init_weights.startswith(finetune.out)  # a copy: out is rewritten
    # an experiment on top (not shipped): the motion networks and decoder trained on with the region prior, and
    # stage 2 fine-tuned from the shipped one on their flows, into runs/ so the shipped state is kept
    regions = load_config(LFAETrainConfig, CONFIGS / "lfae_regions_starter.toml")
    assert regions.model == guided.model and regions.loss.region_prior_weight > 0
    assert (regions.trainable, regions.init_weights) == ("all_but_encoder", f"{guided.out}/train_state.pt")
    finetune3 = load_config(DiffusionTrainConfig, CONFIGS / "diffusion_finetune3_starter.toml")
    assert finetune3.lfae_checkpoint == f"{regions.out}/checkpoint" and finetune3.out.startswith("runs/")
    assert (finetune3.model, finetune3.data, finetune3.music) == (diffusion.model, diffusion.data, diffusion.music)
    assert finetune3.target_cache not in (diffusion.target_cache, finetune.target_cache, finetune2.target_cache)
    assert finetune3.init_weights == f"{finetune2.out}/train_state.pt"
    # bones (not shipped yet): a joint head grown on the region-prior LFAE and trained alone, then the motion networks
    # and decoder trained to move the regions with it, trained on, and the upsampler grown on the decoder side; stage
    # 2 fine-tuned from the shipped one on the first bones flows, then on the newest, both states kept in the repo
    joints = load_config(LFAETrainConfig, CONFIGS / "lfae_joints_starter.toml")
    bones = load_config(LFAETrainConfig, CONFIGS / "lfae_bones_starter.toml")
    assert joints.model == bones.model == dataclasses.replace(regions.model, bone_motion=True)
    assert (joints.trainable, joints.init_weights) == ("joints", f"{regions.out}/train_state.pt")
    assert (bones.trainable, bones.init_weights) == ("all_but_encoder", f"{joints.out}/train_state.pt")
    assert bones.loss.joint_weight > 0 and bones.loss.region_prior_weight > 0
    finetune4 = load_config(DiffusionTrainConfig, CONFIGS / "diffusion_finetune4_starter.toml")
    assert finetune4.lfae_checkpoint == f"{bones.out}/checkpoint" and finetune4.out.startswith("runs/")
    assert finetune4.init_weights == f"{finetune2.out}/train_state.pt"
    assert (finetune4.model, finetune4.data, finetune4.music) == (diffusion.model, diffusion.data, diffusion.music)
    assert finetune4.target_cache not in (finetune2.target_cache, finetune3.target_cache)
    continued = load_config(LFAETrainConfig, CONFIGS / "lfae_bones_continued_starter.toml")
    assert continued.model == bones.model and continued.loss.joint_weight > bones.loss.joint_weight
    assert (continued.trainable, continued.init_weights) == ("all_but_encoder", f"{bones.out}/train_state.pt")
    upsampler = load_config(LFAETrainConfig, CONFIGS / "lfae_bones_upsampler_starter.toml")
    assert upsampler.model == dataclasses.replace(bones.model, learned_upsampling=True)
    assert (upsampler.trainable, upsampler.init_weights) == ("decoder", f"{continued.out}/train_state.pt")
    assert upsampler.out.startswith("checkpoints/starter/training/")  # its state is committed
    finetune5 = load_config(DiffusionTrainConfig, CONFIGS / "diffusion_finetune5_starter.toml")
    assert finetune5.lfae_checkpoint == f"{upsampler.out}/checkpoint"
    assert finetune5.out.startswith("checkpoints/starter/training/") and finetune5.out != finetune2.out
    assert finetune5.init_weights == f"{finetune4.out}/train_state.pt"
    assert (finetune5.model, finetune5.data, finetune5.music) == (diffusion.model, diffusion.data, diffusion.music)
    assert finetune5.target_cache not in (finetune2.target_cache, finetune4.target_cache)
    assert not finetune5.target_cache.startswith("checkpoints")
    # the occlusion map re-learnt with a price on hiding (the flows kept), and stage 2 fine-tuned on from the bones'
    visible = load_config(LFAETrainConfig, CONFIGS / "lfae_bones_visible_starter.toml")
    assert visible.model == upsampler.model and visible.loss.hidden_weight > 0
    assert (visible.trainable, visible.init_weights) == ("occlusion_and_decoder", f"{upsampler.out}/train_state.pt")
    finetune6 = load_config(DiffusionTrainConfig, CONFIGS / "diffusion_finetune6_starter.toml")
    assert finetune6.lfae_checkpoint == f"{visible.out}/checkpoint"
    assert finetune6.out == finetune5.out and not finetune6.init_weights.startswith(finetune5.out)  # a copy
    assert (finetune6.model, finetune6.data, finetune6.music) == (diffusion.model, diffusion.data, diffusion.music)
    assert finetune6.target_cache not in (finetune4.target_cache, finetune5.target_cache)
    # not shipped: the decoder re-learnt for a bicubic warp of the reference, with a price on blur, into runs/
    sharp = load_config(LFAETrainConfig, CONFIGS / "lfae_bones_sharp_starter.toml")
    assert sharp.model == dataclasses.replace(visible.model, reference_warp="bicubic") and sharp.loss.edge_weight > 0
    assert (sharp.trainable, sharp.init_weights) == ("decoder", f"{visible.out}/train_state.pt")
    assert sharp.out.startswith("runs/")
    load_config(LFAETrainConfig, CONFIGS / "lfae_tiny.toml")
    load_config(DiffusionTrainConfig, CONFIGS / "diffusion_tiny.toml")


def test_cli_train_prints_the_config_and_names_errors(tmp_path: Path, capsys):
    assert main(["train", "lfae", "--config", str(CONFIGS / "lfae_tiny.toml"), "--set", "steps=3",
                 "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3
    assert main(["train", "diffusion", "--config", str(CONFIGS / "diffusion_tiny.toml"),
                 "--set", f"lfae_checkpoint={tmp_path / 'nope'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dance-any-beat train: error: lfae_checkpoint") and "\n" not in err
    assert main(["train", "lfae", "--set", "stepz=3"]) == 2
    assert "unknown config keys ['stepz']" in capsys.readouterr().err
