"""The print-and-camera channel: one differentiable model of paper, printer, light and camera.

The same module serves the simulator (a whole sheet becomes a photo, ``out_size`` = the frame) and
EOT attacks (a batch of model-size images becomes N transformed copies, gradients flowing back to
the input). Stages run in physical order:

0. halftone  only in the simulator's printed pages (``halftone_lpi``, physical.channel.halftone)
1. printer   tone curve ``print_gamma``, gamut squeezed into ``[ink_black, paper_white]``; with
             ``calibration`` (``physical calibrate colour``) the fitted printer-to-camera colour model
             (:mod:`physical.channel.colour`: tone curves, 3x3 + bias and residual table in linear
             light, the clamp) replaces it, every range the file measured replaces the config's
             (:meth:`Channel.measured`: blur, noise, JPEG, exposure as contrast, white balance, light
             gradient, rotation, tilt; with :meth:`Channel.for_photo` the scale, from the photos' px/mm)
2. geometry  one homography per sample: in-plane rotation, perspective tilt, scale, translation;
             the image is placed into an ``out_size`` frame, uncovered area = background
3. optics    gaussian blur, per-sample sigma
4. lighting  smooth light gradient, per-channel white balance gain, contrast, brightness
5. sensor    gaussian noise, per-sample sigma; with a calibration that measured the photos' noise
             texture (:mod:`physical.channel.texture`), noise that shows that spectrum when measured
             as the chart was (after this channel's codec too), its level by colour
6. JPEG      a differentiable codec (:mod:`physical.channel.jpeg`), per-sample quality
7. clamp     to [0, 1]

Parameters are drawn by :meth:`Channel.sample` (uniform inside the config ranges, scaled by
``strength`` around the identity) into a dict of batched tensors, so N samples run as one batch;
:meth:`Channel.forward` is then a deterministic function of the input and the parameters.

What "off" means (the identity value of every transform; a range collapsed onto it, or
``strength = 0``, turns the transform off):

=================  ==========================================================================
rotation_deg        0        (range is +-rotation_deg; positive = counter-clockwise on screen)
tilt                0        (+-tilt per axis; clamped to +-0.4 so the sheet stays in front)
scale               1        the rotated, tilted image's bounding box just fills the frame; in a
                             frame of the input's size, scale 1 and no rotation or tilt is the
                             identity. Below 1 the whole image stays inside the frame (translation
                             is clamped to the free margin); above 1 it overflows, centred.
translate           0        (+-translate, a fraction of the frame's width / height)
blur_sigma          0        (pixels of the output)
light_gradient      0        (peak fraction; the gradient's direction is uniform in any case)
white_balance       0        (gain 1 +- white_balance per RGB channel)
contrast            1
brightness          0
noise_sigma         0
jpeg_quality        100      **quality 100 means no JPEG** for that sample (the codec at 100
                             still subsamples chroma; a real q100 file is close to lossless)
print_gamma         1        the printer's fixed values scale with ``strength`` as well, so
paper_white         1        ``strength = 0`` is the identity channel
ink_black           0
colour_mix          0        only with a calibration: the fitted colour model blended with the
                             input, ``x + colour_mix (model(x) - x)``; drawn as ``strength``
=================  ==========================================================================

Why kornia, and where not: kornia's ``warp_perspective`` warps a batch by pixel homographies,
differentiably. The blur is one separable depthwise convolution with a sigma per sample (kornia's
pads twice, a quarter slower per EOT step). JPEG is :mod:`physical.channel.jpeg` (IJG tables, 4:2:0,
per-sample quality; 4-8x cheaper than kornia's codec); the simulator writes a real JPEG file instead.

Determinism: parameters come from the caller's ``torch.Generator``; the sensor noise of every
sample is drawn from a generator seeded by its own ``params["noise_seed"]`` on the input's device,
so the same parameters give the same output on the same device, in whatever batch a sample is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

import torch

from physical.channel.files import load_colour
from physical.channel.halftone_texture import without_halftone
from physical.channel.colour import ColourModel
from physical.channel.steps.params import col
from physical.channel.steps import STEPS, codec, geometry, lighting, optics, printer, sensor
from physical.channel.texture import drawn_spectrum, level_table
from physical.config import ChannelConfig, build
from physical.errors import UserError
from physical.channel.halftone import through
from physical.transforms.ops import clamp01

# the scalar parameters, in the order they are drawn: the steps' in physical order (keep the order:
# it fixes the random stream)
SCALARS = tuple(name for step in STEPS for name in step.NAMES)
IDENTITY = {name: value for step in STEPS for name, value in step.IDENTITY.items()}
MAX_TILT = geometry.MAX_TILT
# the channel ranges a colour calibration may set from its `channel` section (besides blur, noise, scale)
CALIBRATED = ("jpeg_quality", "contrast", "white_balance", "light_gradient", "rotation_deg", "tilt")

Background = Union[None, float, torch.Tensor]


class ChannelOutput(NamedTuple):
    images: torch.Tensor  # N x C x H x W in [0, 1]
    homographies: torch.Tensor  # N x 3 x 3 float64 on the CPU: input pixel -> output pixel
    # (pixel centres at integer coordinates, as in OpenCV)


class Channel(torch.nn.Module):
    """The print-and-camera channel built from a :class:`ChannelConfig`."""

    def __init__(self, cfg: Optional[ChannelConfig] = None):
        super().__init__()
        self.cfg = cfg or ChannelConfig()
        self.calibration = None  # a fitted colour calibration (physical.channel.files.ColourCalibration)
        self.colour = None  # its colour model, replacing the printer stage
        self.texture = self.texture_table = None  # its noise texture (3 x SIZE x SIZE) and level by colour
        self.texture_level = 1.0  # the noise_sigma of the texture's gain 1 (set with a texture)
        self.photo: Optional[tuple[float, float, int, int]] = None  # (page mm W, H, frame px W, H): see for_photo
        self.halftone_lpi = self.cfg.halftone_lpi  # the simulator's printer screens its pages (for_printed_pages)
        if self.cfg.calibration:
            self.calibration = load_colour(self.cfg.calibration)
            self.colour = ColourModel.from_calibration(self.calibration)
            if self.calibration.noise_spectrum is not None:
                drawn = drawn_spectrum(self.calibration.noise_spectrum, "jpeg_quality" in self.calibration.channel)
                self.texture = torch.as_tensor(drawn, dtype=torch.float32)  # photos measured as the chart
                self.texture_table = level_table(self.calibration.texture_by_colour, self.calibration.noise_spectrum)
                lo, hi = self.ranges(1.0)["noise_sigma"]
                self.texture_level = max((lo + hi) / 2, 1e-12)  # noise_sigma of gain 1

    @classmethod
    def from_calibration(cls, path: Union[str, Path, None] = None, *, preset: str = "phone",
                         paper_mm: Optional[tuple[float, float]] = None, frame: Optional[tuple[int, int]] = None,
                         **ranges: Any) -> "Channel":
        """The Python API's channel: a colour calibration (`physical calibrate colour`'s colour.json;
        None: the preset alone) over `preset`'s ranges, any ``capture.channel`` key as a keyword
        (``blur_sigma=[0, 1]``), checked as the YAML's are. With `paper_mm` and `frame` it sees photos
        of that page in that frame (the calibration's pixels per mm set the scale), as a run's does."""
        data: dict[str, Any] = {"preset": preset, **ranges}
        if path is not None:
            if not Path(path).is_file():
                raise UserError(f"{path}: no such calibration file; make one with `physical calibrate colour`")
            data["calibration"] = str(path)
        channel = cls(build(ChannelConfig, data, "channel"))
        if paper_mm is not None and frame is not None:
            channel.for_photo(paper_mm, frame)
        return channel

    def for_photo(self, page_mm: tuple[float, float], frame: tuple[int, int]) -> "Channel":
        """Photos of a page of `page_mm` in a `frame`: a calibration's measured pixels per millimetre
        then set the scale range (the page's share of the frame), so cells have the user's size in
        pixels and the measured blur and noise (in photo pixels) act at the scale they were measured."""
        self.photo = (float(page_mm[0]), float(page_mm[1]), int(frame[0]), int(frame[1]))
        return self

    def for_printed_pages(self) -> "Channel":
        """Photos of pages the simulator printed with the ``halftone_lpi`` screen: they carry the
        screen's texture, so a measured noise texture draws only the rest (calibrate/halftone.py).
        EOT's images are not screened and keep the whole measured texture."""
        if self.halftone_lpi is not None and self.texture is not None and self.calibration is not None:
            rest = without_halftone(self.calibration, self.halftone_lpi)
            if rest is not None:
                self.texture = torch.as_tensor(drawn_spectrum(rest[0], "jpeg_quality" in self.calibration.channel),
                                               dtype=torch.float32)
                self.texture_table = level_table(rest[1], rest[0])
        return self

    def measured(self) -> dict:
        """The channel ranges the calibration measured (config keys), the calibration's over the config's."""
        cal = self.calibration
        if cal is None:
            return {}
        out = {k: v for k, v in cal.channel.items() if k in CALIBRATED}
        if cal.blur_sigma:
            out["blur_sigma"] = cal.blur_sigma
        if cal.noise_sigma:
            out["noise_sigma"] = cal.noise_sigma
        if "contrast" in out:
            out["brightness"] = (0.0, 0.0)  # exposure was measured as a gain: no offset on top
        ppm = cal.channel.get("px_per_mm")
        if ppm and self.photo:
            pw, ph, fw, fh = self.photo
            full = min(fw / pw, fh / ph)  # px per mm when the page just fills the frame
            out["scale"] = (min(ppm[0] / full, 1.0), min(ppm[1] / full, 1.0))  # at most the frame's fill
        return out

    def sources(self) -> dict[str, str]:
        """Where each channel parameter comes from: 'calibration', 'preset <name>' or 'config'."""
        keys = ["rotation_deg", "tilt", "scale", "translate", "blur_sigma", "noise_sigma", "brightness", "contrast",
                "white_balance", "light_gradient", "jpeg_quality"]
        if self.colour is not None:
            out = {"printer (colour model)": "calibration"}
        else:
            keys += ["print_gamma", "paper_white", "ink_black"]
            out = {}
        m = self.measured()
        preset: set = getattr(self.cfg, "from_preset", set())
        for k in keys:
            out[k] = "calibration" if k in m else (f"preset {self.cfg.preset}" if k in preset else "config")
        if self.texture is not None:
            level = ", level by colour" if self.texture_table is not None else ""
            out["noise texture (power spectrum)"] = "calibration" + level
        if self.halftone_lpi is not None:
            out["halftone screen (simulated pages)"] = "config"
        return out

    # -- parameters -----------------------------------------------------------------------------
    def ranges(self, strength: float = 1.0) -> dict[str, tuple[float, float]]:
        """(low, high) of every scalar parameter, scaled by `strength` around its identity value;
        a fitted calibration replaces the printer model and every range it measured."""
        measured = self.measured()

        def get(key: str):
            return measured.get(key, getattr(self.cfg, key))

        k = float(strength)
        out = printer.ranges(get, k, calibrated=self.calibration is not None)
        for step in STEPS[1:]:
            out.update(step.ranges(get, k))
        return out

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator,
        strength: float = 1.0,
        device: Union[str, torch.device, None] = None,
    ) -> dict[str, torch.Tensor]:
        """Draw `n` parameter sets uniformly inside the ranges; a dict of (n,) tensors."""
        r = self.ranges(strength)
        u = torch.rand(n, len(SCALARS), generator=generator, device=generator.device, dtype=torch.float64)
        seeds = torch.randint(0, 2**62, (n,), generator=generator, device=generator.device)
        out = {}
        for j, name in enumerate(SCALARS):
            lo, hi = r[name]
            out[name] = (lo + (hi - lo) * u[:, j]).float().to(device or generator.device)
        out["noise_seed"] = seeds.to(device or generator.device)
        if self.colour is not None:  # how much of the fitted colour model applies (scaled like the printer)
            out["colour_mix"] = torch.full((n,), float(strength), device=device or generator.device)
        return out

    def identity_params(self, n: int, device: Union[str, torch.device, None] = None) -> dict[str, torch.Tensor]:
        """Parameters of the identity channel (what ``strength = 0`` draws)."""
        out = {name: torch.full((n,), IDENTITY[name], device=device) for name in SCALARS}
        out["noise_seed"] = torch.zeros(n, dtype=torch.int64, device=device)
        if self.colour is not None:
            out["colour_mix"] = torch.zeros(n, device=device)
        return out

    # -- steps (physical.channel.steps) ---------------------------------------------------------------
    def printer(self, x: torch.Tensor, params: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """Digital image -> printed reflectance (the config's printer when `params` is None); with a
        fitted colour calibration its colour model, blended by ``params["colour_mix"]``."""
        if params is None:
            r = self.ranges(1.0)
            params = {} if self.colour is not None else {
                k: torch.full((x.shape[0],), r[k][0]) for k in printer.NAMES}
        return printer.apply(x, params, self.colour)

    def homographies(self, params: dict[str, torch.Tensor], in_size: tuple[int, int],
                     out_size: tuple[int, int]) -> torch.Tensor:
        """N x 3 x 3 float64 (cpu): input pixel -> output pixel. Sizes are (width, height)."""
        return geometry.homographies(params, in_size, out_size)

    def sensor(self, x: torch.Tensor, params: dict[str, torch.Tensor], photo_px: float = 1.0) -> torch.Tensor:
        return sensor.apply(x, params, photo_px, self.texture, self.texture_level, self.texture_table)

    # -- the whole channel ------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        params: dict[str, torch.Tensor],
        out_size: Optional[tuple[int, int]] = None,
        background: Background = None,
        jpeg: bool = True,
        photo_px: float = 1.0,
        screen: Optional[torch.Tensor] = None,
    ) -> ChannelOutput:
        """Send N images through the channel with N parameter sets, or B images with N = B x k
        parameter sets (image-major: image i takes sets i*k .. i*k+k-1, as EOT draws them).

        x: N (or B) x C x H x W in [0, 1]. out_size: (W, H) of the output frame, None = the input's
        size. background: what the image does not cover: None = blank paper (the printer's paper
        white, what surrounds a cell on a sheet), a number, a (C,) colour or an image broadcastable
        to N x C x H x W. jpeg=False skips the codec whatever the quality. photo_px: photo pixels per
        output pixel (1: the photo; more in an EOT crop smaller than the photo's cell), for a measured
        noise texture. With B < N the printer (fixed values, no random range) runs once per image.
        screen: B x C x H x W, what the printer's halftone changed in `x` (physical.sim.print_camera.printed_pages).
        """
        n, b = params["scale"].shape[0], x.shape[0]
        if n % b:
            raise ValueError(f"{b} images but {n} parameter sets (not a multiple)")
        h, w = x.shape[-2:]
        out_size = (w, h) if out_size is None else (int(out_size[0]), int(out_size[1]))
        hom = self.homographies(params, (w, h), out_size)

        k = n // b
        if k > 1 and not self._printer_uniform(params, b):
            x, k = x.repeat_interleave(k, 0), 1
        p = {key: v[::k] for key, v in params.items()} if k > 1 else params
        y = self.printer(x, p) if screen is None else through(lambda z: self.printer(z, p), x, screen)
        if k > 1:
            y = y.repeat_interleave(k, 0)
        y = geometry.apply(y, hom, out_size, self._background(background, y, params))
        y = optics.apply(y, params)
        y = lighting.apply(y, params)
        y = self.sensor(y, params, photo_px)
        if jpeg:
            y = codec.apply(y, params)
        return ChannelOutput(clamp01(y), hom)

    def eot(self, x: torch.Tensor, n: int, *, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
        """B images -> B*n transformed copies (image-major: rows i*n .. i*n+n-1 come from image i)."""
        params = self.sample(x.shape[0] * n, generator=generator, strength=strength, device=x.device)
        return self.forward(x, params).images

    PRINTER_PARAMS = ("print_gamma", "paper_white", "ink_black", "colour_mix")

    def _printer_uniform(self, params: dict[str, torch.Tensor], b: int) -> bool:
        """Whether every image's parameter sets agree on the printer (they do when drawn by
        `sample`: the printer has no random range)."""
        for key in self.PRINTER_PARAMS:
            v = params.get(key)
            if v is not None and not bool((v.view(b, -1) == v.view(b, -1)[:, :1]).all()):
                return False
        return True

    def _background(self, background: Background, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        if background is None:
            if self.colour is not None:  # blank paper through the fitted model
                return self.printer(torch.ones_like(x[:, :, :1, :1]), params)
            return col(params["paper_white"], x)
        b = torch.as_tensor(background, device=x.device, dtype=x.dtype)
        if b.ndim == 1:  # a colour
            b = b.view(1, -1, 1, 1)
        return b


def params_at(params: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    """The i-th parameter set as a batch of one."""
    return {k: v[i : i + 1] for k, v in params.items()}


def params_to_json(params: dict[str, torch.Tensor], i: int) -> dict:
    """The i-th parameter set as plain numbers."""
    return {k: (int(v[i]) if k == "noise_seed" else round(float(v[i]), 6)) for k, v in params.items()}

