"""Small image operations on [0,1] NCHW float batches, shared by transformations and defences."""
from __future__ import annotations

import hashlib
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def gaussian_blur(x: torch.Tensor, sigma) -> torch.Tensor:
    """Separable Gaussian blur, differentiable; `sigma` in pixels, one number for the batch or an
    (N,) tensor, one per sample (one kernel radius, 3 sigma of the largest, fits all); 0 = identity.
    Edges reflected (replicated where the kernel outgrows the image), padded once for both passes;
    one depthwise convolution per pass over all N x C planes."""
    n, c, h, w = x.shape
    s = torch.as_tensor(sigma, device=x.device, dtype=x.dtype).reshape(-1)
    if float(s.max()) <= 0:
        return x
    r = max(1, int(math.ceil(3.0 * float(s.max()))))
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / s.clamp_min(1e-3).view(-1, 1)) ** 2)
    # each sample's kernel ends at its own radius (3 sigma), whatever the batch's largest: a sample
    # is blurred the same in any batch (EOT's micro-batches give the one-batch result)
    own = (3.0 * s.view(-1, 1)).ceil().clamp_min(1)
    k = torch.where(t.abs() <= own, k, torch.zeros_like(k))
    k = (k / k.sum(1, keepdim=True)).expand(n, -1).repeat_interleave(c, 0)  # N*C x (2r + 1)
    y = F.pad(x.reshape(1, n * c, h, w), (r, r, r, r), mode="reflect" if r < min(h, w) else "replicate")
    y = F.conv2d(y, k.reshape(n * c, 1, 1, 2 * r + 1), groups=n * c)
    y = F.conv2d(y, k.reshape(n * c, 1, 2 * r + 1, 1), groups=n * c)
    return y.view(n, c, h, w)


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
    q = int(round(quality))
    arr = x.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(arr)
    for i, img in enumerate(arr):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
            raise RuntimeError("JPEG encoding failed")
        out[i] = cv2.cvtColor(np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)), cv2.COLOR_BGR2RGB)
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


class _Clamp01(torch.autograd.Function):
    """clamp(x, 0, 1) keeping a one-byte mask of where it passed x: its backward is one product,
    where torch's compares x with both bounds again (a third less time for the channel's clamps).
    The gradient is 1 on the bounds too (torch's is 0 there), the identity's for a pixel the clamp
    leaves as it is."""

    @staticmethod
    def forward(ctx, x):
        y = x.clamp(0.0, 1.0)
        ctx.save_for_backward(y == x)  # inside [0, 1], bounds included
        return y

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return torch.where(inside, grad, 0.0)


def clamp01(x: torch.Tensor) -> torch.Tensor:
    """x clamped to [0, 1]; the gradient is 1 where x is in [0, 1], bounds included, and 0 outside."""
    return _Clamp01.apply(x) if torch.is_grad_enabled() and x.requires_grad else x.clamp(0.0, 1.0)


def straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exactly y's value, with the identity's gradient with respect to x (BPDA, Athalye et al. 2018)."""
    if not x.requires_grad:
        return y
    return _StraightThrough.apply(x, y)


def seed_of(*parts) -> int:
    """A seed from any parts (stable across processes)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:7], "little")


def seeded_generator(*parts) -> torch.Generator:
    """A CPU generator seeded from any parts (stable across processes)."""
    return torch.Generator(device="cpu").manual_seed(seed_of(*parts))


def randn_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise drawn on the CPU generator (same numbers on every device)."""
    return torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)


def per_sample_normal(shape, seeds: list[int], device, dtype=torch.float32) -> torch.Tensor:
    """N x ... standard normal noise, sample i drawn from its own seed on `device`, so a sample's
    noise does not depend on the batch it is in (EOT's micro-batches give the one-batch result). The
    loop only seeds and fills: the draws cost what one draw for the whole batch would."""
    g = torch.Generator(device=device)
    out = torch.empty(tuple(shape), device=device, dtype=dtype)
    for i, seed in enumerate(seeds):
        out[i].normal_(generator=g.manual_seed(int(seed)))
    return out
