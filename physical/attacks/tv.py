"""Total variation of a perturbation: how much neighbouring pixels differ.

The natural-image constraint of the attacks that are printed (Sharif et al. 2016, RP2 by Eykholt et
al. 2018): a perturbation whose neighbouring pixels are correlated survives the printer's dot gain and
the camera's blur better, and looks less like noise. `Attack.gradient` adds `tv` x this to the loss
(subtracts it from the loss an untargeted attack ascends).
"""
from __future__ import annotations

import torch


def total_variation(d: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per image of an N x C x H x W batch: the mean absolute difference
    between horizontal and between vertical neighbours (in the batch's units), summed over the two
    directions. A constant perturbation has 0; a random-sign one of size e about 2 e."""
    dx = (d[..., :, 1:] - d[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    dy = (d[..., 1:, :] - d[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    return dx + dy
