"""Rates over the frames of a video or a stream, whose neighbouring frames are not independent.

Frames a few milliseconds apart show nearly the same scene, so counting each frame as one
observation makes an interval far too narrow. The frames are grouped into blocks of `block_s`
seconds of the stream's time (the frame's time stamp, not its number), each block's mean is one
observation, and the 95 % interval is Wilson's on the block means: ``wilson(sum of block means,
number of blocks)``. It assumes the blocks independent of each other; the lag-1 correlation of the
block means is reported so that a user can see when they are not (then longer blocks are needed).
The rate itself is the frames' k / n.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from physical.measure.stats import proportion, wilson

CORRELATED = 0.5  # lag-1 correlation of block means above which the blocks are too short to be independent
Values = Union[Sequence[float], np.ndarray]  # a number per frame (a hit: 0 or 1)


def block_means(values: Values, times: Values, block_s: float) -> np.ndarray:
    """The mean of `values` in each block of `block_s` seconds that holds a frame, in time order."""
    v = np.asarray(values, np.float64)
    block = np.floor(np.asarray(times, np.float64) / block_s).astype(np.int64)
    ids, inverse = np.unique(block, return_inverse=True)
    sums = np.bincount(inverse, weights=v, minlength=len(ids))
    counts = np.bincount(inverse, minlength=len(ids))
    return sums / counts


def lag1(means: np.ndarray) -> Optional[float]:
    """Lag-1 correlation of consecutive block means; None with fewer than 3 blocks or no variation."""
    if len(means) < 3 or np.ptp(means[:-1]) == 0 or np.ptp(means[1:]) == 0:
        return None
    return round(float(np.corrcoef(means[:-1], means[1:])[0, 1]), 4)


def block_rate(hits: Values, times: Values, block_s: float) -> dict:
    """{"rate": k / n over the frames, "k", "n", "ci": Wilson 95 % on the block means, "blocks",
    "block_s", "lag1"}; rate and ci None without frames."""
    if block_s <= 0:
        raise ValueError(f"block_rate: block_s {block_s} must be > 0")
    h = np.asarray(hits, bool)
    if len(h) != len(times):
        raise ValueError(f"block_rate: {len(h)} hits against {len(times)} times")
    if not len(h):
        return {"rate": None, "k": 0, "n": 0, "ci": None, "blocks": 0, "block_s": block_s, "lag1": None}
    means = block_means(h, times, block_s)
    return {"rate": float(h.mean()), "k": int(h.sum()), "n": int(len(h)),
            "ci": wilson(float(means.sum()), len(means)), "blocks": int(len(means)), "block_s": block_s,
            "lag1": lag1(means)}


def per_second(hits: Values, times: Values) -> list[dict]:
    """Each second of the stream that holds a frame: {"second", "rate", "k", "n", "ci"}; the interval
    is Wilson's over that second's frames (it describes that second; the overall interval is
    `block_rate`'s)."""
    h = np.asarray(hits, bool)
    sec = np.floor(np.asarray(times, np.float64)).astype(np.int64)
    out = []
    for s in np.unique(sec):
        sel = h[sec == s]
        out.append({"second": int(s), **proportion(int(sel.sum()), int(len(sel)))})
    return out
