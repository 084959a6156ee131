"""The channel's steps, in physical order: printer, geometry, optics, lighting, sensor, codec.

Each step is one module with its scalar parameters (``NAMES``, in the order they are drawn), their
identity values (``IDENTITY``), ``ranges(get, k)`` (the (low, high) each is drawn from: `get(key)`
reads a config key, a calibration's measured range first; `k` is the strength) and a deterministic
``apply(x, params, ...)``. `physical.channel.core.Channel` draws every step's parameters in one
uniform draw (the steps' order fixes the random stream) and applies the steps in order; a step is
added or tested alone.
"""
from __future__ import annotations

from physical.channel.steps import codec, geometry, lighting, optics, printer, sensor

STEPS = (printer, geometry, optics, lighting, sensor, codec)
