"""physical: adversarial examples in the physical world (after Kurakin, Goodfellow & Bengio 2016).

The Python API (docs/api.md), loaded on first use (PEP 562), so ``import physical`` stays cheap:

- ``physical.make`` is ``physical.attacks.make``: an attack by name for any ``nn.Module``,
  eps in [0, 1] units; ``physical.AttackResult``: adversarial images, success mask, predictions;
- ``physical.Channel``: the print-and-camera channel (``Channel.from_calibration``);
- ``physical.load_model``: a classifier of the model zoo; ``physical.load_batch``: labelled images as tensors;
- ``physical.run``: a whole run (config, overrides) -> ``RunResult`` (run directory, report).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from physical.attacks import Attack, AttackResult, make
    from physical.channel.core import Channel
    from physical.errors import ConfigError, UserError
    from physical.data.batch import load_batch
    from physical.models import load_model
    from physical.runs.api import RunResult, run

# name -> (module, attribute)
_LAZY = {
    "make": ("physical.attacks", "make"),
    "Attack": ("physical.attacks", "Attack"),
    "AttackResult": ("physical.attacks", "AttackResult"),
    "Channel": ("physical.channel.core", "Channel"),
    "load_model": ("physical.models", "load_model"),
    "load_batch": ("physical.data.batch", "load_batch"),
    "run": ("physical.runs.api", "run"),
    "RunResult": ("physical.runs.api", "RunResult"),
    "UserError": ("physical.errors", "UserError"),
    "ConfigError": ("physical.errors", "ConfigError"),
}
__all__ = ["Attack", "AttackResult", "Channel", "ConfigError", "RunResult", "UserError", "__version__", "load_batch",
           "load_model", "make", "run"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'physical' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
