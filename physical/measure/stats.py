"""Honest statistics for small samples: a 95 % interval for every rate, a paired test for every
comparison on the same images, and the Brier score of a predicted probability.

- Wilson score interval for a proportion k / n (Wilson 1927): unlike the normal approximation it
  stays inside [0, 1] and is not zero-width at k = 0 or k = n, which matters at the n of a lab run.
- McNemar's test for two classifications of the same images (paired): only the discordant images
  count (b = right under A only, c = right under B only). Exact two-sided binomial test on b of
  b + c at p = 1/2 when b + c < 25 (the chi-square approximation is poor there), otherwise the
  chi-square statistic with continuity correction, (|b - c| - 1)^2 / (b + c), one degree of freedom.

Hand-written (a few lines each, checked against hand-computed cases in tests/test_metrics.py).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

Z95 = 1.959963984540054  # two-sided 95 % quantile of the standard normal
ALPHA = 0.05  # a difference is called significant when p < ALPHA
EXACT_BELOW = 25  # discordant pairs below which McNemar's test is the exact binomial one


def wilson(k: float, n: int, z: float = Z95) -> Optional[list[float]]:
    """The Wilson score interval [lo, hi] of the proportion k / n; None when n = 0."""
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"wilson: {k} successes out of {n}")
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)]


def proportion(k: int, n: int, key: str = "rate") -> dict:
    """{key: k / n (None when n = 0), "k", "n", "ci": Wilson 95 % interval}."""
    return {key: k / n if n else None, "k": int(k), "n": int(n), "ci": wilson(k, n)}


def binom_two_sided(b: int, c: int) -> float:
    """Exact two-sided p of b successes in b + c trials at p = 1/2 (twice the smaller tail)."""
    n, m = b + c, min(b, c)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(m + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """McNemar's test of paired outcomes (a[i], b[i]: image i right under A, under B).

    Returns n (pairs), a_only / b_only (the discordant counts), p, the test used, and whether the
    difference is significant at the 5 % level."""
    if len(a) != len(b):
        raise ValueError(f"mcnemar: {len(a)} outcomes against {len(b)}; the pairs must match")
    a_only = sum(1 for x, y in zip(a, b, strict=False) if x and not y)
    b_only = sum(1 for x, y in zip(a, b, strict=False) if y and not x)
    d = a_only + b_only
    if d < EXACT_BELOW:
        p, test = binom_two_sided(a_only, b_only), "exact binomial"
    else:
        chi2 = (abs(a_only - b_only) - 1) ** 2 / d
        p, test = math.erfc(math.sqrt(chi2 / 2)), "chi-square, continuity corrected"
    return {"n": len(a), "a_only": a_only, "b_only": b_only, "p": p, "test": test,
            "significant": p < ALPHA}


def intervals_apart(x: Optional[dict], y: Optional[dict]) -> Optional[bool]:
    """Whether two rates' 95 % intervals do not overlap (a conservative unpaired test); None when
    either has no interval."""
    if not x or not y or not x.get("ci") or not y.get("ci"):
        return None
    return x["ci"][1] < y["ci"][0] or y["ci"][1] < x["ci"][0]


def brier(predicted: Sequence[float], observed: Sequence[bool]) -> Optional[float]:
    """Mean squared difference between predicted probabilities and 0/1 outcomes (0 is perfect; a
    constant 0.5 scores 0.25)."""
    if not predicted:
        return None
    return sum((p - float(o)) ** 2 for p, o in zip(predicted, observed, strict=False)) / len(predicted)


def reliability(predicted: Sequence[float], observed: Sequence[bool], bins: int = 5) -> list[dict]:
    """Equal-width bins of the predicted probability: mean predicted, observed frequency (with its
    Wilson interval) and n per non-empty bin; the points of a reliability diagram."""
    out = []
    for i in range(bins):
        lo, hi = i / bins, (i + 1) / bins
        sel = [(p, o) for p, o in zip(predicted, observed, strict=False)
               if lo <= p < hi or (i == bins - 1 and p == 1.0)]
        if not sel:
            continue
        k = sum(bool(o) for _, o in sel)
        out.append({"bin": [lo, hi], "predicted": sum(p for p, _ in sel) / len(sel),
                    **proportion(k, len(sel), "observed")})
    return out
