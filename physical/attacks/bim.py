"""The basic iterative method (Kurakin et al. 2016): steps of alpha = 1 (0..255 units), clipped to
the eps ball after every step, min(eps + 4, 1.25 eps) steps unless configured."""
from __future__ import annotations

import torch

from physical.attacks.base import Attack


class BIM(Attack):
    name = "bim"

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        labels, targeted = self.target_labels(x, y)
        return self.iterate(x, x.clone(), labels, targeted)
