"""The one stage runner: every stage of a run (from `physical run`, `physical print` and `physical
capture` alike) goes through `run_stages`, which decides what is stale, marks, runs and records.

A stage is redone when, and only when:

- it has not finished (never ran, failed, or was killed: its state is not ``done``);
- what it reads changed: its *inputs digest* covers the config sections it reads (`STAGE_SECTIONS`,
  with the files those name, and `stage_inputs` for what a stage reads from outside the run, e.g.
  the source images' bytes and the model weights for generate) and the *outputs digest* of every
  earlier stage;
- one of its outputs is missing or altered: every file under the stage's folder is recorded with
  its digest when the stage finishes, and checked before the stage is trusted;
- it is asked for (``--force``, ``--from``).

A stage that is redone with the same inputs makes the same files, so its outputs digest is the same
and the later stages stay done: only what changed is redone. Inside the generate stage the same
holds per item (see `physical.stages.generate.item_key`).

Order of work, so that a failed or interrupted run changes nothing it has not finished: the config
and the inputs are checked first (`check_inputs`), then the run directory is locked
(`physical.runs.lock.RunLock`), temporary files of interrupted writes are removed, and only then is
any status touched. A stage that raises is marked ``failed`` (never left ``running``); a killed
process leaves ``running``, which the next run treats as not finished.

A stage may keep per-item records of finished work in ``<stage>/done/`` (generate does; see
`physical.stages.generate.item_key`): the runner deletes them when the stage is asked for (--force, --from).

A new stage needs only: its function in `STAGE_FUNCS`, the config sections it reads in
`STAGE_SECTIONS`, and its outputs written under ``<run>/<stage>/`` with the atomic writers of
`physical.rundir`; staleness, recording and locking then come from here.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import yaml

import importlib

from physical import attacks
from physical.capture.folder import check_capture_source
from physical.capture.sources import parse_source
from physical.config import Config, to_dict
from physical.runs.distributed import announce, current, device_for
from physical.errors import UserError
from physical.stages.generate import eot_channel, source_digests
from physical.data.images import check_source
from physical.log import logging_to, note, say
from physical.runs.lock import RunLock
from physical.rundir import (PIPELINE, STAGE, STAGES, CorruptFile, RunDir, digest, discarding_writes, file_digest,
                             remove_temp_files)
from physical.runtime import fmt_seconds, set_memory_gb
from physical.sheets.layout import layout_for


class PipelineError(UserError):
    """A stage range that cannot run on this run directory."""


# the config sections each stage reads (physical.rundir.PIPELINE): a change there makes the stage stale
STAGE_SECTIONS = {s.name: list(s.sections) for s in PIPELINE}
# EOT attacks draw from the capture channel, at the cell's size in the photo: with one, generate reads these too;
# the printability penalty reads the printable colours of the channel's colour calibration
EOT_SECTIONS = ["capture.channel", "capture.frame", "sheet"]
PRINTABILITY_SECTIONS = ["capture.channel.calibration"]
# fitted calibration files (absolute paths after config checks): their content, not only their path
CALIBRATION_KEYS = ("capture.channel.calibration", "align.camera_calibration")


def _get(d: Any, key: str):
    for k in key.split("."):
        d = d.get(k) if isinstance(d, dict) else None
    return d


def section_keys(cfg_dict: dict, stage: str) -> list[str]:
    keys = list(STAGE_SECTIONS[stage])
    if stage == "generate":
        attacks = [a for a in cfg_dict.get("attacks") or [] if isinstance(a, dict)]
        if any(a.get("eot") for a in attacks):
            keys += EOT_SECTIONS
        elif any(a.get("printability") for a in attacks):
            keys += PRINTABILITY_SECTIONS
    return keys


def section_hash(cfg_dict: dict, stage: str) -> str:
    """Digest of the config sections `stage` reads, with the content of the calibration files they name."""
    keys = section_keys(cfg_dict, stage)
    parts = {key: _get(cfg_dict, key) for key in keys}
    if stage == "generate" and isinstance(parts.get("capture.channel"), dict):
        parts["capture.channel"] = eot_channel(parts["capture.channel"])
    for key in CALIBRATION_KEYS:
        path = _get(cfg_dict, key)
        if isinstance(path, str) and path and any(key == k or key.startswith(k + ".") for k in keys):
            try:
                parts[f"file {key}"] = file_digest(path)
            except OSError:
                pass
    return digest(parts)


def stage_inputs(run: RunDir, cfg: Config, cfg_dict: dict, stage: str) -> str:
    """The inputs digest of `stage`: its config sections, what it reads from outside the run, and the
    outputs of every earlier stage (as recorded when they finished)."""
    parts = {"config": section_hash(cfg_dict, stage),
             "upstream": {s: run.status(s).get("outputs_digest") for s in STAGES[:STAGES.index(stage)]}}
    if stage == "generate":
        parts["sources"] = source_digests(cfg)
    return digest(parts)


def stage_dirs(run: RunDir, stage: str) -> list[Path]:
    return [run.root / stage]


def current_outputs(run: RunDir, stage: str) -> dict[str, str]:
    """{path relative to the run: digest} of every file the stage's folder holds now."""
    out = {}
    for d in stage_dirs(run, stage):
        if d.is_dir():
            for p in sorted(d.rglob("*")):
                if p.is_file() and not p.name.startswith("."):
                    out[p.relative_to(run.root).as_posix()] = file_digest(p)
    return out


def output_problem(run: RunDir, stage: str) -> Optional[str]:
    """None when the stage's outputs are as recorded; else one phrase naming the first difference."""
    st = run.status(stage)
    want = st.get("outputs")
    if want is None:  # recorded before outputs were recorded (or by a helper): trusted as it is
        return None
    have = current_outputs(run, stage)
    for rel, d in want.items():
        if rel not in have:
            return f"{rel} is missing"
        if have[rel] != d:
            return f"{rel} was altered"
    extra = sorted(set(have) - set(want))
    if extra:
        return f"{extra[0]} was added"
    return None


def run_dir_for(cfg: Config) -> RunDir:
    return RunDir(cfg.resolve(cfg.run.output) / cfg.run.name)


# stages every rank of a torchrun job runs, each on its share of the images (physical.runs.distributed)
SHARDED = tuple(s.name for s in PIPELINE if s.sharded)


def _call(stage, run, cfg, device):
    # looked up when the stage runs: the function a test or a plug-in put in its module's place runs
    decl = STAGE[stage]
    fn = getattr(importlib.import_module(decl.module), decl.function)
    return fn(run, cfg, device) if decl.takes_device else fn(run, cfg)


# ----------------------------------------------------------------------------------------------
# checks before anything is touched


def check_inputs(cfg: Config, stages: list[str]) -> None:
    """What the stages in range read from outside the run, checked before any status is touched."""
    if "generate" in stages:
        n = check_source(cfg.images.source, Path(cfg.base_dir), cfg.images.limit)
        if "print" in stages:
            check_sheet_capacity(cfg, n)
    if "capture" in stages:
        check_capture_source(cfg)


def check_sheet_capacity(cfg: Config, n_images: int) -> None:
    """The print stage puts each image pair (clean, adversarial) on a sheet, and the sheets' marker ids
    number a limited set of sheets: a run that cannot be printed is stopped before generate spends
    hours on it."""
    per_image = sum(len(a.eps) * (2 if attacks.ATTACKS[attacks.canonical(a.name)].fitted else 1)  # + control
                    for a in cfg.attacks)
    pairs = n_images * len(cfg.models) * per_image
    lay = layout_for(cfg.sheet)
    per_sheet = len(lay.pair_slots())
    if lay.sheets_for(pairs) > lay.max_sheets:
        raise UserError(f"images.limit: {n_images} images x {len(cfg.models)} model(s) x {per_image} attack images "
                        f"each = {pairs} image pairs to print, {per_sheet} a sheet, but the sheets' marker ids number "
                        f"at most {lay.max_sheets} sheets ({lay.max_sheets * per_sheet} pairs): lower images.limit, "
                        "list fewer attacks or eps, give a smaller sheet.cell_mm, or stop at generate (--until "
                        "generate)")


def check_run_dir(run: RunDir, force: bool = False) -> None:
    """The run directory is a run's (or new) and writable: never write into a folder of the user's.
    A corrupt manifest.json stops with how to recover; with `force` it is set aside and the run's
    record starts afresh (every stage redone)."""
    root = run.root
    if root.exists() and not root.is_dir():
        raise UserError(f"{root}: exists and is not a folder; choose another run.name or run.output")
    if root.is_dir() and not run.manifest_path.is_file():
        others = [p.name for p in root.iterdir() if p.name not in ("run.lock",) and not p.name.startswith(".")]
        if others:
            raise UserError(f"{root}: a folder that is not a run directory (no manifest.json; holds {others[0]}); "
                            "choose another run.name or run.output")
    probe = root if root.is_dir() else next((p for p in root.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK):
        raise UserError(f"{probe}: not writable; the run directory {root} cannot be written")
    if run.manifest_path.is_file():
        if not os.access(run.manifest_path, os.W_OK):
            raise UserError(f"{run.manifest_path}: not writable; the run directory cannot be written")
        try:
            run.manifest()  # a corrupt manifest is named now (CorruptFile)
        except CorruptFile as e:
            if not force:
                raise CorruptFile(f"{e}; the run's record is damaged: run again with --force to set it aside "
                                  "(kept as manifest.json.corrupt) and redo every stage") from None
            run.manifest_path.replace(run.root / "manifest.json.corrupt")
            say(f"{run.manifest_path}: corrupt; set aside as manifest.json.corrupt, every stage is redone")


def _rebuild_hint(stage: str, target: str) -> str:
    if stage == "capture":
        return f"physical capture {target} --source SOURCE (or physical run CONFIG --from capture)"
    return f"physical run CONFIG --from {stage}"


def require_finished(run: RunDir, cfg_dict: dict, cfg: Config, stage: str, target: str, checked_inputs: bool) -> None:
    """An earlier stage that this command does not run: finished, intact and (when `checked_inputs`)
    up to date, or a PipelineError naming the command that redoes it."""
    st = run.status(stage)
    if st.get("state") != "done":
        raise PipelineError(f"stage {stage!r} has not finished in {run.root}; run it first: "
                            f"{_rebuild_hint(stage, target)}")
    problem = output_problem(run, stage)
    if problem:
        raise PipelineError(f"{problem} since the {stage} stage finished; redo it: {_rebuild_hint(stage, target)}")
    try:
        now = stage_inputs(run, cfg, cfg_dict, stage) if checked_inputs and "inputs" in st else None
    except UserError:  # what it read is gone (an image folder moved away): its finished outputs stand
        now = None
    if now is not None and st["inputs"] != now:
        raise PipelineError(f"the inputs of finished stage {stage!r} changed ({', '.join(STAGE_SECTIONS[stage])} "
                            f"or what it reads); run without --from to redo it")


# ----------------------------------------------------------------------------------------------
# the runner


def run_stages(cfg: Config, stages: list[str], *, force: bool = False, redo: tuple[str, ...] = (),
               log: Callable[[str], None] = say, run: Optional[RunDir] = None, command: str = "physical run",
               target: str = "CONFIG", calls: Optional[dict] = None, record: Optional[dict] = None,
               inputs_cfg: Optional[Config] = None, check_earlier_inputs: bool = True) -> RunDir:
    """Run `stages` (consecutive, in order) on the run directory, each only when stale (or in `redo`,
    or with `force`). `calls`: stage -> function(run) replacing the stage's own (a command's variant of
    it, e.g. guided capture with the command's flags); `record`: extra fields for the stage's status;
    `inputs_cfg`: the config whose sections are recorded (default `cfg`)."""
    cfg_dict = to_dict(inputs_cfg or cfg)
    check_inputs(cfg, stages)
    device = device_for(cfg.run.device)
    set_memory_gb(cfg.run.memory_gb)
    run = run or run_dir_for(cfg)
    check_run_dir(run, force)
    first = STAGES.index(stages[0])
    if first > 0 and not run.exists():
        raise PipelineError(f"stage {STAGES[0]!r} has not finished in {run.root}; run it first: "
                            f"{_rebuild_hint(STAGES[0], target)}")
    run.root.mkdir(parents=True, exist_ok=True)
    with RunLock(run.root, command) as lock, logging_to(run.root / "run.log"):
        note(f"-- {command}: {', '.join(stages)} (pid {os.getpid()})")
        if lock.taken_over is not None:
            h = lock.taken_over
            log(f"took over the lock of {run.root} left by pid {h.get('pid')} (started {h.get('started')}), "
                "which is no longer running")
        gone = remove_temp_files(run.root, Path(cfg.base_dir) / "prints")
        if gone:
            log(f"removed {len(gone)} temporary file(s) of an interrupted write")
        for s in STAGES[:first]:  # before the run's config is rewritten: a refused run changes nothing
            require_finished(run, cfg_dict, cfg, s, target, check_earlier_inputs)
        if not run.exists() or to_dict(cfg) != _recorded_config(run):
            run.init(to_dict(cfg), cfg.run.seed, str(device), cfg.base_dir)
        d = current()
        log(f"run {run.run_id} in {run.root} on {device}" + (f", {', '.join(SHARDED)} sharded over {d.world} ranks"
                                                               if d.world > 1 else ""))
        for stage in stages:
            why = _why_run(run, cfg, cfg_dict, stage, force or stage in redo)
            if why is None:
                log(f"[{stage}] already done, skipped (use --from {stage} or --force to redo)")
                continue
            torch.manual_seed(cfg.run.seed)
            if why == "asked for":  # --force / --from: nothing of the stage's earlier work is reused
                shutil.rmtree(run.root / stage / "done", ignore_errors=True)
            fn = (calls or {}).get(stage) or (lambda r, s=stage: _call(s, r, cfg, device) if s not in SHARDED
                                                else (announce(s), _call(s, r, cfg, device))[1])
            _run_one(run, cfg, cfg_dict, stage, fn, why, log, (record or {}).get(stage, {}))
        html = run.root / "report" / "report.html"
        if "report" in stages and html.is_file():
            log(f"report: {html} (open it in a browser; the log of this run: {run.root / 'run.log'})")
    return run


def _recorded_config(run: RunDir) -> dict:
    p = run.root / "config.yaml"
    try:
        return yaml.safe_load(p.read_text()) if p.is_file() else {}
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}


def _why_run(run: RunDir, cfg: Config, cfg_dict: dict, stage: str, forced: bool) -> Optional[str]:
    st = run.status(stage)
    if forced:
        return "asked for"
    if st.get("state") != "done":
        return "first time" if "state" not in st else f"its last attempt {st['state']}"
    if st.get("inputs") != stage_inputs(run, cfg, cfg_dict, stage):
        return "what it reads changed"
    problem = output_problem(run, stage)
    if problem and stage == "capture" and not _capture_remakes(cfg):
        # photos taken from a camera or stream cannot be made again here: say how, touch nothing
        raise PipelineError(f"{problem} since the capture stage finished; take the photos again with "
                            f"`physical capture {run.root} --source {cfg.capture.source}`, or go on with the photos "
                            f"as they are now: `physical capture {run.root} --source folder:{run.photos_dir}`")
    return problem


def _capture_remakes(cfg: Config) -> bool:
    """Whether the capture stage can make its photos again by itself (the simulator, a folder)."""
    return parse_source(cfg.capture.source, cfg.resolve).kind in ("simulate", "folder")


def _run_one(run: RunDir, cfg: Config, cfg_dict: dict, stage: str, fn, why: str, log, extra: dict) -> None:
    inputs = stage_inputs(run, cfg, cfg_dict, stage)
    # a stage that finished before keeps its record while it runs again: should this attempt fail before
    # it changed anything, the earlier result stands; should it change outputs, their digests tell
    was_done = run.status(stage).get("state") == "done"
    run.attempt(stage, "running") if was_done else run.mark(stage, "running")
    t0 = time.time()
    log(f"[{stage}] ... ({why})")
    try:
        summary = fn(run) or {}
    except BaseException as e:  # recorded, then passed on: no stage is left "running" after an error
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        state = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        run.attempt(stage, state, error=msg) if was_done else run.mark(stage, state, error=msg)
        raise
    secs = round(time.time() - t0, 2)
    outputs = current_outputs(run, stage)
    shown = {k: v for k, v in summary.items() if k != "table"}
    run.record(stage, {"state": "done", "seconds": secs, "config": section_hash(cfg_dict, stage), "inputs": inputs,
                       "outputs": outputs, "outputs_digest": digest(outputs), "summary": shown, **extra})
    log(f"[{stage}] done in {f'{secs:.1f} s' if secs < 90 else fmt_seconds(secs)}: {readable(shown)}")
    if "table" in summary:
        log("\n" + summary["table"])


def readable(summary: dict, width: int = 60) -> str:
    """A stage's summary as a line: 'images 8; sheets 2; paper a4 210 x 297 mm' (lists of more than 6
    items counted, a long list or mapping cut at `width` characters)."""
    def value(v) -> str:
        if isinstance(v, dict):
            return ", ".join(f"{k.replace('_', ' ')} {value(x)}" for k, x in v.items())
        if isinstance(v, (list, tuple)):
            return ", ".join(value(x) for x in v) if len(v) <= 6 else f"{len(v)} items"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    parts = []
    for k, v in summary.items():
        text = value(v)
        if isinstance(v, (dict, list, tuple)) and len(text) > width:  # a path or a name stays whole
            text = text[:width - 3] + "..."
        parts.append(f"{k.replace('_', ' ')} {text}")
    return "; ".join(parts) or "nothing to report"


def serve(cfg: Config, log: Callable[[str], None] = say) -> None:
    """A rank other than 0 of a torchrun job: run every sharded stage rank 0 announces, on this rank's
    share of the images, until rank 0 says the run is over. Rank 0 keeps the run directory's status and
    writes the stages' merged files (the experiments' files too: this rank's copies are thrown away)."""
    device = device_for(cfg.run.device)
    set_memory_gb(cfg.run.memory_gb)
    run = run_dir_for(cfg)
    d = current()
    log(f"rank {d.rank} of {d.world} (pid {os.getpid()}) on {device}")
    while (stage := announce(None)) is not None:
        torch.manual_seed(cfg.run.seed)
        if stage == "experiments":
            with discarding_writes():
                _call(stage, run, cfg, device)
        else:
            _call(stage, run, cfg, device)
