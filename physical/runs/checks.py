"""Loading a pipeline config for a run: the schema (physical/config.py) plus the cross-field checks
that need the domain (model names, attack families, calibration files, the sheet layout).

The schema sits below the domain modules and imports none of them; these checks sit above them.
Every command that runs something from a config loads it here (`load_config`, `from_dict`).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional, Sequence

from physical import attacks, models
from physical.channel.files import check_calibrations
from physical.config import Config, ConfigError, build, load_raw, register_section, set_override
from physical.experiments import ExperimentsConfig
from physical.live import LiveConfig
from physical.sheets.layout import layout_for

# the config sections the schema (physical.config, the lowest layer) cannot name: their checks need
# the attacks, transformations and defences; this is the one list of them
HIGHER_SECTIONS: dict[str, type] = {"experiments": ExperimentsConfig, "live": LiveConfig}
for _name, _cls in HIGHER_SECTIONS.items():
    register_section(_name, _cls)


def check_config(cfg: Config) -> None:
    """Cross-field checks that need more than one value; each names its key path."""
    if not cfg.models:
        raise ConfigError("models: at least one model is required")
    models.register_config(cfg.models, cfg.base_dir)  # models of one's own: loaded and checked once here
    for i, name in enumerate(cfg.models):
        models.check_name(name if isinstance(name, str) else name.name, f"models[{i}]")
    if not cfg.attacks:
        raise ConfigError("attacks: at least one attack is required")
    for i, a in enumerate(cfg.attacks):
        attacks.check_config(a, f"attacks[{i}]")
    attacks.check_labels(cfg.attacks)
    check_output(cfg)
    d = cfg.run.device
    if d not in ("auto", "cpu", "mps", "cuda") and not (d.startswith("cuda:") and d[5:].isdigit()):
        raise ConfigError(f"run.device: {d!r} is not allowed; allowed: auto, cpu, cuda, cuda:N, mps")
    for key in ("scale", "blur_sigma", "noise_sigma", "brightness", "contrast", "jpeg_quality"):
        v = getattr(cfg.capture.channel, key)
        if len(v) != 2 or v[0] > v[1]:
            raise ConfigError(f"capture.channel.{key}: {v!r} must be a range [low, high] with low <= high")
    if cfg.capture.frame is None or len(cfg.capture.frame) != 2:
        raise ConfigError(f"capture.frame: {cfg.capture.frame!r} must be [width, height]")
    check_calibrations(cfg)
    for i, a in enumerate(cfg.attacks):
        if a.printability > 0 and not cfg.capture.channel.calibration:
            raise ConfigError(f"attacks[{i}].printability: {a.printability:g} needs the printer's printable colours: "
                              "set capture.channel.calibration to a colour.json from `physical calibrate colour`")
    try:
        layout_for(cfg.sheet)
    except ValueError as e:
        raise ConfigError(f"sheet: {e}") from None


def check_output(cfg: Config) -> None:
    """run.output must be a folder or not exist yet: a file there (or above it) is one line, not a traceback."""
    out = Path(cfg.base_dir or ".") / Path(cfg.run.output).expanduser()
    for p in [out, *out.parents]:
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"run.output: {str(p)!r} is a file, not a folder; name a folder (made if missing) "
                                  "or move the file away")
            return


def from_dict(data: dict, base_dir: str | Path = ".") -> Config:
    """A checked Config from a raw mapping; relative paths in it are relative to `base_dir`."""
    cfg = build(Config, copy.deepcopy(data))
    cfg.base_dir = str(base_dir)
    check_config(cfg)
    return cfg


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> tuple[Config, dict]:
    """Load, override and check a pipeline file; returns the Config and the raw mapping as run."""
    data = load_raw(path)
    for o in overrides:
        set_override(data, o)
    cfg = from_dict(data, Path(path).resolve().parent)
    return cfg, data


def load_for_command(path: Optional[str], overrides: Sequence[str] = ()) -> Config:
    """A command's config: the pipeline file `path` (None: the embedded default run) with its --set
    overrides, checked."""
    if path is None:
        data: dict = {}
        for o in overrides:
            set_override(data, o)
        return from_dict(data)
    return load_config(path, overrides)[0]
