"""Fitted attacks: one perturbation for many images (a universal perturbation, a patch).

Not a per-image attack: `fit(x, y)` learns one artifact (a tensor) from the *fit* images, and
`apply(x, artifact, placement)` puts it on any images, typically ones the fit never saw (`placement(n,
generator)`: where on each image, for a patch; None for a universal perturbation). `control_artifact`
is a control of the same size (random signs, a noise patch), applied the same way at the same places:
what any perturbation of that size does, the baseline the artifact is measured against. `perturb`
(fit, then apply to the same images) keeps a fitted attack usable wherever an ordinary one is.

The generate stage (`physical.stages.generate_fitted`) splits the run's images into fit and unseen ones (the `fit`
fraction, or a separate `fit_source`), stores the artifact in the run directory and writes the
adversarial and the control images of every image.

`augment` (shared by the fitted families): fresh random crops and mirrors of the fit images at every
step, so that a few dozen fit images stand for many more and the artifact learns less of them by heart.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from physical.errors import ConfigError
from physical.attacks.base import Attack
from physical.attacks.model import model_device

FIT_PARAMS = {
    "fit": (float, 0.5, 0.0, 1.0),  # fraction of the run's images the artifact is fitted on; the rest are unseen
    "fit_source": (str, None, None, None),  # or fit on these images (a folder, or "samples"); all run images unseen
    "epochs": (int, 20, 1, 100000),  # passes over the fit images
    "batch": (int, 16, 1, 4096),  # fit images per step
}


def augment(x: torch.Tensor, zoom: float, generator: torch.Generator) -> torch.Tensor:
    """Each image of x cropped to a random square of (1 - zoom .. 1) of its side at a random place,
    resized back to its size, and mirrored left-right with probability 1/2 (one batched resampling)."""
    b = len(x)
    u = torch.rand(b, 4, generator=generator).to(x.device, x.dtype)
    s = 1 - zoom * u[:, 0]
    flip = torch.where(u[:, 1] < 0.5, -1.0, 1.0).to(x.dtype)
    zero = torch.zeros_like(s)
    theta = torch.stack([torch.stack([s * flip, zero, (1 - s) * (2 * u[:, 2] - 1)], 1),
                         torch.stack([zero, s, (1 - s) * (2 * u[:, 3] - 1)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class FittedAttack(Attack):
    fitted = True
    control_name = "control"  # label prefix of the control images

    @classmethod
    def check(cls, a, path: str) -> None:
        fit = a.family_params.get("fit")
        if fit is not None and not 0 < fit < 1:
            raise ConfigError(f"{path}.fit: {fit:g} must be inside (0, 1): a fraction of the images to fit on, "
                              "leaving the rest unseen")

    def split(self, n: int, path: str = "fit") -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the fit and the unseen images among n (a seeded shuffle); a split that leaves
        no fit or no unseen image is a ConfigError naming `path`."""
        k = int(math.floor(float(self.param("fit")) * n + 0.5))  # the nearest count
        if k < 1 or k >= n:
            raise ConfigError(f"{path}: {self.param('fit'):g} of {n} image(s) leaves "
                              f"{'no image to fit on' if k < 1 else 'no unseen image'}; change the fraction "
                              "or use more images (images.limit), or fit on a fit_source")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        return order[:k].sort().values, order[k:].sort().values

    def batches(self, n: int):
        """Steps over the fit images: `epochs` shuffled passes of `batch` images: (step, indices)."""
        bs = int(self.param("batch"))
        step = 0
        for _ in range(int(self.param("epochs"))):
            order = torch.randperm(n, generator=self.generator)
            for i in range(0, n, bs):
                yield step, order[i : i + bs]
                step += 1

    def total_steps(self, n: int) -> int:
        return int(self.param("epochs")) * math.ceil(n / int(self.param("batch")))

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """The fitted family's hook: the artifact learnt from images x with labels y."""
        raise NotImplementedError

    def placement(self, n: int, generator: torch.Generator) -> Optional[torch.Tensor]:
        """Where the artifact goes on each of n images (None: everywhere, as a perturbation)."""
        return None

    def apply(self, x: torch.Tensor, artifact: torch.Tensor, placement: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def control_artifact(self, artifact: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def fit_images(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """`fit` with the base's bookkeeping (device, gradient mode, deferred NaN checks)."""
        device = model_device(self.model)
        x, y = x.detach().to(device), y.to(device)
        self._flags = []
        with torch.enable_grad():
            art = self.fit(x, y)
        self._raise_deferred()
        return art.detach()

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        art = self.fit(x, y)
        return self.apply(x, art, self.placement(len(x), self.generator))
