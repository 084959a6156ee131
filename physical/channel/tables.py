"""Smooth tables over the RGB cube, for what a chart's patches measure at their colours.

A colour chart samples the cube at a few hundred colours; the channel needs the quantity at every
pixel's colour. :func:`kernel_table` regresses the patches' values onto a G^3 grid with a Gaussian
kernel, and :func:`lookup` reads the grid back by trilinear interpolation (differentiable in the
colour: torch's ``grid_sample``). Used for the colour model's residual (model.py) and the noise
texture's level by colour (texture.py).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def kernel_table(points: np.ndarray, values: np.ndarray, grid: int, width: float, prior: float = 0.0) -> np.ndarray:
    """(C, G, G, G): `values` (P, C) at `points` (P, 3, RGB in [0, 1]) regressed onto a grid of G
    levels per axis (axes b, g, r: the order ``grid_sample`` indexes) by a Gaussian kernel of sigma
    `width`. `prior` is the weight of a zero value at every node: far from the points the table
    fades to zero; with 0 it takes the nearest points' values instead."""
    g = np.linspace(0.0, 1.0, grid)
    b_, g_, r_ = np.meshgrid(g, g, g, indexing="ij")
    nodes = np.stack([r_, g_, b_], -1).reshape(-1, 3)
    d2 = ((nodes[:, None, :] - np.asarray(points, np.float64)[None]) ** 2).sum(-1)
    if prior <= 0:  # relative to the nearest point: no node's weights all underflow
        d2 = d2 - d2.min(1, keepdims=True)
    w = np.exp(-d2 / (2 * width ** 2))
    table = (w @ np.asarray(values, np.float64)) / (w.sum(1, keepdims=True) + prior)
    return table.T.reshape(-1, grid, grid, grid)


def lookup(table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The table (C, G, G, G) at colours x: (N, 3, ...) -> (N, C, ...), or (P, 3) -> (P, C); trilinear,
    colours clamped to the cube."""
    last = x.movedim(1, -1) if x.ndim > 2 else x
    at = last.reshape(1, 1, 1, -1, 3).clamp(0.0, 1.0) * 2 - 1
    out = F.grid_sample(table.to(x.device, x.dtype)[None], at, mode="bilinear", padding_mode="border",
                        align_corners=True)
    out = out.view(table.shape[0], -1).T.reshape(*last.shape[:-1], table.shape[0])
    return out.movedim(-1, 1) if x.ndim > 2 else out
