"""The `physical` command line: run, models, doctor, and the lab's other verbs.

Subcommands register themselves in COMMANDS (name -> (add_arguments, handler)); a handler returns
an exit code. Errors the user can fix (bad config, missing file, unavailable model or device) print
one line naming the bad value and exit with 2.
"""
from __future__ import annotations

import argparse
import errno
import sys

from .errors import UserError
from .rundir import STAGES

COMMANDS: dict[str, tuple] = {}


def _load(args):
    from .checks import load_for_command  # late: the domain it checks against imports torch; `physical --help` stays fast

    return load_for_command(args.config, args.set or [])


# -- run -----------------------------------------------------------------------------------


def _add_run(p):
    p.add_argument("config", nargs="?", help="pipeline YAML (default: the embedded default run)")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override one config value (repeatable)")
    p.add_argument("--from", dest="from_stage", choices=STAGES, help="redo this stage and every later one")
    p.add_argument("--until", choices=STAGES, help="stop after this stage")
    p.add_argument("--force", action="store_true", help="redo every stage in range")
    p.add_argument("--procs", type=int, default=1, metavar="K",
                   help="K processes on this machine (torchrun --standalone --nproc_per_node=K): generate, classify "
                        "and experiments are sharded by image, one device per process")


def _run(args) -> int:
    from . import distributed
    from .pipeline import run_pipeline
    from .runner import serve

    cfg = _load(args)
    if args.procs != 1 and distributed.world_from_env() <= 1:
        if args.procs < 1:
            raise UserError(f"--procs: {args.procs} (give 1 or more processes)")
        distributed.check_devices(cfg.run.device, args.procs, "--procs")
        return distributed.launch(args.procs, _without_procs(args.argv[args.argv.index("run") + 1:]))
    d, _ = distributed.init(cfg.run.device)  # under torchrun: this rank's place and device
    try:
        if d.main:
            run_pipeline(cfg, from_stage=args.from_stage, until=args.until, force=args.force)
            distributed.announce(None)  # the other ranks' work is over
        else:
            serve(cfg)
    finally:
        distributed.finish()
    return 0


def _without_procs(argv: list[str]) -> list[str]:
    """`physical run`'s arguments for each rank: the same, less --procs."""
    out, skip = [], False
    for a in argv:
        if skip or a.startswith("--procs="):
            skip = False
            continue
        skip = a == "--procs"
        if not skip:
            out.append(a)
    return out


# -- models --------------------------------------------------------------------------------


def _add_models(p):
    p.add_argument("--classes", action="store_true", help="list the 1000 ImageNet class names with their index")
    p.add_argument("--all", action="store_true", help="also list torchvision models whose weights are not cached")


def _models(args) -> int:
    from . import models

    if args.classes:
        for i, n in enumerate(models.class_names()):
            print(f"{i:4d} {n}")
        return 0
    print(f"{'model':<28} {'available':<10} source")
    for name in models.LITE:
        ok, why = models.availability(name)
        print(f"{name:<28} {'yes' if ok else 'no':<10} {why}")
    for name in models.torchvision_names():
        ok, why = models.availability(name)
        if ok or args.all:
            print(f"{name:<28} {'yes' if ok else 'no':<10} {why}")
    if not args.all:
        print("(torchvision ImageNet models are usable when their weights are cached; --all lists them)")
    return 0


# -- doctor --------------------------------------------------------------------------------


def _doctor(args) -> int:
    import torch

    from . import models
    from .rundir import versions

    for k, v in versions().items():
        print(f"{k:<12} {v}")
    print(f"{'cuda':<12} {torch.cuda.is_available()}")
    mps = getattr(torch.backends, "mps", None)
    print(f"{'mps':<12} {bool(mps and mps.is_available())}")
    print(f"{'device':<12} {models.pick_device('auto')} (run.device: auto)")
    print(f"{'models':<12} {', '.join(models.available_models()) or 'none'}")
    return 0


COMMANDS["run"] = ("run a pipeline (generate, print, capture, align, classify, report)", _add_run, _run)
COMMANDS["models"] = ("list models and whether each is available here", _add_models, _models)
COMMANDS["doctor"] = ("show versions, devices and models of this machine", lambda p: None, _doctor)


def _register_optional():
    """Subcommands that live beside their stage (capture, live, calibrate, compare, ...)."""
    import importlib

    for mod in ("physical.sheets.cli", "physical.capture.cli", "physical.capture.replay", "physical.live.cli",
                "physical.calibrate",
                "physical.experiments", "physical.predict_cli"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        reg = getattr(m, "register_cli", None)
        if reg:
            reg(COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    _register_optional()
    parser = argparse.ArgumentParser(prog="physical", description="Physical-world adversarial examples.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help, add, fn) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        add(p)
        p.set_defaults(handler=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .models import ModelUnavailable

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.handler(args) or 0
    except (UserError, ModelUnavailable, FileNotFoundError) as e:
        print(f"physical: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            raise
        # a folder that cannot be written (read-only run directory, full disk): finished files are kept
        print(f"physical: error: {e.filename or ''}: {e.strerror}; nothing finished was lost", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("physical: interrupted; finished stages and files are kept, run again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
