"""The stages in order, with resume: generate -> print -> capture -> align -> classify -> experiments
-> report.

A stage that finished is not redone unless asked (``from_stage`` / ``force``), or unless what it
reads has changed since it ran (see :mod:`physical.runs.runner`, which runs every stage). A lab run can
stop after ``print`` (``until="print"``), wait for the printer, and go on with ``from_stage="capture"``.
"""
from __future__ import annotations

from pathlib import Path

from physical.config import Config, load_raw, set_override
from physical.runs.checks import from_dict, load_config  # (checks also registers the config sections of higher layers)
from physical.log import say
from physical.rundir import STAGES, RunDir
from physical.runs.runner import STAGE_SECTIONS, PipelineError, run_dir_for, run_stages, section_hash

_section_hash = section_hash  # the name earlier callers used

__all__ = ["run_pipeline", "run_dir_for", "PipelineError", "STAGE_SECTIONS", "section_hash"]


def run_pipeline(cfg: Config, from_stage: str | None = None, until: str | None = None, force: bool = False,
                 log=say) -> RunDir:
    """Run the stages in range on one run directory; returns it. With `from_stage`, the earlier stages
    must have finished, be intact and up to date; `from_stage` itself is redone."""
    lo = STAGES.index(from_stage) if from_stage else 0
    hi = STAGES.index(until) if until is not None else len(STAGES) - 1
    if hi < lo:
        raise PipelineError(f"--until {until} comes before --from {from_stage}")
    return run_stages(cfg, STAGES[lo:hi + 1], force=force, redo=(from_stage,) if from_stage else (), log=log)


def load_run(target: str, overrides: list[str] | None = None):
    """(RunDir, Config) for a run directory or a pipeline YAML."""
    path = Path(target)
    if path.is_file():
        cfg, _ = load_config(path, overrides or [])
        return run_dir_for(cfg), cfg
    if path.is_dir():
        cfg_path = path / "config.yaml"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{path}: not a run directory (no config.yaml); give runs/NAME or the pipeline "
                                    f"YAML")
        data = load_raw(cfg_path)
        for o in overrides or []:
            set_override(data, o)
        run = RunDir(path)
        return run, from_dict(data, run.config_dir(str((data.get("run") or {}).get("output", "runs"))))
    raise FileNotFoundError(f"{path}: no such run directory or pipeline file")
