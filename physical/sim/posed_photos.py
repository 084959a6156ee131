"""Photos of printed sheets posed with known geometry, for the align tests and benchmark (the
simulated capture stage is `physical.sim.print_camera`; the simulated camera stream `capture.simulated_stream`).

A page of the real PDF, rasterized (`physical.sim.print_camera.rasterize_pdf`), is placed into a larger
frame by a homography built from an in-plane rotation, a perspective tilt and a scale given as the
width of one cell in photo pixels; several pages can share one frame. Then the camera: gaussian
blur, a lighting gradient, sensor noise and a real JPEG round trip. The homography (sheet
millimetres -> photo pixels, pixel centres at integers as in OpenCV) is the ground truth.

`LEVELS` are the difficulty levels of `benchmarks/align.py`; `random_photo` draws one photo of a
level, of one page or of several side by side. The "hurried" level is a photo taken in a hurry
from afar: the page's longer side spans a third to 60 % of a 7-megapixel frame's shorter side, defocus
blur, strong noise and JPEG loss, and a glare spot and a finger over the sheet. `make_run` makes a run ready to print
from `cell_images` (no model, no attack).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from physical import runfiles
from physical.config import Config
from physical.data.images import SAMPLES, load_images
from physical.rundir import RunDir, write_image
from physical.sim.print_camera import mm_to_px
from physical.sheets.layout import Layout
from physical.sheets.markers import project

# ranges drawn uniformly; cell_px: printed cell width in photo px; blur: gaussian sigma in photo px;
# noise: sigma in 0..255; gradient: peak fraction of a linear light ramp; tilt: perspective strength
LEVELS: dict[str, dict[str, Any]] = {
    "mild": {"cell_px": (300, 500), "tilt": 0.1, "blur": (0.5, 1.0), "noise": 2.0, "gradient": 0.1,
             "jpeg": (88, 95), "occlude": 0},
    "medium": {"cell_px": (200, 450), "tilt": 0.25, "blur": (0.8, 1.6), "noise": 4.0, "gradient": 0.3,
               "jpeg": (70, 90), "occlude": 1},
    "hard": {"cell_px": (150, 300), "tilt": 0.4, "blur": (1.4, 2.4), "noise": 7.0, "gradient": 0.5,
             "jpeg": (50, 75), "occlude": 3},
    # sheet_frac: the page's longer side as a fraction of the frame's shorter side (instead of cell_px)
    "hurried": {"sheet_frac": (1 / 3, 0.60), "frame": (3072, 2304), "tilt": 0.24, "blur": (1.6, 2.8),
                "noise": (4.0, 7.0), "gradient": 0.3, "jpeg": (62, 78), "occlude": 0, "glare": 1, "finger": 1},
}


def sheet_homography(layout: Layout, angle_deg: float, cell_px: float, centre: tuple[float, float],
                     tilt: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """3x3 sheet mm -> photo px: the page centred at `centre`, rotated by `angle_deg`
    (counter-clockwise on screen), a cell `cell_px` wide (at the page centre), then a perspective
    tilt (a fraction of the page's half size, per axis)."""
    s = cell_px / layout.cell
    a = np.deg2rad(angle_deg)
    c, si = np.cos(a), np.sin(a)
    to_centre = np.array([[1, 0, -layout.page_w / 2], [0, 1, -layout.page_h / 2], [0, 0, 1]])
    rot = np.array([[c * s, si * s, 0], [-si * s, c * s, 0], [0, 0, 1]])
    r = max(layout.page_w, layout.page_h) * s / 2
    persp = np.array([[1, 0, 0], [0, 1, 0], [tilt[0] / r, tilt[1] / r, 1]])
    shift = np.array([[1, 0, centre[0]], [0, 1, centre[1]], [0, 0, 1]])
    h = shift @ persp @ rot @ to_centre
    return h / h[2, 2]


def page_outline(layout: Layout, h: np.ndarray) -> np.ndarray:
    w, h_mm = float(layout.page_w), float(layout.page_h)
    return project(h, [[0.0, 0.0], [w, 0.0], [w, h_mm], [0.0, h_mm]])


def place(frame: np.ndarray, page: np.ndarray, dpi: float, h_mm: np.ndarray) -> np.ndarray:
    """`frame` with the page raster (rendered at `dpi`) warped onto it by `h_mm` (mm -> px)."""
    h_px = h_mm @ np.linalg.inv(mm_to_px(dpi))
    size = (frame.shape[1], frame.shape[0])
    # anti-alias: raster px per photo px, at the page centre
    c = np.array([page.shape[1], page.shape[0]]) / 2
    q = project(h_px, [c, c + [1, 0], c + [0, 1]])
    shrink = 1 / np.sqrt(abs(np.linalg.det(q[1:] - q[0])))
    src = cv2.GaussianBlur(page, (0, 0), 0.5 * np.sqrt(shrink**2 - 1)) if shrink > 1.3 else page
    return cv2.warpPerspective(src, h_px, size, dst=frame.copy(), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_TRANSPARENT)


def desk(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A plain dark desk with slow blotches, (H, W, 3) uint8; size is (W, H)."""
    w, h = size
    small = rng.uniform(40, 110, (6, 8, 1)) * rng.uniform(0.85, 1.15, (1, 1, 3))
    return cv2.resize(small.clip(0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)


def occlude(photo: np.ndarray, layout: Layout, h_mm: np.ndarray, points: list[int],
            colour=(200, 170, 150)) -> np.ndarray:
    """Paint over the lattice markers at `points` (a thumb, a sticker) with some margin."""
    out = photo.copy()
    for p in points:
        sq = project(h_mm, Layout.square(layout.point_center(p), layout.marker + 1.0))
        cv2.fillConvexPoly(out, np.round(sq).astype(np.int32), colour, lineType=cv2.LINE_AA)
    return out


GLARE_COVERS = 32.0  # grey levels of added light from which a glare spot counts as covering a cell


def glare(photo: np.ndarray, centre: tuple[float, float], radius: float, rng: np.random.Generator,
          cover: np.ndarray | None = None) -> np.ndarray:
    """A specular glare spot: an elliptical gaussian of light added at `centre` (px), its core
    washed out to white over about `radius` px; where it adds GLARE_COVERS or more is set in `cover`."""
    h, w = photo.shape[:2]
    r = int(3 * radius)
    x0, y0 = max(int(centre[0]) - r, 0), max(int(centre[1]) - r, 0)
    x1, y1 = min(int(centre[0]) + r, w), min(int(centre[1]) + r, h)
    if x1 <= x0 or y1 <= y0:
        return photo
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    a = rng.uniform(0, np.pi)
    u = (xx - centre[0]) * np.cos(a) + (yy - centre[1]) * np.sin(a)
    v = -(xx - centre[0]) * np.sin(a) + (yy - centre[1]) * np.cos(a)
    spot = 320.0 * np.exp(-0.5 * ((u / radius) ** 2 + (v / (0.6 * radius)) ** 2))
    if cover is not None:
        cover[y0:y1, x0:x1] |= (spot >= GLARE_COVERS).astype(np.uint8)
    out = photo.copy()
    out[y0:y1, x0:x1] = np.clip(out[y0:y1, x0:x1] + spot[..., None], 0, 255).astype(np.uint8)
    return out


def finger(photo: np.ndarray, tip: tuple[float, float], direction: float, width: float, length: float,
           cover: np.ndarray | None = None) -> np.ndarray:
    """A finger over the photo: a shaded skin-coloured capsule `width` px wide whose tip is at `tip`
    and which comes in from `direction` (radians, the way from the tip to the hand); set in `cover`."""
    out = photo.copy()
    d = np.array([np.cos(direction), np.sin(direction)])
    a, b = np.asarray(tip, float), np.asarray(tip, float) + length * d
    if cover is not None:
        cv2.line(cover, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), 1, max(1, int(width)))
    for k, shade in ((1.0, 0.8), (0.6, 1.0)):  # a darker rim, a lighter middle
        colour = tuple(int(c * shade) for c in (214, 160, 130))
        cv2.line(out, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), colour,
                 max(1, int(k * width)), lineType=cv2.LINE_AA)
    return out


def camera(photo: np.ndarray, rng: np.random.Generator, blur: float = 0.0, noise: float = 0.0,
           gradient: float = 0.0, jpeg: int | None = None) -> np.ndarray:
    """Blur, a lighting gradient (peak fraction, random direction), noise, a JPEG round trip."""
    x = photo
    if blur > 0:
        x = cv2.GaussianBlur(x, (0, 0), blur)
    h, w = x.shape[:2]
    if gradient:  # in 8 bits with OpenCV's saturation: a 12 MP photo stays fast
        a = rng.uniform(0, 2 * np.pi)
        u = np.linspace(-1, 1, 64, dtype=np.float32)[None, :] * np.cos(a)
        v = np.linspace(-1, 1, 64, dtype=np.float32)[:, None] * np.sin(a)
        ramp = 128 * (1 + gradient * (u + v) / (abs(np.cos(a)) + abs(np.sin(a))))  # linear: resizes exactly
        ramp = cv2.resize(ramp.astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)  # gradient < 1: 0..250
        x = cv2.multiply(x, cv2.cvtColor(ramp, cv2.COLOR_GRAY2RGB), scale=1 / 128)
    if noise:  # a 512 px tile of gaussian noise, repeated (cheap; no pattern at the markers' scale)
        tile = np.empty((512, 512, x.shape[2]), np.int16)
        cv2.setRNGSeed(int(rng.integers(2**31)))
        cv2.randn(tile, 0.0, float(noise))  # type: ignore[call-overload]  # cv2's stubs: mean and stddev as arrays; scalars work
        n = np.tile(tile, (-(-h // 512), -(-w // 512), 1))[:h, :w]
        x = cv2.add(x, n, dtype=cv2.CV_8U)
    if jpeg:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(x, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(jpeg)])
        x = cv2.cvtColor(np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)), cv2.COLOR_BGR2RGB)
    return x


def fit_in_frame(layout: Layout, angle: float, cell_px: float, tilt: tuple[float, float],
                 size: tuple[int, int], rng: np.random.Generator, border: float = 10) -> np.ndarray | None:
    """A homography placing the whole page inside a (W, H) frame at a random position, or None
    when the page does not fit at this cell size."""
    h = sheet_homography(layout, angle, cell_px, (0, 0), tilt)
    q = page_outline(layout, h)
    lo, hi = q.min(axis=0), q.max(axis=0)
    slack = np.array(size) - 2 * border - (hi - lo)
    if (slack < 0).any():
        return None
    off = border - lo + rng.uniform(0, 1, 2) * slack
    return np.array([[1, 0, off[0]], [0, 1, off[1]], [0, 0, 1]]) @ h


def random_photo(page: np.ndarray | list[np.ndarray], dpi: float, layout: Layout, level: str,
                 rng: np.random.Generator, size: tuple[int, int] | None = None) -> dict:
    """One photo of `page` (or of several pages side by side) at a difficulty level: {photo (RGB,
    after the JPEG round trip), jpeg (the file's bytes), h (sheet mm -> photo px, of the first
    page), hs (one per page), hidden (lattice points covered, of the first page), cell_px, covered
    (per page: `covered_cells`, the cells under the finger or the glare)}.

    Rotation is uniform over the full circle; the cell width is drawn in the level's range (or
    from its sheet fraction) and lowered until the page fits its share of the frame (the frame is
    split into as many columns as there are pages). Covered markers are never two corners of one
    cell. The hurried level adds a glare spot and a finger on every page.
    """
    lv = LEVELS[level]
    pages = page if isinstance(page, list) else [page]
    size = size or lv.get("frame", (4000, 3000))
    share = (size[0] // len(pages), size[1])
    photo = desk(size, rng)
    cover = np.zeros(photo.shape[:2], np.uint8)  # where a finger or a glare spot is
    hs, hidden = [], []
    for k, pg in enumerate(pages):
        angle = rng.uniform(0, 360)
        tilt = tuple(rng.uniform(-lv["tilt"], lv["tilt"], 2))
        if "sheet_frac" in lv:
            cell_px = rng.uniform(*lv["sheet_frac"]) * min(size) * layout.cell / max(layout.page_w, layout.page_h)
        else:
            cell_px = rng.uniform(*lv["cell_px"])
        h = None
        while h is None:
            h = fit_in_frame(layout, angle, cell_px, tilt, share, rng)
            cell_px *= 0.95 if h is None else 1.0
        h = np.array([[1, 0, k * share[0]], [0, 1, 0], [0, 0, 1]]) @ h
        photo = place(photo, pg, dpi, h)
        # lattice points no two of which are corners of one cell: even row and even column
        n = layout.cols + 1
        free = [p for p in range(layout.lattice_points) if (p // n) % 2 == 0 and (p % n) % 2 == 0]
        covered = sorted(rng.choice(free, size=min(lv["occlude"], len(free)), replace=False).tolist())
        photo = occlude(photo, layout, h, covered)
        mm_px = cell_px / layout.cell
        for _ in range(lv.get("finger", 0)):  # from a random side of the page, reaching into it
            edge = rng.integers(4)
            t = rng.uniform(0.15, 0.85)
            inward = rng.uniform(0.12, 0.3)
            x, y = ((t, inward), (1 - inward, t), (t, 1 - inward), (inward, t))[edge]
            ex, ey = ((x, 0.0), (1.0, y), (x, 1.0), (0.0, y))[edge]  # the page's edge it comes over
            tip, rim = project(h, [[x * layout.page_w, y * layout.page_h], [ex * layout.page_w, ey * layout.page_h]])
            direction = float(np.arctan2(rim[1] - tip[1], rim[0] - tip[0]) + rng.normal(0, 0.2))
            photo = finger(photo, tip, direction, 17 * mm_px, 90 * mm_px, cover)
        for _ in range(lv.get("glare", 0)):
            c = project(h, [[rng.uniform(0.15, 0.85) * layout.page_w, rng.uniform(0.15, 0.85) * layout.page_h]])[0]
            photo = glare(photo, c, rng.uniform(12, 22) * mm_px, rng, cover)
        hs.append(h)
        hidden.append(covered)
    noise = float(lv["noise"]) if isinstance(lv["noise"], (int, float)) else rng.uniform(*lv["noise"])
    photo = camera(photo, rng, blur=rng.uniform(*lv["blur"]), noise=noise, gradient=lv["gradient"])
    quality = int(rng.integers(lv["jpeg"][0], lv["jpeg"][1] + 1))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    photo = cv2.cvtColor(np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)), cv2.COLOR_BGR2RGB)
    return {"photo": photo, "jpeg": buf.tobytes(), "h": hs[0], "hs": hs, "hidden": hidden[0], "cell_px": cell_px,
            "covered": [covered_cells(layout, h, cover) for h in hs]}


def covered_cells(layout: Layout, h: np.ndarray, cover: np.ndarray) -> dict[int, float]:
    """slot -> the fraction of the cell under a finger or a glare spot (`cover`), for the cells
    that have any."""
    out = {}
    for slot in range(layout.cols * layout.rows):
        q = np.round(project(h, layout.cell_corners(slot))).astype(np.int32)
        x0, y0 = np.maximum(q.min(axis=0), 0)
        x1, y1 = q.max(axis=0) + 1
        cell = np.zeros((max(y1 - y0, 1), max(x1 - x0, 1)), np.uint8)
        cv2.fillConvexPoly(cell, q - [x0, y0], 1)
        part = cover[y0:y1, x0:x1]
        under = int((cell[: part.shape[0], : part.shape[1]] & part).sum())
        if under:
            out[slot] = under / max(int(cell.sum()), 1)
    return out


def cell_images(n: int, size: int = 224, eps: float = 16, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n` (clean, adversarial-like) 8-bit RGB pairs with real photographic detail: crops of the
    photos scikit-image ships (shifted and flipped when more are needed), and the crop plus a
    random-sign perturbation of +-eps (the texture of an FGSM image)."""
    photos = [im.rgb for im in load_images("samples", len(SAMPLES))]
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        img = photos[k % len(photos)]
        side = min(img.shape[:2])
        s = int(side * (0.9 - 0.15 * ((k // len(photos)) % 3)))
        y = (img.shape[0] - s) // 2 + (k // len(photos)) * 7 % max(1, img.shape[0] - s)
        x = (img.shape[1] - s) // 2
        clean = cv2.resize(img[y:y + s, x:x + s], (size, size), interpolation=cv2.INTER_AREA)
        if (k // len(photos)) % 2:
            clean = np.ascontiguousarray(clean[:, ::-1])
        adv = np.clip(clean + eps * rng.choice([-1, 1], clean.shape), 0, 255).astype(np.uint8)
        out.append((clean, adv))
    return out


def make_run(root, name: str = "t", n_items: int = 6):
    """A run directory whose generate stage is done with `n_items` pairs of `cell_images` (a
    clean and an "adversarial" image each), ready for the print stage: (RunDir, Config)."""
    cfg = Config()  # built directly: checks.from_dict would validate (and import) models and attacks
    cfg.run.name = name
    cfg.base_dir = str(root)
    run = RunDir(Path(root) / "runs" / name)
    run.init({"run": {"name": name}}, 0, "cpu")
    # a run id of its name alone (not the time): the sheets' run tag, and so every photo of them, is the same
    # on every call, so a test or a benchmark sees the same markers each time it runs
    run._update(lambda m: m.update(run_id=f"posed-{name}"))
    items = []
    for k, (clean_img, adv_img) in enumerate(cell_images(n_items)):
        clean, adv = f"generate/m/clean/img{k}.png", f"generate/m/fgsm_eps16/img{k}.png"
        write_image(run.root / clean, clean_img)
        write_image(run.root / adv, adv_img)
        items.append({"key": f"m/fgsm/16/img{k}", "model": "m", "attack": "fgsm", "eps": 16.0, "image": f"img{k}",
                      "clean": clean, "adv": adv})
    runfiles.save_index(run, runfiles.RunIndex(items=items))
    run.mark("generate", "done")
    return run, cfg
