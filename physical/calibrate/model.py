"""The printer-to-camera colour model: digital RGB -> the RGB a camera records of the printed page.

    y = srgb_encode( clamp( M . t(x) + b, 0, 1 ) )

- ``t``: one monotone tone curve per channel, piecewise linear with K+1 knots spaced evenly over
  the *digital* value (so the dark end gets as many knots as the light end), mapping to linear
  light, ``t(0) = 0``, ``t(1) = 1``. It holds the printer's dot gain and each ink's density curve.
- ``M`` (3x3) and ``b`` (3) act in linear light, where light adds: ink and paper reflectances,
  the camera's spectral mixing and white balance, flare and black level.
- ``srgb_encode`` is fixed: the camera's output is taken to be sRGB-encoded (what phones and webcams
  write).

Why this model: an affine map alone misses the printer's tone curve (dot gain darkens mid-tones by
several Delta-E) and a 3D look-up table needs far more patches than one printed chart holds (a
9^3 LUT has 2187 unknowns) and extrapolates badly between patches; per-channel curves + an affine
map in linear light has about 60 unknowns, fits a 144-patch chart with a held-out error a few
Delta-E at most on real printers, is monotone by construction, and is differentiable in x (the
EOT gradient flows through the curves' slopes and the matrix; the clamp is the printer's gamut:
colours it cannot reach get no gradient).
"""
from __future__ import annotations

import torch

from .files import ColourCalibration


def srgb_decode(v: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded [0, 1] -> linear light."""
    v = v.clamp(0.0, 1.0)
    return torch.where(v <= 0.04045, v / 12.92, ((v.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)


def srgb_encode(v: torch.Tensor) -> torch.Tensor:
    """Linear light [0, 1] -> sRGB-encoded; the power branch is evaluated only where it is used
    (its gradient at 0 would be infinite)."""
    v = v.clamp(0.0, 1.0)
    return torch.where(v <= 0.0031308, 12.92 * v, 1.055 * v.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def tone_curves(x: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
    """Per-channel piecewise-linear curves: x (N, 3, ...) in [0, 1], curves (3, K+1) -> (N, 3, ...)."""
    k = curves.shape[1] - 1
    s = x.clamp(0.0, 1.0) * k
    i = s.detach().floor().clamp(0, k - 1).long()
    f = s - i.to(s.dtype)
    shape = [1, 3] + [1] * (x.ndim - 2)
    ch = torch.arange(3, device=x.device).view(shape)
    c = curves.to(x.device, x.dtype)
    lo, hi = c[ch, i], c[ch, i + 1]
    return lo + f * (hi - lo)


def mix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The 3x3 matrix applied to the channels of x (N, 3, ...) (a matmul: einsum is far slower here)."""
    if x.ndim == 2:
        return x @ m.T
    return (m @ x.flatten(2)).view_as(x)


class ColourModel(torch.nn.Module):
    """The fitted printer-to-camera colour transform; x (N, 3, H, W) digital [0, 1] -> camera [0, 1]."""

    def __init__(self, curves, matrix, bias):
        super().__init__()
        self.register_buffer("curves", torch.as_tensor(curves, dtype=torch.float32).clone())
        self.register_buffer("matrix", torch.as_tensor(matrix, dtype=torch.float32).clone())
        self.register_buffer("bias", torch.as_tensor(bias, dtype=torch.float32).clone())

    @classmethod
    def from_calibration(cls, cal: ColourCalibration) -> "ColourModel":
        return cls(cal.curves, cal.matrix, cal.bias)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """M t(x) + b, before the gamut clamp (linear light)."""
        t = tone_curves(x, self.curves)
        y = mix(self.matrix.to(x.device, x.dtype), t)
        return y + self.bias.to(x.device, x.dtype).view([1, 3] + [1] * (x.ndim - 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return srgb_encode(self.linear(x))


def apply_numpy(cal_or_model, rgb):
    """Convenience: (..., 3) float digital values in [0, 1] -> camera values, as numpy."""
    import numpy as np

    model = cal_or_model if isinstance(cal_or_model, ColourModel) else ColourModel.from_calibration(cal_or_model)
    a = np.asarray(rgb, np.float64)
    x = torch.as_tensor(a.reshape(-1, 3), dtype=torch.float64)
    with torch.no_grad():
        m = ColourModel(model.curves.double(), model.matrix.double(), model.bias.double())
        y = m(x).numpy()
    return y.reshape(a.shape)
