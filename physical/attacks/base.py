"""The one small base every attack family builds on.

An attack takes a batch of [0,1] images and their labels and returns adversarial images in [0,1]
within the L-inf ball of radius eps (given in 0..255 units, as in Kurakin et al.). Rounding to
8 bits is the caller's job (`physical.models.to_uint8`): what is printed is what is evaluated.

`Attack.gradient` is where Expectation over Transformation lives: with an EOT config it draws N
transformations from the shared print-and-camera `Channel` per image, runs all of them as one
batch and returns the gradient of the mean loss, so any iterative attack can optimise for
survival without knowing about it.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F


class Attack:
    """Base of all attacks. Subclasses implement `perturb(x, y)`."""

    name = "attack"
    iterative = True
    default_alpha = 1.0  # 0..255 units per step

    def __init__(self, model, eps: float, *, steps: Optional[int] = None, alpha: Optional[float] = None,
                 target: Optional[int] = None, eot=None, channel=None, seed: int = 0, **params):
        self.model = model
        self.eps = float(eps) / 255.0
        self.eps255 = float(eps)
        self.steps = int(steps) if steps is not None else self.kurakin_steps(eps)
        self.alpha = (float(alpha) if alpha is not None else self.default_alpha) / 255.0
        self.target = target  # a class index: targeted attack
        self.eot = eot
        self.channel = channel
        self.params = params
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))
        self._step = 0

    @staticmethod
    def kurakin_steps(eps: float) -> int:
        """Kurakin et al.'s step count for alpha = 1: min(eps + 4, 1.25 eps), at least 1."""
        return max(1, int(math.ceil(min(eps + 4, 1.25 * eps))))

    # -- API ---------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.detach().to(self.model.device)
        y = y.to(self.model.device)
        with torch.enable_grad():
            adv = self.perturb(x, y)
        return adv.detach().clamp(0, 1)

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # -- shared pieces ------------------------------------------------------------------------
    def target_labels(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """Labels the loss uses, and whether the attack moves towards them (targeted)."""
        if self.target is not None:
            return torch.full_like(y, int(self.target)), True
        return y, False

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, reduction="sum")

    def inputs(self, x_adv: torch.Tensor) -> torch.Tensor:
        """What the model sees of x_adv in one step (input diversity hooks in here)."""
        return x_adv

    def gradient(self, x_adv: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """d loss / d x_adv, averaged over EOT samples when configured; checked for NaN/Inf."""
        x_adv = x_adv.detach().requires_grad_(True)
        if self.eot is not None and self.channel is not None:
            n = int(self.eot.samples)
            b = x_adv.shape[0]
            params = self.channel.sample(b * n, generator=self.generator, strength=float(self.eot.strength),
                                         device=x_adv.device)
            xs = self.channel(x_adv.repeat_interleave(n, 0), params)[0]
            loss = self.loss(self.model(self.inputs(xs)), labels.repeat_interleave(n, 0)) / n
        else:
            loss = self.loss(self.model(self.inputs(x_adv)), labels)
        (grad,) = torch.autograd.grad(loss, x_adv)
        if not torch.isfinite(grad).all():
            raise FloatingPointError(f"attack {self.name!r}: gradient has NaN or Inf at step {self._step}")
        return grad

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Clip into the eps ball around x and into [0, 1]."""
        return torch.min(torch.max(x_adv, x - self.eps), x + self.eps).clamp(0, 1)

    def iterate(self, x: torch.Tensor, x_adv: torch.Tensor, labels: torch.Tensor, targeted: bool,
                direction=None) -> torch.Tensor:
        """`steps` signed-gradient steps of size alpha (the BIM loop); `direction(grad)` may reshape
        the gradient (momentum, smoothing)."""
        sign = -1.0 if targeted else 1.0
        for self._step in range(self.steps):
            g = self.gradient(x_adv, labels)
            if direction is not None:
                g = direction(g)
            x_adv = self.project(x_adv.detach() + sign * self.alpha * g.sign(), x)
        return x_adv
