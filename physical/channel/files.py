"""The fitted calibrations as JSON files, and loaders that check every key and name the bad one.

Two kinds, each a JSON object with ``kind`` and ``version``:

``calibration/camera.json`` (``physical calibrate camera``)::

    kind: "physical.camera", version: 1,
    camera_matrix: 3x3, dist_coeffs: [k1, k2, p1, p2(, k3 ...)] (OpenCV's order, 4/5/8/12/14 values),
    image_size: [w, h] of the photos it was fitted on, rms_px, views, ... (extra keys are reports)

``calibration/colour.json`` (``physical calibrate colour``)::

    kind: "physical.colour", version: 1,
    model: {type: "curves-affine-srgb", curves: 3 lists of K+1 values (monotone, 0 .. 1),
            matrix: 3x3, bias: [3], residual: 3 x G x G x G (optional, linear light)},
    blur_sigma: [low, high] px or null, noise_sigma: [low, high] or null,
    channel: {jpeg_quality: [low, high], contrast: [low, high], white_balance, light_gradient,
              rotation_deg, tilt, px_per_mm: [low, high], image_size: [w, h]} (each optional: what
              the chart photos measured for the channel),
    noise_spectrum: {psd: 3 x 32 x 32 (the photo's noise texture, calibrate/texture.py),
                     by_colour: [[R, G, B, Y, RG, YB] per patch] (its level by colour)} (optional),
    ... (reports)

Only the keys the tool reads are checked; a bad one raises :class:`CalibrationError` with the file
and the key path (``calibration/colour.json: model.matrix[1]: expected 3 numbers, got 2``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from physical.errors import ConfigError, UserError
from physical.channel.texture import SIZE, check_spectrum

CAMERA_KIND = "physical.camera"
COLOUR_KIND = "physical.colour"
VERSION = 1
COLOUR_MODEL = "curves-affine-srgb"
DIST_LENGTHS = (4, 5, 8, 12, 14)


class CalibrationError(UserError, ValueError):
    """Bad calibration input (photos, files); the message says what is wrong and what to do."""


# ----------------------------------------------------------------------------------------------
# checks


def _num(v: Any, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise CalibrationError(f"{where}: expected a finite number, got {v!r}")
    if not lo <= v <= hi:
        raise CalibrationError(f"{where}: {v!r} is out of range {lo:g} .. {hi:g}")
    return float(v)


def _vec(v: Any, where: str, n: Optional[int] = None, lengths: tuple = (), lo=-math.inf, hi=math.inf) -> list[float]:
    if not isinstance(v, list):
        raise CalibrationError(f"{where}: expected a list of numbers, got {type(v).__name__}")
    if n is not None and len(v) != n:
        raise CalibrationError(f"{where}: expected {n} numbers, got {len(v)}")
    if lengths and len(v) not in lengths:
        raise CalibrationError(f"{where}: expected {' or '.join(map(str, lengths))} numbers, got {len(v)}")
    return [_num(x, f"{where}[{i}]", lo, hi) for i, x in enumerate(v)]


def _mat(v: Any, where: str, rows: int, cols: int) -> np.ndarray:
    if not isinstance(v, list) or len(v) != rows:
        got = f"{len(v)} rows" if isinstance(v, list) else type(v).__name__
        raise CalibrationError(f"{where}: expected a {rows}x{cols} matrix (a list of {rows} rows), got {got}")
    return np.array([_vec(r, f"{where}[{i}]", cols) for i, r in enumerate(v)], np.float64)


def _range(v: Any, where: str, lo: float, hi: float) -> Optional[tuple[float, float]]:
    if v is None:
        return None
    a, b = _vec(v, where, 2, lo=lo, hi=hi)
    if a > b:
        raise CalibrationError(f"{where}: [{a:g}, {b:g}] must be a range [low, high] with low <= high")
    return a, b


def _read(path: str | Path, kind: str, what: str, command: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CalibrationError(f"{p}: {what} not found; fit one with `physical calibrate {command}`")
    try:
        d = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CalibrationError(f"{p}: not a JSON file ({e})") from None
    if not isinstance(d, dict):
        raise CalibrationError(f"{p}: expected a JSON object, got {type(d).__name__}")
    # files written before `kind` existed (a bare {camera_matrix, dist_coeffs}) are accepted as camera files
    k = d.get("kind", CAMERA_KIND if kind == CAMERA_KIND and "camera_matrix" in d else None)
    if k != kind:
        other = {CAMERA_KIND: "a camera calibration", COLOUR_KIND: "a colour calibration"}.get(str(k))
        hint = f" (this is {other})" if other else ""
        raise CalibrationError(f"{p}: kind: expected {kind!r}, got {k!r}{hint}")
    v = d.get("version", VERSION)
    if v != VERSION:
        raise CalibrationError(f"{p}: version: {v!r} is not supported (this tool reads version {VERSION})")
    return d


def _key(d: dict, key: str, prefix: str = ""):
    if key not in d:
        raise CalibrationError(f"{prefix}{key}: missing")
    return d[key]


# ----------------------------------------------------------------------------------------------
# camera


@dataclass
class CameraCalibration:
    camera_matrix: np.ndarray  # 3x3
    dist_coeffs: np.ndarray  # OpenCV order
    image_size: Optional[tuple[int, int]]  # (w, h) the fit was made at
    raw: dict = field(default_factory=dict, repr=False)


def load_camera(path: str | Path) -> CameraCalibration:
    """Read and check a camera calibration; CalibrationError naming the file and the bad key."""
    p = Path(path)
    d = _read(p, CAMERA_KIND, "camera calibration", "camera --source PHOTOS")
    try:
        k = _mat(_key(d, "camera_matrix"), "camera_matrix", 3, 3)
        if k[0, 0] <= 0 or k[1, 1] <= 0 or k[2, 2] != 1 or k[1, 0] or k[2, 0] or k[2, 1]:
            raise CalibrationError("camera_matrix: not a camera matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, "
                                   "fy > 0")
        dist = _vec(_key(d, "dist_coeffs"), "dist_coeffs", lengths=DIST_LENGTHS)
        size = d.get("image_size")
        if size is not None:
            size = _vec(size, "image_size", 2, lo=1)
            if any(s != int(s) for s in size):
                raise CalibrationError(f"image_size: {size} must be whole pixels [width, height]")
            size = (int(size[0]), int(size[1]))
    except CalibrationError as e:
        raise CalibrationError(f"{p}: {e}") from None
    return CameraCalibration(k, np.asarray(dist, np.float64), size, d)


# ----------------------------------------------------------------------------------------------
# colour


@dataclass
class ColourCalibration:
    curves: np.ndarray  # 3 x (K+1): per-channel tone curve, digital value k/K -> linear light
    matrix: np.ndarray  # 3x3, linear light
    bias: np.ndarray  # (3,)
    blur_sigma: Optional[tuple[float, float]]  # photo pixels; None: the config's range applies
    noise_sigma: Optional[tuple[float, float]]  # [0, 1] units; None: the config's range applies
    path: str = ""
    raw: dict = field(default_factory=dict, repr=False)
    channel: dict = field(default_factory=dict)  # measured channel ranges (CHANNEL_KEYS), where measured
    noise_spectrum: Optional[np.ndarray] = None  # 3 x SIZE x SIZE opponent NPS (texture.py); None: white noise
    texture_by_colour: Optional[np.ndarray] = None  # (P, 6) patches' camera RGB, opponent texture variances
    residual: Optional[np.ndarray] = None  # 3 x G x G x G linear-light residual on digital colours (model.py)

    def frame(self, default: list[int]) -> list[int]:
        """The simulated photo's [W, H] for an upright (portrait) page: the chart photos' size, portrait
        where the page's long side lay along the photo's long side (a page photographed sideways in a
        landscape photo is an upright page in a portrait one), landscape where it lay across it."""
        size = self.channel.get("image_size")
        if not size:
            return list(default)
        short, long = sorted(int(v) for v in size)
        return [short, long] if self.channel.get("page_along_long_side", True) else [long, short]


# what a colour calibration may measure for the channel: key -> (kind, low, high)
CHANNEL_KEYS = {
    "jpeg_quality": ("range", 1.0, 100.0), "contrast": ("range", 0.0, 4.0), "white_balance": ("num", 0.0, 0.5),
    "light_gradient": ("num", 0.0, 1.0), "rotation_deg": ("num", 0.0, 180.0), "tilt": ("num", 0.0, 0.5),
    "px_per_mm": ("range", 0.1, 1000.0), "image_size": ("range", 1.0, 100000.0),
}


def _channel(d: Any) -> dict:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise CalibrationError(f"channel: expected a mapping, got {type(d).__name__}")
    out: dict[str, Any] = {}
    for key, value in d.items():
        if key == "page_along_long_side":
            if not isinstance(value, bool):
                raise CalibrationError(f"channel.{key}: expected true or false, got {value!r}")
            out[key] = value
            continue
        if key not in CHANNEL_KEYS or value is None:
            continue  # a report, or not measured
        kind, lo, hi = CHANNEL_KEYS[key]
        if key == "image_size":
            out[key] = _vec(value, f"channel.{key}", 2, lo=lo, hi=hi)
        else:
            read = _range if kind == "range" else _num
            out[key] = read(value, f"channel.{key}", lo, hi)
    return out


def load_colour(path: str | Path) -> ColourCalibration:
    """Read and check a colour calibration; CalibrationError naming the file and the bad key."""
    p = Path(path)
    d = _read(p, COLOUR_KIND, "colour calibration", "colour --source PHOTOS")
    try:
        m = _key(d, "model")
        if not isinstance(m, dict):
            raise CalibrationError(f"model: expected a mapping, got {type(m).__name__}")
        if m.get("type") != COLOUR_MODEL:
            raise CalibrationError(f"model.type: expected {COLOUR_MODEL!r}, got {m.get('type')!r}")
        curves = _key(m, "curves", "model.")
        if not isinstance(curves, list) or len(curves) != 3:
            raise CalibrationError("model.curves: expected 3 lists (R, G, B) of tone curve values")
        cv = [_vec(c, f"model.curves[{i}]", lo=0.0, hi=1.0) for i, c in enumerate(curves)]
        n = len(cv[0])
        for i, c in enumerate(cv):
            if len(c) != n or n < 2:
                raise CalibrationError(f"model.curves[{i}]: expected {max(n, 2)} values like the others, got {len(c)}")
            if any(b < a for a, b in zip(c, c[1:], strict=False)):
                raise CalibrationError(f"model.curves[{i}]: the tone curve must not decrease")
        matrix = _mat(_key(m, "matrix", "model."), "model.matrix", 3, 3)
        bias = _vec(_key(m, "bias", "model."), "model.bias", 3)
        residual = _residual(m.get("residual"))
        blur = _range(d.get("blur_sigma"), "blur_sigma", 0.0, 20.0)
        noise = _range(d.get("noise_sigma"), "noise_sigma", 0.0, 0.5)
        channel = _channel(d.get("channel"))
        spectrum = _spectrum(d.get("noise_spectrum"))
        by_colour = _by_colour(d["noise_spectrum"].get("by_colour")) if spectrum is not None else None
    except CalibrationError as e:
        raise CalibrationError(f"{p}: {e}") from None
    return ColourCalibration(np.array(cv, np.float64), matrix, np.array(bias, np.float64), blur, noise, str(p), d,
                             channel, spectrum, by_colour, residual)


def _spectrum(d: Any) -> Optional[np.ndarray]:
    if d is None:
        return None
    if not isinstance(d, dict) or "psd" not in d:
        raise CalibrationError("noise_spectrum: expected a mapping with 'psd' (3 x 32 x 32 numbers)")
    try:
        psd = np.asarray(d["psd"], np.float64)
    except (TypeError, ValueError):
        raise CalibrationError("noise_spectrum.psd: expected 3 x 32 x 32 numbers") from None
    why = check_spectrum(psd)
    if why:
        raise CalibrationError(f"noise_spectrum.psd: {why}")
    return psd


def _residual(d: Any) -> Optional[np.ndarray]:
    if d is None:
        return None
    try:
        a = np.asarray(d, np.float64)
    except (TypeError, ValueError):
        a = np.zeros(0)
    if a.ndim != 4 or a.shape[0] != 3 or a.shape[1] < 2 or len(set(a.shape[1:])) != 1:
        raise CalibrationError("model.residual: expected 3 x G x G x G numbers (a table of digital colours)")
    if not np.isfinite(a).all() or np.abs(a).max() > 1:
        raise CalibrationError("model.residual: values must be finite and within -1 .. 1")
    return a


def _by_colour(d: Any) -> Optional[np.ndarray]:
    if d is None:
        return None
    if not isinstance(d, list) or not d:
        raise CalibrationError("noise_spectrum.by_colour: expected a list of [R, G, B, Y, RG, YB] rows")
    rows = [_vec(r, f"noise_spectrum.by_colour[{i}]", 6, lo=0.0) for i, r in enumerate(d)]
    return np.array(rows, np.float64)


def colour_document(curves, matrix, bias, blur_sigma=None, noise_sigma=None, noise_spectrum=None,
                    texture_by_colour=None, residual=None, **reports) -> dict:
    """A colour calibration as the JSON object `load_colour` reads (reports are extra keys)."""
    doc: dict[str, Any] = {
        "kind": COLOUR_KIND,
        "version": VERSION,
        "model": {
            "type": COLOUR_MODEL,
            "curves": np.round(np.asarray(curves, np.float64), 6).tolist(),
            "matrix": np.round(np.asarray(matrix, np.float64), 6).tolist(),
            "bias": np.round(np.asarray(bias, np.float64), 6).tolist(),
        },
        "blur_sigma": None if blur_sigma is None else [round(float(v), 4) for v in blur_sigma],
        "noise_sigma": None if noise_sigma is None else [round(float(v), 5) for v in noise_sigma],
    }
    if residual is not None:  # linear light, a table of digital colours (model.py)
        doc["model"]["residual"] = np.round(np.asarray(residual, np.float64), 6).tolist()
    if noise_spectrum is not None:
        doc["noise_spectrum"] = {
            "basis": "opponent: (R + G + B) / 3, R - G, (R + G) / 2 - B", "size": SIZE,
            "units": "photo pixels, FFT order (frequency k / size cycles per pixel); mean = variance",
            "psd": [[[float(f"{v:.4g}") for v in row] for row in comp] for comp in np.asarray(noise_spectrum)],
        }
        if texture_by_colour is not None:  # each patch: camera R, G, B and its texture's Y, RG, YB variance
            doc["noise_spectrum"]["by_colour"] = [[float(f"{v:.4g}") for v in r] for r in np.asarray(texture_by_colour)]
    doc.update(reports)
    return doc


def check_calibrations(cfg) -> None:
    """Fitted calibration files are read now, so a bad one stops the run before any stage, naming
    the config key and the file's bad key. Their paths become absolute: the channel (the simulator's
    and EOT's) has no config folder to resolve a relative path against, and the pipeline hashes the
    files' content into the stages that read them."""
    ch = cfg.capture.channel
    if ch.calibration:
        path = cfg.resolve(ch.calibration)
        try:
            colour = load_colour(path)
        except CalibrationError as e:
            raise ConfigError(f"capture.channel.calibration: {e}") from None
        ch.calibration = str(path.resolve())
        if getattr(cfg.capture, "frame_auto", False):  # the frame of the calibrated camera, unless set by hand
            cfg.capture.frame = colour.frame(cfg.capture.frame)
    if cfg.align.camera_calibration:
        path = cfg.resolve(cfg.align.camera_calibration)
        try:
            load_camera(path)
        except CalibrationError as e:
            raise ConfigError(f"align.camera_calibration: {e}") from None
        cfg.align.camera_calibration = str(path.resolve())
