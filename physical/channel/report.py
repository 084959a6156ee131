"""The report's `channel` section: which print-and-camera channel a run used, and where each of
its parameters came from (a colour calibration, the preset, or the config)."""
from __future__ import annotations

from physical.channel.build import run_channel
from physical.channel.core import IDENTITY, Channel


def channel_report(cfg) -> dict:
    """The report's `channel` section: the preset, the calibration, and every parameter's range with
    where it came from (calibration, preset or config), as the simulate stage used them."""
    ch = run_channel(cfg)
    r, src = ch.ranges(), ch.sources()
    params = {}
    for key, where in src.items():
        rng_ = r.get(key) or r.get({"tilt": "tilt_x", "translate": "translate_x", "white_balance": "wb_r"}.get(key, ""))
        params[key] = {"range": None if rng_ is None else [round(float(v), 5) for v in rng_], "source": where}
    return {"preset": cfg.capture.channel.preset, "calibration": cfg.capture.channel.calibration,
            "halftone_lpi": cfg.capture.channel.halftone_lpi,
            "frame": list(cfg.capture.frame), "simulated_capture": cfg.capture.source == "simulate",
            "parameters": params}


def describe(ch: Channel, strength: float = 1.0) -> str:
    """One line per parameter: its range, or 'off' where it collapses onto the identity, and where
    it comes from (calibration, preset or config)."""
    lines = []
    r = ch.ranges(strength)
    if ch.calibration is not None:
        lines.append(f"printer: fitted colour calibration {ch.calibration.path} (strength {strength:g})")
    if ch.texture is not None:
        by = " and by the colour printed" if ch.texture_table is not None else ""
        lines.append(f"noise: the photos' measured texture (power spectrum), its level scaled by noise_sigma{by}")
    if ch.halftone_lpi is not None:
        lines.append(f"halftone: the simulator prints its pages with {ch.halftone_lpi:g}-lpi screens (config)")
    src = ch.sources()
    for name, (lo, hi) in r.items():
        if name == "light_angle_deg" and r["light_gradient"] == (0.0, 0.0):
            continue  # a direction of no gradient
        if ch.calibration is not None and name in ("print_gamma", "paper_white", "ink_black"):
            continue  # replaced by the calibration
        key = {"tilt_x": "tilt", "tilt_y": "tilt", "translate_x": "translate", "translate_y": "translate",
               "wb_r": "white_balance", "wb_g": "white_balance", "wb_b": "white_balance"}.get(name, name)
        where = f" ({src[key]})" if key in src else ""
        if lo == hi == IDENTITY[name]:
            lines.append(f"{name}: off{where}")
        elif lo == hi:
            lines.append(f"{name}: {lo:g}{where}")
        else:
            lines.append(f"{name}: {lo:g} .. {hi:g}{where}")
    return "\n".join(lines)
