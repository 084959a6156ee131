"""`physical capture RUN --source ...`: take the photos of a printed run, then go on with the pipeline.

RUN is a run directory (``runs/NAME``, whose config.yaml is used) or the run's pipeline YAML. The
source is any capture source (default: the config's ``capture.source``): from a webcam, a phone's
URL, a video or a simulated camera, guided capture picks the frames (:mod:`physical.capture.guided`);
a folder is copied. It runs through the one stage runner (physical.runs.runner), which records the capture
stage done with the config's own capture section, so ``physical run CONFIG --from align`` goes on
with these photos (the flags below change this capture only, not the config). Photos of an earlier
capture are archived inside the run, never deleted (physical.capture.keep).
"""
from __future__ import annotations

import copy
from pathlib import Path

from physical.errors import ConfigError
from physical.log import say
from physical.runs.pipeline import load_run
from physical.runs.runner import run_stages
from physical.capture.folder import copy_folder
from physical.capture.sources import parse_source
from physical.capture.guided import guided_capture
from physical.capture.sources import CaptureError, list_photos
from physical.capture.watch import watch_folder


def _add(p):
    p.add_argument("run", help="run directory (runs/NAME) or the run's pipeline YAML")
    p.add_argument("--source", help="webcam:N, http(s):// or rtsp:// URL (phone: IP Webcam http://PHONE:8080/video, "
                                    "DroidCam http://PHONE:4747/video), video:PATH, folder:PATH, simulate "
                                    "(default: the config's capture.source)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds (default: "
                                                              "capture.guided.timeout_s)")
    p.add_argument("--min-laplacian", "--min-sharpness", dest="min_laplacian", type=float, metavar="X",
                   help="least sheet sharpness, variance of Laplacian (default: capture.guided.min_laplacian; "
                        "--min-sharpness: its old name)")
    p.add_argument("--stable-frames", type=int, metavar="K", help="frames a sheet must stay still (default: "
                                                                  "capture.guided.stable_frames)")
    p.add_argument("--photos-per-sheet", type=int, metavar="N", help="photos to take of every sheet "
                                                                     "(default: capture.photos_per_sheet)")
    p.add_argument("--headless", action="store_true", help="no preview window even where there is a display")
    p.add_argument("--restart", action="store_true", help="discard the photos of an earlier guided capture")
    p.add_argument("--watch", action="store_true", help="with a folder source: align photos as they arrive in it (a "
                                                        "phone syncing), print the sheets and cells still missing, "
                                                        "until every cell is captured, --timeout, or Ctrl-C")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override one config value (repeatable)")


def _capture(args) -> int:
    run, cfg = load_run(args.run, args.set)
    if not run.exists():
        raise FileNotFoundError(f"{run.manifest_path}: missing; run the pipeline up to print first "
                                "(physical run CONFIG --until print)")
    cap = copy.deepcopy(cfg)  # the flags change this capture only; the config's capture section is recorded
    if args.timeout is not None:
        if args.timeout <= 0:
            raise ConfigError(f"--timeout {args.timeout:g}: must be > 0")
        cap.capture.guided.timeout_s = args.timeout
    if args.min_laplacian is not None:
        if args.min_laplacian < 0:
            raise ConfigError(f"--min-laplacian {args.min_laplacian:g}: must be >= 0")
        cap.capture.guided.min_laplacian = args.min_laplacian
    for flag, value in (("--stable-frames", args.stable_frames), ("--photos-per-sheet", args.photos_per_sheet)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value}: must be >= 1")
    if args.stable_frames is not None:
        cap.capture.guided.stable_frames = args.stable_frames
    if args.photos_per_sheet is not None:
        cap.capture.photos_per_sheet = args.photos_per_sheet
    if args.headless:
        cap.capture.guided.preview = "off"
    text = args.source or cfg.capture.source
    spec = parse_source(text, Path if args.source else cfg.resolve)
    if args.watch and spec.kind != "folder":
        raise ConfigError(f"--watch: watches a folder; the source {text!r} is not one")
    if spec.kind == "folder" and args.watch:
        if not spec.path.is_dir():
            raise CaptureError(f"capture folder {spec.target} does not exist")
    elif spec.kind == "folder":
        list_photos(spec.path)  # checks the folder before anything is touched

    def take(r):
        if spec.kind == "folder" and args.watch:
            (r.root / "capture" / "guided.json").unlink(missing_ok=True)
            return watch_folder(r, cap, spec.path, timeout_s=args.timeout)
        if spec.kind == "folder":
            return copy_folder(r, spec.path)
        return guided_capture(r, cap, spec, resume=not args.restart)

    run = run_stages(cfg, ["capture"], run=run, redo=("capture",), calls={"capture": take}, command="physical capture",
                     target=args.run, record={"capture": {"via": f"physical capture --source {text}"}},
                     check_earlier_inputs=Path(args.run).is_file())  # a run directory: the run's own files stand
    summary = run.status("capture")["summary"]
    missing = summary.get("sheets_missing") or []
    say(f"capture: {summary['photos']} photo(s) in {run.photos_dir}"
        + (f"; sheets not captured: {', '.join(map(str, missing))}" if missing else ""))
    say(f"next: physical run {args.run if Path(args.run).is_file() else 'CONFIG'} --from align")
    return 0


def register_cli(commands: dict) -> None:
    commands["capture"] = ("take the photos of a printed run: guided capture from a webcam, phone stream or video "
                           "(or copy a folder)", _add, _capture)
