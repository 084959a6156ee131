"""`physical predict RUN [--draws K]`: before printing, which adversarial images will survive.

After the generate stage, every adversarial image of the run is sent through K draws of the
configured channel (`physical.measure.survival`, the same prediction the report puts next to the photos);
the command prints, per attack, the mean predicted survival and the images predicted to be destroyed
(survival below one half), so they can be regenerated (an EOT attack, a larger eps) before paper and
ink are spent. Nothing is written to the run.
"""
from __future__ import annotations

from collections import defaultdict

from physical.runs.pipeline import load_run
from physical.errors import ConfigError
from physical import runfiles
from physical.log import say
from physical.models import pick_device
from physical.measure.survival import channel_name, forecast, predict_items


def _add(p):
    p.add_argument("run", help="the run's pipeline YAML, or its run directory (runs/NAME)")
    p.add_argument("--draws", type=int, default=None, help="channel draws per image (default: report.predict_draws, "
                                                            "or 8 when that is 0)")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override one config value (repeatable)")


def predict_cmd(args) -> int:
    run, cfg = load_run(args.run, args.set)
    if run.status("generate").get("state") != "done":
        raise FileNotFoundError(f"{run.root}: the generate stage has not finished; run "
                                "`physical run CONFIG --until generate` first")
    draws = args.draws if args.draws is not None else (cfg.report.predict_draws or 8)
    if not 1 <= draws <= 1024:
        raise ConfigError(f"--draws: {draws} is out of range; allowed 1 .. 1024")
    items = runfiles.load_index(run).items
    p, fmap = forecast(cfg, predict_items(run, cfg, pick_device(cfg.run.device), items, draws))
    by = defaultdict(list)
    for it, pi in zip(items, p, strict=False):
        by[(it["model"], it["attack_label"])].append((pi, it["image"]))
    say(f"predicted survival: {draws} draws of {channel_name(cfg)} per adversarial image"
        + (f", through the forecast map fitted on {fmap.fitted_on} ({fmap.n} simulated outcomes)" if fmap else ""))
    for (model, label), v in by.items():
        weak = sorted((pi, im) for pi, im in v if pi < 0.5)
        say(f"  {model} {label}: mean {100 * sum(pi for pi, _ in v) / len(v):.1f} % over {len(v)} images; "
            f"{len(weak)} predicted destroyed" + (": " + ", ".join(f"{im} ({100 * pi:.0f} %)" for pi, im in weak)
                                                  if weak else ""))
    return 0


def register_cli(commands: dict) -> None:
    commands["predict"] = ("before printing: each adversarial image's predicted survival of the channel", _add,
                           predict_cmd)
