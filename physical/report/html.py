"""Render report.json (and the gallery) into one self-contained HTML page (images embedded)."""
from __future__ import annotations

import jinja2

from ..metrics import CONDITIONS

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


_ENV.filters.update(pct=pct, pair=pair, ref_pair=ref_pair, pp=pp, sign=sign, eps=eps)


def render_html(report: dict, gallery: list[dict], sections: list[str] | None = None) -> str:
    """`sections`: extra HTML blocks (already rendered) appended after the main tables."""
    return _ENV.get_template("report.html").render(r=report, gallery=gallery, conditions=CONDITIONS,
                                                  sections=sections or [])
