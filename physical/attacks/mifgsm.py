"""Momentum iterative FGSM (Dong et al. 2018): every step's gradient is divided by its mean absolute
value per image (the L1 normalisation of the paper, as torchattacks computes it) and accumulated
with `decay`; the step follows the sign of the accumulated direction."""
from __future__ import annotations

from typing import Optional

import torch

from physical.attacks.base import Attack


class MIFGSM(Attack):
    name = "mifgsm"
    delta_clip = True

    params = {"decay": (float, 1.0, 0.0, 10.0)}  # momentum

    def __init__(self, model, eps, *, decay: Optional[float] = None, **kw):
        super().__init__(model, eps, **kw)
        self.decay = float(self.param("decay", decay))

    def smooth(self, g: torch.Tensor) -> torch.Tensor:
        """Reshape the raw gradient before normalisation (TI-FGSM's kernel); identity here."""
        return g

    def momentum(self):
        """A fresh `direction` for `iterate`: normalise, add decay x the previous direction."""
        state: dict[str, torch.Tensor] = {}

        def direction(g: torch.Tensor) -> torch.Tensor:
            g = self.smooth(g)
            scale = torch.mean(torch.abs(g), dim=(1, 2, 3), keepdim=True)
            g = torch.where(scale > 0, g / scale, torch.zeros_like(g))  # a zero gradient stays zero, not NaN
            if "m" in state:
                g = g + state["m"] * self.decay
            state["m"] = g
            return g

        return direction

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        labels, targeted = self.target_labels(x, y)
        return self.iterate(x, x.clone(), labels, targeted, direction=self.momentum())
