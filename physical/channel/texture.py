"""The photo's noise texture: the power spectrum of what a camera adds to a flat printed patch.

A printed, photographed patch is not flat plus white noise. The printer's halftone screen beats
against the camera's pixel grid (moire), the demosaicing and the phone's denoise correlate
neighbouring pixels, the sharpening lifts some frequencies and JPEG drops others. What survives
the aligned crop's downsampling is the low- and mid-frequency part of that texture; white noise of
the same standard deviation would mostly average away and understate how much a photo disturbs the
classifier. So a colour calibration measures the texture's noise power spectrum (NPS) in the chart's
flat patches and the channel's sensor stage draws noise with that spectrum (Gaussian, random phase;
the halftone's fixed phase is not kept: a cell lands at an arbitrary phase of the screen anyway).

Measurement (:func:`patch_spectra`): every patch interior is tiled with SIZE x SIZE windows of photo
pixels; in each, the opponent components (Y = mean of R, G, B; R - G; (R + G) / 2 - B: luma and two
chroma axes, the basis in which phones denoise and JPEG subsamples) minus a fitted plane (light
fall-off) are Hann-windowed and Fourier transformed. ``|F|^2 / sum(w^2)`` averaged over windows is
the NPS on a SIZE x SIZE grid of cycles per pixel, scaled so that its mean is the variance.
Cross-spectra between the three components are left out (they are uncorrelated enough that drawing
them independently changes the crop's variance by a few per cent).

The texture's level depends on the colour printed (:func:`level_table`). A halftoned grey mixes all
inks at partial coverage and beats the screens against each other and against the sensor's mosaic;
paper white and solid inks have no screen at all; shot noise grows with the light. On a photographed
chart the luma variance of the greys is 5-10 times that of the saturated patches, and natural
images are mostly mid-tone, near-neutral colours. So every patch's own variance (per opponent
component) is kept with its colour as the camera saw it; a Gaussian-kernel regression over the patches
(LEVEL_BANDWIDTH in camera [0, 1] units) puts it on a LEVEL_GRID^3 table of camera colours, relative
to the pooled spectrum's variance. The synthesized noise is scaled, pixel by pixel, by the table's
value at the image's colour (trilinear look-up), so mid-tones get the texture mid-tone patches
showed and white paper the little it showed.

Synthesis (:func:`textured_noise`): white Gaussian noise per sample (its own seed, so a sample does
not depend on its batch), multiplied in the Fourier domain by the square root of the NPS interpolated
onto the frame's frequency grid, then back to R, G, B. Where a frame pixel covers ``photo_px``
photo pixels (an EOT crop smaller than the photo's cell), the spectrum is resampled:
``P_frame(f) = P(f / photo_px) / photo_px^2`` inside the photo's band, zero outside, which keeps the
variance the frame's coarser pixels would average to.

The spectrum is measured on JPEG photos, after the camera's codec averaged their chroma over 2 x 2
pixels (4:2:0); the channel draws its noise before its own codec (and the simulator's JPEG file),
which averages the chroma a second time. Drawn as measured, the channel's photos showed 0.68 (R - G)
and 0.79 ((R + G) / 2 - B) of the chroma texture the chart's photos had, when their own charts were
measured again. So where the photos were JPEGs the drawn spectrum is the measured one divided by
what the codec passes at each frequency (:func:`pre_codec`, at most CODEC_GAIN times). And the
measurement spreads every frequency over its neighbouring bins (the Hann window; the draw's linear
interpolation between bins spreads it again): a halftone's moire line, drawn as measured, came back
at half its height in the channel's charts. :func:`drawn_spectrum` undoes that spreading
(Richardson-Lucy against the estimator's exact response, :func:`_estimator`), so the channel's
photos, measured as the chart's were, show the texture that was measured (the chart's moire line at
0.84-0.88 of its height, from 0.51; the chroma's variance at 0.88 and 0.97, from 0.68 and 0.79).
"""
from __future__ import annotations

import functools
from typing import Iterable, Optional

import numpy as np
import torch

from physical.channel.jpeg import linear_part
from physical.transforms.ops import per_sample_normal
from physical.channel.tables import kernel_table, lookup

SIZE = 32  # window side in photo pixels: frequency steps of 1/32 cycle per pixel
# RGB -> opponent (Y, R - G, (R + G) / 2 - B)
OPPONENT = np.array([[1 / 3, 1 / 3, 1 / 3], [1.0, -1.0, 0.0], [0.5, 0.5, -1.0]])
MAX_WINDOW_STD = 0.05  # a window whose residual varies more holds an edge, a mark or glare: skipped
LEVEL_GRID = 9  # the level table: 9 x 9 x 9 camera colours
DECONVOLVE_STEPS = 100  # drawn_spectrum's Richardson-Lucy steps (32 x 32 bins: a millisecond each)
CODEC_GAIN = 4.0  # pre_codec amplifies no frequency more than this (the codec's chroma stop band)
LEVEL_BANDWIDTH = 0.06  # the level regression's kernel sigma: the grey ramp's steps are 0.05 apart, the cube's 0.15+


def _windows(img: np.ndarray, box: tuple[int, int, int, int]) -> Iterable[np.ndarray]:
    x0, y0, x1, y1 = box
    for y in range(y0, y1 - SIZE + 1, SIZE):
        for x in range(x0, x1 - SIZE + 1, SIZE):
            yield img[y: y + SIZE, x: x + SIZE]


def patch_spectra(img: np.ndarray, boxes: Iterable[tuple[int, int, int, int]]) -> tuple[np.ndarray, int]:
    """Sum of the opponent NPS (3 x SIZE x SIZE) over the SIZE-pixel windows that fit inside the
    axis-aligned `boxes` (x0, y0, x1, y1 photo px, inside flat patches) of an RGB [0, 1] float
    photo, and the number of windows."""
    win = np.outer(np.hanning(SIZE), np.hanning(SIZE))
    norm = float((win ** 2).sum())
    yy, xx = np.mgrid[:SIZE, :SIZE]
    plane = np.column_stack([xx.ravel() - SIZE / 2, yy.ravel() - SIZE / 2, np.ones(SIZE * SIZE)])
    pinv = np.linalg.pinv(plane)
    acc, n = np.zeros((3, SIZE, SIZE)), 0
    for box in boxes:
        for w in _windows(img, box):
            o = w.reshape(-1, 3) @ OPPONENT.T
            r = o - plane @ (pinv @ o)
            if r.std(0).max() > MAX_WINDOW_STD:
                continue
            f = np.fft.fft2((r.reshape(SIZE, SIZE, 3) * win[..., None]).transpose(2, 0, 1))
            acc += np.abs(f) ** 2 / norm
            n += 1
    return acc, n


@functools.lru_cache(maxsize=1)
def codec_transfer() -> np.ndarray:
    """(3, SIZE, SIZE) the share of each opponent component's power the channel's JPEG passes at each
    frequency: its linear part (colour transforms, the chroma's 2 x 2 averaging and upsampling),
    measured on white noise in SIZE x SIZE windows, the grid of :func:`patch_spectra` (quantisation
    left out: at the qualities phones write it removes little of a texture this strong)."""
    gen = torch.Generator().manual_seed(0)
    opp = torch.randn(4, 3, 8 * SIZE, 8 * SIZE, generator=gen, dtype=torch.float64) * 0.02
    inv = torch.as_tensor(np.linalg.inv(OPPONENT))
    rgb = torch.einsum("ij,njhw->nihw", inv, opp) + 0.5
    out = torch.einsum("ij,njhw->nihw", torch.as_tensor(OPPONENT), linear_part(rgb.float()).double() - 0.5)

    def spectrum(z: torch.Tensor) -> torch.Tensor:
        w = z.unfold(2, SIZE, SIZE).unfold(3, SIZE, SIZE)  # N x 3 x rows x cols x SIZE x SIZE
        return (torch.fft.fft2(w).abs() ** 2).mean((0, 2, 3))

    t = (spectrum(out) / spectrum(opp)).numpy()
    t[0] = 1.0  # luma: the codec's Y plane passes whole; the 0-7 % above 1 is white chroma leaking in
    return t


def pre_codec(psd: np.ndarray, jpegs: bool = True) -> np.ndarray:
    """The spectrum to draw before the codec so that the codec's output shows `psd`, measured on
    JPEG photos (`jpegs`; otherwise `psd` itself): see the module."""
    return psd / np.maximum(codec_transfer(), 1.0 / CODEC_GAIN) if jpegs else psd


@functools.lru_cache(maxsize=1)
def _estimator() -> np.ndarray:
    """(SIZE, SIZE) A[k, j]: what :func:`patch_spectra` measures at bin k, on average, from noise drawn
    by :func:`textured_noise` with a unit spectrum at bin j alone (one axis; the 2-D operator is
    A (.) A^T). The draw interpolates the bins linearly (a tent one bin wide each side) and the
    Hann window spreads every frequency over its neighbours: a line measured at one bin comes back
    at 0.56 of its height, the rest beside it."""
    fine = 64  # integration steps per bin
    nu = np.arange(SIZE * fine) / (SIZE * fine)  # cycles per pixel, one period
    win = np.hanning(SIZE)
    n = np.arange(SIZE)
    bins = np.arange(SIZE) / SIZE
    # |W(k / SIZE - nu)|^2 / sum(w^2): the window's power response, rows k
    resp = np.abs(np.exp(-2j * np.pi * np.subtract.outer(bins, nu)[..., None] * n) @ win) ** 2 / (win ** 2).sum()
    offset = (nu * SIZE)[None, :] - np.arange(SIZE)[:, None]  # distance from bin j in bins, periodic
    offset = (offset + SIZE / 2) % SIZE - SIZE / 2
    tent = np.clip(1 - np.abs(offset), 0, None)  # rows j
    return resp @ tent.T / (SIZE * fine)


def drawn_spectrum(psd: np.ndarray, jpegs: bool = True) -> np.ndarray:
    """The spectrum the channel draws so that its photos, measured like the chart's, show `psd`:
    :func:`pre_codec`, then the estimator's spreading undone (Richardson-Lucy: the solution stays
    >= 0 and keeps the variance), DECONVOLVE_STEPS steps."""
    target = pre_codec(np.asarray(psd, np.float64), jpegs)
    a = _estimator()
    norm = a.sum(0)[:, None] * a.sum(0)[None, :]  # A^T 1 in 2-D (every column of A sums to 1)
    drawn = target.copy()
    for _ in range(DECONVOLVE_STEPS):
        seen = a @ drawn @ a.T
        ratio = np.where(seen > 0, target / np.maximum(seen, 1e-30), 0.0)
        drawn = drawn * (a.T @ ratio @ a) / norm
    return drawn


def rgb_std(psd: np.ndarray) -> float:
    """The per-channel R, G, B standard deviation (root mean square over the channels) of noise with
    this opponent spectrum."""
    inv = np.linalg.inv(OPPONENT)
    var = psd.reshape(3, -1).mean(1)  # each component's variance
    return float(np.sqrt(((inv ** 2) @ var).mean()))


def _frame_spectrum(psd: torch.Tensor, h: int, w: int, photo_px: float) -> torch.Tensor:
    """The 3 x SIZE x SIZE photo spectrum on an h x w frame's FFT grid (frame pixel = photo_px photo px)."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64) / photo_px  # cycles per photo pixel
    fx = torch.fft.fftfreq(w, dtype=torch.float64) / photo_px
    inside = (fy.abs() <= 0.5)[:, None] & (fx.abs() <= 0.5)[None, :]
    # bilinear look-up on the periodic SIZE grid (index = f * SIZE mod SIZE)
    gy, gx = (fy * SIZE) % SIZE, (fx * SIZE) % SIZE
    y0, x0 = gy.floor().long(), gx.floor().long()
    ty, tx = (gy - y0)[:, None], (gx - x0)[None, :]
    y1, x1 = (y0 + 1) % SIZE, (x0 + 1) % SIZE
    p = psd.to(torch.float64)

    def at(yi, xi):
        return p[:, yi][:, :, xi]

    out = ((1 - ty) * (1 - tx) * at(y0, x0) + (1 - ty) * tx * at(y0, x1)
           + ty * (1 - tx) * at(y1, x0) + ty * tx * at(y1, x1))
    return torch.where(inside, out, 0.0) / photo_px ** 2


def level_table(by_colour: Optional[np.ndarray], psd: np.ndarray) -> Optional[torch.Tensor]:
    """(3, G, G, G) the texture's amplitude relative to the pooled spectrum's on a grid of camera
    colours (tables.py), from `by_colour`: (P, 6) patches' camera colour and opponent variances;
    None where the calibration has none."""
    if by_colour is None:
        return None
    var = kernel_table(by_colour[:, :3], by_colour[:, 3:], LEVEL_GRID, LEVEL_BANDWIDTH)
    pooled = np.maximum(psd.reshape(3, -1).mean(1), 1e-12)
    return torch.as_tensor(np.sqrt(var / pooled[:, None, None, None]), dtype=torch.float32)


def textured_noise(shape: tuple[int, int, int, int], psd: torch.Tensor, seeds: list[int], gain: torch.Tensor,
                   device, dtype, photo_px: float = 1.0, table: Optional[torch.Tensor] = None,
                   image: Optional[torch.Tensor] = None) -> torch.Tensor:
    """N x 3 x H x W noise with the opponent spectrum `psd` (3 x SIZE x SIZE, photo pixels), sample i
    from seed ``seeds[i]`` and scaled by ``gain[i]``; with a level `table`, also by its value at
    each pixel's colour in `image` (N x 3 x H x W)."""
    n, c, h, w = shape
    white = per_sample_normal((n, 3, h, w), seeds, device)
    # the spectrum is even (a power spectrum of real noise), so the real FFT's half plane carries it all
    amp = _frame_spectrum(psd, h, w, float(photo_px))[..., : w // 2 + 1].sqrt().to(device, torch.float32)
    opp = torch.fft.irfft2(torch.fft.rfft2(white) * amp, s=(h, w))
    if table is not None and image is not None and image.shape[1] == 3:
        opp = opp * lookup(table, image.detach().float())  # the noise's amplitude: no gradient through it
    inv = torch.as_tensor(np.linalg.inv(OPPONENT), dtype=torch.float32, device=device)
    rgb = torch.einsum("ij,njhw->nihw", inv, opp) * gain.to(device, torch.float32).view(-1, 1, 1, 1)
    return (rgb if c == 3 else rgb.mean(1, keepdim=True)).to(dtype)


def check_spectrum(psd: Optional[np.ndarray]) -> Optional[str]:
    """Why `psd` is not a usable spectrum, or None."""
    if psd is None:
        return None
    if psd.shape != (3, SIZE, SIZE):
        return f"expected 3 x {SIZE} x {SIZE} values, got {' x '.join(map(str, psd.shape))}"
    if not np.isfinite(psd).all() or (psd < 0).any():
        return "values must be finite and >= 0"
    return None
