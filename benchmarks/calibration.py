"""Calibration against known ground truth (issue #7), larger than the tests:

1. camera: a synthetic 640x480 camera (fx 560, fy 555, cx 322, cy 236, k1 -0.25, k2 0.08) renders
   the ChArUco board from 15 random poses, for `--seeds` seeds; the fit's errors;
2. colour: three simulated photos of the colour chart through a known printer-to-camera transform
   (blur 1 px, noise 0.01, JPEG 90); held-out Delta-E 2000 (against the photos and against the
   truth), the affine-only reference, the recovered blur and noise;
3. destruction rate: a "true" channel (low-contrast printer, blur 1.3-1.7 px, noise 0.012-0.02)
   photographs the colour chart; the channel fitted from those photos simulates the capture of a
   run's sheets; its destruction rate is compared with the one measured on held-out photos through
   the true channel, and with the default (uncalibrated) channel's;
4. cost: an EOT step (forward and backward) through a calibrated channel with the colour model's
   residual table and the noise texture's level by colour, against the same calibration without
   them, timed alternately in the same run.

    python benchmarks/calibration.py [--images 24] [--photos 3] [--eps 4 8] [--out /tmp/physical-calibration]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IMAGENET_100, setup  # noqa: E402

TRUE_CHANNEL = dict(print_gamma=1.4, paper_white=0.86, ink_black=0.14, blur_sigma=[1.3, 1.7],
                    noise_sigma=[0.012, 0.02], jpeg_quality=[80.0, 95.0])


def camera(seeds: int) -> None:
    from physical.calibrate.camera import collect_views, fit_camera
    from physical.sim.target_photos import render_board_views
    from physical.calibrate.targets import BoardSpec

    k_true = np.array([[560.0, 0, 322.0], [0, 555.0, 236.0], [0, 0, 1]])
    d_true = np.array([-0.25, 0.08, 0.0008, -0.0005, 0.0])
    rel, dk, rms = [], [], []
    for s in range(seeds):
        shots = render_board_views(BoardSpec(), k_true, d_true, (640, 480), 15, seed=100 + s)
        fit = fit_camera(collect_views([(n, im) for n, im, _ in shots], BoardSpec()), BoardSpec())
        k = fit.camera_matrix
        rel.append([k[0, 0] / 560 - 1, k[1, 1] / 555 - 1, k[0, 2] / 322 - 1, k[1, 2] / 236 - 1])
        dk.append(fit.dist_coeffs[:2] - d_true[:2])
        rms.append(fit.rms_px)
    rel, dk = np.abs(rel) * 100, np.abs(dk)
    print(f"camera ({seeds} seeds x 15 views): |error| fx {rel[:, 0].max():.2f} %, fy {rel[:, 1].max():.2f} %, "
          f"cx {rel[:, 2].max():.2f} %, cy {rel[:, 3].max():.2f} % (worst seed); k1 {dk[:, 0].max():.4f}, "
          f"k2 {dk[:, 1].max():.4f}; RMS {np.mean(rms):.3f} px")


def colour(out: Path) -> None:
    from physical.calibrate.colour import delta_e2000, fit_colour, predict
    from physical.channel.files import load_colour
    from physical.sim.target_photos import simulate_target_photos
    from physical.calibrate.targets import write_targets
    from physical.channel.core import Channel
    from physical.config import ChannelConfig
    from physical.rundir import read_image, write_json

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_calibrate import truth_document

    write_targets(out)
    write_json(out / "truth.json", truth_document())
    cfg = ChannelConfig(calibration=str(out / "truth.json"), white_balance=0.0, light_gradient=0.0,
                        brightness=[0.0, 0.0], contrast=[1.0, 1.0], jpeg_quality=[90.0, 90.0], rotation_deg=25.0)
    paths = simulate_target_photos(out / "colour-chart.pdf", out / "chart", Channel(cfg), 3, seed=3, dpi=150,
                                   frame=(1600, 1200))
    t = time.time()
    doc = fit_colour([(p.name, read_image(p)) for p in paths], log=lambda *a: None).document
    secs = time.time() - t
    write_json(out / "colour.json", doc)
    cal, truth = load_colour(out / "colour.json"), load_colour(out / "truth.json")
    x = np.random.default_rng(0).random((2000, 3))
    de = delta_e2000(predict(cal.curves, cal.matrix, cal.bias, x, cal.residual),
                     predict(truth.curves, truth.matrix, truth.bias, x, truth.residual))
    h, a = doc["heldout"]["delta_e2000"], doc["heldout"]["affine_only_delta_e2000"]
    print(f"colour (3 photos, fit {secs:.0f} s): held-out Delta-E 2000 mean {h['mean']:.2f}, p95 {h['p95']:.2f}, "
          f"max {h['max']:.2f} ({h['n']} patches); affine only: mean {a['mean']:.2f}; fitted vs truth on 2000 random "
          f"colours: mean {de.mean():.2f}, p95 {np.percentile(de, 95):.2f}; blur {doc['blur_sigma']} (true 1.0), "
          f"noise {doc['noise_sigma']} (true 0.01); gamut {doc['gamut']['srgb_inside']:.0%} of sRGB")


def _cfg(root: Path, name: str, channel: dict, seed: int, images: str, limit: int, eps: list, photos: int):
    from physical.runs.checks import from_dict

    return from_dict({
        "run": {"name": name, "output": str(root), "seed": seed, "device": "cpu"},
        "models": ["efficientnet_lite0"], "images": {"source": images, "limit": limit},
        "attacks": [{"name": "fgsm", "eps": eps}],
        "capture": {"source": "simulate", "photos_per_sheet": photos, "dpi": 150, "frame": [1600, 1200],
                    "channel": channel},
        "report": {"html": False},
    }, root)


def _figures(root: Path, name: str, cfg, model) -> dict:
    from physical.runs.chart_prediction import channel_figures
    from physical.rundir import RunDir

    shutil.copytree(root / "base", root / name)
    f = channel_figures(RunDir(root / name), cfg, model)
    return {**f["attacks"], "photo clean top-1": f["clean_top1"]}


def destruction(out: Path, images: str, limit: int, eps: list, photos: int) -> None:
    from physical.calibrate.colour import fit_colour
    from physical.sim.target_photos import simulate_target_photos
    from physical.calibrate.targets import write_targets
    from physical.channel.core import Channel
    from physical.config import ChannelConfig
    from physical.models import load_model
    from physical.runs.pipeline import run_pipeline
    from physical.rundir import read_image, write_json

    t0 = time.time()
    run_pipeline(_cfg(out, "base", TRUE_CHANNEL, 0, images, limit, eps, photos), until="print", log=lambda *a: None)
    write_targets(out / "targets")
    chart = simulate_target_photos(out / "targets" / "colour-chart.pdf", out / "chart", Channel(ChannelConfig(**TRUE_CHANNEL)),
                                   4, seed=1000, dpi=150, frame=(1600, 1200))
    doc = fit_colour([(p.name, read_image(p)) for p in chart], log=lambda *a: None).document
    write_json(out / "colour.json", doc)
    print(f"fitted from 4 chart photos: blur {doc['blur_sigma']} (true 1.3..1.7), noise {doc['noise_sigma']} "
          f"(true 0.012..0.02), held-out Delta-E {doc['heldout']['delta_e2000']['mean']:.2f}")
    model = load_model("efficientnet_lite0", "cpu")
    rows = {}
    for name, channel, seed in (("measured (true channel, held-out draws)", TRUE_CHANNEL, 1),
                                ("predicted (fitted channel)", {"calibration": str(out / "colour.json"),
                                                                "jpeg_quality": [80.0, 95.0]}, 2),
                                ("default channel (no calibration)", {}, 3)):
        cfg = _cfg(out, name.split()[0], channel, seed, images, limit, eps, photos)
        rows[name] = _figures(out, name.split()[0], cfg, model)
    keys = list(next(iter(rows.values())))
    print(f"{'top-1 destruction rate (n)':<42}" + "".join(f"{k:>22}" for k in keys))
    for name, r in rows.items():
        print(f"{name:<42}" + "".join(f"{r[k]['rate']:>16.3f} ({r[k]['n']:>3})" for k in keys))
    print(f"({time.time() - t0:.0f} s)")


def cost(out: Path, images: int = 2, draws: int = 8, repeats: int = 12) -> None:
    import torch

    from physical.channel.files import colour_document
    from physical.channel.tables import kernel_table
    from physical.channel.core import Channel
    from physical.config import ChannelConfig
    from physical.rundir import write_json

    out.mkdir(parents=True, exist_ok=True)
    g, rng = np.linspace(0, 1, 13), np.random.default_rng(0)
    pts = rng.random((144, 3))
    model = (np.stack([g, g, g]) ** 2.2, np.eye(3) * 0.9, np.full(3, 0.02), [0.5, 1.0], [0.01, 0.02])
    docs = {"plain": colour_document(*model, noise_spectrum=np.full((3, 32, 32), 1e-4)),
            "residual + level": colour_document(
                *model, noise_spectrum=np.full((3, 32, 32), 1e-4),
                texture_by_colour=np.column_stack([pts, rng.random((144, 3)) * 2e-4]),
                residual=kernel_table(pts, rng.normal(0, 0.01, (144, 3)), 9, 0.15, 0.1))}
    channels = {k: Channel(ChannelConfig(calibration=str(write_json(out / f"{i}.json", d))))
                for i, (k, d) in enumerate(docs.items())}
    x = torch.rand(images, 3, 224, 224, requires_grad=True)  # EOT: each image drawn `draws` times
    params = channels["plain"].sample(images * draws, generator=torch.Generator().manual_seed(0))
    from physical.models import load_model

    model = load_model("efficientnet_lite0")
    steps = {k: (lambda ch=ch: ch(x, params)[0]) for k, ch in channels.items()}
    x_all = torch.rand(images * draws, 3, 224, 224, requires_grad=True)
    steps["the model (reference)"] = lambda: model(x_all)
    times = {k: [] for k in steps}
    for r in range(repeats + 1):  # alternating, the first round a warm-up
        for k, step in steps.items():
            t = time.perf_counter()
            step().sum().backward()
            if r:
                times[k].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) * 1000 for k, v in times.items()}
    print(f"cost: an EOT step's channel ({images} images x {draws} draws, 224 x 224, forward and backward, median "
          f"of {repeats}): plain "
          f"calibration {med['plain']:.0f} ms, with the residual table and the texture's level "
          f"{med['residual + level']:.0f} ms (x{med['residual + level'] / med['plain']:.2f}); the classifier on the "
          f"same batch {med['the model (reference)']:.0f} ms, so the whole step x"
          f"{(med['residual + level'] + med['the model (reference)']) / (med['plain'] + med['the model (reference)']):.2f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--photos", type=int, default=3, help="photos per sheet")
    p.add_argument("--eps", type=float, nargs="+", default=[4.0, 8.0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="/tmp/physical-calibration")
    p.add_argument("--skip", nargs="*", default=[], choices=["camera", "colour", "destruction", "cost"])
    a = p.parse_args()
    setup()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if "camera" not in a.skip:
        camera(a.seeds)
    if "colour" not in a.skip:
        colour(out / "colour")
    if "cost" not in a.skip:
        cost(out / "cost")
    if "destruction" not in a.skip:
        src = str(IMAGENET_100.resolve()) if IMAGENET_100.is_dir() else "samples"
        print(f"images: {src}")
        destruction(out / "dr", src, a.images, a.eps, a.photos)


if __name__ == "__main__":
    main()
