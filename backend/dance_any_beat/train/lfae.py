"""Stage 1 of DabFusion: train the latent flow auto-encoder (LFAE) to rebuild one frame of a video from another.

Launch (the config file's keys are the fields of `LFAETrainConfig`; `--set key=value` overrides any of them):

    dance-any-beat make-dataset --out datasets/procedural --num-clips 2000 --split train
    dance-any-beat train lfae --config configs/lfae_starter.toml
    dance-any-beat train lfae --config configs/lfae_starter.toml --set device=cuda --set batch_size=32
    torchrun --standalone --nproc_per_node 4 -m dance_any_beat.cli train lfae --config configs/lfae_starter.toml

Running the same command again resumes from OUT/train_state.pt (model, optimiser, step); a changed model
config is refused. OUT/log.csv has one row per `log_every` steps; OUT/checkpoint/ is the stage-1 checkpoint
(kind "lfae") that `train diffusion` reads as its `lfae_checkpoint`.

`--set trainable=decoder` fine-tunes only the decoder of an existing LFAE (`init_weights`; switch the
equivariance terms off): the encoder and the motion networks stay frozen, so the flows, occlusions and reference
latents a stage-2 model was trained on are unchanged and `dance-any-beat export --lfae` can ship the new decoder
with it, as Stable Diffusion's VAE decoder was fine-tuned alone. `--set trainable=all_but_encoder` also trains
the motion networks but keeps the encoder, so the reference latents stage 2 is conditioned on stay the same: the
flows change, so fine-tune stage 2 on the new LFAE after (`train diffusion --set init_weights=...`), which is then
much shorter than training it anew. `--set trainable=joints` trains only the joint head a `bone_motion` LFAE grows
on its init_weights, on the data's joints (`loss.joint_weight`), before its motion networks learn to use it.
`--set trainable=occlusion_and_decoder` re-learns only the occlusion map's last layer and the decoder: the flows
stay those stage 2 learnt, so stage 2 only has to follow the new occlusions.

The plumbing both stages share (AMP, learning-rate schedule, resume checks, logs) is in `train.common`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from dance_any_beat.models.dabfusion import load_lfae_checkpoint, save_lfae_checkpoint
from dance_any_beat.models.lfae import LFAE, LFAEConfig
from dance_any_beat.models.losses import JOINTS_NEED_BONE_MOTION, LFAELoss, LFAELossConfig
from dance_any_beat.train.common import (
    AmpMode,
    DistInfo,
    RunLog,
    autocast,
    check_finite,
    check_optimiser_settings,
    check_resume,
    config_to_dict,
    epoch_batches,
    load_train_state,
    lr_at,
    make_loader,
    params_digest,
    read_init_state,
    resolve_amp,
    run_distributed,
    save_train_state,
    seeded_generator,
)
from dance_any_beat.train.datasets import FramePairs, open_source

Trainable = Literal["all", "decoder", "all_but_encoder", "joints", "occlusion_and_decoder"]
# The LFAE parts each fine-tune mode optimises ("all": every one); the rest stay frozen. "joints": only the head
# that a bone_motion LFAE grows on its init_weights to find the skeleton's joints, a warm-up before the
# motion networks learn to use them. "occlusion_and_decoder": the occlusion map's last layer and the decoder, the
# flows kept (with loss.hidden_weight, to hide less of the reference where the decoder would paint it blurred).
TRAINED_PARTS: dict[str, tuple[str, ...]] = {
    "decoder": ("decoder",),
    "all_but_encoder": ("region_predictor", "dense_motion", "decoder"),
    "joints": ("region_predictor.joint_head",),
    "occlusion_and_decoder": ("dense_motion.occlusion", "decoder"),
}
TRAINABLE: tuple[str, ...] = get_args(Trainable)


@dataclass
class LFAETrainConfig:
    """Every setting of a stage-1 run; a TOML file gives any subset, `[model]` and `[loss]` are tables."""

    # data
    data_kind: Literal["procedural", "aist"] = "procedural"  # the procedural data set or AIST++ videos
    data_path: str = "datasets/procedural"  # procedural: the make-dataset --out folder; aist: the AIST++ root
    data_split: str = "train"  # procedural: a split folder under data_path; aist: train (anything else: test)
    pairs_per_clip: int = 16  # random (reference, drive) frame pairs drawn per clip per epoch
    # output
    out: str = "runs/lfae"  # run folder: train_state.pt, log.csv, checkpoint/; an existing run there is resumed
    init_weights: str | None = None  # a new run starts from these LFAE weights (another run's train_state.pt or
    #                                  stage-1 checkpoint folder; same layers) with a fresh optimiser; unused on resume
    # model and loss
    model: LFAEConfig = field(default_factory=LFAEConfig)
    loss: LFAELossConfig = field(default_factory=LFAELossConfig)
    trainable: Trainable = "all"  # what is optimised; see the module doc
    affine_warmup_steps: int = 1000  # region motions ramp from shift-only to affine (see LFAE.set_affine_strength)
    # optimisation (AdamW; linear warm-up, then cosine decay to min_lr at `steps`)
    batch_size: int = 8  # per process; the effective batch is batch_size x processes
    lr: float = 2e-4  # peak learning rate
    grown_lr_scale: float = 1.0  # learning rate x this for layers grown on init_weights (GROWN_LAYERS): they start
    #                              from zero and have far to go while the rest is only fine-tuned
    min_lr: float = 2e-5  # learning rate at the last step
    warmup_steps: int = 200  # linear warm-up from 0 to lr
    betas: tuple[float, ...] = (0.5, 0.999)  # Adam betas (FOMM's)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 = off
    steps: int = 50_000  # optimiser steps in total (a resumed run continues to this)
    # logging and checkpoints
    log_every: int = 50  # steps between rows of log.csv (each row averages the steps since the last)
    checkpoint_every: int = 1000  # steps between checkpoint + train_state saves (and one at the end)
    progress: bool = True  # tqdm bar on rank 0
    # system
    num_workers: int = 2  # DataLoader processes per training process (0 = load in the training process)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: AmpMode = "auto"  # mixed precision on CUDA (auto = bf16 where supported, else fp16); never on CPU
    seed: int = 0  # model init, data order, random pairs, loss randomness
    dump_rank_params: bool = False  # tests: each rank writes a digest of its final weights to OUT/params_rank<r>.txt

    def __post_init__(self) -> None:
        if self.grown_lr_scale <= 0:
            raise ValueError(f"grown_lr_scale must be > 0, got {self.grown_lr_scale}")
        for name in ("pairs_per_clip", "batch_size", "steps", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_optimiser_settings(self)
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {', '.join(TRAINABLE)}, got {self.trainable!r}")
        if self.trainable != "all" and "region_predictor" not in TRAINED_PARTS[self.trainable]:
            if self.loss.equivariance_shift_weight or self.loss.equivariance_affine_weight:
                raise ValueError(
                    f"trainable = {self.trainable!r} freezes the region maps, which the equivariance terms train: "
                    "set loss.equivariance_shift_weight = 0 and loss.equivariance_affine_weight = 0"
                )
        if self.loss.joint_weight > 0 and not self.model.bone_motion:  # caught here, not at the first step
            raise ValueError(JOINTS_NEED_BONE_MOTION)
        if self.trainable == "joints" and not self.model.bone_motion:
            raise ValueError("trainable = 'joints' trains the joint head of a bone_motion LFAE: set model.bone_motion")
        if self.trainable != "all" and not self.init_weights:
            raise ValueError(f"trainable = {self.trainable!r} fine-tunes an existing LFAE: set init_weights to it")


# ----------------------------------------------------------------------------------------------------------------
# The run


class LFAEWithLoss(nn.Module):
    """The LFAE and its loss as one module, so DDP sees every use of the weights in one forward (the
    equivariance term runs the region predictor a second time)."""

    def __init__(self, lfae: LFAE, loss: LFAELoss) -> None:
        super().__init__()
        self.lfae = lfae
        self.loss = loss

    def forward(
        self, ref: Tensor, drive: Tensor, generator: torch.Generator | None = None,
        joints: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        output = self.lfae(ref, drive)
        return self.loss(self.lfae, output, drive, generator, joints)


def initial_weights(path: str) -> dict[str, Tensor]:
    """LFAE weights from a stage-1 run's train_state.pt or a stage-1 checkpoint folder, with a clear error else."""
    state = read_init_state(path, "lfae", "model", "its checkpoint folder")
    return load_lfae_checkpoint(Path(path).expanduser()).state_dict() if state is None else state["model"]


# Layers a model may add to its init_weights; the decoder's start as (near) no-ops, the joint head is trained alone
# first (trainable = "joints").
GROWN_LAYERS = ("decoder.guides.", "decoder.upsampler.", "region_predictor.joint_head.")


def load_initial_weights(model: LFAE, state: dict[str, Tensor], source: str) -> None:
    """Load init_weights; layers added since (`decoder_guide`) keep their zero start, anything else must match."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a tensor of another shape
        raise ValueError(f"init_weights {source} does not fit this run's [model]: {err}") from None
    missing = [k for k in result.missing_keys if not k.startswith(GROWN_LAYERS)]
    if missing or result.unexpected_keys:
        extra = result.unexpected_keys[:3]
        detail = f"lacks {missing[:3]}" if missing else f"has layers this model lacks, e.g. {extra}"
        raise ValueError(f"init_weights {source} does not fit this run's [model]: it {detail}")


def parameter_groups(model: LFAE, trained: list[nn.Parameter], grown_lr_scale: float) -> list[dict]:
    """The optimiser's groups: grown layers (GROWN_LAYERS) apart when their learning rate is scaled."""
    if grown_lr_scale == 1.0:
        return [{"params": trained, "lr_scale": 1.0}]
    grown_ids = {id(p) for name, p in model.named_parameters() if name.startswith(GROWN_LAYERS)}
    rest = [p for p in trained if id(p) not in grown_ids]
    grown = [p for p in trained if id(p) in grown_ids]
    return [{"params": rest, "lr_scale": 1.0}, {"params": grown, "lr_scale": grown_lr_scale}]


def trainable_parameters(model: LFAE, trainable: str) -> list[nn.Parameter]:
    """The parameters a run optimises; every other one is frozen (no gradient is even computed for it)."""
    if trainable == "all":
        return list(model.parameters())
    model.requires_grad_(False)
    parts = [model.get_submodule(name) for name in TRAINED_PARTS[trainable]]
    for part in parts:
        part.requires_grad_(True)
    return [p for part in parts for p in part.parameters()]


def train_lfae(config: LFAETrainConfig) -> Path:
    """Train (or resume) a stage-1 run; returns the run folder. Single process, or one rank under torchrun."""
    return run_distributed(config.device, lambda info: _train(config, info))


def _train(config: LFAETrainConfig, info: DistInfo) -> Path:
    run_dir, device = Path(config.out), info.device
    amp_dtype = resolve_amp(config.amp, device)

    # data: random frame pairs of one clip, this rank's shard of a per-epoch shuffle
    source = open_source(config.data_kind, config.data_path, config.data_split)
    dataset = FramePairs(source, size=config.model.image_size, pairs_per_clip=config.pairs_per_clip, seed=config.seed)
    loader, sampler = make_loader(dataset, config, info)

    # model, loss, optimiser (the same initial weights on every rank; DDP also broadcasts rank 0's)
    torch.manual_seed(config.seed)
    model = LFAE(config.model).to(device)
    criterion = LFAELoss(config.loss).to(device)
    trained = trainable_parameters(model, config.trainable)
    groups = parameter_groups(model, trained, config.grown_lr_scale)
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    # resume
    architecture = {"model": config_to_dict(config.model), "trainable": config.trainable}
    step = 0
    state = load_train_state(run_dir)
    if state is not None:
        state.setdefault("architecture", {}).setdefault("trainable", "all")  # states from before the setting
        check_resume(state, "lfae", architecture, run_dir)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group, made in zip(optimizer.param_groups, groups, strict=True):  # saved settings replaced the config's
            group["lr_scale"] = made["lr_scale"]
        scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
        del state
    elif config.init_weights:
        load_initial_weights(model, initial_weights(config.init_weights), config.init_weights)
    generator = seeded_generator(device, config.seed, info.rank, step)  # the loss's random warps

    wrapped = LFAEWithLoss(model, criterion)
    if info.distributed:
        wrapped = DistributedDataParallel(wrapped, device_ids=[device.index] if device.type == "cuda" else None)
    batches = epoch_batches(loader, sampler, step)

    def save() -> None:
        if not info.is_main:
            return
        training = {"step": step, "data_kind": config.data_kind, "data_path": config.data_path}
        save_lfae_checkpoint(run_dir / "checkpoint", model, extra=training)
        save_train_state(run_dir, {
            "kind": "lfae", "step": step, "config": config_to_dict(config), "architecture": architecture,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
        })  # fmt: skip

    model.train()
    with RunLog(run_dir, step, config.steps, "lfae", enabled=info.is_main, progress=config.progress) as log:
        while step < config.steps:
            batch = next(batches)
            ref = batch["ref"].to(device, non_blocking=True)  # (B, 3, S, S)
            drive = batch["drive"].to(device, non_blocking=True)  # (B, 3, S, S)
            joints = None  # the skeleton, where the data set has one (for the region prior)
            if "ref_joints" in batch:
                joints = (batch["ref_joints"].to(device), batch["drive_joints"].to(device))  # (B, J, 2) each
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            warmup = config.affine_warmup_steps
            model.set_affine_strength(min(1.0, step / warmup) if warmup > 0 else 1.0)

            with autocast(device, amp_dtype):
                loss, parts = wrapped(ref, drive, generator, joints)
            check_finite(loss, step)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            grad_norm = nn.utils.clip_grad_norm_(trained, config.grad_clip or math.inf)
            scaler.step(optimizer)
            scaler.update()
            step += 1

            log.add({"loss": loss.detach(), **parts, "grad_norm": grad_norm}, lr)
            if step % config.log_every == 0 or step == config.steps:
                log.write(step)
            if step % config.checkpoint_every == 0 or step == config.steps:
                save()
    if not (run_dir / "checkpoint").exists():
        save()  # a finished run's state on a fresh checkout: its checkpoint (not committed) is written back
    if config.dump_rank_params:
        (run_dir / f"params_rank{info.rank}.txt").write_text(params_digest(model) + "\n")
    return run_dir
