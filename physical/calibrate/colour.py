"""Colour calibration from photos of the printed colour chart: the printer-to-camera colour model,
its held-out error in Delta-E (CIEDE2000), the printer's gamut, and the channel's blur and noise.

Per photo (:func:`measure_chart`):

1. the chart's markers give its homography (chart mm -> photo px, RANSAC over all marker corners);
2. every patch's inner 60 % is averaged in the photo's own pixels (no resampling); a patch partly
   outside the photo, too small, or not uniform (glare, shadow, a finger) is *missing* in that photo;
3. the white paper at the crossings of the gaps between patches gives the light's unevenness: a
   quadratic surface per channel in linear light, divided out of the patches (flat field), and the
   photo's exposure and white balance are brought to the median of all photos, so several photos
   taken under slightly different light agree;
4. blur: the slanted edge square's four edges; the pixels near an edge, by their distance to the
   edge line, trace the edge spread function, fitted by a Gaussian-blurred step (an erf): its sigma
   is the blur in photo pixels, less the spread the simulator's own resampling already has
   (INHERENT_EDGE_PX, measured with the channel's blur off);
5. noise: the standard deviation of the grey image about a plane in each patch's interior (at
   least NOISE_MARGIN_PX from its edges, where JPEG blocks ring), times sqrt(3) (the grey image
   averages three channels' independent noise), median over the patches. JPEG's chroma
   subsampling averages the colour channels' noise away but keeps the luma's: measured this way,
   the channel's noise sigma is recovered within about 30 % for JPEG qualities 80-100.

Then (:func:`fit_colour`): the patches seen (mean over photos) are split into a training set and a
held-out set (HOLDOUT of the patches, never the cube's corners or the grey ramp's ends, which
bound the gamut); the model of :mod:`physical.channel.colour` is fitted on the training set
(least squares in linear light to start, then L-BFGS on the mean CIELAB distance with a smoothness
penalty on the curves) and scored on the held-out set in CIEDE2000; the residual table (model.py)
fitted on the training set is kept only if it lowers that score; the model that is saved is
fitted again on all patches. An affine-only fit (no tone curves) is scored the same way, as a
reference for what the curves add.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np
import torch
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from physical.log import say
from physical.calibrate.channel_fit import measured_channel
from physical.calibrate.chart import NOISE_MARGIN_PX, ChartPhoto, measure_chart, normalised_patches  # noqa: F401  (measure_chart: public here too)
from physical.channel.files import CalibrationError, colour_document
from physical.channel.colour import ColourModel, srgb_decode, srgb_encode
from physical.channel.tables import kernel_table
from physical.channel.texture import SIZE as TEXTURE_PX, rgb_std
from physical.calibrate.targets import CHART_VERSION, GRID, chart_colours, grid_size_mm

HOLDOUT = 0.2
KNOTS = 12
Fitted = tuple[np.ndarray, np.ndarray, np.ndarray]  # a colour model: curves, matrix, bias
RESIDUAL_GRID = 9  # the residual table (model.py): 9^3 digital colours
RESIDUAL_WIDTH = 0.15  # its kernel sigma in digital [0, 1] units (the chart's cube steps are 0.25)
RESIDUAL_PRIOR = 0.1  # the kernel weight of a zero residual: far from every patch it fades to zero
INHERENT_EDGE_PX = 0.35  # edge spread (sigma, px) of the simulator's photos with the channel's blur off
MIN_PHOTOS = 1


def delta_e2000(a_rgb: np.ndarray, b_rgb: np.ndarray) -> np.ndarray:
    """CIEDE2000 between two arrays of sRGB-encoded colours (..., 3) in [0, 1]."""
    return deltaE_ciede2000(rgb2lab(np.clip(a_rgb, 0, 1)), rgb2lab(np.clip(b_rgb, 0, 1)))


def _curve_init(knots: int) -> np.ndarray:
    t = torch.linspace(0, 1, knots + 1, dtype=torch.float64)
    return srgb_decode(t).numpy()


def fit_model(x: np.ndarray, y: np.ndarray, knots: int = KNOTS, curves: bool = True, smooth: float = 10.0,
              iters: int = 150) -> Fitted:
    """Fit curves (3, K+1), matrix (3, 3), bias (3,): digital x (P, 3) -> camera y (P, 3), both [0, 1]
    sRGB-encoded. curves=False keeps the tone curves at the sRGB decoding (an affine-only fit)."""
    from kornia.color import rgb_to_lab  # deferred: kornia takes ~0.4 s to import

    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    init = torch.as_tensor(_curve_init(knots)).repeat(3, 1)
    # x is fixed: the tone curves at x are a linear map of the knot values, weights (3, P, K+1)
    s = xt.clamp(0, 1) * knots
    i = s.floor().clamp(0, knots - 1).long()
    f = s - i
    w = torch.zeros(3, len(xt), knots + 1, dtype=torch.float64)
    for c in range(3):
        w[c, torch.arange(len(xt)), i[:, c]] = 1 - f[:, c]
        w[c, torch.arange(len(xt)), i[:, c] + 1] += f[:, c]

    def tones(curves_):  # (3, K+1) -> (P, 3)
        return torch.bmm(w, curves_.unsqueeze(2))[..., 0].T

    # least squares in linear light for M and b, curves at their start
    t0 = tones(init)
    a = torch.cat([t0, torch.ones(len(xt), 1, dtype=torch.float64)], 1)
    sol = torch.linalg.lstsq(a, srgb_decode(yt)).solution  # (4, 3)
    matrix = sol[:3].T.clone().requires_grad_(True)
    bias = sol[3].clone().requires_grad_(True)
    logits = torch.log(torch.diff(init, dim=1).clamp_min(1e-6)).clone().requires_grad_(curves)
    target = rgb_to_lab(yt.view(-1, 3, 1, 1)).view(-1, 3)

    def curves_of(lg):
        inc = torch.softmax(lg, 1)
        return torch.cat([torch.zeros(3, 1, dtype=torch.float64), torch.cumsum(inc, 1)], 1).clamp(0, 1)

    params = [matrix, bias] + ([logits] if curves else [])
    opt = torch.optim.LBFGS(params, lr=1, max_iter=iters, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        c = curves_of(logits)
        lin = tones(c) @ matrix.T + bias
        pred = srgb_encode(lin)
        lab = rgb_to_lab(pred.view(-1, 3, 1, 1)).view(-1, 3)
        loss = torch.sqrt(((lab - target) ** 2).sum(1) + 1e-4).mean()
        if curves and smooth > 0:
            d2 = torch.diff(c, n=2, dim=1)
            loss = loss + smooth * (d2 ** 2).sum() * knots ** 2 / 100
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        c = curves_of(logits)
    return c.numpy(), matrix.detach().numpy(), bias.detach().numpy()


def predict(curves, matrix, bias, x: np.ndarray, residual=None) -> np.ndarray:
    m = ColourModel(curves, matrix, bias, residual).double()
    with torch.no_grad():
        return m(torch.as_tensor(np.asarray(x, np.float64))).numpy()


def residual_table(x: np.ndarray, y: np.ndarray, fitted: Fitted) -> np.ndarray:
    """(3, G, G, G) what the `fitted` curves and matrix leave over at patches x -> y (linear light),
    regressed onto the grid of digital colours by a Gaussian kernel of RESIDUAL_WIDTH, shrunk to
    zero where the patches are far (RESIDUAL_PRIOR: the weight of a zero residual)."""
    lin = lambda v: srgb_decode(torch.as_tensor(v, dtype=torch.float64)).numpy()  # noqa: E731
    return kernel_table(x, lin(y) - lin(predict(*fitted, x)), RESIDUAL_GRID, RESIDUAL_WIDTH, RESIDUAL_PRIOR)


def holdout_split(colours: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Bool mask of held-out patches: a random `fraction`, never a cube corner or a grey-ramp end."""
    c = np.asarray(colours)
    extreme = np.all((c == 0) | (c == 255), axis=1)
    cand = np.nonzero(~extreme)[0]
    rng = np.random.default_rng(seed)
    k = int(round(fraction * len(c)))
    held = np.zeros(len(c), bool)
    held[rng.choice(cand, size=min(k, len(cand)), replace=False)] = True
    return held


def _stats(de: np.ndarray) -> dict:
    return {"n": int(len(de)), "mean": round(float(de.mean()), 3), "median": round(float(np.median(de)), 3),
            "p95": round(float(np.percentile(de, 95)), 3), "max": round(float(de.max()), 3)}


def gamut_report(curves, matrix, bias, residual=None, steps: int = 17) -> dict:
    """The printer's gamut as the camera sees it, in CIELAB: white and black points, lightness range,
    largest chroma, hull volume against sRGB's, and the share of the sRGB cube inside it."""
    from scipy.spatial import ConvexHull, Delaunay  # deferred: scipy, only the gamut report needs it

    g = np.linspace(0, 1, steps)
    cube = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    lab_p = rgb2lab(np.clip(predict(curves, matrix, bias, cube, residual), 0, 1))
    lab_s = rgb2lab(cube)
    hull_p, hull_s = ConvexHull(lab_p), ConvexHull(lab_s)
    rng = np.random.default_rng(0)
    probe = rgb2lab(rng.random((20000, 3)))
    inside = Delaunay(lab_p[hull_p.vertices]).find_simplex(probe) >= 0
    white = lab_p[-1]
    black = lab_p[0]
    chroma = np.hypot(lab_p[:, 1], lab_p[:, 2])
    return {
        "white_lab": np.round(white, 2).tolist(),
        "black_lab": np.round(black, 2).tolist(),
        "lightness_range": [round(float(lab_p[:, 0].min()), 2), round(float(lab_p[:, 0].max()), 2)],
        "max_chroma": round(float(chroma.max()), 2),
        "volume_lab": round(float(hull_p.volume), 0),
        "volume_vs_srgb": round(float(hull_p.volume / hull_s.volume), 4),
        "srgb_inside": round(float(inside.mean()), 4),
        "note": "Lab of the photographed print (camera RGB taken as sRGB); srgb_inside: share of the sRGB "
                "cube (uniform in RGB) inside the printer's hull",
    }


# ----------------------------------------------------------------------------------------------
# the whole calibration


@dataclass
class ColourFit:
    document: dict
    photos: list[ChartPhoto]


def describe_missing(slots: list[int], colours: np.ndarray) -> str:
    rows = sorted({s // GRID + 1 for s in slots})
    ex = ", ".join(f"#{s} rgb{tuple(int(v) for v in colours[s])}" for s in slots[:3])
    return f"{ex}{' ...' if len(slots) > 3 else ''} (rows {_ranges(rows)} of {GRID})"


def _ranges(v: list[int]) -> str:
    out, i = [], 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[j + 1] == v[j] + 1:
            j += 1
        out.append(str(v[i]) if i == j else f"{v[i]}-{v[j]}")
        i = j + 1
    return ", ".join(out)


@dataclass
class _Scores:
    """The colour model fitted on every patch (`final`, `residual`) and its scores: on the held-out
    patches of a fit on the others (`fit_c`, `res_c`), on those others, and on every patch."""
    final: Fitted
    residual: Optional[np.ndarray]
    pred: np.ndarray
    de_all: np.ndarray
    fit_c: Fitted
    res_c: Optional[np.ndarray]
    de_train: np.ndarray
    de_plain: np.ndarray
    de_held: np.ndarray
    de_aff: np.ndarray
    with_residual: bool


def _measure_photos(frames: Iterable[tuple[str, np.ndarray]], colours: np.ndarray, log) -> list[ChartPhoto]:
    """Every photo measured; what is skipped or missing said."""
    n = len(colours)
    photos: list[ChartPhoto] = []
    for name, image in frames:
        p = measure_chart(image, name)
        photos.append(p)
        if not p.ok:
            log(f"calibrate colour: skipped {name}: {p.reason}")
        elif p.missing:
            slots = sorted(p.missing)
            why = sorted(set(p.missing.values()))
            log(f"calibrate colour: {name}: {len(slots)} of {n} patches missing ({'; '.join(why)}): "
                f"{describe_missing(slots, colours)}; they are taken from the other photos")
    return photos


def _usable(photos: list[ChartPhoto]) -> list[ChartPhoto]:
    """The photos that show the chart; CalibrationError when too few do."""
    used = [p for p in photos if p.ok]
    if not photos:
        raise CalibrationError("no photos of the colour chart were given")
    if len(used) < MIN_PHOTOS:
        reasons = "; ".join(f"{p.name}: {p.reason}" for p in photos[:4])
        raise CalibrationError(f"none of the {len(photos)} photos shows the colour chart ({reasons}); "
                               "print calibration/colour-chart.pdf (`physical calibrate targets`) and photograph it")
    return used


def _score(x: np.ndarray, y: np.ndarray, held: np.ndarray, knots: int) -> _Scores:
    tr = ~held
    final = fit_model(x, y, knots)
    if held.any():  # scored on patches the fit has not seen; the saved model is `final`
        fit_c = fit_model(x[tr], y[tr], knots)
        fit_a = fit_model(x[tr], y[tr], knots, curves=False)
        res_c = residual_table(x[tr], y[tr], fit_c)
        de_plain = delta_e2000(predict(*fit_c, x[held]), y[held])
        de_res = delta_e2000(predict(*fit_c, x[held], res_c), y[held])
        with_residual = bool(de_res.mean() < de_plain.mean())
        res_kept, de_held = (res_c, de_res) if with_residual else (None, de_plain)
        de_train = delta_e2000(predict(*fit_c, x[tr], res_kept), y[tr])
        de_aff = delta_e2000(predict(*fit_a, x[held]), y[held])
    else:  # nothing held out to show that a residual generalises: none
        with_residual, de_plain, de_held, de_aff = False, np.zeros(0), np.zeros(0), np.zeros(0)
    residual = residual_table(x, y, final) if with_residual else None
    pred = predict(*final, x, residual)
    de_all = delta_e2000(pred, y)
    if not held.any():
        fit_c, res_kept, de_train = final, None, de_all
    return _Scores(final, residual, pred, de_all, fit_c, res_kept, de_train, de_plain, de_held, de_aff, with_residual)


def _heldout(s: _Scores, held: np.ndarray, holdout: float, seed: int, colours: np.ndarray, x: np.ndarray,
             y: np.ndarray) -> dict:
    some = bool(held.any())
    worst: list[int] = np.argsort(-s.de_held)[:5].tolist() if some else []
    held_idx = np.nonzero(held)[0]
    return {"fraction": holdout, "seed": seed, "delta_e2000": _stats(s.de_held) if some else None,
            "without_residual_delta_e2000": _stats(s.de_plain) if some else None,
            "residual": s.with_residual,
            "affine_only_delta_e2000": _stats(s.de_aff) if some else None,
            "worst": [{"rgb": colours[held_idx[i]].tolist(), "measured": np.round(y[held_idx[i]], 4).tolist(),
                       "predicted": np.round(predict(*s.fit_c, x[held_idx[i]][None], s.res_c)[0], 4).tolist(),
                       "delta_e2000": round(float(s.de_held[i]), 3)} for i in worst]}


def _optics(used: list[ChartPhoto], y: np.ndarray, jpeg_qualities: Optional[dict], light: dict, log) -> dict:
    """Blur, noise, noise texture and the measured channel of the photos, as colour_document's keys."""
    edge = [p.edge_sigma_px for p in used if p.edge_sigma_px is not None]
    blur = [math.sqrt(max(s * s - INHERENT_EDGE_PX ** 2, 0.0)) for s in edge]
    noise = [float(np.nanmedian(p.noise)) for p in used if p.noise is not None and np.isfinite(p.noise).any()]
    spectrum = noise_spectrum(used)
    out = {"blur_sigma": _spread_range(blur, 0.0, 20.0) if blur else None,
           "noise_sigma": _spread_range(noise, 0.0, 0.5) if noise else None, "noise_spectrum": spectrum,
           "texture_by_colour": texture_by_colour(used, y) if spectrum is not None else None,
           "channel": measured_channel(used, grid_size_mm() / 2, jpeg_qualities, light["light_gradient"][1], log)}
    if not noise:
        log("calibrate colour: the patches are too small in the photos to measure noise "
            f"(each needs {2 * NOISE_MARGIN_PX:g}+ px inside); the config's noise_sigma applies")
    elif spectrum is None:
        log(f"calibrate colour: no patch holds an upright {TEXTURE_PX} x {TEXTURE_PX} px window of the photo (the "
            "chart too small or turned in the photos): the noise texture is not measured, white noise applies")
    out["blur"] = {"edge_sigma_px": [round(s, 4) for s in edge], "inherent_px": INHERENT_EDGE_PX,
                   "note": "photo pixels; the chart should be photographed like the sheets (same camera, distance)"}
    out["noise"] = {"per_photo": [round(v, 5) for v in noise],
                    "note": "[0, 1] units, std about a plane inside flat patches, as the photo file holds it",
                    "texture_rgb_std": None if spectrum is None else round(rgb_std(spectrum), 5)}
    return out


def _per_photo(used: list[ChartPhoto]) -> list[dict]:
    return [{"name": p.name, "markers": p.markers, "patches_seen": int((~np.isnan(np.asarray(p.means)).any(1)).sum()),
             "edge_sigma_px": None if p.edge_sigma_px is None else round(p.edge_sigma_px, 4),
             "noise": round(float(np.nanmedian(p.noise)), 5) if p.noise is not None and np.isfinite(p.noise).any()
             else None,
             "px_per_mm": round(p.px_per_mm, 4)}
            for p in used]


def fit_colour(frames: Iterable[tuple[str, np.ndarray]], holdout: float = HOLDOUT, seed: int = 0,
               knots: int = KNOTS, log=say, jpeg_qualities: Optional[dict] = None) -> ColourFit:
    """Measure every photo, fit and score the colour model; CalibrationError saying what is missing."""
    colours = chart_colours()
    n = len(colours)
    photos = _measure_photos(frames, colours, log)
    used = _usable(photos)
    lin, light = normalised_patches(used)
    seen = ~np.isnan(lin).any(2)
    never = [s for s in range(n) if not seen[:, s].any()]
    if never:
        names = ", ".join(p.name for p in used[:4]) + (" ..." if len(used) > 4 else "")
        raise CalibrationError(
            f"{len(never)} of the chart's {n} patches were not seen in any photo ({names}): "
            f"{describe_missing(never, colours)}; take at least one photo that shows the whole chart (every patch, all "
            "ten markers), evenly lit, without glare or shadow")
    y = srgb_encode(torch.as_tensor(np.nanmean(lin, 0))).numpy()
    x = colours.astype(np.float64) / 255.0
    held = holdout_split(colours, holdout, seed)
    s = _score(x, y, held, knots)
    optics = _optics(used, y, jpeg_qualities, light, log)
    doc = colour_document(
        *s.final, residual=s.residual,
        **{k: optics[k] for k in ("blur_sigma", "noise_sigma", "noise_spectrum", "texture_by_colour", "channel")},
        chart={"version": CHART_VERSION, "patches": n},
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        photos=len(used),
        photos_skipped={p.name: p.reason for p in photos if not p.ok},
        heldout=_heldout(s, held, holdout, seed, colours, x, y),
        train={"delta_e2000": _stats(s.de_train)},
        all_patches={"delta_e2000": _stats(s.de_all), "note": "the saved model, fitted on every patch"},
        gamut=gamut_report(*s.final, s.residual),
        blur=optics["blur"], noise=optics["noise"],
        light=light,
        px_per_mm=round(float(np.median([p.px_per_mm for p in used])), 4),
        jpeg_quality=jpeg_qualities or None,
        knots=knots,
        patches=[{"rgb": colours[i].tolist(), "measured": np.round(y[i], 5).tolist(),
                  "predicted": np.round(s.pred[i], 5).tolist(), "delta_e2000": round(float(s.de_all[i]), 3),
                  "heldout": bool(held[i]), "photos": int(seen[:, i].sum())} for i in range(n)],
        per_photo=_per_photo(used),
    )
    return ColourFit(doc, photos)


def noise_spectrum(photos: list[ChartPhoto]) -> Optional[np.ndarray]:
    """The photos' noise texture (texture.py), their windows pooled; None where no window fitted."""
    got = [(p.noise_spectrum, p.spectrum_windows) for p in photos if p.noise_spectrum is not None]
    if not got:
        return None
    return np.asarray(sum(s * k for s, k in got) / sum(k for _, k in got))


def texture_by_colour(photos: list[ChartPhoto], colours: np.ndarray) -> Optional[np.ndarray]:
    """(P, 6): the patches' camera colour (`colours`, sRGB-encoded) and their opponent texture
    variances averaged over the photos, for the patches where a window fitted; None where none did."""
    var = np.stack([p.texture_var for p in photos if p.texture_var is not None])
    seen = np.isfinite(var).all(2)
    if not seen.any():
        return None
    mean = np.where(seen[..., None], var, 0).sum(0) / np.maximum(seen.sum(0), 1)[:, None]
    keep = seen.any(0)
    return np.column_stack([np.clip(colours[keep], 0, 1), mean[keep]])


def _spread_range(values: list[float], lo: float, hi: float) -> list[float]:
    """[min, max] of per-photo estimates, at least +-10 % wide (one photo is one draw of the channel)."""
    a, b = min(values), max(values)
    mid = (a + b) / 2
    a, b = min(a, mid * 0.9), max(b, mid * 1.1)
    return [float(np.clip(a, lo, hi)), float(np.clip(b, lo, hi))]


def jpeg_quality(path) -> Optional[int]:
    """The IJG quality a JPEG file was written at, from its luminance quantisation table (None if not a JPEG)."""
    std = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)
    try:
        with Image.open(path) as im:
            q = getattr(im, "quantization", None)
            if im.format != "JPEG" or not q:
                return None
            table = np.array(q[0], np.float64)
    except Exception:
        return None
    # PIL gives the table in zigzag order; the mean ratio is order-free
    s = float(np.mean(table) / np.mean(std) * 100)
    quality = (200 - s) / 2 if s <= 100 else 5000 / s
    return int(round(min(max(quality, 1), 100)))
