"""The built-in verbs of the `physical` command: run, models, doctor (physical/cli.py dispatches)."""
from __future__ import annotations

import torch

from physical import models

from physical.runs import distributed
from physical.runs.checks import load_for_command
from physical.errors import UserError
from physical.log import say
from physical.runs.pipeline import run_pipeline
from physical.rundir import STAGES, versions
from physical.runs.runner import serve


def _load(args):
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
    p.add_argument("config", nargs="?", help="a pipeline YAML: also list (and check) its models, one's own included")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override one config value (repeatable)")
    p.add_argument("--classes", action="store_true", help="list the 1000 ImageNet class names with their index")
    p.add_argument("--all", action="store_true", help="also list torchvision models whose weights are not here, "
                   "with the file to fetch")


def _row(name: str, ok: bool, where: str) -> None:
    say(f"{name:<28} {'yes' if ok else 'no':<10} {where}")


def _models(args) -> int:
    if args.classes:
        for i, n in enumerate(models.class_names()):
            say(f"{i:4d} {n}")
        return 0
    own = _load(args).models if args.config else []  # loading checks every model of one's own
    say(f"{'model':<28} {'available':<10} from")
    for entry in own:
        if not isinstance(entry, str):
            _row(entry.name, True, models.own_source(entry.name))
    for name in models.LITE:
        ok, why = models.availability(name)
        _row(name, ok, f"pip package: {why}" if ok else why)
    for name in models.torchvision_names():
        w = models.torchvision_weights(name)
        cached = w is not None and models.hub_cached(w)
        if cached:
            _row(name, True, f"torch hub cache: {cached}")
        elif args.all and w is not None:
            _row(name, False, f"fetch {w.url} into {models.hub_dir()}/ (or give models[i].weights)")
    if not args.all:
        say("(torchvision ImageNet models are usable when their weights are cached; --all lists them with the file "
            "to fetch)")
    timm = models.timm_version()
    say(f"timm {timm}: any timm architecture with a local checkpoint (library: timm)" if timm else
        "timm is not installed: pip install 'physical[timm]' for timm architectures")
    say("a model of one's own (weights file, TorchScript, module:callable): a mapping in models: (docs/models.md)")
    return 0


# -- doctor --------------------------------------------------------------------------------


def _doctor(args) -> int:
    for k, v in versions().items():
        say(f"{k:<12} {v}")
    say(f"{'cuda':<12} {torch.cuda.is_available()}")
    mps = getattr(torch.backends, "mps", None)
    say(f"{'mps':<12} {bool(mps and mps.is_available())}")
    say(f"{'device':<12} {models.pick_device('auto')} (run.device: auto)")
    say(f"{'models':<12} {', '.join(models.available_models()) or 'none'}")
    say(f"{'timm':<12} {models.timm_version() or 'not installed (optional: pip install physical[timm])'}")
    return 0


def register_cli(commands: dict) -> None:
    commands["run"] = ("run a pipeline (generate, print, capture, align, classify, report)", _add_run, _run)
    commands["models"] = ("list models and whether each is available here", _add_models, _models)
    commands["doctor"] = ("show versions, devices and models of this machine", lambda p: None, _doctor)
