"""Diverse-inputs FGSM (Xie et al. 2019, M-DI2-FGSM): MI-FGSM whose model sees, with probability
`diversity_prob` per step, the image resized by a random factor in [1, resize_rate) and zero-padded
at a random offset to resize_rate x its size (the model pools globally, as the paper's did).
`decay: 0` gives plain DI2-FGSM. Random draws come from the attack's seeded CPU generator: no
device sync, and a run is reproducible."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from physical.errors import ConfigError
from physical.attacks.mifgsm import MIFGSM


class DIFGSM(MIFGSM):
    name = "difgsm"

    params = {**MIFGSM.params,
              "diversity_prob": (float, 0.5, 0.0, 1.0),  # chance of a diverse input per step
              "resize_rate": (float, 1.1, 1.0, 2.0)}  # largest random resize

    def __init__(self, model, eps, *, diversity_prob: Optional[float] = None, resize_rate: Optional[float] = None,
                 **kw):
        super().__init__(model, eps, **kw)
        self.diversity_prob = float(self.param("diversity_prob", diversity_prob))
        self.resize_rate = float(self.param("resize_rate", resize_rate))

    @classmethod
    def check(cls, a, path):
        super().check(a, path)
        rate = cls.configured(a, "resize_rate")
        if cls.configured(a, "diversity_prob") > 0 and int(224 * rate) <= 224:
            raise ConfigError(f"{path}.resize_rate: {rate:g} leaves no room to resize; use at least 1.01")

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        big_h, big_w = int(h * self.resize_rate), int(w * self.resize_rate)
        if self.resize_rate < 1:  # torchattacks' convention: shrink into the original size
            (h, big_h), (w, big_w) = (big_h, h), (big_w, w)
        if self.diversity_prob <= 0 or big_h <= h or big_w <= w:
            return x
        u = torch.rand(4, generator=self.generator, dtype=torch.float64).tolist()  # cpu: no sync
        if u[0] >= self.diversity_prob:
            return x
        f = u[1]
        nh, nw = h + int(f * (big_h - h)), w + int(f * (big_w - w))
        top, left = int(u[2] * (big_h - nh)), int(u[3] * (big_w - nw))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
        return F.pad(x, (left, big_w - nw - left, top, big_h - nh - top), value=0.0)
