"""`physical calibrate targets | camera | colour | forecast`: the calibration's command line."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import cv2

from physical.align import read_photo, undistort
from physical.capture.sources import list_photos, open_source, parse_source
from physical.log import say
from physical.models import pick_device
from physical.runs.forecast_fit import fit_run_forecast
from physical.runs.checks import from_dict
from physical.runs.pipeline import load_run
from physical.sheets.layout import layout_for
from physical.rundir import write_json
from physical.calibrate.camera import collect_views, fit_camera
from physical.calibrate.chart import MIN_MARKERS, _detect_chart_markers
from physical.calibrate.colour import fit_colour, jpeg_quality
from physical.calibrate.sheet_strip import check_sheets
from physical.channel.files import CalibrationError, load_camera, load_colour
from physical.calibrate.targets import BoardSpec, parse_board, write_targets

CAL_DIR = "calibration"


def _add(p) -> None:
    sub = p.add_subparsers(dest="what", required=True, metavar="{targets,camera,colour,forecast}")
    t = sub.add_parser("targets", help="write the ChArUco board and the colour chart as PDFs",
                       description="Write calibration/charuco.pdf (camera) and calibration/colour-chart.pdf "
                                   "(printer and camera colour, blur, noise). Print both at 100 %.")
    t.add_argument("--paper", choices=["a4", "letter"], default="a4")
    t.add_argument("--out", default=CAL_DIR, help="folder (default: calibration)")
    _board_args(t)

    c = sub.add_parser("camera", help="fit the camera's intrinsics and distortion from photos of the ChArUco board",
                       description="Fit intrinsics and lens distortion (OpenCV) from photos or a stream of the "
                                   "ChArUco board; align undistorts with it (align.camera_calibration).")
    _source_args(c)
    c.add_argument("--out", default=f"{CAL_DIR}/camera.json")
    _board_args(c)
    c.add_argument("--min-views", type=int, default=10, help="usable views needed (default 10)")
    c.add_argument("--max-views", type=int, default=60, help="from a stream: distinct views to collect (default 60)")
    c.add_argument("--k3", action="store_true", help="also fit k3 (needs many views reaching the frame's corners)")

    o = sub.add_parser("colour", aliases=["color"], help="fit the printer-to-camera colour transform, blur and noise "
                       "from photos of the colour chart",
                       description="Fit the printer-to-camera colour model (per-channel tone curves, 3x3 + bias in "
                                   "linear light) from photos of the printed colour chart, with its held-out error in "
                                   "Delta-E 2000, the printer's gamut, and the channel's blur and noise; the "
                                   "simulator and EOT use it through capture.channel.calibration.")
    _source_args(o)
    o.add_argument("--out", default=f"{CAL_DIR}/colour.json")
    o.add_argument("--holdout", type=float, default=0.2, help="fraction of patches held out for the error (default "
                                                              "0.2)")
    o.add_argument("--seed", type=int, default=0, help="which patches are held out")
    o.add_argument("--knots", type=int, default=12, help="segments of each tone curve (default 12)")
    o.add_argument("--camera", help="undistort the photos with this camera calibration first")
    o.add_argument("--max-views", type=int, default=12, help="from a stream: frames showing the chart to use (default "
                                                             "12)")
    o.add_argument("--sheets", help="a folder of photos of printed sheets: their colour strips must agree with the "
                   "calibration (the chart printed by the sheets' printer, on their paper), else nothing is written")
    o.add_argument("--config", help="with --sheets: the pipeline YAML whose sheet section printed them (default: the "
                   "default sheet)")
    f = sub.add_parser("forecast", help="fit the survival forecast map of the calibrated channel on its own simulated "
                       "photos of a printed run", description="Photograph a printed run's sheets with the calibrated "
                       "channel (capture.channel.calibration), align and classify them, and fit an isotonic map from "
                       "each adversarial image's K-draw predicted survival to its survival in those simulated photos; "
                       "written beside the calibration (NAME.forecast.json) for `physical predict` and the report.")
    f.add_argument("run", help="the printed run's pipeline YAML, or its run directory (runs/NAME)")
    f.add_argument("--draws", type=int, default=8, help="channel draws per image (default 8)")
    f.add_argument("--rounds", type=int, default=1, help="simulated photos of every sheet (default 1)")
    f.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override one config value (repeatable)")


def _board_args(p) -> None:
    p.add_argument("--board", default="7x10", help="ChArUco squares across x down (default 7x10)")
    p.add_argument("--square-mm", type=float, default=24.0, help="printed side of a square (default 24)")
    p.add_argument("--marker-mm", type=float, help="printed side of a marker (default 0.75 x square)")


def _source_args(p) -> None:
    p.add_argument("--source", required=True,
                   help="a folder of photos, a video file, a URL (phone stream) or webcam:N")
    p.add_argument("--every", type=int, default=10, help="from a stream or video: look at every Nth frame (default 10)")
    p.add_argument("--max-frames", type=int, default=3000, help="from a stream or video: stop after this many frames")


def _spec(args):
    try:
        cols, rows = parse_board(args.board)
        marker = args.marker_mm if args.marker_mm else 0.75 * args.square_mm
        spec = BoardSpec(cols, rows, float(args.square_mm), float(marker))
        spec.board()
    except ValueError as e:
        raise CalibrationError(str(e)) from None
    return spec


def frames(source: str, every: int = 10, max_frames: int = 3000, log=say) -> tuple[Iterator, bool, dict]:
    """(name, RGB frame) pairs from --source, whether it is a stream, and {name: JPEG quality} for
    photo files. A folder gives its photos by name (EXIF orientation applied); anything else goes
    through physical.capture's frame sources, every `every`-th frame."""
    spec = parse_source(source)
    if spec.kind == "simulate":
        raise CalibrationError("--source simulate: calibration needs photos of the printed targets: a folder, "
                               "a video, a URL or webcam:N")
    if spec.kind == "folder":
        photos, skipped = list_photos(spec.path)
        for s in skipped:
            log(f"calibrate: skipped {s['file']}: {s['reason']}")
        qualities = {p.name: q for p in photos if (q := jpeg_quality(p)) is not None}

        def gen():
            for p in photos:
                try:
                    yield p.name, read_photo(p)
                except ValueError as e:
                    log(f"calibrate: skipped {e}")

        return gen(), False, qualities

    src = open_source(spec)

    def stream():
        with src:
            for i, frame in enumerate(src):
                if i >= max_frames:
                    break
                if i % max(1, every) == 0:
                    yield f"frame{i:05d}", frame

    return stream(), True, {}


def _targets(args) -> int:
    for p in write_targets(args.out, args.paper, _spec(args)):
        say(f"wrote {p}")
    say("Print both at 100 % / actual size. Camera: photograph charuco.pdf 15-30 times from many angles, then "
        "`physical calibrate camera --source PHOTOS`. Colour: photograph colour-chart.pdf like a sheet, then "
        "`physical calibrate colour --source PHOTOS`.")
    return 0


def _camera(args) -> int:
    spec = _spec(args)
    it, stream, _ = frames(args.source, args.every, args.max_frames)
    views = collect_views(it, spec, max_views=args.max_views, stream=stream)
    for v in views:
        if not v.ok:
            say(f"calibrate camera: not used {v.name}: {v.reason}")
    fit = fit_camera(views, spec, min_views=args.min_views, k3=args.k3)
    for name, why in fit.dropped.items():
        say(f"calibrate camera: dropped {name}: {why}")
    doc = fit.document(spec)
    write_json(args.out, doc)
    d = ", ".join(f"{v:.4g}" for v in doc["dist_coeffs"])
    say(f"camera: fx {doc['fx']:.1f}, fy {doc['fy']:.1f}, cx {doc['cx']:.1f}, cy {doc['cy']:.1f} px "
        f"({doc['image_size'][0]}x{doc['image_size'][1]}); distortion [{d}]")
    say(f"RMS reprojection error {doc['rms_px']:.3f} px over {doc['views']} views")
    say(f"wrote {args.out}; use it with   align: {{camera_calibration: {args.out}}}")
    return 0


def _colour(args) -> int:
    if not 0 <= args.holdout <= 0.5:
        raise CalibrationError(f"--holdout {args.holdout:g}: must be 0 .. 0.5 (a fraction of the chart's patches)")
    if not 2 <= args.knots <= 64:
        raise CalibrationError(f"--knots {args.knots}: must be 2 .. 64")
    it, stream, qualities = frames(args.source, args.every, args.max_frames)
    if args.camera:
        load_camera(args.camera)
        it = ((n, undistort(f, args.camera)) for n, f in it)
    if stream:
        it = _chart_frames(it, args.max_views)
    fit = fit_colour(it, holdout=args.holdout, seed=args.seed, knots=args.knots,
                     jpeg_qualities=qualities or None)
    doc = fit.document
    agree = _sheets_agree(args, doc) if args.sheets else []
    write_json(args.out, doc)
    h, a = doc["heldout"]["delta_e2000"], doc["heldout"]["affine_only_delta_e2000"]
    if h:
        plain = doc["heldout"]["without_residual_delta_e2000"]
        kept = "kept" if doc["heldout"]["residual"] else "left out: it did not lower the held-out error"
        say(f"held-out Delta-E 2000 ({h['n']} patches): mean {h['mean']:.2f}, p95 {h['p95']:.2f}, max {h['max']:.2f}"
            f"  (curves and matrix without the residual table: mean {plain['mean']:.2f}, the table {kept}; "
            f"affine only, no tone curves: mean {a['mean']:.2f})")
    g = doc["gamut"]
    say(f"gamut: L* {g['lightness_range'][0]:.1f} .. {g['lightness_range'][1]:.1f}, largest chroma "
        f"{g['max_chroma']:.1f}, volume {g['volume_vs_srgb']:.0%} of sRGB's, {g['srgb_inside']:.0%} of sRGB "
        f"colours reproducible; paper white Lab {g['white_lab']}")
    b, n = doc["blur_sigma"], doc["noise_sigma"]
    say(f"blur sigma {'not measured' if b is None else f'{b[0]:.2f} .. {b[1]:.2f} px'}, noise sigma "
        f"{'not measured' if n is None else f'{n[0]:.4f} .. {n[1]:.4f}'} ({doc['photos']} photos, "
        f"{doc['px_per_mm']:.2f} px/mm)")
    for line in channel_lines(doc) + agree:
        say(line)
    say(f"wrote {args.out}; use it with   capture: {{channel: {{calibration: {args.out}}}}}")
    return 0


def _sheets_agree(args, doc: dict) -> list[str]:
    """The --sheets check of a fitted calibration `doc` (read back as the channel reads it)."""
    cfg = load_run(args.config)[1] if args.config else from_dict({})
    layout = layout_for(cfg.sheet)
    with tempfile.TemporaryDirectory() as tmp:
        cal = load_colour(write_json(Path(tmp) / "colour.json", doc))
        sheets, _, _ = frames(args.sheets, args.every, args.max_frames)
        return check_sheets(sheets, cal, layout, args.out, args.source, say)


# the channel's ranges (capture.channel keys), and which calibration key sets each
CHANNEL_RANGES = ("printer", "blur_sigma", "noise_sigma", "jpeg_quality", "contrast", "brightness", "white_balance",
                  "light_gradient", "rotation_deg", "tilt", "scale", "frame", "translate")


def channel_lines(doc: dict) -> list[str]:
    """Which channel parameters a colour.json sets, and which stay the preset's or the config's."""
    ch = doc.get("channel") or {}
    table = ", residual table" if doc["model"].get("residual") else ""
    got = {"printer": f"colour model (tone curves, 3x3 + bias{table}, gamut)"}
    for key in ("blur_sigma", "noise_sigma"):
        if doc.get(key):
            got[key] = f"{doc[key][0]:g} .. {doc[key][1]:g}"
    if doc.get("noise_spectrum") and doc.get("noise_sigma"):
        std = (doc.get("noise") or {}).get("texture_rgb_std")
        got["noise_sigma"] += (" (the level of the measured noise texture, its power spectrum"
                               + (f": RGB std {std:g} at the middle level" if std else ""))
        rows = doc["noise_spectrum"].get("by_colour")
        got["noise_sigma"] += f"; its level by the colour printed, from {len(rows)} patches)" if rows else ")"
    for key in ("jpeg_quality", "contrast"):
        if ch.get(key):
            got[key] = f"{ch[key][0]:g} .. {ch[key][1]:g}"
    if ch.get("contrast"):
        got["brightness"] = "off (exposure is the contrast gain)"
    for key in ("white_balance", "light_gradient", "rotation_deg", "tilt"):
        if ch.get(key) is not None:
            got[key] = f"+-{ch[key]:g}" if key != "light_gradient" else f"{ch[key]:g}"
    if ch.get("px_per_mm"):
        got["scale"] = f"{ch['px_per_mm'][0]:g} .. {ch['px_per_mm'][1]:g} px/mm of the page"
    if ch.get("image_size"):
        short, long = sorted(int(v) for v in ch["image_size"])
        w, h = (short, long) if ch.get("page_along_long_side", True) else (long, short)
        got["frame"] = f"{w}x{h}, the page upright (unless capture.frame is given)"
    rest = [k for k in CHANNEL_RANGES if k not in got]
    return (["channel parameters this calibration sets:"] + [f"  {k}: {v}" for k, v in got.items()]
            + [f"staying the preset's or the config's: {', '.join(rest)}"])


def _chart_frames(it, max_views: int):
    """From a stream: frames in which the chart's markers are seen, at most `max_views`."""
    n = 0
    for name, frame in it:
        if len(_detect_chart_markers(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))) >= MIN_MARKERS:
            yield name, frame
            n += 1
            if n >= max_views:
                return


def _forecast(args) -> int:
    if not 1 <= args.draws <= 1024:
        raise CalibrationError(f"--draws {args.draws}: must be 1 .. 1024")
    if not 1 <= args.rounds <= 20:
        raise CalibrationError(f"--rounds {args.rounds}: must be 1 .. 20")
    run, cfg = load_run(args.run, args.set)
    fmap, path = fit_run_forecast(run, cfg, pick_device(cfg.run.device), args.draws, args.rounds)
    points = ", ".join(f"{x:.2f} -> {y:.2f}" for x, y in zip(fmap.x, fmap.y, strict=True))
    say(f"forecast map from {fmap.fitted_on}: {points}")
    say(f"wrote {path}; `physical predict` and the report apply it with this calibration")
    return 0


def _handler(args) -> int:
    return {"targets": _targets, "camera": _camera, "colour": _colour, "color": _colour,
            "forecast": _forecast}[args.what](args)


def register_cli(commands: dict) -> None:
    commands["calibrate"] = ("calibration targets, camera and printer-to-camera colour (calibration/)", _add, _handler)


__all__ = ["register_cli", "frames"]
