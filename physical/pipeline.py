"""The stages in order, with resume: generate -> print -> capture -> align -> classify -> experiments
-> report.

A stage that finished is not redone unless asked (``from_stage`` / ``force``), or unless the part of
the config it reads has changed since it ran (then it and every later stage run again). A lab run
can stop after ``print`` (``until="print"``), wait for the printer, and go on with
``from_stage="capture"``.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from . import experiments as _experiments  # noqa: F401  (registers the `experiments` config section)
from . import live as _live  # noqa: F401  (registers the `live` config section)
from .config import Config, UserError, to_dict


class PipelineError(UserError):
    """A stage range that cannot run on this run directory."""
from .rundir import STAGES, RunDir

# the config sections each stage reads: a change there makes the stage (and later ones) stale
STAGE_SECTIONS = {
    "generate": ["models", "images", "attacks", "run.seed", "run.precision"],
    "print": ["sheet"],
    "capture": ["capture"],
    "align": ["align"],
    "classify": ["classify", "run.precision"],
    "experiments": ["experiments"],
    "report": ["report"],
}


# EOT attacks draw from the capture channel, at the cell's size in the photo: with one, generate reads these too;
# the printability penalty reads the printable colours of the channel's colour calibration
EOT_SECTIONS = ["capture.channel", "capture.frame", "sheet"]
PRINTABILITY_SECTIONS = ["capture.channel.calibration"]


def _section_hash(cfg_dict: dict, stage: str) -> str:
    parts = {}
    keys = list(STAGE_SECTIONS[stage])
    attacks = [a for a in cfg_dict.get("attacks") or [] if isinstance(a, dict)] if stage == "generate" else []
    if any(a.get("eot") for a in attacks):
        keys += EOT_SECTIONS
    elif any(a.get("printability") for a in attacks):
        keys += PRINTABILITY_SECTIONS
    for key in keys:
        node = cfg_dict
        for k in key.split("."):
            node = node.get(k) if isinstance(node, dict) else None
        parts[key] = node
    files = _calibration_digests(cfg_dict, keys)
    if files:  # a refitted calibration file (same path) makes the stages that read it stale too
        parts["calibration files"] = files
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# fitted calibration files (absolute paths after config checks): their content, not only their path
CALIBRATION_KEYS = ("capture.channel.calibration", "align.camera_calibration")


def _calibration_digests(cfg_dict: dict, keys: list[str]) -> dict:
    out = {}
    for key in CALIBRATION_KEYS:
        if not any(key == k or key.startswith(k + ".") for k in keys):
            continue
        node = cfg_dict
        for k in key.split("."):
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, str) and node:
            try:
                out[key] = hashlib.sha256(Path(node).read_bytes()).hexdigest()[:16]
            except OSError:
                pass
    return out


def run_dir_for(cfg: Config) -> RunDir:
    return RunDir(cfg.resolve(cfg.run.output) / cfg.run.name)


def _stage_fn(stage: str):
    if stage == "generate":
        from .generate import generate_stage as fn
    elif stage == "print":
        from .sheets import print_stage as fn
    elif stage == "capture":
        from .capture import capture_stage as fn
    elif stage == "align":
        from .align import align_stage as fn
    elif stage == "classify":
        from .classify import classify_stage as fn
    elif stage == "experiments":
        from .experiments import experiments_stage as fn
    else:
        from .report import report_stage as fn
    return fn


def _call(stage, run, cfg, device):
    fn = _stage_fn(stage)
    if stage in ("generate", "classify", "experiments", "report"):
        return fn(run, cfg, device)
    return fn(run, cfg)


def plan(run: RunDir, cfg_dict: dict, from_stage: str | None, until: str | None, force: bool) -> list[tuple[str, str]]:
    """(stage, 'run' | 'skip' reason) for every stage in range."""
    lo = STAGES.index(from_stage) if from_stage else 0
    hi = STAGES.index(until) if until else len(STAGES) - 1
    out, stale = [], force
    for s in STAGES[: hi + 1]:
        st = run.status(s)
        changed = st.get("state") == "done" and st.get("config") != _section_hash(cfg_dict, s)
        if STAGES.index(s) < lo:
            if st.get("state") != "done":
                raise PipelineError(f"cannot start at {from_stage!r}: stage {s!r} has not finished in {run.root}")
            if changed:
                raise PipelineError(f"cannot start at {from_stage!r}: the config of finished stage {s!r} changed "
                                   f"({', '.join(STAGE_SECTIONS[s])}); run without --from to redo it")
            continue
        stale = stale or STAGES.index(s) == lo and from_stage is not None or changed or st.get("state") != "done"
        out.append((s, "run" if stale else "done"))
    return out


def run_pipeline(cfg: Config, from_stage: str | None = None, until: str | None = None, force: bool = False,
                 log=print) -> RunDir:
    """Run the stages in range on one run directory; returns it."""
    import torch

    from .models import pick_device

    from .runtime import set_memory_gb

    device = pick_device(cfg.run.device)
    set_memory_gb(cfg.run.memory_gb)
    torch.manual_seed(cfg.run.seed)
    cfg_dict = to_dict(cfg)
    run = run_dir_for(cfg)
    run.init(cfg_dict, cfg.run.seed, str(device), cfg.base_dir)
    log(f"run {run.run_id} in {run.root} on {device}")
    steps = plan(run, cfg_dict, from_stage, until, force)
    for stage, what in steps:
        if what == "done":
            log(f"[{stage}] already done, skipped (use --from {stage} or --force to redo)")
            continue
        run.invalidate_from(stage)
        run.mark(stage, "running")
        t0 = time.time()
        log(f"[{stage}] ...")
        summary = _call(stage, run, cfg, device) or {}
        secs = round(time.time() - t0, 2)
        shown = {k: v for k, v in summary.items() if k != "table"}
        run.mark(stage, "done", seconds=secs, config=_section_hash(cfg_dict, stage), summary=shown)
        log(f"[{stage}] done in {secs:.1f}s {json.dumps(shown, default=str)}")
        if "table" in summary:
            log("\n" + summary["table"])
    return run
