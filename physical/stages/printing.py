"""The print stage: every (clean, adversarial) pair of the run on PDF sheets, and the layout."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from physical.config import Config
from physical import runfiles
from physical.rundir import RunDir, digest, file_digest, read_json, write_bytes, write_json
from physical.sheets.layout import layout_for, paper_size, run_tag
from physical.sheets.cells import assign_cells
from physical.sheets.pdf import scale_bar_mm, write_sheets

HISTORY = "print/history.json"  # every print of the run whose cells changed: its number, tag and cells


def print_tag(run: RunDir, run_id: str, cells: list[dict]) -> tuple[int, int]:
    """The run tag of this print: of the run id and of what every cell shows (its place, item, role,
    label and image bytes: attack, eps, image and model all change them). A print whose tag differs
    from the last one's is recorded in print/history.json, so align names a photo of the outdated
    print ("other print") instead of measuring it as the new content."""
    content = digest([[c["sheet"], c["slot"], c["item"], c["role"], c.get("label"),
                       file_digest(run.root / c["image"])] for c in cells])
    tag = run_tag(run_id, content)
    path = run.root / HISTORY
    history = read_json(path) if path.is_file() else []
    if not history and runfiles.has_layout(run):  # a print made before prints were tagged by their content
        old = runfiles.load_layout(run)
        if tuple(old.tag) != tag:
            history.append({"print": 1, "tag": list(old.tag), "content": None, "cells": len(old.cells)})
    if not history or history[-1]["tag"] != list(tag):
        history.append({"print": len(history) + 1, "tag": list(tag), "content": content, "cells": len(cells)})
        write_json(path, history)
    return tag


def earlier_prints(run: RunDir, tag: tuple[int, int]) -> dict[tuple[int, int], str]:
    """Tag -> description of every earlier print of this run whose tag is not `tag` (the current one)."""
    path = run.root / HISTORY
    if not path.is_file():
        return {}
    return {tuple(h["tag"]): f"other print: a sheet of print {h['print']} of this run, made before its cells "
                             "changed (attack, eps, images or model); print the current sheets and photograph those"
            for h in read_json(path) if tuple(h["tag"]) != tuple(tag)}


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
    tag = print_tag(run, run_id, cells)
    n_sheets = write_sheets(run.root / pdf_rel, layout, pdf_cells, run_id, title, tag)
    runfiles.save_layout(run, run_id, tag, layout, n_sheets, pdf_rel,
                         [{k: c[k] for k in ("sheet", "slot", "item", "role", "image", "width_px", "height_px",
                                             "label")}
                          for c in cells])
    prints = Path(cfg.base_dir) / "prints" / f"{cfg.run.name}.pdf"
    write_bytes(prints, (run.root / pdf_rel).read_bytes())
    w, h = paper_size(cfg.sheet)
    return {"sheets": n_sheets, "cells": len(cells), "cells_per_sheet": layout.cells_per_sheet,
            "paper": f"{cfg.sheet.paper} {w:g} x {h:g} mm", "cell_mm": layout.cell,
            "scale_bar_mm": scale_bar_mm(layout), "pdf": str(run.root / pdf_rel), "prints": str(prints)}
