"""The report's `channel` section: which print-and-camera channel a run used, and where each of
its parameters came from (a colour calibration, the preset, or the config)."""
from __future__ import annotations

from .channel import Channel
from .sheets.layout import layout_for


def channel_report(cfg) -> dict:
    """The report's `channel` section: the preset, the calibration, and every parameter's range with
    where it came from (calibration, preset or config), as the simulate stage used them."""
    ch = Channel(cfg.capture.channel)
    page = (cfg.sheet.width_mm, cfg.sheet.height_mm)
    try:
        lay = layout_for(cfg.sheet)
        page = (lay.page_w, lay.page_h)
    except ValueError:
        pass
    ch.for_photo(page, tuple(cfg.capture.frame))
    r, src = ch.ranges(), ch.sources()
    params = {}
    for key, where in src.items():
        rng_ = r.get(key) or r.get({"tilt": "tilt_x", "translate": "translate_x", "white_balance": "wb_r"}.get(key, ""))
        params[key] = {"range": None if rng_ is None else [round(float(v), 5) for v in rng_], "source": where}
    return {"preset": cfg.capture.channel.preset, "calibration": cfg.capture.channel.calibration,
            "frame": list(cfg.capture.frame), "simulated_capture": cfg.capture.source == "simulate",
            "parameters": params}
