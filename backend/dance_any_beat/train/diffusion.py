"""Stage 2 of DabFusion: train the music encoder and the 3D U-Net to generate latent flows and occlusion maps.

Launch (after stage 1; the config file's keys are the fields of `DiffusionTrainConfig`):

    dance-any-beat train diffusion --config configs/diffusion_starter.toml --set lfae_checkpoint=runs/lfae/checkpoint
    torchrun --standalone --nproc_per_node 4 -m dance_any_beat.cli train diffusion \\
        --config configs/diffusion_starter.toml --set device=cuda

Each step the frozen stage-1 LFAE turns a window of T frames into the target x0 (B, 3, T, h, w): the flow and
occlusion from the window's first frame to each frame (see `models.dabfusion`). The music encoder is trained
jointly with the U-Net (its frozen CLAP / Wav2CLIP towers, if any, are not). Running the same command again
resumes from OUT/train_state.pt. OUT/checkpoint/ is a full DabFusion checkpoint (kind "dabfusion": LFAE, music
encoder, U-Net and their config), all the pipeline needs; with `ema_decay` > 0 it holds the averaged weights.
When stage 1 has been trained further, `init_weights` starts a new run in another folder from this one's weights
(its targets change with the LFAE, so the old run cannot be resumed on it).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from dance_any_beat.checkpoint import CheckpointError
from dance_any_beat.diffusion import Conditioning, DiffusionConfig, GaussianDiffusion
from dance_any_beat.models.dabfusion import (
    DabFusion,
    DabFusionConfig,
    DataConfig,
    FlowCoding,
    lfae_targets,
    load_lfae_checkpoint,
)
from dance_any_beat.models.unet3d import UNet3D, UNet3DConfig
from dance_any_beat.music.encoder import MusicEncoder, MusicEncoderConfig, MusicInputs, prepare_audio
from dance_any_beat.styles import STYLE_NAMES
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
from dance_any_beat.train.datasets import MotionWindows, open_source
from dance_any_beat.train.target_cache import CachedWindows, build_target_cache, cache_key, load_target_cache


@dataclass
class DiffusionTrainConfig:
    """Every setting of a stage-2 run. Tables: `[data]` (windows), `[model]` (U-Net), `[diffusion]`, `[music]`.

    The U-Net's ref_channels, music_global_dim, music_frame_dim, num_frames and num_styles, and data.image_size,
    are set from the LFAE checkpoint, the music encoder and `[data]`; values given for them are replaced.
    """

    # data
    data_kind: Literal["procedural", "aist"] = "procedural"  # the procedural data set or AIST++ videos
    data_path: str = "datasets/procedural"  # procedural: the make-dataset --out folder; aist: the AIST++ root
    data_split: str = "train"  # procedural: a split folder under data_path; aist: train (anything else: test)
    windows_per_clip: int = 8  # random windows drawn per clip per epoch (fixed ones per clip with target_cache)
    target_cache: str | None = None  # file of the frozen LFAE's targets for fixed windows, built on first use
    #                                  (see train.target_cache): about twice the steps per second on a CPU
    # stage 1
    lfae_checkpoint: str | None = None  # the `checkpoint` folder of a `train lfae` run (kind "lfae"); frozen here
    # output
    out: str = "runs/diffusion"  # run folder: train_state.pt, log.csv, checkpoint/; an existing run is resumed
    init_weights: str | None = None  # a new run starts from these music-encoder and U-Net weights (another stage-2
    #                                  run's train_state.pt, its averaged ones, or a dabfusion checkpoint folder)
    #                                  with a fresh optimiser: fine-tuning after stage 1 was trained further
    # model
    data: DataConfig = field(default_factory=DataConfig)  # fps, frames per window, flow scale, styles
    model: UNet3DConfig = field(default_factory=UNet3DConfig)  # p_uncond / p_style_drop: guidance dropout rates
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    music: MusicEncoderConfig = field(default_factory=MusicEncoderConfig)  # parts ("mel", "beats"): no weights
    # optimisation (AdamW; linear warm-up, then cosine decay to min_lr at `steps`)
    batch_size: int = 4  # windows per process
    lr: float = 1e-4  # peak learning rate
    min_lr: float = 1e-5  # learning rate at the last step
    warmup_steps: int = 500  # linear warm-up from 0 to lr
    betas: tuple[float, ...] = (0.9, 0.999)  # Adam betas
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 = off
    steps: int = 100_000  # optimiser steps in total (a resumed run continues to this)
    ema_decay: float = 0.999  # exponential moving average of the weights, saved in the checkpoint; 0 = off
    target_chunk: int = 64  # frame pairs per frozen-LFAE pass when computing targets (caps memory)
    # logging and checkpoints
    log_every: int = 50  # steps between rows of log.csv (each row averages the steps since the last)
    checkpoint_every: int = 1000  # steps between checkpoint + train_state saves (and one at the end)
    progress: bool = True  # tqdm bar on rank 0
    # system
    num_workers: int = 2  # DataLoader processes per training process (0 = load in the training process)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: AmpMode = "auto"  # mixed precision on CUDA (auto = bf16 where supported, else fp16); never on CPU
    seed: int = 0  # model init, data order, random windows, noise and guidance dropout
    dump_rank_params: bool = False  # tests: each rank writes a digest of its final weights to OUT/params_rank<r>.txt

    def __post_init__(self) -> None:
        for name in ("windows_per_clip", "batch_size", "steps", "log_every", "checkpoint_every", "target_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        check_optimiser_settings(self)


class MotionDenoiser(nn.Module):
    """Music encoder + U-Net + the diffusion loss as one module, so DDP sees every trained weight in one forward."""

    def __init__(self, music: MusicEncoder, unet: UNet3D, diffusion: GaussianDiffusion) -> None:
        super().__init__()
        self.music = music
        self.unet = unet
        self.diffusion = diffusion  # not a module: the schedule holds no weights

    def forward(
        self,
        x0: Tensor,
        ref_latent: Tensor,
        waveforms: dict[int, Tensor],
        rhythm: Tensor,
        style: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        # x0: (B, 3, T, h, w) target; ref_latent: (B, C, h, w); waveforms: rate -> (B, N); rhythm: (B, T, R)
        music = self.music(MusicInputs(waveforms=waveforms), rhythm, n_frames=x0.shape[2])
        cond = Conditioning(ref_latent=ref_latent, music_global=music.global_, music_frames=music.frames, style=style)
        cfg = self.unet.config
        return self.diffusion.training_loss(
            self.unet, x0, cond, p_uncond=cfg.p_uncond, p_style_drop=cfg.p_style_drop, auto_style=cfg.num_styles,
            generator=generator,
        )  # fmt: skip


def check_lfae_checkpoint(path: str | None) -> str:
    """The stage-1 checkpoint path, or a CheckpointError that says how to get one."""
    if not path:
        raise CheckpointError(
            "lfae_checkpoint is not set: stage 2 needs a trained stage-1 LFAE. Train one with `dance-any-beat train "
            "lfae --config configs/lfae_starter.toml` and set lfae_checkpoint to its RUN_DIR/checkpoint"
        )
    if not Path(path).expanduser().exists():
        raise CheckpointError(
            f"lfae_checkpoint {path} does not exist: give the checkpoint folder of a `dance-any-beat train lfae` "
            "run (RUN_DIR/checkpoint, holding model.safetensors and config.json)"
        )
    return str(Path(path).expanduser())


def train_diffusion(config: DiffusionTrainConfig) -> Path:
    """Train (or resume) a stage-2 run; returns the run folder. Single process, or one rank under torchrun."""
    lfae_path = check_lfae_checkpoint(config.lfae_checkpoint)
    return run_distributed(config.device, lambda info: _train(config, info, lfae_path))


def initial_weights(path: str) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(music encoder, U-Net) weights of a stage-2 run's train_state.pt (the averaged ones when it kept them) or
    of a dabfusion checkpoint folder, with a clear error for anything else."""
    state = read_init_state(path, "diffusion", "unet", "a dabfusion checkpoint folder")
    if state is None:
        model = DabFusion.from_checkpoint(Path(path).expanduser())
        return model.music.state_dict(), model.unet.state_dict()
    return state.get("ema_music") or state["music"], state.get("ema_unet") or state["unet"]


def _train(config: DiffusionTrainConfig, info: DistInfo, lfae_path: str) -> Path:
    run_dir, device = Path(config.out), info.device
    amp_dtype = resolve_amp(config.amp, device)

    # the frozen stage-1 model and the full model config (U-Net widths, T and styles follow the other parts)
    lfae = load_lfae_checkpoint(lfae_path, device)
    bundle_config = DabFusionConfig.assemble(lfae.config, config.model, config.diffusion, config.music, config.data)
    data = bundle_config.data
    # data set style index (over STYLE_NAMES, len = unknown) -> this model's label (len(data.styles) = auto)
    style_map = torch.tensor([data.styles.index(n) if n in data.styles else len(data.styles)
                              for n in (*STYLE_NAMES, None)])  # fmt: skip

    # data: windows of T frames at the model's fps with their music, this rank's shard of a per-epoch shuffle
    source = open_source(config.data_kind, config.data_path, config.data_split)
    windows = MotionWindows(
        source,
        size=data.image_size,
        fps=data.fps,
        num_frames=data.num_frames,
        windows_per_clip=config.windows_per_clip,
        seed=config.seed,
    )
    dataset: MotionWindows | CachedWindows = windows
    if config.target_cache:
        dataset = open_target_cache(config, lfae, windows, data.flow_coding, info)
        config = dataclasses.replace(config, num_workers=0)  # the cache is in memory: nothing left to load
    loader, sampler = make_loader(dataset, config, info)

    # models and optimiser (same initial weights on every rank); the music towers stay out of the optimiser
    torch.manual_seed(config.seed)
    music = MusicEncoder(bundle_config.music).to(device)
    unet = UNet3D(bundle_config.unet).to(device)
    trained = [*music.trainable_parameters(), *unet.parameters()]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema_music = ema_unet = None
    if config.ema_decay > 0 and info.is_main:
        ema_music = MusicEncoder(bundle_config.music, towers=dict(music.towers)).to(device)  # towers shared
        ema_music.load_state_dict(music.state_dict())
        ema_unet = copy.deepcopy(unet)
        for module in (ema_music, ema_unet):
            module.requires_grad_(False).eval()

    # resume
    architecture = {
        "lfae": config_to_dict(bundle_config.lfae), "lfae_weights": params_digest(lfae),
        "model": config_to_dict(bundle_config.unet), "music": config_to_dict(bundle_config.music),
        "diffusion": config_to_dict(bundle_config.diffusion), "data": config_to_dict(bundle_config.data),
    }  # fmt: skip
    step = 0
    state = load_train_state(run_dir)
    if state is not None:
        check_resume(state, "diffusion", architecture, run_dir)
        music.load_state_dict(state["music"])
        unet.load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        if ema_music is not None and ema_unet is not None:
            ema_music.load_state_dict(state.get("ema_music") or state["music"])
            ema_unet.load_state_dict(state.get("ema_unet") or state["unet"])
        step = int(state["step"])
        del state
    elif config.init_weights:
        music_state, unet_state = initial_weights(config.init_weights)
        for module, weights, name in ((music, music_state, "music"), (unet, unet_state, "unet")):
            try:
                module.load_state_dict(weights)
            except RuntimeError as err:
                raise ValueError(
                    f"init_weights {config.init_weights}: its {name} weights do not fit this run's model settings "
                    f"({str(err).splitlines()[0]}); start from a run with the same [model] and [music]"
                ) from None
        if ema_music is not None and ema_unet is not None:
            ema_music.load_state_dict(music.state_dict())
            ema_unet.load_state_dict(unet.state_dict())
    generator = seeded_generator(device, config.seed, info.rank, step)  # diffusion steps, noise, dropout

    wrapped: nn.Module = MotionDenoiser(music, unet, GaussianDiffusion(bundle_config.diffusion))
    if info.distributed:
        wrapped = DistributedDataParallel(wrapped, device_ids=[device.index] if device.type == "cuda" else None)
    batches = epoch_batches(loader, sampler, step)

    def save() -> None:
        if not info.is_main:
            return
        training = {
            "step": step,
            "ema": ema_unet is not None,
            "lfae_checkpoint": lfae_path,
            "data_kind": config.data_kind,
            "data_path": config.data_path,
        }
        averaged = ema_music is not None and ema_unet is not None
        bundle = DabFusion(
            bundle_config, lfae=lfae, music=ema_music if averaged else music, unet=ema_unet if averaged else unet
        )
        bundle.save(run_dir / "checkpoint", extra=training)
        save_train_state(run_dir, {
            "kind": "diffusion", "step": step, "config": config_to_dict(config), "architecture": architecture,
            "music": music.state_dict(), "unet": unet.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "ema_music": None if ema_music is None else ema_music.state_dict(),
            "ema_unet": None if ema_unet is None else ema_unet.state_dict(),
        })  # fmt: skip

    wrapped.train()
    with RunLog(run_dir, step, config.steps, "diffusion", enabled=info.is_main, progress=config.progress) as log:
        while step < config.steps:
            batch = next(batches)
            rhythm = batch["rhythm"].to(device, non_blocking=True)  # (B, T, R)
            style = style_map[batch["style"]].to(device)  # (B,)
            rates = set(batch["sr"].tolist())
            assert len(rates) == 1, f"a batch mixes audio sample rates {sorted(rates)}"
            waveforms = {}
            if bundle_config.music.sample_rates():  # parts that read audio: resample once per batch (soxr, CPU)
                inputs = prepare_audio(batch["audio"], rates.pop(), bundle_config.music)
                waveforms = {rate: wave.to(device, non_blocking=True) for rate, wave in inputs.waveforms.items()}
            if "x0" in batch:  # from the target cache
                x0, ref_latent = batch["x0"].to(device), batch["ref_latent"].to(device)
            else:
                frames = batch["frames"].to(device, non_blocking=True).transpose(1, 2)  # (B, 3, T, S, S)
                with torch.no_grad(), autocast(device, amp_dtype):
                    x0, ref_latent = lfae_targets(lfae, frames, data.flow_coding, config.target_chunk)
            x0, ref_latent = x0.float(), ref_latent.float()  # (B, 3, T, h, w), (B, C, h, w)

            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(device, amp_dtype):
                loss = wrapped(x0, ref_latent, waveforms, rhythm, style, generator)
            check_finite(loss, step)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            grad_norm = nn.utils.clip_grad_norm_(trained, config.grad_clip or math.inf)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            if ema_music is not None and ema_unet is not None:
                decay = min(config.ema_decay, (1.0 + step) / (10.0 + step))  # short runs still average sensibly
                ema_update(ema_music, music, decay)
                ema_update(ema_unet, unet, decay)

            log.add({"loss": loss.detach(), "grad_norm": grad_norm}, lr)
            if step % config.log_every == 0 or step == config.steps:
                log.write(step)
            if step % config.checkpoint_every == 0 or step == config.steps:
                save()
    if not (run_dir / "checkpoint").exists():
        save()  # a finished run's state on a fresh checkout: its checkpoint (not committed) is written back
    if config.dump_rank_params:
        digest = params_digest(nn.ModuleDict({"music": music, "unet": unet}))
        (run_dir / f"params_rank{info.rank}.txt").write_text(digest + "\n")
    return run_dir


def open_target_cache(
    config: DiffusionTrainConfig, lfae: nn.Module, windows: MotionWindows, coding: FlowCoding, info: DistInfo
) -> CachedWindows:
    """The run's target cache: loaded when it matches the LFAE and the windows, built (one process) when missing."""
    path = Path(config.target_cache or "").expanduser()
    key = cache_key(params_digest(lfae), windows, coding, f"{config.data_kind}:{config.data_path}:"
                    f"{config.data_split}")  # fmt: skip
    if path.exists():
        return load_target_cache(path, key)
    if info.distributed:
        raise ValueError(
            f"target_cache {path} does not exist: build it with one process first (the same command without "
            "torchrun), then start the distributed run"
        )
    print(f"building the stage-2 target cache {path} (once; later runs and resumes read it)", flush=True)
    return build_target_cache(path, lfae, windows, coding, key, batch_size=config.batch_size,
                              num_workers=config.num_workers, progress=config.progress)  # fmt: skip


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, over the trained parameters."""
    params = dict(model.named_parameters())
    for name, average in ema.named_parameters():
        source = params[name]
        if source.requires_grad:
            average.lerp_(source.detach(), 1.0 - decay)
