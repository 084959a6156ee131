"""Projected gradient descent (Madry et al. 2018): BIM from a uniformly random start inside the eps
ball (`random_start`, on by default), projected after every step."""
from __future__ import annotations

from typing import Optional

import torch

from physical.attacks.base import Attack


class PGD(Attack):
    name = "pgd"
    delta_clip = True

    params = {"random_start": (bool, True, None, None)}  # start at a uniformly random point of the eps ball

    def __init__(self, model, eps, *, random_start: Optional[bool] = None, **kw):
        super().__init__(model, eps, **kw)
        self.random_start = bool(self.param("random_start", random_start))

    def start(self, x: torch.Tensor) -> torch.Tensor:
        if not self.random_start:
            return x.clone()
        noise = torch.empty_like(x).uniform_(-self.eps, self.eps, generator=self.device_generator(x.device))
        return (x + noise).clamp(0, 1)

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        labels, targeted = self.target_labels(x, y)
        return self.iterate(x, self.start(x), labels, targeted)
