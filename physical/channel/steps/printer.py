"""Printer: tone curve ``print_gamma``, gamut squeezed into ``[ink_black, paper_white]``; with a
colour calibration the fitted printer-to-camera colour model replaces it (`physical.channel.colour`)."""
from __future__ import annotations

from typing import Optional

import torch

from physical.channel.steps.params import Getter, Ranges, around, col

NAMES = ("print_gamma", "paper_white", "ink_black")
IDENTITY = {"print_gamma": 1.0, "paper_white": 1.0, "ink_black": 0.0}


def ranges(get: Getter, k: float, calibrated: bool = False) -> Ranges:
    """Fixed values (no random range), scaled by the strength; the identity under a calibration."""
    gamma, white, black = (1.0, 1.0, 0.0) if calibrated else (get("print_gamma"), get("paper_white"), get("ink_black"))
    return {"print_gamma": around(1.0, gamma, gamma, k, 0.05),
            "paper_white": around(1.0, white, white, k, 0.0, 1.0),
            "ink_black": around(0.0, black, black, k, 0.0, 1.0)}


def apply(x: torch.Tensor, params: dict[str, torch.Tensor], colour: Optional[torch.nn.Module] = None) -> torch.Tensor:
    """Digital image -> printed reflectance (or, with `colour`, the camera's RGB of the print,
    blended with the input by ``params["colour_mix"]``: 1 = the model)."""
    if colour is not None:
        if x.shape[1] == 3:
            y = colour(x.clamp(0.0, 1.0))
        else:  # grey images: the model's response to neutral greys
            y = colour(x.clamp(0.0, 1.0).mean(1, keepdim=True).expand(-1, 3, -1, -1)).mean(1, keepdim=True)
        mix = params.get("colour_mix")
        if mix is None:
            return y
        m = col(mix, x)
        return torch.where(m == 1, y, x + m * (y - x))
    g = col(params["print_gamma"], x)
    white = col(params["paper_white"], x)
    black = col(params["ink_black"], x)
    # the floor of 1e-6 keeps the gradient of x**g finite at 0 when g < 1
    return black + (white - black) * x.clamp(1e-6, 1.0).pow(g)
