"""`physical scene`: a printed patch in a scene, measured from a camera, a phone stream or a video
(physical/live/scene.py)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from physical import runfiles
from physical.attacks.patch import TOASTER
from physical.capture import draw
from physical.capture.sources import VideoSource, open_source, parse_source
from physical.cli.live import check_session_args, run_view
from physical.errors import UserError
from physical.live import LiveConfig, LiveModel, parse_defence
from physical.live.scene import SceneLog, SceneScorer, SceneTarget, SceneView, class_arg, parse_region, \
    score_video, summary_line
from physical.log import say
from physical.models import load_model, model_names, pick_device
from physical.rundir import RunDir, write_json, write_text
from physical.runs.checks import load_for_command

HELP = ("measure a printed patch in a scene: every frame of a camera, phone stream or video (--video FILE) "
        "classified; how often the top-1 is the patch's target, per second and overall, with an interval")


def _add_scene(p):
    p.add_argument("config", nargs="?", help="pipeline YAML (its models, capture.camera and live section; default: "
                                             "the embedded default)")
    p.add_argument("--video", metavar="FILE", help="score a recorded video offline: every frame, as fast as it decodes")
    p.add_argument("--source", help="live: webcam:N, http(s):// or rtsp:// URL, or video:PATH played at its rate "
                                    "(default: live.source, webcam:0)")
    p.add_argument("--run", metavar="DIR", help="a run with a patch attack: its target and model are the defaults")
    p.add_argument("--model", help="classifier (default: the run's patch model, else models[0])")
    p.add_argument("--target", metavar="CLASS", help="the patch's target class, index or name (default: the run's "
                                                     "patch target, else toaster)")
    p.add_argument("--true", metavar="CLASS", help="the object's own class, index or name: its rank in every frame")
    p.add_argument("--region", metavar="X,Y,W,H", help="a region of the frame (pixels) classified as well")
    p.add_argument("--block-s", type=float, default=1.0, metavar="S",
                   help="the interval's blocks: S seconds of frames count as one observation (default 1)")
    p.add_argument("--batch", type=int, default=16, metavar="N", help="frames classified in one pass (default 16)")
    p.add_argument("--out", metavar="DIR", help="where frames.csv and summary.json go (default: RUN/scene/NAME with "
                                                "--run, else scene/NAME; NAME: the video's name or live-TIME)")
    p.add_argument("--defence", help="live: a defence in front of the model, NAME:K=V,... (switchable on the page)")
    p.add_argument("--serve", type=int, metavar="PORT", help="live: serve the annotated stream and a page on "
                                                             "127.0.0.1:PORT (0: any free port)")
    p.add_argument("--host", metavar="ADDRESS", help="live, with --serve: the address to listen on")
    p.add_argument("--record", metavar="FILE.mp4", help="live: write the annotated stream to a video")
    p.add_argument("--frames", type=int, metavar="N", help="live: stop after N displayed frames")
    p.add_argument("--seconds", type=float, metavar="S", help="live: stop after S seconds")
    p.add_argument("--headless", action="store_true", help="live: no window even where there is a display")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override one config value (repeatable)")


LIVE_ONLY = ("defence", "serve", "host", "record", "frames", "seconds")


def _check_args(args) -> None:
    if args.video and args.video.lower().startswith("video:"):  # as --source writes a video
        args.video = args.video[6:]
    if args.video and args.source:
        raise UserError(f"--video {args.video} and --source {args.source}: give one (--video scores a recording "
                        f"offline, --source watches live)")
    if args.video:
        given = [f"--{k}" for k in LIVE_ONLY if getattr(args, k) is not None]
        if given:
            raise UserError(f"{given[0]}: only for a live --source; --video scores every frame of the file offline")
    if not args.block_s > 0:
        raise UserError(f"--block-s {args.block_s:g}: must be > 0 (seconds of frames per block)")
    if args.batch < 1:
        raise UserError(f"--batch {args.batch}: must be >= 1")
    check_session_args(args)


def run_patch(root: Path) -> tuple[int, Optional[str]]:
    """The target and model of the run's patch attack (generate/index.json)."""
    index = runfiles.load_index(RunDir(root), missing=f"--run {root}: not a generated run; give --target instead")
    found = {(int(it["target"]), it.get("model")) for it in index.items
             if it.get("attack") == "patch" and not it.get("control") and it.get("target") is not None}
    if not found:
        raise UserError(f"--run {root}: the run has no patch attack; give --target CLASS")
    targets = sorted({t for t, _ in found})
    if len(targets) > 1:
        raise UserError(f"--run {root}: the run's patches have targets {', '.join(map(str, targets))}; give --target")
    models = sorted({m for _, m in found if m})
    return targets[0], models[0] if len(models) == 1 else None


def _target(args) -> tuple[SceneTarget, Optional[str]]:
    """What is measured, and the run's patch model when --run names one."""
    region = parse_region(args.region) if args.region is not None else None
    true = class_arg(args.true, "--true") if args.true is not None else None
    run_model = None
    if args.target is not None:
        target = class_arg(args.target, "--target")
    elif args.run:
        target, run_model = run_patch(Path(args.run))
    else:
        target = TOASTER
    return SceneTarget(target, true, region), run_model


def _out_dir(args) -> Path:
    if args.out:
        out = Path(args.out)
    else:
        name = Path(args.video).stem if args.video else f"live-{time.strftime('%Y%m%d-%H%M%S')}"
        out = (Path(args.run) / "scene" if args.run else Path("scene")) / name
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; give a folder")
    return out


def _scene(args) -> int:
    _check_args(args)
    target, run_model = _target(args)
    cfg = load_for_command(args.config, args.set or [])
    lc: LiveConfig = cfg.extra_sections.get("live") or LiveConfig()
    out = _out_dir(args)
    video = VideoSource(Path(args.video), cfg.capture.camera).open() if args.video else None  # before the model
    try:
        classifier = load_model(args.model or run_model or model_names(cfg.models)[0], pick_device(cfg.run.device))
        scorer, log = SceneScorer(target, lc.top_k), SceneLog(target, args.block_s)
        t0 = time.perf_counter()
        if video is not None:
            fps: Optional[float] = score_video(video, classifier, scorer, log, args.batch)
            name = video.name
        else:
            name, fps = _live(args, cfg, lc, classifier, scorer, log)
        secs = time.perf_counter() - t0
    finally:
        if video is not None:
            video.close()
    summary = {**log.summary(), "model": classifier.name, "source": name, "fps": fps,
               "wall_s": round(secs, 2), "frames_per_s": round(len(log.rows) / secs, 2) if secs > 0 else None}
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "frames.csv", log.csv())
    write_json(out / "summary.json", summary)
    say(f"scene: {summary_line(summary)}; {out}/frames.csv, summary.json")
    if summary.get("note"):
        say(f"scene: {summary['note']}")
    return 0


def _live(args, cfg, lc: LiveConfig, classifier, scorer: SceneScorer, log: SceneLog) -> tuple[str, Optional[float]]:
    """Score a live source with the live view's window, page and recorder until it ends or is stopped."""
    defence = parse_defence(args.defence) if args.defence is not None else lc.defence
    assert not isinstance(defence, str), "LiveConfig.validate makes a defence's name its mapping"
    model = LiveModel(classifier, defence)
    spec = parse_source(args.source or lc.source, Path if args.source else cfg.resolve)
    source = open_source(spec, cfg.capture.camera, realtime=True)
    title = f"{classifier.name}: scene"
    view = SceneView(source, model, scorer, log, batch=args.batch, title=title, top_k=lc.top_k)
    window = draw.Window("physical scene") if not args.headless and draw.has_display() else None
    run_view(args, lc, view, model, title, window, source)
    return source.name, getattr(source, "fps", None)


def register_cli(commands: dict) -> None:
    commands["scene"] = (HELP, _add_scene, _scene)
