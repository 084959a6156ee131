"""Lighting: a smooth light gradient and a white balance gain per channel on the scene, then the
camera's contrast and brightness."""
from __future__ import annotations

import torch

from physical.channel.steps.params import Getter, Ranges, around, col

NAMES = ("light_gradient", "light_angle_deg", "wb_r", "wb_g", "wb_b", "contrast", "brightness")
IDENTITY = {"light_gradient": 0.0, "light_angle_deg": 0.0, "wb_r": 1.0, "wb_g": 1.0, "wb_b": 1.0,
            "contrast": 1.0, "brightness": 0.0}


def ranges(get: Getter, k: float) -> Ranges:
    wb, contrast, brightness = get("white_balance"), get("contrast"), get("brightness")
    return {"light_gradient": around(0.0, 0.0, get("light_gradient"), k, 0.0, 0.95),
            "light_angle_deg": (-180.0, 180.0),  # a direction: not scaled
            "wb_r": around(1.0, 1 - wb, 1 + wb, k, 0.0),
            "wb_g": around(1.0, 1 - wb, 1 + wb, k, 0.0),
            "wb_b": around(1.0, 1 - wb, 1 + wb, k, 0.0),
            "contrast": around(1.0, contrast[0], contrast[1], k, 0.0),
            "brightness": around(0.0, brightness[0], brightness[1], k)}


def apply(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """An affine map per pixel, x * scale + offset, applied in one pass."""
    n, c, hh, ww = x.shape
    contrast = col(params["contrast"], x)
    scale = contrast  # N x 1 x 1 x 1, grown by what applies
    if c == 3:
        gain = torch.stack([params["wb_r"], params["wb_g"], params["wb_b"]], 1).to(x.device, x.dtype)
        scale = scale * gain.view(n, 3, 1, 1)
    amp = col(params["light_gradient"], x)
    if float(amp.abs().max()) > 0:
        ang = torch.deg2rad(params["light_angle_deg"].to(x.device, x.dtype))
        dx, dy = ang.cos(), ang.sin()
        norm = dx.abs() + dy.abs()
        u = torch.linspace(-1, 1, ww, device=x.device, dtype=x.dtype).view(1, 1, 1, ww)
        v = torch.linspace(-1, 1, hh, device=x.device, dtype=x.dtype).view(1, 1, hh, 1)
        ramp = col(dx / norm, x) * u + col(dy / norm, x) * v  # in [-1, 1], peak at a corner
        scale = scale * (1 + amp * ramp)
    offset = 0.5 - 0.5 * contrast + col(params["brightness"], x)
    return torch.addcmul(offset, x, scale)
