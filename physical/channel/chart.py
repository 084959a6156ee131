"""The colour chart's patch colours (`physical calibrate targets`): the colours a colour calibration
measured the printer and camera at, which the channel's colour model and texture are read against."""
from __future__ import annotations

import numpy as np

CUBE_LEVELS = 5  # levels per RGB axis of the cube
GREY_STEPS = 19
GRID = 12  # patches per row and column
SHUFFLE_SEED = 7  # the patches' fixed order on the chart


def chart_colours() -> np.ndarray:
    """(144, 3) uint8 patch colours in slot order (row-major over the 12 x 12 grid)."""
    lv = np.round(np.linspace(0, 255, CUBE_LEVELS)).astype(int)
    cube = np.array([(r, g, b) for r in lv for g in lv for b in lv])
    grey = np.round(np.linspace(0, 255, GREY_STEPS)).astype(int)
    colours = np.concatenate([cube, np.repeat(grey[:, None], 3, 1)])
    assert len(colours) == GRID * GRID
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(colours))
    return colours[order].astype(np.uint8)
