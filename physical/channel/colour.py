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

A smooth residual on top (optional, ``residual``): inks mix subtractively and a printer replaces
part of the grey by black ink, which no per-channel curve and 3x3 matrix can follow everywhere
(their greys come out tinted by a few Delta-E). ``physical calibrate colour`` regresses what the
curves and matrix leave over the patches (a Gaussian kernel, shrunk to zero away from them) onto a
RESIDUAL_GRID^3 table of digital colours, added in linear light with trilinear interpolation, and
keeps it only where it lowers the held-out patches' error:

    y = srgb_encode( clamp( M . t(x) + b + r(x), 0, 1 ) )
"""
from __future__ import annotations

import numpy as np
import torch

from physical.channel.files import ColourCalibration
from physical.channel.tables import lookup
from physical.channel.chart import chart_colours


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
    i += torch.arange(0, 3 * (k + 1), k + 1, device=x.device).view(shape)  # knot i of its channel, flat
    c = curves.to(x.device, x.dtype).reshape(-1)
    lo, hi = c.take(i), c.take(i + 1)  # a flat take: half the cost of indexing by (channel, knot)
    return lo + f * (hi - lo)


def mix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The 3x3 matrix applied to the channels of x (N, 3, ...) (a matmul: einsum is far slower here)."""
    if x.ndim == 2:
        return x @ m.T
    return (m @ x.flatten(2)).view_as(x)


class ColourModel(torch.nn.Module):
    """The fitted printer-to-camera colour transform; x (N, 3, H, W) digital [0, 1] -> camera [0, 1]."""

    curves: torch.Tensor  # buffers
    matrix: torch.Tensor
    bias: torch.Tensor
    residual: "torch.Tensor | None"

    def __init__(self, curves, matrix, bias, residual=None):
        super().__init__()
        self.register_buffer("curves", torch.as_tensor(curves, dtype=torch.float32).clone())
        self.register_buffer("matrix", torch.as_tensor(matrix, dtype=torch.float32).clone())
        self.register_buffer("bias", torch.as_tensor(bias, dtype=torch.float32).clone())
        self.register_buffer("residual", None if residual is None else torch.as_tensor(residual, dtype=torch.float32))

    @classmethod
    def from_calibration(cls, cal: ColourCalibration) -> "ColourModel":
        return cls(cal.curves, cal.matrix, cal.bias, cal.residual)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """M t(x) + b, before the gamut clamp (linear light)."""
        t = tone_curves(x, self.curves)
        y = mix(self.matrix.to(x.device, x.dtype), t)
        y = y + self.bias.to(x.device, x.dtype).view([1, 3] + [1] * (x.ndim - 2))
        return y if self.residual is None else y + lookup(self.residual, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return srgb_encode(self.linear(x))


def apply_numpy(cal_or_model, rgb):
    """Convenience: (..., 3) float digital values in [0, 1] -> camera values, as numpy."""
    model = cal_or_model if isinstance(cal_or_model, ColourModel) else ColourModel.from_calibration(cal_or_model)
    a = np.asarray(rgb, np.float64)
    x = torch.as_tensor(a.reshape(-1, 3), dtype=torch.float64)
    with torch.no_grad():
        y = ColourModel(model.curves, model.matrix, model.bias, model.residual).double()(x).numpy()
    return y.reshape(a.shape)


def printable_palette(cal: ColourCalibration) -> torch.Tensor:
    """(P, 3) the printer's printable colours as the camera saw them: the measured colours of the
    chart's patches in a colour.json (the model's prediction of the chart where they are absent)."""
    patches = cal.raw.get("patches") if isinstance(cal.raw, dict) else None
    if patches:
        return torch.tensor([p["measured"] for p in patches], dtype=torch.float32)
    x = torch.as_tensor(chart_colours(), dtype=torch.float32) / 255.0
    with torch.no_grad():
        return ColourModel.from_calibration(cal)(x)


def non_printability(x: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Non-printability score (Sharif et al. 2016) of images x (N, 3, H, W) in [0, 1] against a
    palette of printable colours (P, 3), averaged over the pixels; (N,). Sharif et al. take per pixel
    the product of its distances to the palette's colours; with a 144-colour palette that product
    under- or overflows, so the nearest colour's distance stands for it (as in Thys et al. 2019):
    zero exactly on printable colours, and its gradient pulls a pixel towards the nearest one.
    An attack can subtract a multiple of it from its loss (untargeted) or add it (targeted)."""
    p = palette.to(x.device, x.dtype)
    n = x.shape[0]
    xf = x.permute(0, 2, 3, 1).reshape(-1, 3)
    with torch.no_grad():  # the nearest printable colour of every pixel, in chunks: no N x H x W x P tensor
        near = torch.cat([torch.cdist(c, p).argmin(1) for c in xf.split(1 << 16)])
    # the distance to it, differentiable: the value and gradient of the minimum over the palette
    return (xf - p[near]).pow(2).sum(1).add(1e-12).sqrt().view(n, -1).mean(1)
