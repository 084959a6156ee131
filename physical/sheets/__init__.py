"""Sheets: layout in millimetres, fiducial markers, PDF writing, and the print stage."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from ..config import Config
from ..errors import ConfigError
from .. import runfiles
from ..rundir import RunDir, write_bytes
from .layout import Layout, layout_for, paper_size, run_tag
from .pdf import scale_bar_mm, write_sheets

__all__ = ["Layout", "layout_for", "run_tag", "write_sheets", "assign_cells", "print_stage"]


def _label(item: dict, role: str, several_models: bool) -> str:
    eps = item.get("eps")
    parts = [item.get("model", "")] if several_models else []
    parts += [str(item.get("attack", "")), f"eps{eps:g}" if isinstance(eps, (int, float)) else "",
              str(item.get("image", "")), role]
    return " ".join(p for p in parts if p)


def assign_cells(items: list[dict], layout: Layout) -> list[dict]:
    """One pair of neighbouring slots per item (clean, adversarial; see `Layout.pair_slots`), on
    one sheet; a new sheet when full.

    Returns cells {sheet, slot, item, role, image (path relative to the run), label}; raises
    ConfigError (a ValueError) when the items need more sheets than the layout's marker ids allow.
    """
    pairs = layout.pair_slots()
    per_sheet = layout.cells_per_sheet
    n_sheets = layout.sheets_for(len(items))
    if n_sheets > layout.max_sheets:
        raise ConfigError(
            f"sheet: {len(items)} image pairs need {n_sheets} sheets of {per_sheet} cells, but the marker ids "
            f"allow at most {layout.max_sheets} sheets; use fewer images/attacks or a smaller sheet.cell_mm"
        )
    several = len({it.get("model") for it in items}) > 1
    cells = []
    for k, item in enumerate(items):
        sheet, pair = divmod(k, len(pairs))
        for slot, role in zip(pairs[pair], ("clean", "adv")):
            cells.append({"sheet": sheet, "slot": slot, "item": item["key"], "role": role,
                          "image": item[role], "label": _label(item, role, several)})
    return cells


def print_stage(run: RunDir, cfg: Config) -> dict:
    """Lay out every (clean, adversarial) pair of generate/index.json on sheets and write the PDF.

    Writes print/sheets.pdf, print/layout.json and a copy of the PDF in <base_dir>/prints/.
    """
    items = runfiles.load_index(run).items
    if not items:
        raise ValueError(f"{runfiles.path(run, runfiles.INDEX)}: no items to print")
    if not run.exists():
        raise FileNotFoundError(f"{run.manifest_path}: missing; the run has no run id yet")
    run_id = run.run_id
    layout = layout_for(cfg.sheet)
    cells = assign_cells(items, layout)
    for c in cells:
        path = run.root / c["image"]
        try:
            with Image.open(path) as im:
                c["width_px"], c["height_px"] = im.size
                if im.mode not in ("RGB", "L", "P", "RGBA"):
                    raise ValueError(f"{path}: mode {im.mode}, expected an 8-bit image")
        except (OSError, ValueError) as e:
            raise ValueError(f"item {c['item']} ({c['role']}): {e}") from None

    pdf_rel = "print/sheets.pdf"
    title = f"physical - {cfg.run.name}"
    pdf_cells = [{**c, "image": run.root / c["image"]} for c in cells]
    n_sheets = write_sheets(run.root / pdf_rel, layout, pdf_cells, run_id, title)
    runfiles.save_layout(run, run_id, run_tag(run_id), layout, n_sheets, pdf_rel,
                         [{k: c[k] for k in ("sheet", "slot", "item", "role", "image", "width_px", "height_px", "label")}
                          for c in cells])
    prints = Path(cfg.base_dir) / "prints" / f"{cfg.run.name}.pdf"
    write_bytes(prints, (run.root / pdf_rel).read_bytes())
    w, h = paper_size(cfg.sheet)
    return {"sheets": n_sheets, "cells": len(cells), "cells_per_sheet": layout.cells_per_sheet,
            "paper": f"{cfg.sheet.paper} {w:g} x {h:g} mm", "cell_mm": layout.cell,
            "scale_bar_mm": scale_bar_mm(layout), "pdf": str(run.root / pdf_rel), "prints": str(prints)}
