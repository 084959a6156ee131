"""`physical live`: the command line."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from physical import runfiles
from physical.capture import draw
from physical.capture.sources import open_source, parse_source
from physical.runs.checks import load_for_command
from physical.errors import UserError
from physical.log import say, warn
from physical.models import load_model, model_names, pick_device
from physical.runs.pipeline import run_dir_for
from physical.rundir import write_json
from physical.live import LiveConfig, LiveModel, LiveView, MjpegServer, Recorder, RunCells, parse_defence



def _add_live(p):
    p.add_argument("config", nargs="?", help="pipeline YAML (its `live` section and run; default: the embedded "
                                             "default)")
    p.add_argument("--source", help="webcam:N, http(s):// or rtsp:// URL, video:PATH, folder:PATH, or simulate "
                                    "(default: live.source, webcam:0)")
    p.add_argument("--run", help="run directory whose printed sheets get per-cell overlays (default: the config's run, "
                                 "when printed)")
    p.add_argument("--model", help="classifier (default: the run's model, else models[0])")
    p.add_argument("--defence", help="a defence in front of the model: blur, jpeg, binarize, multicrop, median, "
                                     "bitdepth, noise, with parameters as NAME:K=V,... (e.g. jpeg:quality=50)")
    p.add_argument("--serve", type=int, metavar="PORT", help="serve the annotated stream as MJPEG with an HTML page "
                                                             "on 127.0.0.1:PORT (0: any free port)")
    p.add_argument("--host", metavar="ADDRESS", help="with --serve: the address to listen on (default 127.0.0.1; "
                                                     "0.0.0.0 for a phone or a second screen: a warning, and the "
                                                     "printed URL carries a random access token)")
    p.add_argument("--record", metavar="FILE.mp4", help="write the annotated stream to a video (mp4v; .avi: MJPG)")
    p.add_argument("--log", metavar="FILE.json", help="write every result (frame, top-k, cells) and which result each "
                                                      "displayed frame shows")
    p.add_argument("--frames", type=int, metavar="N", help="stop after N displayed frames")
    p.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--loop", action="store_true", help="play a video (or folder) source again and again")
    p.add_argument("--headless", action="store_true", help="no window even where there is a display")
    p.add_argument("--no-cells", action="store_true", help="no per-cell overlays")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override one config value (repeatable)")


def check_session_args(args) -> None:
    """The options a live session shares with `physical scene`: frames, seconds, the page, the files."""
    if args.frames is not None and args.frames < 1:
        raise UserError(f"--frames {args.frames}: must be >= 1")
    if args.seconds is not None and not args.seconds > 0:
        raise UserError(f"--seconds {args.seconds:g}: must be > 0")
    if args.serve is not None and not 0 <= args.serve <= 65535:
        raise UserError(f"--serve {args.serve}: a port must be in 0 .. 65535 (0: any free port)")
    if args.host is not None and args.serve is None:
        raise UserError(f"--host {args.host}: give --serve PORT too (the address the page is served on)")
    for flag, value in (("--record", args.record), ("--log", getattr(args, "log", None))):
        if value:
            _check_writable(flag, Path(value))


def _check_writable(flag: str, path: Path) -> None:
    """A file the session writes (the video as it goes, the log at its end) is checked before it starts."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name in it")
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: folder {folder} does not exist; create it or give another path")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{flag} {path}: {'the file' if path.exists() else f'folder {folder}'} is not writable; "
                        "give another path")


def _run_cells(args, cfg, lc: LiveConfig) -> tuple[Optional[Path], Optional[RunCells]]:
    """The run whose sheets get per-cell overlays (--run, live.run, else the config's run when printed)."""
    run_root: Optional[Path]
    if args.run:
        run_root = Path(args.run)
        if not runfiles.has_layout(run_root):
            raise FileNotFoundError(f"--run {run_root}: not a printed run (no print/layout.json)")
    elif lc.run:
        run_root = cfg.resolve(lc.run)
    else:
        guess = run_dir_for(cfg).root
        run_root = guess if runfiles.has_layout(guess) else None
    cells = RunCells.load(run_root) if run_root is not None and lc.cells and not args.no_cells else None
    return run_root, cells


def _open(args, cfg, lc: LiveConfig, run_root: Optional[Path]):
    """The frame source: cameras and streams as they come; videos and folders played at their frame rate
    (a folder: one photo a second); a simulated camera filming the run's sheets, over and over."""
    spec = parse_source(args.source or lc.source, Path if args.source else cfg.resolve)
    return open_source(spec, cfg.capture.camera, realtime=True, run=run_root, cfg=cfg,
                       **({"loop": True, "hold": 15, "move": 8, "defocus": 3} if spec.kind == "simulate"
                          else {"loop": args.loop}))


def _window(args):
    if args.headless:
        return None
    if draw.has_display():
        return draw.Window("physical live")
    if args.serve is None and not args.record and not args.log:
        say("live: no display here; running headless (use --serve PORT to watch in a browser, "
            "--record FILE.mp4 to keep the view)")
    return None


def run_view(args, lc: LiveConfig, view: LiveView, model: LiveModel, title: str, window, source) -> dict:
    """Run a live view (shared with `physical scene`) with its page and recorder as the options ask;
    every window, server, recorder and the source are closed however it ends."""
    server = recorder = None
    try:
        server = serve_page(args, lc, view, model, title) if args.serve is not None else None
        recorder = Recorder(args.record, getattr(source, "fps", None)) if args.record else None
        return view.run(frames=args.frames, seconds=args.seconds, window=window, server=server, recorder=recorder,
                        status_every=None if window else 5.0)
    finally:
        for closing in (window, server, recorder):
            if closing is not None:
                closing.close()
        source.close()


def serve_page(args, lc: LiveConfig, view: LiveView, model: LiveModel, title: str) -> MjpegServer:
    host = args.host or "127.0.0.1"
    try:
        server = MjpegServer(args.serve, host=host, quality=lc.jpeg_quality, status=view.stats,
                             set_defence=lambda n: model.set_defence(parse_defence(n)), title=title, top_k=lc.top_k,
                             set_region=getattr(view, "set_region", None))
    except (OSError, OverflowError) as e:  # the port is taken, the address is not this machine's
        raise UserError(f"--serve {args.serve}: cannot listen on {host}:{args.serve}: "
                        f"{getattr(e, 'strerror', None) or e}") from None
    if server.guard.token_everywhere:
        warn(f"live: --host {host} serves the camera's view beyond this machine: anyone on the network with "
             f"the URL below (its access token included) sees the stream and can switch the defence")
    say(f"live: serving {server.url} (stream: {server.stream_url})")
    return server


def _live(args) -> int:
    check_session_args(args)
    cfg = load_for_command(args.config, args.set or [])
    lc: LiveConfig = cfg.extra_sections.get("live") or LiveConfig()
    run_root, cells = _run_cells(args, cfg, lc)
    model_name = args.model or lc.model or (cells.model if cells and cells.model else model_names(cfg.models)[0])
    classifier = load_model(model_name, pick_device(cfg.run.device))
    defence = parse_defence(args.defence) if args.defence is not None else lc.defence
    assert not isinstance(defence, str), "LiveConfig.validate makes a defence's name its mapping"
    model = LiveModel(classifier, defence)
    source = _open(args, cfg, lc, run_root)
    window = _window(args)
    title = f"{classifier.name}" + (f" + run {run_root.name}" if cells and run_root is not None else "")
    view = LiveView(source, model, cells=cells, align_cfg=cfg.align, top_k=lc.top_k, title=title,
                    keep_log=bool(args.log))
    summary = run_view(args, lc, view, model, title, window, source)
    if args.log:
        write_json(args.log, view.log_data(summary))
    say(f"live: {summary['stopped']}: {summary['frames_shown']} frames shown ({summary['display_fps']:.1f} fps), "
        f"{summary['frames_classified']} classified ({summary['classified_fps']:.1f}/s, "
        f"{summary['mean_infer_ms'] or 0:.0f} ms each)" + (f"; recorded {args.record}" if args.record else ""))
    return 0


def register_cli(commands: dict) -> None:
    commands["live"] = ("classify a camera, phone stream or video live; draw the top-5 and, on a run's sheets, "
                        "whether each adversarial cell still fools the model", _add_live, _live)
