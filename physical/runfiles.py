"""The run directory's shared files, known in this one place: where each lives, and how it is read
and written. Stages share nothing but these files (and the images they name).

    generate/index.json       the images made: models, images, items (`load_index` -> RunIndex)
    print/layout.json         the printed sheets: layout, run tag, cells (`load_layout` -> PrintedLayout)
    align/crops.json          every crop and why it was accepted or not (`load_crops` -> AlignedCrops)
    classify/predictions.json one record per item and model (`load_predictions` -> Predictions)

Each file is read into a typed object (`from_json`) and written from one (`to_json`); the format on
disk is the one the stages have always written, so old runs still load. The rows inside (an item, a
crop, a record) stay mappings: they are what the report and the tests read.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from physical.rundir import RunDir, read_image, read_json, write_json
from physical.sheets.layout import Layout

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


# -- generate/index.json -------------------------------------------------------------------------


@dataclass
class RunIndex:
    """What the generate stage made: its models and source images, and every item (one mapping per
    item: key, model, attack label, eps, image name, label, clean and adversarial image paths, and
    what a family adds) in the order they were made."""

    models: dict | list = field(default_factory=list)  # name -> {input_size}; [] where no model made them
    images: list = field(default_factory=list)
    items: list[dict] = field(default_factory=list)

    def by_key(self) -> dict[str, dict]:
        return {it["key"]: it for it in self.items}

    @classmethod
    def from_json(cls, d: dict) -> "RunIndex":
        return cls(d.get("models", []), d.get("images", []), d.get("items", []))

    def to_json(self) -> dict:
        return {"models": self.models, "images": self.images, "items": self.items}


def load_index(run: RunDir, missing: str = "run the generate stage first") -> RunIndex:
    p = path(run, INDEX)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: missing; {missing}")
    return RunIndex.from_json(read_json(p))


def save_index(run: RunDir, index: RunIndex) -> Path:
    return write_json(path(run, INDEX), index.to_json())


# -- align/crops.json -----------------------------------------------------------------------------


@dataclass
class AlignedCrops:
    """What the align stage found: every crop of every photo (its item, role, sheet, slot, quality
    figures, `accepted`, `reason` and rejection codes), every photo with its status, the cells no
    photo showed, and the photos set aside."""

    crops: list[dict] = field(default_factory=list)
    photos: list[dict] = field(default_factory=list)
    missing: list = field(default_factory=list)
    excluded: dict | list = field(default_factory=list)  # threshold -> crops it excluded

    def accepted(self) -> list[dict]:
        return [c for c in self.crops if c["accepted"]]

    @classmethod
    def from_json(cls, d: dict) -> "AlignedCrops":
        return cls(d.get("crops", []), d.get("photos", []), d.get("missing", []), d.get("excluded", []))

    def to_json(self) -> dict:
        return {"crops": self.crops, "photos": self.photos, "missing": self.missing, "excluded": self.excluded}


def load_crops(run: RunDir) -> Optional[AlignedCrops]:
    """align/crops.json, or None before the align stage has run."""
    p = path(run, CROPS)
    return AlignedCrops.from_json(read_json(p)) if p.is_file() else None


def save_crops(run: RunDir, crops: AlignedCrops) -> Path:
    return write_json(path(run, CROPS), crops.to_json())


# -- classify/predictions.json --------------------------------------------------------------------


@dataclass
class Predictions:
    """What the classify stage predicted: one record per item and model (its top-5 in every condition,
    the crops it was made from)."""

    records: list[dict] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: dict) -> "Predictions":
        return cls(d["records"])

    def to_json(self) -> dict:
        return {"records": self.records}


def read_predictions(p: str | Path) -> Predictions:
    """A predictions.json at any path (e.g. another run's, found from its report)."""
    return Predictions.from_json(read_json(p))


def load_predictions(run: RunDir) -> Predictions:
    return read_predictions(path(run, PREDICTIONS))


def save_predictions(run: RunDir, predictions: Predictions) -> Path:
    return write_json(path(run, PREDICTIONS), predictions.to_json())


def load_item_images(run: RunDir, items: list[dict], role: str) -> np.ndarray:
    """The 8-bit images of `role` ('clean' or 'adv') of items, as uint8 NHWC."""
    return np.stack([read_image(run.root / it[role]) for it in items])
