"""The DabFusion model bundle: the frozen LFAE (stage 1), the music encoder and the 3D U-Net (stage 2).

One checkpoint of kind "dabfusion" holds all three parts and the `DabFusionConfig` that rebuilds them, so the
pipeline needs nothing else. A stage-1 checkpoint (kind "lfae") holds the LFAE alone: it is what stage-2
training starts from, and it cannot generate motion by itself.

The diffusion target x0 (B, 3, T, h, w) is what the U-Net learns to generate: for each frame of a window, the
LFAE's backward latent flow from the window's first frame (the reference), coded into [-1, 1] by `FlowCoding`
(`DataConfig.flow_scale` and `flow_knee`), and its occlusion map mapped from [0, 1] to [-1, 1]. The sampler's
dynamic thresholding assumes data in [-1, 1]; flows are normalised grid offsets, mostly far below 1, so
without the coding they would use a small part of that range.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dance_any_beat.checkpoint import CheckpointError, load_checkpoint, load_part, read_config, save_checkpoint
from dance_any_beat.diffusion import Conditioning, DiffusionConfig
from dance_any_beat.models.lfae import LFAE, Decoder, LFAEConfig
from dance_any_beat.models.unet3d import UNet3D, UNet3DConfig
from dance_any_beat.music.encoder import (
    FrozenTower,
    MusicEmbedding,
    MusicEncoder,
    MusicEncoderConfig,
    MusicInputs,
    _tower_weights,
)
from dance_any_beat.styles import STYLE_NAMES
from dance_any_beat.weights import require_file

LFAE_KIND = "lfae"  # checkpoint kind of a stage-1 run: the LFAE alone
DABFUSION_KIND = "dabfusion"  # checkpoint kind of a stage-2 run: LFAE + music encoder + U-Net
PARTS = ("lfae", "music", "unet")  # part names inside a dabfusion checkpoint


@dataclass
class DataConfig:
    """What one generated window is: frame size, frame rate, length, flow scaling and the style vocabulary."""

    image_size: int = 128  # side of the frames in and out, pixels (the LFAE's image_size)
    fps: float = 10.0  # frames per second of the model's windows (training samples frames at this rate)
    num_frames: int = 16  # T, frames per training window (the U-Net runs any T at generation time)
    flow_scale: float = 0.5  # the flow coded as x0 = +-1: flows up to half the frame are kept (see FlowCoding)
    flow_knee: float = 0.0  # 0: x0 = flow / flow_scale; > 0: logarithmic above this flow (see FlowCoding)
    styles: tuple[str, ...] = STYLE_NAMES  # dance-style labels, in the order of the U-Net's style embedding

    def __post_init__(self) -> None:
        self.styles = tuple(self.styles)  # JSON gives a list back
        if self.image_size < 1 or self.num_frames < 1 or self.fps <= 0 or self.flow_scale <= 0:
            raise ValueError(
                f"need image_size >= 1, num_frames >= 1, fps > 0, flow_scale > 0; got {self.image_size}, "
                f"{self.num_frames}, {self.fps}, {self.flow_scale}"
            )
        if self.flow_knee < 0:
            raise ValueError(f"flow_knee must be >= 0, got {self.flow_knee}")
        unknown = [s for s in self.styles if s not in STYLE_NAMES]
        if unknown or len(set(self.styles)) != len(self.styles):
            raise ValueError(f"styles must be distinct names from {list(STYLE_NAMES)}, got {list(self.styles)}")


    @property
    def flow_coding(self) -> FlowCoding:
        return FlowCoding(self.flow_scale, self.flow_knee)


@dataclass(frozen=True)
class FlowCoding:
    """How a flow becomes the x0 flow channels in [-1, 1], and back.

    Linear (knee 0): clamp(flow / scale, -1, 1). With a knee: asinh(flow / knee) / asinh(scale / knee),
    clamped; about linear below the knee and logarithmic above it. A dancer's flow is mostly tiny (the
    procedural set: standard deviation 0.015 in normalised offsets, 3% of x0's range when linear at scale 0.5),
    so linearly it drowns in the diffusion noise; the knee lifts it to a usable range while motions up to
    `scale` still fit.
    """

    scale: float = 0.5
    knee: float = 0.0

    def encode(self, flow: Tensor) -> Tensor:
        if self.knee <= 0:
            return (flow / self.scale).clamp(-1.0, 1.0)
        return (torch.asinh(flow / self.knee) / math.asinh(self.scale / self.knee)).clamp(-1.0, 1.0)

    def decode(self, x: Tensor) -> Tensor:
        if self.knee <= 0:
            return x * self.scale
        return torch.sinh(x * math.asinh(self.scale / self.knee)) * self.knee


def _coding(coding: FlowCoding | float) -> FlowCoding:
    return coding if isinstance(coding, FlowCoding) else FlowCoding(float(coding))


def _as(cls: type, value: Any) -> Any:
    """A nested config from its JSON dict (or itself when already built)."""
    return cls(**value) if isinstance(value, dict) else value


def _derived_unet_fields(lfae: LFAEConfig, music: MusicEncoderConfig, data: DataConfig) -> dict[str, int]:
    return {
        "ref_channels": lfae.latent_channels,
        "music_global_dim": music.global_dim,
        "music_frame_dim": music.frame_dim,
        "num_frames": data.num_frames,
        "num_styles": len(data.styles),
    }


def _starter_unet() -> UNet3DConfig:
    """UNet3DConfig.cpu_starter() fitted to the default LFAE, music encoder and data: the CPU starter model."""
    return dataclasses.replace(
        UNet3DConfig.cpu_starter(), **_derived_unet_fields(LFAEConfig(), MusicEncoderConfig(), DataConfig())
    )


@dataclass
class DabFusionConfig:
    """Everything that rebuilds a DabFusion model; round-trips through `to_dict` -> JSON -> `from_dict`."""

    lfae: LFAEConfig = field(default_factory=LFAEConfig)
    unet: UNet3DConfig = field(default_factory=lambda: _starter_unet())
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    music: MusicEncoderConfig = field(default_factory=MusicEncoderConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        self.lfae = _as(LFAEConfig, self.lfae)
        self.unet = _as(UNet3DConfig, self.unet)
        self.diffusion = _as(DiffusionConfig, self.diffusion)
        self.music = _as(MusicEncoderConfig, self.music)
        self.data = _as(DataConfig, self.data)
        expected = self.derived_unet_fields()
        wrong = {k: (getattr(self.unet, k), v) for k, v in expected.items() if getattr(self.unet, k) != v}
        if wrong:
            detail = ", ".join(f"unet.{k} = {got} but must be {want}" for k, (got, want) in wrong.items())
            raise ValueError(f"the parts of the DabFusion config do not fit together: {detail}")
        if self.unet.in_channels != 3 or self.unet.out_channels != 3:
            raise ValueError("the U-Net generates flow (2) + occlusion (1): in_channels and out_channels must be 3")
        if self.data.image_size != self.lfae.image_size:
            raise ValueError(f"data.image_size {self.data.image_size} != lfae.image_size {self.lfae.image_size}")
        if self.lfae.latent_size % self.unet.downsample_factor:
            raise ValueError(
                f"the latent side {self.lfae.latent_size} must be divisible by the U-Net's downsampling "
                f"{self.unet.downsample_factor} ({len(self.unet.channel_mults)} levels)"
            )

    def derived_unet_fields(self) -> dict[str, int]:
        """U-Net fields fixed by the other parts: the reference latent width, the music widths, T, the styles."""
        return _derived_unet_fields(self.lfae, self.music, self.data)

    @classmethod
    def assemble(
        cls,
        lfae: LFAEConfig,
        unet: UNet3DConfig,
        diffusion: DiffusionConfig,
        music: MusicEncoderConfig,
        data: DataConfig,
    ) -> DabFusionConfig:
        """The config with the U-Net's derived fields (and data.image_size) set from the other parts."""
        data = dataclasses.replace(data, image_size=lfae.image_size)
        unet = dataclasses.replace(unet, **_derived_unet_fields(lfae, music, data))
        return cls(lfae=lfae, unet=unet, diffusion=diffusion, music=music, data=data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples become lists)."""
        import json

        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DabFusionConfig:
        """From `to_dict` output or a checkpoint header (its other keys, such as "format", are ignored)."""
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


# ----------------------------------------------------------------------------------------------------------------
# Flows and occlusions <-> the diffusion target


def motion_to_x0(flow: Tensor, occlusion: Tensor, coding: FlowCoding | float) -> Tensor:
    """flow (B, 2, T, h, w) normalised offsets, occlusion (B, 1, T, h, w) in [0, 1] -> x0 (B, 3, T, h, w), [-1, 1].

    coding: a FlowCoding, or a plain flow scale (linear coding)."""
    assert flow.ndim == 5 and flow.shape[1] == 2, f"flow must be (B, 2, T, h, w), got {tuple(flow.shape)}"
    assert occlusion.shape == (flow.shape[0], 1, *flow.shape[2:]), (
        f"occlusion must be (B, 1, T, h, w) like flow {tuple(flow.shape)}, got {tuple(occlusion.shape)}"
    )
    return torch.cat([_coding(coding).encode(flow), occlusion * 2.0 - 1.0], dim=1)  # (B, 3, T, h, w)


def x0_to_motion(x0: Tensor, coding: FlowCoding | float) -> tuple[Tensor, Tensor]:
    """x0 (B, 3, T, h, w) -> flow (B, 2, T, h, w) in normalised offsets, occlusion (B, 1, T, h, w) in [0, 1]."""
    assert x0.ndim == 5 and x0.shape[1] == 3, f"x0 must be (B, 3, T, h, w), got {tuple(x0.shape)}"
    return _coding(coding).decode(x0[:, :2]), ((x0[:, 2:] + 1.0) * 0.5).clamp(0.0, 1.0)


@torch.no_grad()
def lfae_targets(lfae: LFAE, frames: Tensor, coding: FlowCoding | float, chunk: int = 64) -> tuple[Tensor, Tensor]:
    """frames (B, 3, T, S, S) in [0, 1] -> (x0 (B, 3, T, h, w), reference latent (B, C, h, w)).

    The reference is each window's first frame; the LFAE predicts the flow and occlusion from it to every frame
    (the first included), `chunk` frame pairs at a time.
    """
    s = lfae.config.image_size
    assert frames.ndim == 5 and tuple(frames.shape[1:2] + frames.shape[3:]) == (3, s, s), (
        f"frames must be (B, 3, T, {s}, {s}) RGB in [0, 1], got {tuple(frames.shape)}"
    )
    b, _, t = frames.shape[:3]
    ref = frames[:, :, 0]  # (B, 3, S, S)
    drive = frames.transpose(1, 2).reshape(b * t, 3, s, s)  # (B*T, 3, S, S), frame-major within each sample
    refs = ref[:, None].expand(b, t, 3, s, s).reshape(b * t, 3, s, s)  # (B*T, 3, S, S)
    flows, occlusions = [], []
    for i in range(0, b * t, chunk):
        motion = lfae.predict_flow(refs[i : i + chunk], drive[i : i + chunk])
        flows.append(motion.flow)  # (n, 2, h, w)
        occlusions.append(motion.occlusion)  # (n, 1, h, w)
    h = lfae.config.latent_size
    flow = torch.cat(flows).reshape(b, t, 2, h, h).transpose(1, 2)  # (B, 2, T, h, w)
    occlusion = torch.cat(occlusions).reshape(b, t, 1, h, h).transpose(1, 2)  # (B, 1, T, h, w)
    return motion_to_x0(flow.float(), occlusion.float(), coding), lfae.encode(ref)


@torch.no_grad()
def render_frames(
    lfae: LFAE, ref_latent: Tensor, x0: Tensor, coding: FlowCoding | float, chunk: int = 16,
    ref_image: Tensor | None = None,
) -> Tensor:
    """Warp the reference latent (B, C, h, w) by each frame's flow and occlusion in x0, decode: (B, 3, T, S, S).

    ref_image (B, 3, S, S), the reference frame, is needed by an LFAE that composites it (`composite_reference`).
    `chunk` frames go through the decoder at a time, which caps memory for long windows.
    """
    flow, occlusion = x0_to_motion(x0, coding)  # (B, 2, T, h, w), (B, 1, T, h, w)
    b, _, t, h, w = flow.shape
    flow = flow.transpose(1, 2).reshape(b * t, 2, h, w)  # (B*T, 2, h, w)
    occlusion = occlusion.transpose(1, 2).reshape(b * t, 1, h, w)  # (B*T, 1, h, w)
    latent = ref_latent[:, None].expand(b, t, *ref_latent.shape[1:]).reshape(b * t, *ref_latent.shape[1:])
    image = None
    if ref_image is not None:
        image = ref_image[:, None].expand(b, t, *ref_image.shape[1:]).reshape(b * t, *ref_image.shape[1:])
    out = []
    for i in range(0, b * t, chunk):
        part = slice(i, i + chunk)
        out.append(
            lfae.render(
                None if image is None else image[part].to(latent.dtype),
                latent[part],
                flow[part].to(latent.dtype),
                occlusion[part].to(latent.dtype),
            )
        )  # (n, 3, S, S)
    s = lfae.config.image_size
    return torch.cat(out).reshape(b, t, 3, s, s).transpose(1, 2)  # (B, 3, T, S, S)


# ----------------------------------------------------------------------------------------------------------------
# Stage-1 checkpoints


def save_lfae_checkpoint(
    path: str | Path, lfae: LFAE, *, extra: dict[str, Any] | None = None, dtype: torch.dtype | None = None
) -> Path:
    """Write a stage-1 checkpoint (kind "lfae"): the LFAE's weights and config, plus `extra` under "training"."""
    config = {"lfae": dataclasses.asdict(lfae.config), "training": dict(extra or {})}
    return save_checkpoint(path, {"lfae": lfae.state_dict()}, config, kind=LFAE_KIND, dtype=dtype)


def load_lfae_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> LFAE:
    """The LFAE of a stage-1 checkpoint, frozen and in eval mode (stage 2 trains on its flows)."""
    header = read_config(path)
    kind = header.get("kind")
    if kind == DABFUSION_KIND:
        raise CheckpointError(
            f"{path} is a full DabFusion checkpoint (kind 'dabfusion'), but a stage-1 LFAE checkpoint (kind 'lfae') "
            "is needed here: give the checkpoint folder of a `dance-any-beat train lfae` run (RUN_DIR/checkpoint)"
        )
    if kind != LFAE_KIND:
        raise CheckpointError(f"{path} holds a {kind!r} model, but a stage-1 LFAE checkpoint (kind 'lfae') is needed")
    config, parts = load_checkpoint(path, kind=LFAE_KIND)
    try:
        lfae_config = LFAEConfig(**config["lfae"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"the config of {path} does not describe an LFAE ({err})") from None
    lfae = LFAE(lfae_config)
    load_part(lfae, parts.get("lfae", {}), part="lfae", source=path)
    lfae.requires_grad_(False)
    return lfae.to(device).eval()


# ----------------------------------------------------------------------------------------------------------------
# The frozen towers' weight files on the machine that loads a checkpoint

MUSIC_WEIGHT_OPTIONS = {"clap": "--clap-weights", "wav2clip": "--wav2clip-weights"}  # music_weights key -> option


def music_with_weights(music: MusicEncoderConfig, weights: Mapping[str, str | None] | None) -> MusicEncoderConfig:
    """`music` with the given tower weight files (see `DabFusion.from_checkpoint`), each checked to exist.

    The towers the model uses are checked before anything is built, so that a missing file is reported with
    the option that sets it here (`--clap-weights`), not only the config key recorded at training time.
    """
    given = {k: v for k, v in (weights or {}).items() if v}
    unknown = sorted(set(given) - set(MUSIC_WEIGHT_OPTIONS))
    if unknown:
        raise ValueError(f"music_weights keys must be among {list(MUSIC_WEIGHT_OPTIONS)}, got {unknown}")
    for part, option in MUSIC_WEIGHT_OPTIONS.items():
        if part not in music.parts:
            continue  # an override for a part this model does not use is ignored
        key = f"{part}_checkpoint"
        spec = _tower_weights(part)
        if part in given:
            file = require_file(given[part], dataclasses.replace(spec, option=option, has_default=False))
            music = dataclasses.replace(music, **{key: str(file)})
        else:
            require_file(getattr(music, key), dataclasses.replace(spec, option=f"{option} (or music.{key})"))
    return music


# ----------------------------------------------------------------------------------------------------------------
# The bundle


# the LFAE settings only the decoder reads (a decoder fine-tune may change them)
DECODER_FIELDS = ("decoder_res_blocks", "decoder_guide", "learned_upsampling", "reference_warp")


def decoder_fields(config: LFAEConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in DECODER_FIELDS}


class DabFusion(nn.Module):
    """LFAE + music encoder + U-Net, built from one `DabFusionConfig`; the unit the pipeline loads and saves.

    Parts may be given already built (stage-2 training shares its frozen LFAE and trained modules this way).
    """

    def __init__(
        self,
        config: DabFusionConfig,
        *,
        lfae: LFAE | None = None,
        music: MusicEncoder | None = None,
        unet: UNet3D | None = None,
        towers: dict[str, FrozenTower] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.lfae = lfae if lfae is not None else LFAE(config.lfae)
        self.music = music if music is not None else MusicEncoder(config.music, towers)
        self.unet = unet if unet is not None else UNet3D(config.unet)
        for name, module in (("lfae", self.lfae), ("music", self.music), ("unet", self.unet)):
            expected = getattr(config, name)
            assert module.config == expected, f"the given {name} was built with another config than config.{name}"

    # -- checkpoints

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        music_weights: Mapping[str, str | None] | None = None,
    ) -> DabFusion:
        """Rebuild the model from a "dabfusion" checkpoint folder, in eval mode on `device`.

        music_weights: {"clap": FILE, "wav2clip": FILE} (the `--clap-weights` / `--wav2clip-weights` options):
        the frozen towers' weight files on this machine, in place of the paths recorded in the checkpoint's
        config (those of the machine it was trained on). None values are not set; an override for a part the
        model does not use is ignored; another key is a ValueError. A missing file raises MissingWeightsError
        naming the option.
        """
        header = read_config(path)
        if header.get("kind") == LFAE_KIND:
            raise CheckpointError(
                f"{path} is a stage-1 checkpoint (kind 'lfae'): it holds the flow auto-encoder only and cannot "
                "generate motion. Train stage 2 on it (`dance-any-beat train diffusion --config "
                f"configs/diffusion_starter.toml --set lfae_checkpoint={path}`) and use that run's checkpoint "
                "folder, or give a full DabFusion checkpoint (kind 'dabfusion')"
            )
        config_dict, parts = load_checkpoint(path, kind=DABFUSION_KIND, dtype=dtype)
        try:
            config = DabFusionConfig.from_dict(config_dict)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"the config of {path} does not describe a DabFusion model ({err})") from None
        config.music = music_with_weights(config.music, music_weights)
        missing = [p for p in PARTS if p not in parts]
        if missing:
            raise CheckpointError(f"{path} lacks the {', '.join(map(repr, missing))} weights of a DabFusion model")
        model = cls(config)
        for name in PARTS:
            load_part(getattr(model, name), parts[name], part=name, source=path)
        model.lfae.requires_grad_(False)
        return model.to(device=device, dtype=dtype).eval()

    def part_states(self) -> dict[str, dict[str, Tensor]]:
        """Part name -> state dict, as stored in the checkpoint (the music encoder's frozen towers excluded)."""
        return {name: getattr(self, name).state_dict() for name in PARTS}

    def save(self, path: str | Path, dtype: torch.dtype | None = None, *, extra: dict[str, Any] | None = None) -> Path:
        """Write a "dabfusion" checkpoint; `dtype` (e.g. torch.float16) shrinks it for shipping."""
        config = {**self.config.to_dict(), "training": dict(extra or {})}
        return save_checkpoint(path, self.part_states(), config, kind=DABFUSION_KIND, dtype=dtype)

    def take_decoder(self, lfae: LFAE, source: str | Path = "the given LFAE") -> None:
        """Use `lfae`'s decoder: allowed only when everything stage 2 learned from (encoder, region predictor,
        dense motion) is weight for weight this model's own, as after `train lfae` with trainable = "decoder"."""
        if dataclasses.replace(lfae.config, **decoder_fields(self.config.lfae)) != self.config.lfae:
            raise CheckpointError(
                f"{source} was built with another LFAE config than this model's stage 1 (only the decoder's "
                f"settings, {', '.join(DECODER_FIELDS)}, may differ)"
            )
        own = self.lfae.state_dict()
        changed = [
            key for key, value in lfae.state_dict().items()
            if not key.startswith("decoder.") and not torch.equal(value.to(own[key].dtype).cpu(), own[key].cpu())
        ]  # fmt: skip
        if changed:
            raise CheckpointError(
                f"{source} differs from the LFAE stage 2 was trained on outside its decoder ({len(changed)} tensors, "
                f"e.g. {changed[0]}), so its flows are not the ones stage 2 generates: fine-tune with trainable = "
                "'decoder' from this model's stage 1, or retrain stage 2 on it (train diffusion --set "
                "lfae_checkpoint=...)"
            )
        decoder = Decoder(lfae.config).to(self.lfae.encoder.stem.weight)  # this model's device and dtype
        decoder.load_state_dict(lfae.decoder.state_dict())
        self.config.lfae = self.lfae.config = lfae.config
        self.lfae.decoder = decoder.requires_grad_(False).eval()

    # -- the steps of generation

    def latent_shape(self, batch: int, frames: int) -> tuple[int, int, int, int, int]:
        """Shape of x0 for `batch` windows of `frames` frames: (B, 3, T, h, w)."""
        h = self.config.lfae.latent_size
        return (batch, 3, frames, h, h)

    @torch.no_grad()
    def encode_reference(self, image: Tensor) -> Tensor:
        """(B, 3, S, S) RGB in [0, 1] -> reference latent (B, C, h, w)."""
        return self.lfae.encode(image)

    def encode_music(self, audio: MusicInputs | None, rhythm: Tensor | None, n_frames: int) -> MusicEmbedding:
        """Music of the window (see `music.encoder.prepare_audio`) and rhythm (B, T, rhythm_dim) -> embedding."""
        return self.music(audio, rhythm, n_frames)

    def style_labels(self, names: list[str | None], device: torch.device | str = "cpu") -> Tensor:
        """Style names (None = auto) -> (B,) labels of the U-Net's style embedding."""
        styles = self.config.data.styles
        bad = [n for n in names if n is not None and n not in styles]
        if bad:
            raise ValueError(f"unknown dance style {bad[0]!r}; this model knows: {', '.join(styles)}")
        return torch.tensor([len(styles) if n is None else styles.index(n) for n in names], device=device)

    def conditioning(self, ref_latent: Tensor, music: MusicEmbedding | None, style: Tensor | None) -> Conditioning:
        return Conditioning(
            ref_latent=ref_latent,
            music_global=None if music is None else music.global_,
            music_frames=None if music is None else music.frames,
            style=style,
        )

    @torch.no_grad()
    def motion_targets(self, frames: Tensor, chunk: int = 64) -> tuple[Tensor, Tensor]:
        """frames (B, 3, T, S, S) -> (x0 (B, 3, T, h, w), reference latent); the first frame is the reference."""
        return lfae_targets(self.lfae, frames, self.config.data.flow_coding, chunk)

    def x0_to_motion(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """x0 (B, 3, T, h, w) -> flow (B, 2, T, h, w), occlusion (B, 1, T, h, w)."""
        return x0_to_motion(x0, self.config.data.flow_coding)

    @torch.no_grad()
    def render(self, ref_latent: Tensor, x0: Tensor, chunk: int = 16, ref_image: Tensor | None = None) -> Tensor:
        """Generated x0 (B, 3, T, h, w) -> frames (B, 3, T, S, S) in [0, 1]; ref_image (B, 3, S, S) is the still
        in the model's view (needed when the LFAE composites it)."""
        return render_frames(self.lfae, ref_latent, x0, self.config.data.flow_coding, chunk, ref_image)
