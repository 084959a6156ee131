"""The iterative least-likely class method (Kurakin et al. 2016): the basic iterative method aimed
at the class the model finds least likely for the clean image."""
from __future__ import annotations

import torch

from physical.attacks.base import Attack


class IterativeLeastLikely(Attack):
    name = "ill"

    def target_labels(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, bool]:
        if self.target is not None:
            return super().target_labels(x, y)
        return self.least_likely(x), True

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        labels, targeted = self.target_labels(x, y)
        return self.iterate(x, x.clone(), labels, targeted)
