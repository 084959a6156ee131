"""95 % intervals for the rates of the experiments' tables (transformations, defences, transfer,
generalisation): each rate column ``X_topK`` gains ``X_topK_ci`` (Wilson, from the rate and the n it
was measured on), so every accuracy and destruction rate of report.json carries its interval.

Which n a column was measured on: ``destruction_topK`` on ``destruction_n_topK``; photo columns on
``n_photo``; generalisation's fool rates on the images correctly classified when clean
(``n_clean_correct_topK``): its pairs and random draws reuse each image, so they are not independent
and counting them would make the interval too narrow. Differences (``*_lost``, ``*_recovered``)
are not proportions and get none.
"""
from __future__ import annotations

import re
from typing import Optional

from physical.measure.stats import wilson

RATE = re.compile(r"^(?P<base>.+)_top(?P<k>[15])$")


def n_column(section: str, base: str, k: str) -> Optional[str]:
    """The column holding the n of rate column ``{base}_top{k}`` in `section`; None: not a rate."""
    if base.endswith(("_lost", "_recovered", "_n")) or base.startswith("n_"):  # differences and counts
        return None
    if section == "transformations":
        return f"destruction_n_top{k}" if base == "destruction" else "n"
    if section == "defences":
        return "n_photo" if "photo" in base else "n"
    if section == "transfer":
        return "n_photo" if "photo" in base else "n"
    if section == "generalisation":
        return f"n_clean_correct_top{k}" if base.endswith("_fool") else None
    return None


def add_intervals(section: str, rows: list[dict]) -> None:
    """Add ``<column>_ci`` to every rate column of `rows` (in place)."""
    for row in rows:
        for col, v in list(row.items()):
            m = RATE.match(col)
            ncol = n_column(section, m["base"], m["k"]) if m else None
            if ncol is None or isinstance(v, bool) or not isinstance(v, (int, float, type(None))):
                continue
            n = row.get(ncol) or 0
            row[f"{col}_ci"] = wilson(v * n, n) if v is not None and n else None
