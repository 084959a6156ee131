"""Small image operations on [0,1] NCHW float batches, shared by transformations and defences."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def gaussian_kernel(sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (reflect padding), differentiable; sigma in pixels, 0 = identity."""
    if sigma <= 0:
        return x
    k = gaussian_kernel(float(sigma), x.device, x.dtype)
    r = (k.numel() - 1) // 2
    c = x.shape[1]
    h, w = x.shape[-2:]
    mode = "reflect" if r < min(h, w) else "replicate"
    y = F.pad(x, (r, r, 0, 0), mode=mode)
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, r, r), mode=mode)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def median_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Per-channel median over size x size windows (reflect padding); size 1 = identity."""
    if size <= 1:
        return x
    n, c, h, w = x.shape
    r = size // 2
    y = F.pad(x, (r, size - 1 - r, r, size - 1 - r), mode="reflect")
    patches = F.unfold(y.reshape(n * c, 1, *y.shape[-2:]), size)  # (n*c, size*size, h*w)
    return patches.median(dim=1).values.view(n, c, h, w)


def jpeg(x: torch.Tensor, quality: float) -> torch.Tensor:
    """JPEG encode and decode with libjpeg (OpenCV) at `quality` (1..100), per image; not differentiable."""
    import cv2

    q = int(round(quality))
    arr = x.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(arr)
    for i, img in enumerate(arr):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
            raise RuntimeError("JPEG encoding failed")
        out[i] = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2).to(x.dtype).div(255)


def quantize(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Round to 2**bits levels per channel."""
    levels = float(2 ** int(bits) - 1)
    return torch.round(x.clamp(0, 1) * levels) / levels


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        return y.detach().clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exactly y's value, with the identity's gradient with respect to x (BPDA, Athalye et al. 2018)."""
    if not x.requires_grad:
        return y
    return _StraightThrough.apply(x, y)


def seeded_generator(*parts) -> torch.Generator:
    """A CPU generator seeded from any parts (stable across processes)."""
    import hashlib

    digest = hashlib.sha256(repr(parts).encode()).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:7], "little"))


def randn_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise drawn on the CPU generator (same numbers on every device)."""
    return torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
