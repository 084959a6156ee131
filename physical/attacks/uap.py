"""Universal adversarial perturbation, fitted by stochastic gradient (SGD-UAP, Shafahi et al. 2020).

One L-inf perturbation delta (|delta| <= eps) for every image: minibatches of the fit images, and for
each the sign of the gradient of the mean *clipped* cross-entropy (an image already fooled by a
margin stops pulling delta its way: min(CE, `clip`)) with respect to delta, one step of alpha, and
delta is clipped back to the eps ball. The step size is halved at half and at three quarters of the
steps. The gradient is `Attack.gradient`'s, so `eot` (the shared print-and-camera channel),
`printability` and `tv` work as for any attack. The control is a random-sign perturbation of the
same eps, also one for every image.

`augment` keeps a perturbation fitted on a few dozen images from merely memorising them (fooling
the fit images, not the unseen ones): every step sees each fit image freshly cropped (a random
square of 1 - augment .. 1 of its side, resized back, at a random place) and mirrored at random,
so a few dozen images stand for many more; the perturbation is added after, as on an unseen image.
Measured on Lite0 at eps 10 (30 of the fit images fitted, 20 others held out, 40 steps of 16):
without it 78 % of the fit images but few held-out ones are fooled (a 50-image fit: 14 % of the
unseen, random signs 16 %); with `augment` 0.4, 60 % of the held-out ones. Fitting delta on a
4x coarser grid (smoother) with it fell to 10 %: kept per pixel.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from physical.attacks.fitted import FIT_PARAMS, FittedAttack, augment


class UAP(FittedAttack):
    name = "uap"
    control_name = "rand"
    params = {
        **FIT_PARAMS,
        "clip": (float, 9.0, 0.1, 100.0),  # clipped cross-entropy (Shafahi et al.: 9)
        "augment": (float, 0.4, 0.0, 0.9),  # fit images cropped to 1 - augment .. 1 of their side, mirrored; 0: off
    }

    def __init__(self, model, eps, *, alpha=None, **kw):
        super().__init__(model, eps, alpha=alpha, **kw)
        if alpha is None:  # a tenth of eps per step: eps is reached in a few steps, then refined
            self.alpha = max(self.eps / 10, 0.25 / 255)

    def loss(self, logits, labels):
        return F.cross_entropy(logits, labels, reduction="none").clamp(max=float(self.param("clip"))).mean()

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        labels, targeted = self.target_labels(x, y)
        zoom = float(self.param("augment"))
        delta = torch.zeros_like(x[:1])
        total = self.total_steps(len(x))
        for step, idx in self.batches(len(x)):
            self._step = step
            alpha = self.alpha / (1 + (self._step >= total // 2) + 2 * (self._step >= 3 * total // 4))
            xb = augment(x[idx], zoom, self.generator) if zoom > 0 else x[idx]
            self.clean = xb  # the TV penalty's reference: the perturbation is delta (where not clipped)
            g = self.gradient((xb + delta).clamp(0, 1), labels[idx], targeted).sum(0, keepdim=True)
            delta = (delta + (-alpha if targeted else alpha) * g.sign()).clamp(-self.eps, self.eps)
        return delta[0]

    def apply(self, x, artifact, placement: Optional[torch.Tensor] = None):
        return (x + artifact.to(x.device, x.dtype)[None]).clamp(0, 1)

    def control_artifact(self, artifact, generator):
        """Random signs of the same eps, one perturbation for every image."""
        signs = torch.randint(0, 2, artifact.shape, generator=generator).to(artifact.dtype) * 2 - 1
        return self.eps * signs.to(artifact.device)
