"""The fast method (FGSM, Goodfellow et al. 2015): one step of size eps along the gradient's sign."""
from __future__ import annotations

import torch

from physical.attacks.base import Attack


class FGSM(Attack):
    name = "fgsm"
    iterative = False

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        labels, targeted = self.target_labels(x, y)
        g = self.gradient(x, labels, targeted)
        step = -self.eps if targeted else self.eps
        return self.project(x + step * g.sign(), x)
