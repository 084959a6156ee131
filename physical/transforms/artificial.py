"""The artificial transformations of Kurakin et al. (2016, section 4), batched on [0,1] NCHW.

Each transformation has one strength with a documented range; the identity strength returns the
batch unchanged (so its destruction rate is 0 by construction, and the tests check it is).

=========== ================================================ ============== ========
name        what                                             strength range identity
=========== ================================================ ============== ========
brightness  x + b (the channel's convention), [0,1] units    -1 .. 1        0
contrast    (x - 0.5) * c + 0.5                              0 .. 4         1
blur        Gaussian blur, sigma in pixels                   0 .. 20        0
noise       x + N(0, sigma^2), sigma in [0,1] units          0 .. 0.5       0
jpeg        JPEG (libjpeg) at this quality                   1 .. 100       none
=========== ================================================ ============== ========

Results are clipped to [0, 1]; the experiments round them to 8 bits before classifying, as a
camera or an image file would.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from physical.errors import ConfigError
from physical.transforms import ops


@dataclass(frozen=True)
class Transformation:
    name: str
    lo: float
    hi: float
    identity: Optional[float]
    unit: str
    fn: Callable  # (x, strength, generator) -> x
    # the default sweep (mild to strong), used when a config names the transformation without strengths
    sweep: tuple = ()


def _brightness(x, b, g):
    return (x + b).clamp(0, 1)


def _contrast(x, c, g):
    return ((x - 0.5) * c + 0.5).clamp(0, 1)


def _blur(x, s, g):
    return ops.gaussian_blur(x, s).clamp(0, 1)


def _noise(x, s, g):
    return (x + s * ops.randn_like(x, g)).clamp(0, 1)


def _jpeg(x, q, g):
    return ops.jpeg(x, q)


TRANSFORMATIONS: dict[str, Transformation] = {
    t.name: t
    for t in [
        Transformation("brightness", -1.0, 1.0, 0.0, "added, [0,1] units", _brightness, (-0.3, -0.15, 0.15, 0.3)),
        Transformation("contrast", 0.0, 4.0, 1.0, "factor around 0.5", _contrast, (0.5, 0.75, 1.25, 1.5)),
        Transformation("blur", 0.0, 20.0, 0.0, "Gaussian sigma, pixels", _blur, (0.5, 1.0, 1.5, 2.0)),
        Transformation("noise", 0.0, 0.5, 0.0, "Gaussian sigma, [0,1] units", _noise, (0.01, 0.02, 0.04, 0.08)),
        Transformation("jpeg", 1.0, 100.0, None, "JPEG quality", _jpeg, (90.0, 70.0, 50.0, 30.0, 10.0)),
    ]
}


def check_name(name: str, path: str) -> Transformation:
    if name not in TRANSFORMATIONS:
        raise ConfigError(f"{path}: unknown transformation {name!r}; allowed: {', '.join(TRANSFORMATIONS)}")
    return TRANSFORMATIONS[name]


def check_strength(name: str, strength, path: str) -> float:
    """A strength of transformation `name` within its range, or a ConfigError naming `path`."""
    t = check_name(name, path)
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or strength != strength:
        raise ConfigError(f"{path}: {strength!r} is not a number")
    if not t.lo <= strength <= t.hi:
        raise ConfigError(f"{path}: {strength!r} is out of range for {name} ({t.unit}); allowed {t.lo:g} .. {t.hi:g}")
    return float(strength)


def apply_transformation(x: torch.Tensor, name: str, strength: float,
                         generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Transformation `name` at `strength` on a [0,1] NCHW batch; the identity strength returns x itself."""
    t = TRANSFORMATIONS[name]
    if t.identity is not None and float(strength) == t.identity:
        return x
    if generator is None:
        generator = ops.seeded_generator("transformation", name, float(strength))
    return t.fn(x, float(strength), generator)
