"""Codec: the camera's JPEG, differentiable (`physical.channel.jpeg`), a quality per sample;
quality 100 means no JPEG for that sample."""
from __future__ import annotations

import torch

from physical.channel.jpeg import differentiable_jpeg
from physical.channel.steps.params import Getter, Ranges, around
from physical.transforms.ops import clamp01

NAMES = ("jpeg_quality",)
IDENTITY = {"jpeg_quality": 100.0}


def ranges(get: Getter, k: float) -> Ranges:
    q = get("jpeg_quality")
    return {"jpeg_quality": around(100.0, q[0], q[1], k, 1.0, 100.0)}


def apply(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    q = params["jpeg_quality"].to(x.device, x.dtype)
    on = q < 100
    if x.shape[1] != 3 or not bool(on.any()):
        return x
    x = clamp01(x)
    coded = differentiable_jpeg(x, q.clamp(1.0, 100.0))
    return coded if bool(on.all()) else torch.where(on.view(-1, 1, 1, 1), coded, x)
