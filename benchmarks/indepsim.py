"""An independent print-and-camera simulator: a second opinion on physical's channel.

It shares no code with physical/channel.py or physical/capture/simulated*.py (it imports nothing
from physical at all) and was written from published printer and phone-camera figures, then left
fixed before any comparison with physical's channel. What a page goes through:

printer (a 600 dpi colour laser, clustered-dot halftone)
  - the PDF is rasterized by pdfium at 600 dpi (physical's simulator renders at ``capture.dpi``);
  - sRGB -> CMY coverage with grey-component replacement into K (70 % of the common part);
  - mechanical dot gain: +16 % coverage at 50 % (ISO 12647-2 gives 12-18 % for offset; office
    lasers are in the same range), a parabola in the coverage;
  - clustered-dot screens of 150 lines per inch at the classic angles (C 15, M 75, Y 0, K 45 deg),
    dots thresholded against a cosine spot function: binary ink per dot;
  - optical dot gain: light scattering in the paper spreads the inked area (Gaussian of 25 um,
    the Yule-Nielsen point spread reported for office paper);
  - ink and paper colours: paper reflectance 0.87-0.90 (office paper, L* about 95), inks as
    band transmittances (cyan absorbs red, magenta green, yellow blue, black everything, with the
    side absorptions of real toners), inks multiply where they overlap;
  - the reflectance is area-averaged to 400 dpi (what the lens integrates long before the sensor).

camera (a 12-megapixel phone, hand-held, good light)
  - 4032 x 3024 frame, portrait or landscape; the sheet fills 80-92 % of the frame's matching
    side, rotated by up to 4 deg (plus 90 deg in a landscape frame), tilted by up to 5 deg (a
    perspective homography), over a textured desk;
  - light: an illuminant a little warm or cool (white balance gains 0.94-1.06), a linear light
    gradient of up to 8 % and the lens's vignetting (cos^4 law, 20 % at the corners, half
    corrected by the phone);
  - optics: a disk-shaped defocus of radius 0.7-1.5 px (a phone lens at f/1.8 focused on a page,
    MTF50 about 0.3 cycles per pixel) and a motion blur of 0-1.5 px (hand shake at 1/100 s with
    optical stabilisation);
  - sensor: 1.4 um pixels, full well 6000 e-, the paper white exposed to 80 % of it, Poisson shot
    noise and 2.5 e- read noise, on an RGGB Bayer mosaic with the channels' raw sensitivities
    (R 0.55, G 1, B 0.70), 10-bit raw;
  - image processing: white balance, demosaicing (OpenCV's edge-aware Bayer conversion), the sRGB
    tone curve with a mild contrast "look", a chroma denoise (Gaussian, 1.5 px on CrCb) and a luma
    denoise (bilateral), an unsharp mask (amount 0.5, sigma 1.0), and JPEG at quality 88-95 with
    4:2:0 chroma subsampling (OpenCV's encoder).

A second printer and camera, ``--variant office`` (VARIANTS): a 100-lpi screen with 22 % dot gain,
the sheet at 60-75 % of the frame, defocus radius 1-2 px, shake up to 2.5 px, sharpening 0.3, JPEG 80-90.

A third, ``--variant inkjet``, with what physical's channel does not model: an inkjet printer whose
driver screens by error diffusion (Floyd-Steinberg at 600 dpi on each of C, M, Y, K: a stochastic
dot pattern without a screen frequency, its noise at the highest frequencies), dye inks that spread
more in plain paper (45 um) with 10 % dot gain, and a 1080p webcam (1920 x 1080, the sheet filling
85-95 % of the frame's height: about 3.5 px per mm) whose small sensor (full well 2500 e-, read
noise 5 e-) goes through the webcam's own processing: no bilateral denoise, a strong, wide unsharp
mask (amount 1.0, sigma 1.6, the halo a webcam shows) and MJPEG at quality 70-85.

    python benchmarks/indepsim.py SHEETS.pdf OUT_FOLDER [--photos 1] [--seed 0] [--variant phone|office]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

PRINT_DPI = 600
PAGE_DPI = 400  # the reflectance handed to the camera
FRAME = (4032, 3024)
LPI = 150
# a second printer and camera ("--variant office"), fixed before any comparison: a coarser 100-lpi
# screen with more dot gain (a worn office laser), a cheaper phone further away (the sheet fills
# 60-75 % of the frame), softer focus and more shake, lighter sharpening and JPEG 80-90
VARIANTS = {
    "phone": {"lpi": LPI, "dot_gain": 0.16, "fill": (0.80, 0.92), "defocus": (0.7, 1.5), "motion": 1.5,
              "sharpen": 0.5, "quality": (88, 96)},
    "office": {"lpi": 100, "dot_gain": 0.22, "fill": (0.60, 0.75), "defocus": (1.0, 2.0), "motion": 2.5,
               "sharpen": 0.3, "quality": (80, 91)},
    # a third, fixed before any comparison (issue 29): error diffusion, dye ink, a 1080p webcam
    "inkjet": {"screen": "error_diffusion", "dot_gain": 0.10, "scatter_mm": 0.045, "frame": (1920, 1080),
               "fill": (0.85, 0.95), "defocus": (0.6, 1.2), "motion": 1.0, "full_well": 2500.0,
               "read_noise": 5.0, "denoise": False, "sharpen": 1.0, "sharpen_sigma": 1.6, "quality": (70, 86)},
}
ANGLES = {"c": 15.0, "m": 75.0, "y": 0.0, "k": 45.0}
# band transmittance of each toner layer for (R, G, B) light (double pass included)
INKS = {
    "c": np.array([0.18, 0.80, 0.95], np.float32),
    "m": np.array([0.92, 0.22, 0.70], np.float32),
    "y": np.array([0.97, 0.92, 0.15], np.float32),
    "k": np.array([0.06, 0.06, 0.07], np.float32),
}
GCR = 0.7
PAPER_SCATTER_MM = 0.025
RAW_GAIN = np.array([0.55, 1.0, 0.70], np.float32)
FULL_WELL = 6000.0
READ_NOISE = 2.5


def render_pdf(pdf: str | Path, dpi: float = PRINT_DPI):
    """Yield every page as H x W x 3 uint8 RGB (pdfium, at `dpi`)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    try:
        for i in range(len(doc)):
            page = doc[i]
            bmp = page.render(scale=dpi / 72.0, rev_byteorder=True)
            a = bmp.to_numpy()[..., :3]
            yield np.ascontiguousarray(a)
            bmp.close()
            page.close()
    finally:
        doc.close()


def _screen(shape: tuple[int, int], y0: int, angle_deg: float, lpi: float = LPI) -> np.ndarray:
    """Threshold (0..1) of a clustered-dot screen at `lpi` and `angle_deg`, rows y0 .. y0 + h."""
    h, w = shape
    period = PRINT_DPI / lpi
    t = math.radians(angle_deg)
    yy, xx = np.mgrid[y0:y0 + h, 0:w].astype(np.float32)
    u = (xx * math.cos(t) + yy * math.sin(t)) / period
    v = (-xx * math.sin(t) + yy * math.cos(t)) / period
    spot = 0.5 - 0.25 * (np.cos(2 * np.pi * u) + np.cos(2 * np.pi * v))  # 0 at dot centres .. 1
    return _spot_to_threshold(spot)


def _spot_to_threshold(spot: np.ndarray) -> np.ndarray:
    # the cosine spot's area fraction below level s (tabulated): coverage c inks where it is < c
    g = (np.arange(64, dtype=np.float32) + 0.5) / 64
    uu, vv = np.meshgrid(g, g)
    ref = np.sort((0.5 - 0.25 * (np.cos(2 * np.pi * uu) + np.cos(2 * np.pi * vv))).ravel())
    levels = np.linspace(0, 1, 1025, dtype=np.float32)
    table = (np.searchsorted(ref, levels) / ref.size).astype(np.float32)
    return np.interp(spot, levels, table).astype(np.float32)


def _error_diffusion(cov: np.ndarray) -> np.ndarray:
    """Floyd-Steinberg on one ink's coverage (0..1): binary dots, the error pushed right and down."""
    # deferred: numba is needed by the inkjet variant only
    from numba import njit

    @njit(cache=True)
    def diffuse(c):
        h, w = c.shape
        out = np.zeros((h, w), np.float32)
        for y in range(h):
            for x in range(w):
                old = c[y, x]
                new = 1.0 if old >= 0.5 else 0.0
                out[y, x] = new
                err = old - new
                if x + 1 < w:
                    c[y, x + 1] += err * 0.4375
                if y + 1 < h:
                    if x > 0:
                        c[y + 1, x - 1] += err * 0.1875
                    c[y + 1, x] += err * 0.3125
                    if x + 1 < w:
                        c[y + 1, x + 1] += err * 0.0625
        return out

    return diffuse(np.ascontiguousarray(cov, np.float32).copy())


def _print_error_diffusion(rgb: np.ndarray, paper: np.ndarray, v: dict) -> np.ndarray:
    """The inkjet: each ink's coverage (with dot gain) screened by error diffusion over the whole
    page (no strips: the error runs across them), the drops spread by the paper."""
    x = rgb.astype(np.float32) / 255.0
    cmy = 1.0 - x
    k = GCR * cmy.min(2)
    cmy = (cmy - k[..., None]) / np.maximum(1 - k[..., None], 1e-3)
    refl = np.ones(x.shape, np.float32) * paper
    sigma = v["scatter_mm"] / 25.4 * PRINT_DPI
    for i, name in enumerate("cmyk"):
        cov = k if name == "k" else cmy[..., i]
        cov = np.clip(cov + v["dot_gain"] * 4 * cov * (1 - cov), 0, 1)
        dots = cv2.GaussianBlur(_error_diffusion(cov), (0, 0), sigma)
        refl *= 1.0 - dots[..., None] * (1.0 - INKS[name])
    return refl


def print_page(rgb: np.ndarray, rng: np.random.Generator, v: dict = VARIANTS["phone"]) -> np.ndarray:
    """600 dpi sRGB page -> linear reflectance (H', W', 3) float32 at PAGE_DPI."""
    paper = np.array([0.87, 0.88, 0.90], np.float32) * rng.uniform(0.985, 1.015)
    f = PAGE_DPI / PRINT_DPI
    if v.get("screen") == "error_diffusion":
        page = _print_error_diffusion(rgb, paper, v)
        return cv2.resize(page, (round(page.shape[1] * f), round(page.shape[0] * f)), interpolation=cv2.INTER_AREA)
    out = []
    sigma = PAPER_SCATTER_MM / 25.4 * PRINT_DPI
    strip = 512
    for y0 in range(0, rgb.shape[0], strip):
        x = rgb[y0:y0 + strip].astype(np.float32) / 255.0
        cmy = 1.0 - x
        k = GCR * cmy.min(2)
        cmy = (cmy - k[..., None]) / np.maximum(1 - k[..., None], 1e-3)
        refl = np.ones(x.shape, np.float32) * paper
        for i, name in enumerate("cmyk"):
            cov = k if name == "k" else cmy[..., i]
            cov = np.clip(cov + v["dot_gain"] * 4 * cov * (1 - cov), 0, 1)
            dots = (cov > _screen(cov.shape, y0, ANGLES[name], v["lpi"])).astype(np.float32)
            dots = cv2.GaussianBlur(dots, (0, 0), sigma)
            refl *= 1.0 - dots[..., None] * (1.0 - INKS[name])
        out.append(refl)
    page = np.concatenate(out, 0)
    return cv2.resize(page, (round(page.shape[1] * f), round(page.shape[0] * f)), interpolation=cv2.INTER_AREA)


def _disk(radius: float) -> np.ndarray:
    n = int(math.ceil(radius)) * 2 + 3
    c = n // 2
    yy, xx = np.mgrid[:n, :n]
    # anti-aliased disk: coverage of each pixel by the circle, by supersampling
    s = 8
    sub = (np.arange(s) + 0.5) / s - 0.5
    acc = np.zeros((n, n), np.float32)
    for dy in sub:
        for dx in sub:
            acc += ((xx + dx - c) ** 2 + (yy + dy - c) ** 2 <= radius ** 2)
    return acc / acc.sum()


def _motion(length: float, angle: float) -> np.ndarray:
    n = int(math.ceil(length)) * 2 + 3
    k = np.zeros((n, n), np.float32)
    c = n // 2
    for t in np.linspace(-0.5, 0.5, 33):
        x, y = c + t * length * math.cos(angle), c + t * length * math.sin(angle)
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        k[y0, x0] += (1 - fx) * (1 - fy)
        k[y0, x0 + 1] += fx * (1 - fy)
        k[y0 + 1, x0] += (1 - fx) * fy
        k[y0 + 1, x0 + 1] += fx * fy
    return k / k.sum()


def placement(page_wh: tuple[int, int], rng: np.random.Generator,
              fill_range: tuple[float, float] = (0.80, 0.92),
              sensor: tuple[int, int] = FRAME) -> tuple[np.ndarray, tuple[int, int]]:
    """Homography page px -> photo px, and the frame (W, H): a hand-held phone over the sheet (a
    landscape webcam frame turns the sheet rather than itself)."""
    pw, ph = page_wh
    portrait = rng.random() < 0.5 and sensor == FRAME
    frame = (sensor[1], sensor[0]) if portrait else sensor
    turn = 0.0 if portrait else 90.0 * rng.choice([-1, 1])
    angle = math.radians(turn + rng.uniform(-4, 4))
    fill = rng.uniform(*fill_range)
    long_side = frame[1] if portrait else frame[0]
    s = fill * min(long_side / ph, (frame[0] if portrait else frame[1]) / pw)
    corners = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float64) - [pw / 2, ph / 2]
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    q = corners @ rot.T * s
    # perspective: up to 5 deg of tilt about both axes, the far side foreshortened (camera about one
    # sheet length away: w = 1 + tan(tilt) x / distance)
    tilt = np.tan(np.radians(rng.uniform(-5, 5, 2)))
    dist = np.abs(q).max() * 2
    q = q / (1 + q @ tilt / dist)[:, None]
    slack = np.array(frame) / 2 - np.abs(q).max(0)
    centre = np.array(frame) / 2 + rng.uniform(-1, 1, 2) * np.maximum(slack, 0) * 0.8
    dst = (q + centre).astype(np.float32)
    src = (corners + [pw / 2, ph / 2]).astype(np.float32) - 0.5
    return cv2.getPerspectiveTransform(src, dst), frame


def camera(refl: np.ndarray, rng: np.random.Generator, quality: int | None = None,
           v: dict = VARIANTS["phone"]) -> tuple[bytes, np.ndarray]:
    """Page reflectance (PAGE_DPI) -> JPEG bytes of a phone photo, and the page px -> photo px homography."""
    ph, pw = refl.shape[:2]
    hom, (W, H) = placement((pw, ph), rng, v["fill"], v.get("frame", FRAME))
    # the lens integrates before sampling: spread the page to the photo's pixel size first
    scale = math.sqrt(abs(np.linalg.det(hom[:2, :2])))
    if scale < 1:
        refl = cv2.GaussianBlur(refl, (0, 0), 0.5 * math.sqrt(1 / scale ** 2 - 1))
    desk = np.empty((H, W, 3), np.float32)
    desk[:] = np.array([0.16, 0.12, 0.09], np.float32) * rng.uniform(0.8, 1.3)
    grain = cv2.resize(rng.normal(0, 0.02, (H // 16, W // 16)).astype(np.float32), (W, H))
    desk += grain[..., None]
    scene = cv2.warpPerspective(refl, hom, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=(-1, -1, -1))
    scene = np.where(scene < 0, desk, scene)
    # light: illuminant colour, gradient, vignetting
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    xn, yn = (xx - W / 2) / (W / 2), (yy - H / 2) / (H / 2)
    a = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0, 0.08) * (xn * math.cos(a) + yn * math.sin(a)) / 2
    r2 = (xn ** 2 * (W / 2) ** 2 + yn ** 2 * (H / 2) ** 2) / ((W / 2) ** 2 + (H / 2) ** 2)
    vignette = 1 - 0.1 * r2  # cos^4 falls to 0.8 at the corners; the phone corrects half of it
    illum = rng.uniform(0.94, 1.06, 3).astype(np.float32)
    scene = scene * (light * vignette)[..., None] * illum
    # optics
    k = cv2.filter2D(_disk(rng.uniform(*v["defocus"])), -1, _motion(rng.uniform(0, v["motion"]), rng.uniform(0, np.pi)))
    scene = cv2.filter2D(scene, -1, k, borderType=cv2.BORDER_REFLECT)
    # sensor: RGGB mosaic of electrons
    full_well = v.get("full_well", FULL_WELL)
    expose = 0.8 * full_well / 0.9
    e = np.empty((H, W), np.float32)
    e[0::2, 0::2] = scene[0::2, 0::2, 0] * RAW_GAIN[0]
    e[0::2, 1::2] = scene[0::2, 1::2, 1] * RAW_GAIN[1]
    e[1::2, 0::2] = scene[1::2, 0::2, 1] * RAW_GAIN[1]
    e[1::2, 1::2] = scene[1::2, 1::2, 2] * RAW_GAIN[2]
    e = np.clip(e, 0, None) * expose
    e = rng.poisson(e).astype(np.float32) + rng.normal(0, v.get("read_noise", READ_NOISE), e.shape).astype(np.float32)
    raw = np.clip(np.round(e / full_well * 1023), 0, 1023)
    # white balance on the raw (gray-world on the page's paper would be the phone's; the gains
    # undo the raw sensitivities and the illuminant's tint as an auto white balance does)
    wb = 1.0 / (RAW_GAIN * illum)
    wb = wb / wb[1]
    raw[0::2, 0::2] *= wb[0]
    raw[1::2, 1::2] *= wb[2]
    raw16 = np.clip(raw * 64, 0, 65535).astype(np.uint16)
    # OpenCV names a Bayer pattern by the 2x2 block starting at the second row and column: an RGGB
    # sensor is "BayerBG"; the _EA variant interpolates along edges
    rgb = cv2.cvtColor(raw16, cv2.COLOR_BayerBG2RGB_EA).astype(np.float32) / 65535.0
    lin = np.clip(rgb / (0.8 / 0.9 * 0.9), 0, 1)  # the paper white maps near 0.9 of full scale
    enc = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.power(lin, 1 / 2.4) - 0.055)
    enc = np.clip(enc + 0.06 * np.sin(2 * np.pi * enc) * enc * (1 - enc) * 2, 0, 1)  # a mild S "look"
    img = np.clip(enc * 255, 0, 255).astype(np.uint8)
    # phone processing: chroma and luma denoise, sharpen
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
    y = ycc[..., 0]
    if v.get("denoise", True):
        y = cv2.bilateralFilter(y, 5, 10, 1.5)
    blur = cv2.GaussianBlur(y, (0, 0), v.get("sharpen_sigma", 1.0))
    y = cv2.addWeighted(y, 1 + v["sharpen"], blur, -v["sharpen"], 0)
    ycc[..., 0] = y
    ycc[..., 1:] = cv2.GaussianBlur(ycc[..., 1:], (0, 0), 1.5)
    img = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)
    q = int(quality if quality is not None else rng.integers(*v["quality"]))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
    assert ok
    return buf.tobytes(), hom


def _page_count(pdf: str | Path) -> int:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    try:
        return len(doc)
    finally:
        doc.close()


def _photograph_page(pdf: str, i: int, mine: list[Path], seed: int, variant: str) -> None:
    """Print page i of `pdf` and photograph it into the paths `mine` (its own generator: seed, page)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        page = doc[i]
        bmp = page.render(scale=PRINT_DPI / 72.0, rev_byteorder=True)
        rgb = np.ascontiguousarray(bmp.to_numpy()[..., :3])
    finally:
        doc.close()
    v = VARIANTS[variant]
    rng = np.random.default_rng([seed, i])
    refl = print_page(rgb, rng, v)
    del rgb
    for p in mine:
        data, _ = camera(refl, rng, v=v)
        tmp = p.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.rename(p)


def photograph_pdf(pdf: str | Path, out: str | Path, photos: int = 1, seed: int = 0, prefix: str = "photo",
                   pages: int | None = None, variant: str = "phone", workers: int = 1) -> list[Path]:
    """Print every page of `pdf` and photograph it `photos` times with the `variant` printer and
    camera; the JPEG paths. Each page draws from its own generator (seed, page), so a page whose
    photos exist is skipped (a resumed run) and `workers` processes give the same photos."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = _page_count(pdf) if pages is None else min(pages, _page_count(pdf))
    todo, paths = [], []
    for i in range(n):
        mine = [out / f"{prefix}{i:03d}-{k}.jpg" for k in range(photos)]
        paths += mine
        if not all(p.is_file() for p in mine):
            todo.append((str(pdf), i, mine, seed, variant))
    if workers > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(todo))) as pool:
            list(pool.map(_photograph_page, *zip(*todo)))
    else:
        for job in todo:
            _photograph_page(*job)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("pdf")
    p.add_argument("out")
    p.add_argument("--photos", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", choices=sorted(VARIANTS), default="phone")
    p.add_argument("--workers", type=int, default=1, help="processes (the photos do not depend on it)")
    a = p.parse_args()
    for path in photograph_pdf(a.pdf, a.out, a.photos, a.seed, variant=a.variant, workers=a.workers):
        print(path)


if __name__ == "__main__":
    main()
