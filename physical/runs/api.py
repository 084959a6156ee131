"""A whole run from Python: `physical.run(config, overrides)` -> the run directory and its report.

The same run as ``physical run CONFIG --set KEY=VALUE ...``: the same checks (a bad value is a
`physical.errors.ConfigError` naming its key path), the same stages with the same resume, the same
files. The config may be a pipeline YAML's path, a mapping of its keys (relative paths in it are
relative to the working directory), a `Config`, or None for the embedded default run.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from physical.config import Config, set_override, to_dict
from physical.errors import UserError
from physical.log import say
from physical.runs.checks import from_dict, load_for_command
from physical.runs.pipeline import run_pipeline

ConfigLike = Union[str, Path, dict, Config, None]


@dataclass
class RunResult:
    """What a run made: its directory and, once the report stage ran, report.json as a dict."""

    run_dir: Path
    report: Optional[dict]

    @property
    def report_html(self) -> Optional[Path]:
        """report/report.html, when the run wrote one."""
        p = self.run_dir / "report" / "report.html"
        return p if p.is_file() else None


def load(config: ConfigLike = None, overrides: Sequence[str] = ()) -> Config:
    """A checked Config from any of `run`'s forms, with ``KEY.PATH=VALUE`` overrides (as ``--set``)."""
    overrides = [str(o) for o in overrides]
    if isinstance(config, Config):
        if not overrides:
            return config
        data = to_dict(config)
        base = config.base_dir
    elif isinstance(config, dict):
        data, base = copy.deepcopy(config), "."
    elif config is None or isinstance(config, (str, Path)):
        return load_for_command(None if config is None else str(config), overrides)
    else:
        raise UserError(f"config: {type(config).__name__}; give a YAML path, a dict of its keys, a Config or None")
    for o in overrides:
        set_override(data, o)
    return from_dict(data, base)


def run(config: ConfigLike = None, overrides: Sequence[str] = (), *, from_stage: Optional[str] = None,
        until: Optional[str] = None, force: bool = False, quiet: bool = False,
        log: Optional[Callable[[str], None]] = None) -> RunResult:
    """Run the pipeline (every stage, or `from_stage` .. `until`) and return the run directory and its
    report (None when the report stage did not run). `quiet`: no progress lines; `log`: where they go."""
    cfg = load(config, overrides)
    sink = log if log is not None else ((lambda _msg: None) if quiet else say)
    rd = run_pipeline(cfg, from_stage=from_stage, until=until, force=force, log=sink)
    path = Path(rd.root) / "report" / "report.json"
    report: Optional[dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else None
    return RunResult(Path(rd.root).resolve(), report)
