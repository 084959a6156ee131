"""Defences put in front of a classifier (input transformations), by name: ``DEFENCES[name](**params)``.

Each defence is an nn.Module on [0,1] NCHW batches; ``Defended(classifier, defence)`` is again a
classifier taking [0,1] images (same ``input_size``, ``device``, ``name``), so the generate code,
the attacks, `predict` and the live view use it like any model.

=========== ================================== =========================================== ============
name        parameters (default; range)         what                                        gradient
=========== ================================== =========================================== ============
identity    -                                   nothing (a control)                         exact
noise       sigma (0.03; 0 .. 0.5)              add Gaussian noise, [0,1] units             exact, random
blur        sigma (1.0; 0 .. 10)                Gaussian blur, pixels                       exact
median      size (3; 1 .. 15)                   median filter, size x size                  straight-through
binarize    threshold (0.5; 0 .. 1)             each channel to 0 or 1                      straight-through
jpeg        quality (75; 1 .. 100)              JPEG (libjpeg) encode and decode            straight-through
bitdepth    bits (3; 1 .. 8)                    round to 2**bits levels per channel         straight-through
multicrop   n (4; 1 .. 64), fraction (0.875;     average the class probabilities of n        exact, random
            0.3 .. 1)                           random crops (resized back)
=========== ================================== =========================================== ============

Randomised defences (`randomised = True`) draw from ``defence.generator`` (a CPU torch.Generator,
reseeded with ``reseed``): evaluation is reproducible, and ``Expectation(defended, n)`` averages
the class probabilities of n draws in one batch, which is what an adaptive (EOT) attack optimises.
Non-differentiable defences return their value with the identity's gradient (BPDA, Athalye et al.
2018), so a gradient attack sees through them instead of being stopped by a zero gradient.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from physical.errors import ConfigError
from physical.transforms import ops


class Defence(nn.Module):
    """Base: subclasses set `name`, `params` {name: (type, default, lo, hi)} and implement `transform`."""

    name = "defence"
    params: dict[str, tuple] = {}
    randomised = False
    differentiable = True
    views = 1  # images the classifier sees per input image

    def __init__(self, **kwargs):
        super().__init__()
        unknown = set(kwargs) - set(self.params)
        if unknown:
            raise TypeError(f"defence {self.name!r}: unknown parameter(s) {', '.join(sorted(unknown))}")
        for k, (tp, default, _, _) in self.params.items():
            setattr(self, k, tp(kwargs.get(k, default)))
        self.generator = torch.Generator(device="cpu").manual_seed(0)

    def reseed(self, *parts) -> "Defence":
        self.generator = ops.seeded_generator("defence", self.label, *parts)
        return self

    @property
    def settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.params}

    @property
    def label(self) -> str:
        """How the defence is named in paths and tables: median-size3, jpeg-quality75."""
        return self.name + "".join(f"-{k}{v:g}" for k, v in self.settings.items())

    def transform(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N*views) x C x H x W in [0,1]; straight-through gradient when not differentiable."""
        y = self.transform(x)
        if not self.differentiable:
            y = ops.straight_through(x, y)
        return y

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings.items())


class Identity(Defence):
    name = "identity"

    def transform(self, x):
        return x


class Noise(Defence):
    name = "noise"
    params = {"sigma": (float, 0.03, 0.0, 0.5)}
    sigma: float
    randomised = True

    def transform(self, x):
        if self.sigma == 0:
            return x
        return (x + self.sigma * ops.randn_like(x, self.generator)).clamp(0, 1)


class Blur(Defence):
    name = "blur"
    params = {"sigma": (float, 1.0, 0.0, 10.0)}
    sigma: float

    def transform(self, x):
        return ops.gaussian_blur(x, self.sigma)


class Median(Defence):
    name = "median"
    params = {"size": (int, 3, 1, 15)}
    size: int
    differentiable = False

    def transform(self, x):
        return ops.median_filter(x.detach(), self.size)


class Binarize(Defence):
    name = "binarize"
    params = {"threshold": (float, 0.5, 0.0, 1.0)}
    threshold: float
    differentiable = False

    def transform(self, x):
        return (x.detach() > self.threshold).to(x.dtype)


class JPEG(Defence):
    name = "jpeg"
    params = {"quality": (int, 75, 1, 100)}
    quality: int
    differentiable = False

    def transform(self, x):
        return ops.jpeg(x, self.quality)


class BitDepth(Defence):
    name = "bitdepth"
    params = {"bits": (int, 3, 1, 8)}
    bits: int
    differentiable = False

    def transform(self, x):
        return ops.quantize(x.detach(), self.bits)


class MultiCrop(Defence):
    name = "multicrop"
    params = {"n": (int, 4, 1, 64), "fraction": (float, 0.875, 0.3, 1.0)}
    n: int
    fraction: float
    randomised = True

    @property
    def views(self) -> int:  # type: ignore[override]
        return self.n

    def transform(self, x):
        b = x.shape[0]
        if self.fraction >= 1.0:
            return x.repeat_interleave(self.n, 0)
        f = self.fraction
        # random centre offsets in normalised coordinates, the crop staying inside the image
        shift = (torch.rand((b * self.n, 2), generator=self.generator) * 2 - 1) * (1 - f)
        theta = torch.zeros(b * self.n, 2, 3)
        theta[:, 0, 0] = f
        theta[:, 1, 1] = f
        theta[:, :, 2] = shift
        theta = theta.to(x.device, x.dtype)
        xs = x.repeat_interleave(self.n, 0)
        grid = F.affine_grid(theta, list(xs.shape), align_corners=False)
        return F.grid_sample(xs, grid, mode="bilinear", padding_mode="border", align_corners=False)


DEFENCES: dict[str, type[Defence]] = {c.name: c for c in (Identity, Noise, Blur, Median, Binarize, JPEG, BitDepth,
                                                            MultiCrop)}


def check_defence(entry, path: str) -> dict:
    """A config entry {name: ..., <param>: ...} checked against the registry; a ConfigError names the
    key path of the first bad value. Returns {'name': ..., **params} with defaults filled in."""
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: expected a defence name or a mapping {{name: ..., <parameter>: ...}}, got "
                          f"{entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or name.lower() not in DEFENCES:
        raise ConfigError(f"{path}.name: unknown defence {name!r}; allowed: {', '.join(DEFENCES)}")
    cls = DEFENCES[name.lower()]
    out: dict[str, Any] = {"name": cls.name}
    for key, value in entry.items():
        if key == "name":
            continue
        if key not in cls.params:
            allowed = ", ".join(["name", *cls.params])
            raise ConfigError(f"{path}.{key}: unknown parameter of defence {cls.name!r}; allowed keys here: {allowed}")
        tp, _, lo, hi = cls.params[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ConfigError(f"{path}.{key}: {value!r} is not a number")
        if tp is int and not float(value).is_integer():
            raise ConfigError(f"{path}.{key}: {value!r} is not an integer")
        if not lo <= value <= hi:
            raise ConfigError(f"{path}.{key}: {value!r} is out of range; allowed {lo:g} .. {hi:g}")
        out[key] = tp(value)
    for key, (tp, default, _, _) in cls.params.items():
        out.setdefault(key, tp(default))
    return out


def make_defence(name: str, **params) -> Defence:
    return DEFENCES[name.lower()](**params)


class Defended(nn.Module):
    """A classifier with a defence in front: takes [0,1] images, returns logits (for a multi-view
    defence, the log of the mean class probability over its views, so softmax gives that mean)."""

    def __init__(self, classifier: nn.Module, defence: Defence):
        super().__init__()
        self.classifier = classifier
        self.defence = defence
        self.name = f"{getattr(classifier, 'name', 'model')}+{defence.label}"
        self.input_size = getattr(classifier, "input_size", None)
        self.resize_ratio = getattr(classifier, "resize_ratio", 0.875)

    @property
    def device(self) -> torch.device:
        return self.classifier.device  # type: ignore[return-value]  # the wrapped Classifier's, not a submodule

    @property
    def randomised(self) -> bool:
        return self.defence.randomised

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.defence(x))
        v = self.defence.views
        if v == 1:
            return logits
        lp = logits.log_softmax(1).view(x.shape[0], v, -1)
        return torch.logsumexp(lp, 1) - math.log(v)


class Expectation(nn.Module):
    """Expectation over a randomised model's randomness: the log of the mean class probability of
    `samples` draws, run as one batch (the objective of an EOT attack, Athalye et al. 2018). A model
    without randomness is passed through unchanged."""

    def __init__(self, model: nn.Module, samples: int):
        super().__init__()
        self.model = model
        self.samples = int(samples) if getattr(model, "randomised", False) else 1
        self.name = getattr(model, "name", "model")
        self.input_size = getattr(model, "input_size", None)
        self.resize_ratio = getattr(model, "resize_ratio", 0.875)

    @property
    def device(self) -> torch.device:
        return self.model.device  # type: ignore[return-value]  # the wrapped Classifier's, not a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.samples
        if n == 1:
            return self.model(x)
        lp = self.model(x.repeat_interleave(n, 0)).log_softmax(1).view(x.shape[0], n, -1)
        return torch.logsumexp(lp, 1) - math.log(n)
