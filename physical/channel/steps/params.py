"""What the steps share: a range scaled by the strength around its identity, and per-sample values."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

Ranges = dict[str, tuple[float, float]]
Getter = Callable[[str], Any]  # a config key -> its value (a calibration's measured range first)
MIN_SIGMA = 1e-3  # sigma > 0 (it divides); a kernel this narrow is a delta


def around(identity: float, lo: float, hi: float, k: float, lo_clip: float = -math.inf,
           hi_clip: float = math.inf) -> tuple[float, float]:
    """(lo, hi) scaled by the strength `k` around the identity value, then clipped."""
    a, b = identity + (lo - identity) * k, identity + (hi - identity) * k
    return (min(max(a, lo_clip), hi_clip), min(max(b, lo_clip), hi_clip))


def col(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-sample (N,) value shaped to broadcast against N x C x H x W."""
    return v.to(x.device, x.dtype).view(-1, 1, 1, 1)
