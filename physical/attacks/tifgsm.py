"""Translation-invariant FGSM (Dong et al. 2019, TI-DIM): DI-FGSM whose gradient is smoothed with a
Gaussian kernel (`kernel_size`, odd; sigma = kernel_size / 6 as in the paper's nsig = 3) before the
momentum step, which is the gradient of the loss averaged over small translations of the image.
`diversity_prob: 0` and `decay: 0` reduce it to TI-FGSM alone."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from physical.errors import ConfigError
from physical.attacks.difgsm import DIFGSM


def gaussian_kernel(size: int, nsig: float = 3.0) -> torch.Tensor:
    """size x size Gaussian sampled on [-nsig, nsig] and summed to 1 (torchattacks' gkern), float64."""
    t = torch.linspace(-nsig, nsig, size, dtype=torch.float64)
    k1 = torch.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
    k = torch.outer(k1, k1)
    return k / k.sum()


class TIFGSM(DIFGSM):
    name = "tifgsm"

    params = {**DIFGSM.params, "kernel_size": (int, 7, 1, 31)}  # Gaussian gradient kernel, odd

    def __init__(self, model, eps, *, kernel_size: Optional[int] = None, **kw):
        super().__init__(model, eps, **kw)
        self.kernel_size = int(self.param("kernel_size", kernel_size))
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"attack 'tifgsm': kernel_size must be odd and positive, got {self.kernel_size}")
        self._kernel = gaussian_kernel(self.kernel_size).float()
        self._kernels: dict[tuple, torch.Tensor] = {}

    @classmethod
    def check(cls, a, path):
        super().check(a, path)
        k = cls.configured(a, "kernel_size")
        if k % 2 == 0:
            raise ConfigError(f"{path}.kernel_size: {k} must be odd (the kernel is centred on a pixel)")

    def smooth(self, g: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == 1:
            return g
        c = g.shape[1]
        key = (g.device, g.dtype, c)
        if key not in self._kernels:
            self._kernels[key] = self._kernel.to(g.device, g.dtype).expand(c, 1, -1, -1).contiguous()
        return F.conv2d(g, self._kernels[key], stride=1, padding="same", groups=c)
