"""The stage-2 denoiser of DabFusion: a space-time 3D U-Net over latent flows and occlusion maps.

The network predicts the noise in a stack of flows + occlusions `(B, 3, T, H, W)` (H = W = 32 for the 128 px
LFAE), conditioned on
- the reference latent `(B, C_ref, H, W)`, repeated per frame and concatenated as channels (the paper's choice:
  every frame sees the appearance it will warp);
- a global music vector `(B, music_global_dim)` (style and movement embeddings) plus an optional dance-style
  label, FiLMed into every ResNet block;
- per-frame rhythm features `(B, T, music_frame_dim)`, FiLMed per frame into every ResNet block, so a beat
  at frame t shapes the motion at frame t. Only H and W are downsampled, so the time axis lines up with the
  per-frame features at every level.
Classifier-free guidance: rows flagged in `drop_music` swap both music embeddings for learned null ones.

Layout is `(B, C, T, H, W)` throughout. Spatial convs have (1, k, k) kernels; mixing over time happens only in
`TemporalAttention`, its own module (normalisation is per frame too), so the spatial and temporal parts can be
switched independently and a per-frame condition acts on its own frame unless attention carries it further.
After Ho et al., "Video Diffusion Models" (2022), and lucidrains' video-diffusion-pytorch for the block layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

TemporalPosition = Literal["relative", "sinusoidal"]
TEMPORAL_POSITIONS: tuple[str, ...] = ("relative", "sinusoidal")


@dataclass
class UNet3DConfig:
    """Architecture of `UNet3D`; round-trips through `dataclasses.asdict` -> JSON -> `UNet3DConfig(**d)`."""

    in_channels: int = 3  # noisy flow (2) + occlusion (1) channels
    out_channels: int = 3  # predicted noise, same layout as the input
    ref_channels: int = 64  # channels of the LFAE reference latent, concatenated to every frame
    base_channels: int = 64  # width of the first level
    channel_mults: tuple[int, ...] = (1, 2, 4)  # width multiplier per level; H and W halve between levels
    num_res_blocks: int = 2  # ResNet blocks per level on the way down (the way up mirrors it)
    spatial_attention: tuple[bool, ...] = (False, True, True)  # per level: self-attention over H*W in each frame
    temporal_attention: tuple[bool, ...] = (True, True, True)  # per level: self-attention over T at each pixel
    mid_attention: bool = True  # spatial + temporal attention in the bottleneck
    attention_heads: int = 4  # heads of every attention layer
    attention_head_dim: int = 32  # width of one head
    temporal_position: TemporalPosition = "relative"  # frame order in temporal attention: T5-style bias or sin
    max_relative_distance: int = 32  # frame offsets beyond this share one learned bias, so any T works
    num_frames: int = 40  # frames per window in training (DabFusion: 40); any T works at run time
    music_global_dim: int = 256  # width of the music encoder's global vector (style + movement embeddings)
    music_frame_dim: int = 5  # per-frame rhythm features (music.beats.RHYTHM_DIM: beat, phase sin/cos, ...)
    num_styles: int = 10  # dance-style labels (the AIST++ genres); label `num_styles` means "auto" (no style)
    cond_dim: int = 256  # width of the time / music / style embedding that drives FiLM in every block
    norm_groups: int = 8  # groups of the per-frame GroupNorm; every level's width must be divisible by it
    dropout: float = 0.0  # dropout inside ResNet blocks
    p_uncond: float = 0.1  # training: probability that a sample's music is dropped (classifier-free guidance)
    p_style_drop: float = 0.5  # training: probability that a sample's style label becomes "auto"
    gradient_checkpointing: bool = False  # recompute blocks in backward: less memory for T = 40 training

    def __post_init__(self) -> None:
        # JSON turns tuples into lists; store tuples so equality and hashing survive the round trip
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        self.spatial_attention = tuple(bool(a) for a in self.spatial_attention)
        self.temporal_attention = tuple(bool(a) for a in self.temporal_attention)
        if self.temporal_position not in TEMPORAL_POSITIONS:
            raise ValueError(
                f"temporal_position must be one of {', '.join(TEMPORAL_POSITIONS)}; got {self.temporal_position!r}"
            )
        levels = len(self.channel_mults)
        if levels < 1:
            raise ValueError("channel_mults needs at least one level")
        for name in ("spatial_attention", "temporal_attention"):
            if len(getattr(self, name)) != levels:
                raise ValueError(
                    f"{name} needs one flag per level ({levels}, like channel_mults), got {getattr(self, name)}"
                )
        for mult in self.channel_mults:
            if (self.base_channels * mult) % self.norm_groups:
                raise ValueError(
                    f"level width {self.base_channels}*{mult} is not divisible by norm_groups={self.norm_groups}"
                )
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1, got {self.num_res_blocks}")
        for name in ("p_uncond", "p_style_drop", "dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def cpu_starter(cls) -> UNet3DConfig:
        """The small model the bundled starter checkpoint uses: 2.3 M parameters, trainable on a CPU.

        Three levels (32, 16, 8 px at widths 32/64/128), one ResNet block each; temporal attention at 16 and
        8 px and in the bottleneck, spatial attention at 8 px only; 16 frames per training window.
        """
        return cls(
            ref_channels=64,
            base_channels=32,
            channel_mults=(1, 2, 4),
            num_res_blocks=1,
            spatial_attention=(False, False, True),
            temporal_attention=(False, True, True),
            attention_heads=4,
            attention_head_dim=16,
            num_frames=16,
            cond_dim=128,
        )

    @property
    def downsample_factor(self) -> int:
        """H and W must be divisible by this."""
        return 2 ** (len(self.channel_mults) - 1)


# ---------------------------------------------------------------------------------------------------------------
# Small blocks


class SpatialConv(nn.Conv3d):
    """A per-frame 2D conv on video: a (1, k, k) Conv3d, run as a Conv2d over frames folded into the batch.

    Same weights and result as the Conv3d, but PyTorch's CPU Conv3d falls back to a slow im2col kernel for some
    channel counts (10-40x slower at 32 channels); Conv2d always takes the fast path. The output keeps the
    frame-major memory layout, so the next conv's fold is free.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1):
        super().__init__(
            in_channels,
            out_channels,
            (1, kernel, kernel),
            stride=(1, stride, stride),
            padding=(0, kernel // 2, kernel // 2),
        )

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W)
        y = F.conv2d(frames, self.weight.squeeze(2), self.bias, self.stride[1:], self.padding[1:])  # (B*T, C', H', W')
        return y.view(b, t, *y.shape[1:]).transpose(1, 2)  # (B, C', T, H', W')


def sinusoidal_embedding(positions: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer sinusoids of (N,) real positions -> (N, dim); used for diffusion time and frame index."""
    assert positions.ndim == 1, f"positions must be (N,), got {tuple(positions.shape)}"
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    args = positions.float()[:, None] * freqs[None]  # (N, half)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # (N, 2 * half)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb  # (N, dim)


class FrameGroupNorm(nn.Module):
    """GroupNorm with statistics per frame (over C/G, H, W), so normalisation never mixes frames.

    A clip-wide GroupNorm would leak every frame's content into every other frame through the shared mean and
    variance; here `TemporalAttention` stays the only path between frames.
    """

    def __init__(self, groups: int, channels: int, eps: float = 1e-5):
        super().__init__()
        assert channels % groups == 0, f"{channels} channels do not split into {groups} groups"
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        xg = x.reshape(b, self.groups, c // self.groups, t, h, w)  # (B, G, C/G, T, H, W)
        var, mean = torch.var_mean(xg, dim=(2, 4, 5), keepdim=True, unbiased=False)  # (B, G, 1, T, 1, 1)
        x = ((xg - mean) * torch.rsqrt(var + self.eps)).reshape(b, c, t, h, w)
        return x * self.weight.view(1, c, 1, 1, 1) + self.bias.view(1, c, 1, 1, 1)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a (B, C, ...) tensor: the pre-norm of the attention layers."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C, T, H, W)
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.gain.view(shape) + self.bias.view(shape)


class PreNorm(nn.Module):
    """Normalise channels before `fn` (pre-norm keeps the residual path clean)."""

    def __init__(self, channels: int, fn: nn.Module):
        super().__init__()
        self.norm = ChannelLayerNorm(channels)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class Residual(nn.Module):
    """x + fn(x)."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fn(x)


class ResnetBlock(nn.Module):
    """Two (1,3,3) convs with a per-frame FiLM (scale/shift) from the conditioning between them.

    The conditioning `(B, T, cond_dim)` already sums diffusion time, global music + style and the frame's own
    rhythm features, so one FiLM carries all three, and it differs per frame.
    """

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = FrameGroupNorm(groups, in_channels)
        self.conv1 = SpatialConv(in_channels, out_channels)
        self.film = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * out_channels))
        self.norm2 = FrameGroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = SpatialConv(out_channels, out_channels)
        self.skip = SpatialConv(in_channels, out_channels, kernel=1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        # x: (B, C_in, T, H, W); cond: (B, T, E)
        b, _, t, _, _ = x.shape
        assert cond.shape[:2] == (b, t), f"cond {tuple(cond.shape)} must be (B={b}, T={t}, E)"
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C, T, H, W)
        scale, shift = self.film(cond).permute(0, 2, 1).chunk(2, dim=1)  # 2 x (B, C, T)
        h = self.norm2(h) * (1 + scale[..., None, None]) + shift[..., None, None]  # FiLM per frame
        h = self.conv2(self.dropout(F.silu(h)))  # (B, C, T, H, W)
        return h + self.skip(x)


class SpatialAttention(nn.Module):
    """Multi-head self-attention over the H*W positions of each frame (frames folded into the batch)."""

    def __init__(self, channels: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.to_qkv = nn.Linear(channels, 3 * heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, channels)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        seq = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)  # (B*T, H*W, C)
        q, k, v = self.to_qkv(seq).view(b * t, h * w, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B*T, heads, H*W, d)
        out = self.to_out(out.transpose(1, 2).reshape(b * t, h * w, self.heads * self.head_dim))  # (B*T, H*W, C)
        return out.view(b, t, h, w, c).permute(0, 4, 1, 2, 3)  # (B, C, T, H, W)


class RelativePositionBias(nn.Module):
    """A learned attention bias per head and frame offset (clipped to +-max_distance), so any T works."""

    def __init__(self, heads: int, max_distance: int):
        super().__init__()
        self.max_distance = max_distance
        self.bias = nn.Embedding(2 * max_distance + 1, heads)
        nn.init.zeros_(self.bias.weight)  # start order-agnostic; gradients still reach it through the logits

    def forward(self, frames: int, device: torch.device) -> Tensor:
        pos = torch.arange(frames, device=device)
        offset = (pos[None, :] - pos[:, None]).clamp(-self.max_distance, self.max_distance)  # (T, T) key - query
        return self.bias(offset + self.max_distance).permute(2, 0, 1)  # (heads, T, T)


class TemporalAttention(nn.Module):
    """Multi-head self-attention over the T frames at each pixel (pixels folded into the batch).

    This is the only place frames exchange information; frame order comes from a relative position bias or from
    sinusoidal frame positions added to the queries and keys.
    """

    def __init__(self, channels: int, heads: int, head_dim: int, position: TemporalPosition, max_distance: int):
        super().__init__()
        self.heads, self.head_dim, self.position = heads, head_dim, position
        self.to_qkv = nn.Linear(channels, 3 * heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, channels)
        self.rel_bias = RelativePositionBias(heads, max_distance) if position == "relative" else None

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        seq = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c)  # (B*H*W, T, C)
        qkv_in = seq
        if self.position == "sinusoidal":
            qkv_in = seq + sinusoidal_embedding(torch.arange(t, device=x.device), c).to(seq.dtype)[None]
        q, k, v = self.to_qkv(qkv_in).view(b * h * w, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        bias = self.rel_bias(t, x.device).to(q.dtype) if self.rel_bias is not None else None  # (heads, T, T)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B*H*W, heads, T, d)
        out = self.to_out(out.transpose(1, 2).reshape(b * h * w, t, self.heads * self.head_dim))  # (B*H*W, T, C)
        return out.view(b, h, w, t, c).permute(0, 4, 3, 1, 2)  # (B, C, T, H, W)


class Downsample(nn.Module):
    """Halve H and W with a strided (1,3,3) conv; T is never downsampled (it must match the rhythm features)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = SpatialConv(channels, channels, kernel=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)  # (B, C, T, H/2, W/2)


class Upsample(nn.Module):
    """Double H and W (nearest, then a (1,3,3) conv against checkerboard artefacts)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = SpatialConv(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest"))  # (B, C, T, 2H, 2W)


class SpaceTimeBlock(nn.Module):
    """One U-Net step: a conditioned ResNet block, then optional spatial and temporal attention."""

    def __init__(self, in_channels: int, out_channels: int, spatial: bool, temporal: bool, config: UNet3DConfig):
        super().__init__()
        cfg = config
        self.res = ResnetBlock(in_channels, out_channels, cfg.cond_dim, cfg.norm_groups, cfg.dropout)
        self.spatial = (
            Residual(
                PreNorm(out_channels, SpatialAttention(out_channels, cfg.attention_heads, cfg.attention_head_dim))
            )
            if spatial
            else nn.Identity()
        )
        self.temporal = (
            Residual(
                PreNorm(
                    out_channels,
                    TemporalAttention(
                        out_channels,
                        cfg.attention_heads,
                        cfg.attention_head_dim,
                        cfg.temporal_position,
                        cfg.max_relative_distance,
                    ),
                )
            )
            if temporal
            else nn.Identity()
        )

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        # x: (B, C_in, T, H, W), cond: (B, T, E) -> (B, C_out, T, H, W)
        return self.temporal(self.spatial(self.res(x, cond)))


class Level(nn.Module):
    """The blocks of one resolution plus the resampling that leaves it (Identity at the end of the path)."""

    def __init__(self, blocks: list[SpaceTimeBlock], resample: nn.Module):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.resample = resample


class MusicEmbedding(nn.Module):
    """Global music + style -> (B, E), per-frame rhythm -> (B, T, E); dropped rows get learned null embeddings."""

    def __init__(self, config: UNet3DConfig):
        super().__init__()
        e = config.cond_dim
        self.global_mlp = nn.Sequential(nn.Linear(config.music_global_dim, e), nn.SiLU(), nn.Linear(e, e))
        self.frame_mlp = nn.Sequential(nn.Linear(config.music_frame_dim, e), nn.SiLU(), nn.Linear(e, e))
        self.style = nn.Embedding(config.num_styles + 1, e)  # last row: "auto" (no style given)
        self.null_global = nn.Parameter(0.02 * torch.randn(e))  # the "no music" global embedding
        self.null_frame = nn.Parameter(0.02 * torch.randn(e))  # the "no music" embedding of every frame

    def forward(
        self, music_global: Tensor, music_frames: Tensor, style: Tensor, drop_music: Tensor
    ) -> tuple[Tensor, Tensor]:
        # music_global: (B, Dg); music_frames: (B, T, Df); style: (B,) long; drop_music: (B,) bool
        g = self.global_mlp(music_global)  # (B, E)
        f = self.frame_mlp(music_frames)  # (B, T, E)
        g = torch.where(drop_music[:, None], self.null_global.to(g.dtype)[None], g)  # (B, E)
        f = torch.where(drop_music[:, None, None], self.null_frame.to(f.dtype)[None, None], f)  # (B, T, E)
        return g + self.style(style), f


# ---------------------------------------------------------------------------------------------------------------
# The U-Net


class UNet3D(nn.Module):
    """Predicts the noise epsilon in noisy flows + occlusions, given the reference latent and the music."""

    def __init__(self, config: UNet3DConfig):
        super().__init__()
        self.config = cfg = config
        e = cfg.cond_dim
        widths = [cfg.base_channels * m for m in cfg.channel_mults]
        levels = len(widths)

        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.music = MusicEmbedding(cfg)
        self.init_conv = SpatialConv(cfg.in_channels + cfg.ref_channels, widths[0], kernel=3)

        self.down = nn.ModuleList()
        ch = widths[0]
        skip_channels = []
        for i, width in enumerate(widths):
            blocks = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(SpaceTimeBlock(ch, width, cfg.spatial_attention[i], cfg.temporal_attention[i], cfg))
                ch = width
                skip_channels.append(ch)
            self.down.append(Level(blocks, Downsample(ch) if i < levels - 1 else nn.Identity()))

        self.mid = nn.ModuleList(
            [
                SpaceTimeBlock(ch, ch, cfg.mid_attention, cfg.mid_attention, cfg),
                SpaceTimeBlock(ch, ch, False, False, cfg),
            ]
        )

        self.up = nn.ModuleList()
        for i, width in reversed(list(enumerate(widths))):
            blocks = []
            for _ in range(cfg.num_res_blocks):
                skip = skip_channels.pop()
                blocks.append(
                    SpaceTimeBlock(ch + skip, width, cfg.spatial_attention[i], cfg.temporal_attention[i], cfg)
                )
                ch = width
            self.up.append(Level(blocks, Upsample(ch) if i > 0 else nn.Identity()))
        assert not skip_channels, "every skip connection must be consumed"

        self.out = nn.Sequential(FrameGroupNorm(cfg.norm_groups, ch), nn.SiLU(), SpatialConv(ch, cfg.out_channels))

    def _check_inputs(
        self,
        x: Tensor,
        t: Tensor,
        ref_latent: Tensor,
        music_global: Tensor | None,
        music_frames: Tensor | None,
        style: Tensor | None,
        drop_music: Tensor | None,
    ) -> None:
        cfg = self.config
        assert x.ndim == 5 and x.shape[1] == cfg.in_channels, (
            f"x must be (B, {cfg.in_channels}, T, H, W), got {tuple(x.shape)}"
        )
        b, _, frames, h, w = x.shape
        f = cfg.downsample_factor
        assert h % f == 0 and w % f == 0, (
            f"H, W of x {tuple(x.shape)} must be divisible by {f} ({len(cfg.channel_mults)} levels)"
        )
        assert t.ndim <= 1 and t.numel() in (1, b), f"t must be a scalar or (B={b},), got {tuple(t.shape)}"
        assert ref_latent.shape == (b, cfg.ref_channels, h, w), (
            f"ref_latent must be (B={b}, {cfg.ref_channels}, {h}, {w}), got {tuple(ref_latent.shape)}"
        )
        assert (music_global is None) == (music_frames is None), "give both music_global and music_frames, or neither"
        if music_global is not None:
            assert music_global.shape == (b, cfg.music_global_dim), (
                f"music_global must be (B={b}, {cfg.music_global_dim}), got {tuple(music_global.shape)}"
            )
            assert music_frames.shape == (b, frames, cfg.music_frame_dim), (
                f"music_frames must be (B={b}, T={frames}, {cfg.music_frame_dim}), got {tuple(music_frames.shape)}"
            )
        if style is not None:
            assert style.shape == (b,) and not style.is_floating_point(), (
                f"style must be (B={b},) integer labels, got {tuple(style.shape)} {style.dtype}"
            )
            assert bool(((style >= 0) & (style <= cfg.num_styles)).all()), (
                f"style labels must be in [0, {cfg.num_styles}] ({cfg.num_styles} = auto), got {style.tolist()}"
            )
        if drop_music is not None:
            assert drop_music.shape == (b,) and drop_music.dtype == torch.bool, (
                f"drop_music must be a (B={b},) bool tensor, got {tuple(drop_music.shape)} {drop_music.dtype}"
            )

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        ref_latent: Tensor,
        music_global: Tensor | None = None,
        music_frames: Tensor | None = None,
        style: Tensor | None = None,
        drop_music: Tensor | None = None,
    ) -> Tensor:
        """Noise estimate for `x` at diffusion step `t`.

        x: (B, 3, T, H, W) noisy flows + occlusions; t: (B,) or scalar step; ref_latent: (B, C_ref, H, W);
        music_global: (B, Dg); music_frames: (B, T, Df) (both None = no music for any row); style: (B,) long,
        `num_styles` = auto (None = auto for all); drop_music: (B,) bool, True rows use the null music embeddings.
        Returns epsilon (B, 3, T, H, W).
        """
        cfg = self.config
        t = torch.as_tensor(t, device=x.device)
        self._check_inputs(x, t, ref_latent, music_global, music_frames, style, drop_music)
        b, _, frames, h, w = x.shape

        # conditioning: diffusion time + (global music + style) + per-frame rhythm -> (B, T, E)
        t = t.reshape(-1).expand(b)  # (B,)
        temb = self.time_mlp(sinusoidal_embedding(t, cfg.cond_dim).to(x.dtype))  # (B, E)
        if music_global is None:  # no music at all: every row takes the null embeddings
            music_global = x.new_zeros(b, cfg.music_global_dim)
            music_frames = x.new_zeros(b, frames, cfg.music_frame_dim)
            drop_music = torch.ones(b, dtype=torch.bool, device=x.device)
        if drop_music is None:
            drop_music = torch.zeros(b, dtype=torch.bool, device=x.device)
        if style is None:
            style = torch.full((b,), cfg.num_styles, dtype=torch.long, device=x.device)
        gemb, femb = self.music(music_global.to(x.dtype), music_frames.to(x.dtype), style, drop_music)
        cond = (temb + gemb)[:, None, :] + femb  # (B, T, E)

        # reference latent repeated per frame, concatenated as channels
        ref = ref_latent.to(x.dtype)[:, :, None].expand(-1, -1, frames, -1, -1)  # (B, C_ref, T, H, W)
        hidden = self.init_conv(torch.cat([x, ref], dim=1))  # (B, C0, T, H, W)

        skips: list[Tensor] = []
        for level in self.down:
            for block in level.blocks:
                hidden = self._run(block, hidden, cond)  # (B, C_i, T, H_i, W_i)
                skips.append(hidden)
            hidden = level.resample(hidden)  # (B, C_i, T, H_i/2, W_i/2), except after the last level

        for block in self.mid:
            hidden = self._run(block, hidden, cond)  # (B, C_last, T, H/f, W/f)

        for level in self.up:
            for block in level.blocks:
                hidden = torch.cat([hidden, skips.pop()], dim=1)  # (B, C + C_skip, T, H_i, W_i)
                hidden = self._run(block, hidden, cond)  # (B, C_i, T, H_i, W_i)
            hidden = level.resample(hidden)  # (B, C_i, T, 2 H_i, 2 W_i), except at full resolution
        assert not skips, f"{len(skips)} skip connections left unused"

        return self.out(hidden)  # (B, 3, T, H, W)

    def _run(self, block: SpaceTimeBlock, hidden: Tensor, cond: Tensor) -> Tensor:
        if self.config.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, hidden, cond, use_reentrant=False)
        return block(hidden, cond)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, for reports and config choices."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
