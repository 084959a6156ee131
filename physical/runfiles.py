"""The run directory's shared files, known in this one place: where each lives, and how it is read
and written. Stages share nothing but these files (and the images they name).

    generate/index.json       the images made: models, images, items (`load_index`, `save_index`)
    print/layout.json         the printed sheets: layout, run tag, cells (`load_layout` -> PrintedLayout)
    align/crops.json          every crop and why it was accepted or not (`load_crops`, `save_crops`)
    classify/predictions.json one record per prediction (`load_predictions`, `save_predictions`)
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .rundir import RunDir, read_json, write_json
from .sheets.layout import Layout

INDEX = "generate/index.json"
LAYOUT = "print/layout.json"
CROPS = "align/crops.json"
PREDICTIONS = "classify/predictions.json"


def path(run: RunDir | Path, name: str) -> Path:
    """The path of one of the run files above (INDEX, LAYOUT, CROPS, PREDICTIONS) in a run."""
    root = run.root if isinstance(run, RunDir) else Path(run)
    return root / name


# -- print/layout.json ----------------------------------------------------------------------------


@dataclass
class PrintedLayout:
    """What the print stage printed: the sheets' layout, the run tag and every cell, by (sheet, slot)."""

    run_id: Optional[str]
    tag: tuple[int, int]
    layout: Layout
    n_sheets: int
    pdf: str  # relative to the run directory
    cells: dict[tuple[int, int], dict]
    sha: str  # of the file's bytes: what a cache of anything derived from it is keyed by

    @property
    def images_px(self) -> dict[tuple[int, int], tuple[int, int]]:
        return {k: (c["width_px"], c["height_px"]) for k, c in self.cells.items()}


def has_layout(run: RunDir | Path) -> bool:
    return path(run, LAYOUT).is_file()


def load_layout(run: RunDir | Path, missing: str = "run the print stage first (physical run CONFIG --until print)"
                ) -> PrintedLayout:
    p = path(run, LAYOUT)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: missing; {missing}")
    raw = p.read_bytes()
    d = read_json(p)
    cells = {(c["sheet"], c["slot"]): c for c in d["cells"]}
    n = int(d.get("n_sheets") or (1 + max((s for s, _ in cells), default=-1)))
    return PrintedLayout(d.get("run_id"), tuple(d["tag"]), Layout.from_dict(d["layout"]), n,
                         d.get("pdf", "print/sheets.pdf"), cells, hashlib.sha256(raw).hexdigest()[:16])


def save_layout(run: RunDir, run_id: str, tag: tuple[int, int], layout: Layout, n_sheets: int, pdf: str,
                cells: list[dict]) -> Path:
    return write_json(path(run, LAYOUT), {"run_id": run_id, "tag": list(tag), "layout": layout.to_dict(),
                                          "n_sheets": n_sheets, "pdf": pdf, "cells": cells})


# -- the other files: mappings as the stages write them -------------------------------------------


def load_index(run: RunDir) -> dict:
    return read_json(path(run, INDEX))


def save_index(run: RunDir, models: list, images: list, items: list) -> Path:
    return write_json(path(run, INDEX), {"models": models, "images": images, "items": items})


def load_crops(run: RunDir) -> Optional[dict]:
    """align/crops.json, or None before the align stage has run."""
    p = path(run, CROPS)
    return read_json(p) if p.is_file() else None


def save_crops(run: RunDir, data: dict) -> Path:
    return write_json(path(run, CROPS), data)


def load_predictions(run: RunDir) -> list[dict]:
    return read_json(path(run, PREDICTIONS))["records"]


def save_predictions(run: RunDir, records: list[dict]) -> Path:
    return write_json(path(run, PREDICTIONS), {"records": records})
