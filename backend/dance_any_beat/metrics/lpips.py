"""LPIPS v0.1 (Zhang et al. 2018): a perceptual distance from unit-normalised deep features, weighted per
channel by learned 1x1 layers, averaged over space and summed over five layers. 0 = identical.

Written in plain torch; runs only with two files the user provides:
- the ImageNet backbone, torchvision's `alexnet-owt-7be5be79.pth` or `vgg16-397923af.pth` (keys
  `features.<i>.weight`, the classifier is ignored), so the backbone here is laid out with torchvision's
  `features` indices;
- the LPIPS linear layers `alex.pth` / `vgg.pth` v0.1 (keys `lin<k>.model.1.weight`, shape (1, C, 1, 1)).
"""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from dance_any_beat.weights import WeightsFile, load_checked, read_state_dict, require_file

LpipsNet = Literal["alex", "vgg"]

_LINEAR_SOURCE = (
    "Get it from lpips/weights/v0.1/ in github.com/richzhang/PerceptualSimilarity (the `lpips` pip package "
    "ships the same file)."
)


@dataclass(frozen=True)
class Backbone:
    """A torchvision `features` stack: conv widths with 'M' for max pools, and where LPIPS taps it."""

    layers: tuple  # alex: (out, kernel, stride, padding) per conv; vgg: widths and "M"
    taps: tuple[int, ...]  # indices in `features` whose ReLU outputs are compared
    channels: tuple[int, ...]  # channels at each tap
    weights: WeightsFile
    linear: WeightsFile


BACKBONES: dict[str, Backbone] = {
    "alex": Backbone(
        layers=((64, 11, 4, 2), "M", (192, 5, 1, 2), "M", (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)),
        taps=(1, 4, 7, 9, 11),
        channels=(64, 192, 384, 256, 256),
        weights=WeightsFile(
            "LPIPS (alex) needs torchvision's ImageNet AlexNet weights",
            "alexnet-owt-7be5be79.pth",
            "Get it from https://download.pytorch.org/models/alexnet-owt-7be5be79.pth (torchvision's AlexNet).",
            "the backbone_path argument",
        ),
        linear=WeightsFile(
            "LPIPS (alex) needs its v0.1 linear-layer weights", "alex.pth", _LINEAR_SOURCE, "the linear_path argument"
        ),
    ),
    "vgg": Backbone(
        layers=(64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512),
        taps=(3, 8, 15, 22, 29),
        channels=(64, 128, 256, 512, 512),
        weights=WeightsFile(
            "LPIPS (vgg) needs torchvision's ImageNet VGG16 weights",
            "vgg16-397923af.pth",
            "Get it from https://download.pytorch.org/models/vgg16-397923af.pth (torchvision's VGG16).",
            "the backbone_path argument",
        ),
        linear=WeightsFile(
            "LPIPS (vgg) needs its v0.1 linear-layer weights", "vgg.pth", _LINEAR_SOURCE, "the linear_path argument"
        ),
    ),
}


def _features(net: LpipsNet) -> nn.Sequential:
    """The backbone's conv/ReLU/pool stack with torchvision's indices, cut after the last tap."""
    layers: list[nn.Module] = []
    cin = 3
    for spec in BACKBONES[net].layers:
        if spec == "M":
            layers.append(nn.MaxPool2d(3, 2) if net == "alex" else nn.MaxPool2d(2, 2))
            continue
        cout, kernel, stride, padding = spec if net == "alex" else (spec, 3, 1, 1)
        layers += [nn.Conv2d(cin, cout, kernel, stride, padding), nn.ReLU(inplace=False)]
        cin = cout
    return nn.Sequential(*layers[: BACKBONES[net].taps[-1] + 1])


class LinearHead(nn.Module):
    """Per-channel weights of squared feature differences (dropout is off at eval; kept for key names)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPS(nn.Module):
    """LPIPS distance network: forward(x, y) with (N, 3, H, W) RGB in [-1, 1] -> (N,) distances."""

    def __init__(self, net: LpipsNet = "alex"):
        super().__init__()
        if net not in BACKBONES:
            raise ValueError(f"net must be one of {sorted(BACKBONES)}, got {net!r}")
        self.net = net
        self.features = _features(net)
        for k, channels in enumerate(BACKBONES[net].channels):
            self.add_module(f"lin{k}", LinearHead(channels))
        # v0.1 input scaling (ImageNet statistics expressed in [-1, 1]); constants, not part of any file.
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps, out = set(BACKBONES[self.net].taps), []
        x = (x - self.shift) / self.scale
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))  # unit length per pixel
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert x.shape == y.shape and x.ndim == 4 and x.shape[1] == 3, f"expected two (N, 3, H, W), got {x.shape}"
        total = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for k, (fx, fy) in enumerate(zip(self._taps(x), self._taps(y), strict=True)):
            weighted = getattr(self, f"lin{k}").model((fx - fy) ** 2)  # (N, 1, h, w)
            total = total + weighted.mean(dim=(1, 2, 3))
        return total


def load_lpips(
    backbone_path: str | Path | None,
    linear_path: str | Path | None,
    net: LpipsNet = "alex",
    *,
    backbone_option: str = "the backbone_path argument",
    linear_option: str = "the linear_path argument",
    device: str = "cpu",
) -> LPIPS:
    """Build LPIPS and load the two user-provided files; errors name the file, the option and the source."""
    model = LPIPS(net)
    backbone = BACKBONES[net]
    weights = replace(backbone.weights, option=backbone_option)
    linear = replace(backbone.linear, option=linear_option)
    backbone_file = require_file(backbone_path, weights)
    linear_file = require_file(linear_path, linear)
    state = read_state_dict(backbone_file, weights)
    if any(k.startswith("features.") for k in state):  # a whole torchvision model: keep the conv stack
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    load_checked(model.features, state, backbone_file, weights)
    heads = nn.ModuleDict({f"lin{k}": getattr(model, f"lin{k}") for k in range(len(backbone.channels))})
    load_checked(heads, read_state_dict(linear_file, linear), linear_file, linear)
    return model.eval().to(device)


@torch.no_grad()
def lpips_distance(model: LPIPS, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """LPIPS between frames (..., H, W, 3) RGB, uint8 or float in [0, 1] -> distances shaped like the batch axes."""
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.ndim < 3 or x.shape[-1] != 3:
        raise ValueError(f"expected two (..., H, W, 3) RGB images of one shape, got {x.shape} and {y.shape}")
    lead = x.shape[:-3]
    device = next(model.parameters()).device

    def to_input(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a.reshape(-1, *a.shape[-3:]))).to(device)
        t = t.float() / 255.0 if a.dtype == np.uint8 else t.float()
        return t.permute(0, 3, 1, 2) * 2.0 - 1.0  # (N, 3, H, W) in [-1, 1]

    return model(to_input(x), to_input(y)).double().cpu().numpy().reshape(lead)
