"""Render report.json (and the gallery) into one self-contained HTML page (images embedded)."""
from __future__ import annotations

import base64

import cv2
import jinja2
import numpy as np

from physical.measure.metrics import CONDITIONS
from physical.report.plots import reliability_plot
from physical.report.tables import rate as value

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("physical.report", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def pair(v) -> str:
    """A (top-1, top-5) pair of fractions as 'a / b' percent."""
    return f"{pct(v[0])} / {pct(v[1])}"


def ref_pair(v) -> str:
    return "–" if v is None else f"{v[0]:.1f} / {v[1]:.1f}"


def pp(v) -> str:
    """A difference of fractions as signed percentage points."""
    return "–" if v is None else f"{100 * v:+.1f}"


def sign(v) -> str:
    """CSS class of a difference: pos / neg / ''."""
    return "" if v is None or abs(v) < 1e-12 else ("pos" if v > 0 else "neg")


def eps(v) -> str:
    return "> 1" if v is None else f"{v:.3f}"


def ci(v) -> str:
    """A rate dict's 95 % interval in percent: '[30.6–86.3]'; '' when there is none."""
    if not v or not v.get("ci"):
        return ""
    return f"[{100 * v['ci'][0]:.1f}–{100 * v['ci'][1]:.1f}]"


def rate(v) -> str:
    """A rate dict as 'percent [interval] k/n'."""
    if not v or value(v) is None:
        return f"– (n {v['n'] if v else 0})"
    return f"{pct(value(v))} {ci(v)} {v['k']}/{v['n']}"


def cil(v) -> str:
    """An interval [lo, hi] (fractions) in percent: '[30.6–86.3]'; '' when None."""
    return "" if not v else f"[{100 * v[0]:.1f}–{100 * v[1]:.1f}]"


def pval(v) -> str:
    return "–" if v is None else f"{v:.3g}"


def num(v) -> str:
    return "–" if v is None else f"{v:.3f}"


_ENV.filters.update(pct=pct, pair=pair, ref_pair=ref_pair, pp=pp, sign=sign, eps=eps, ci=ci, rate=rate, pval=pval,
                    cil=cil, num=num)


def data_uri(rgb: np.ndarray, size: int = 224) -> str:
    """An 8-bit RGB image as an embedded JPEG (at most `size` px a side)."""
    h, w = rgb.shape[:2]
    if max(h, w) > size:
        s = size / max(h, w)
        rgb = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    # JPEG keeps the page small (a few MB for the whole gallery); the exact pixels are in the run directory
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()


def render_html(report: dict, gallery: list[dict], sections: list[str] | None = None) -> str:
    """`sections`: extra HTML blocks (already rendered) appended after the main tables."""
    plot = reliability_plot(report["survival"]) if report.get("survival") else None
    return _ENV.get_template("report.html").render(r=report, gallery=gallery, conditions=CONDITIONS,
                                                  sections=sections or [], reliability_plot=plot)
