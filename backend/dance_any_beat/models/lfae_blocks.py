"""Convolutional building blocks of the latent flow auto-encoder: conv units, residual blocks, an hourglass.

GroupNorm instead of FOMM's BatchNorm: the LFAE is trained at small batches on CPU and run one frame at a time
at inference, where batch statistics would differ from training. The encoder and decoder use residual blocks
only (norm on the branch, never on the skip); the hourglasses, which look for shapes, use conv-norm units.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def group_norm(channels: int, groups: int = 8) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= `groups` that divides `channels`."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ConvNormAct(nn.Module):
    """Conv (same padding) -> GroupNorm -> SiLU, the unit every other block is made of."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, groups: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = group_norm(out_channels, groups)

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(self.norm(self.conv(x)))  # (B, C_out, H, W)


class ResBlock(nn.Module):
    """Pre-activation residual block: skip(x) + conv(act(norm(conv(act(norm(x)))))).

    Normalisation sits only on the residual branch, so absolute values (a flat background's colour, which a
    per-image norm would erase) pass through the skip. The skip is a 1x1 conv when the width changes.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, groups: int = 8) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = self.conv2(F.silu(self.norm2(h)))  # (B, C_out, H, W)
        return self.skip(x) + h


class DownBlock(nn.Module):
    """ConvNormAct then 2x2 average pooling: (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 8) -> None:
        super().__init__()
        self.conv = ConvNormAct(in_channels, out_channels, 3, groups)

    def forward(self, x: Tensor) -> Tensor:
        assert x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0, f"DownBlock needs an even size, got {tuple(x.shape)}"
        return F.avg_pool2d(self.conv(x), 2)  # (B, C_out, H/2, W/2)


class UpBlock(nn.Module):
    """Nearest 2x upsampling then ConvNormAct: (B, C_in, H, W) -> (B, C_out, 2H, 2W); no checkerboard artefacts."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 8) -> None:
        super().__init__()
        self.conv = ConvNormAct(in_channels, out_channels, 3, groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C_out, 2H, 2W)


class Hourglass(nn.Module):
    """U-Net-style encoder-decoder with skip concatenations, output at the input resolution.

    Level i (1..depth) of the way down has min(max_channels, base_channels * 2**i) channels at size / 2**i; the
    way up mirrors it and ends at `base_channels`, concatenated with the input, so `out_channels` =
    base_channels + in_channels (the input is passed through, as in FOMM's hourglass).
    """

    def __init__(self, in_channels: int, base_channels: int, max_channels: int, depth: int, groups: int = 8) -> None:
        super().__init__()
        assert depth >= 1, f"Hourglass depth must be >= 1, got {depth}"
        self.depth = depth
        widths = [in_channels] + [min(max_channels, base_channels * 2**i) for i in range(1, depth + 1)]
        self.down = nn.ModuleList([DownBlock(widths[i], widths[i + 1], groups) for i in range(depth)])
        # Up block i maps level i+1 (concatenated with its skip, except at the bottom) to level i's width.
        ups = []
        for i in reversed(range(depth)):
            in_ch = widths[i + 1] * (1 if i == depth - 1 else 2)
            out_ch = base_channels if i == 0 else widths[i]
            ups.append(UpBlock(in_ch, out_ch, groups))
        self.up = nn.ModuleList(ups)
        self.out_channels = base_channels + in_channels

    def forward(self, x: Tensor) -> Tensor:
        size = 2**self.depth
        assert x.shape[-1] % size == 0 and x.shape[-2] % size == 0, (
            f"Hourglass of depth {self.depth} needs sizes divisible by {size}, got {tuple(x.shape)}"
        )
        skips = [x]  # level 0 .. depth
        for block in self.down:
            skips.append(block(skips[-1]))  # (B, C_i, H / 2**i, W / 2**i)
        h = skips.pop()  # (B, C_depth, H / 2**depth, W / 2**depth), the bottom
        for block in self.up:
            h = torch.cat([block(h), skips.pop()], dim=1)  # (B, C_up + C_skip, 2h, 2w)
        return h  # (B, base_channels + in_channels, H, W)
