"""Sensor: gaussian noise with a sigma per sample, or a calibration's measured noise texture
(`physical.channel.texture`) scaled by ``noise_sigma`` / its range's middle."""
from __future__ import annotations

from typing import Optional

import torch

from physical.channel.steps.params import Getter, Ranges, around, col
from physical.channel.texture import textured_noise
from physical.transforms.ops import per_sample_normal

NAMES = ("noise_sigma",)
IDENTITY = {"noise_sigma": 0.0}


def ranges(get: Getter, k: float) -> Ranges:
    noise = get("noise_sigma")
    return {"noise_sigma": around(0.0, noise[0], noise[1], k, 0.0)}


def apply(x: torch.Tensor, params: dict[str, torch.Tensor], photo_px: float = 1.0,
          texture: Optional[torch.Tensor] = None, level: float = 1.0,
          table: Optional[torch.Tensor] = None) -> torch.Tensor:
    """`photo_px`: photo pixels per output pixel (a texture is measured in photo pixels); `level`:
    the noise_sigma of the texture's gain 1; `table`: its level by colour."""
    sigma = params["noise_sigma"]
    if float(sigma.max()) <= 0:
        return x
    if texture is not None:
        n, c, h, w = x.shape
        return x + textured_noise((n, c, h, w), texture, params["noise_seed"].tolist(), sigma / level,
                                  x.device, x.dtype, photo_px, table, x)
    noise = per_sample_normal(x.shape, params["noise_seed"].tolist(), x.device, x.dtype)
    return torch.addcmul(x, col(sigma, x), noise)
