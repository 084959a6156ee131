"""Optics: a gaussian blur with a sigma per sample (pixels of the output)."""
from __future__ import annotations

import torch

from physical.channel.steps.params import MIN_SIGMA, Getter, Ranges, around
from physical.transforms.ops import gaussian_blur

NAMES = ("blur_sigma",)
IDENTITY = {"blur_sigma": 0.0}


def ranges(get: Getter, k: float) -> Ranges:
    blur = get("blur_sigma")
    return {"blur_sigma": around(0.0, blur[0], blur[1], k, 0.0)}


def apply(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    sigma = params["blur_sigma"].to(x.device, x.dtype).clamp_min(MIN_SIGMA)
    if float(sigma.max()) <= MIN_SIGMA:
        return x
    return gaussian_blur(x, sigma)
