"""The print-and-camera channel (physical.channel.core); `Channel` and its EOT view `CropChannel` are
exported lazily (PEP 562), so importing one step module does not load them all."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from physical.channel.core import Channel
    from physical.channel.crop import CropChannel

_LAZY = {"Channel": "physical.channel.core", "CropChannel": "physical.channel.crop"}
__all__ = ["Channel", "CropChannel"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'physical.channel' has no attribute {name!r}")
