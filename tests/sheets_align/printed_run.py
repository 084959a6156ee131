"""A run printed by the real print stage, as the photo tests of this folder pose it."""
from __future__ import annotations

from physical.align import reference_images
from physical.rundir import read_json
from physical.sheets.layout import Layout
from physical.sim import posed_photos as syn
from physical.sim.print_camera import rasterize_pdf
from physical.stages.printing import print_stage


def printed_run(root, name: str, pairs: int) -> dict:
    """`pairs` pairs printed: the layout, the run tag, each cell's size, the reference images and the
    pages rasterized at 300 dpi."""
    run, cfg = syn.make_run(root, name, pairs)
    print_stage(run, cfg)
    lay = read_json(run.root / "print" / "layout.json")
    cells = {(c["sheet"], c["slot"]): c for c in lay["cells"]}
    return {"layout": Layout.from_dict(lay["layout"]), "tag": tuple(lay["tag"]),
            "sizes": {k: (c["width_px"], c["height_px"]) for k, c in cells.items()},
            "refs": reference_images(run.root, cells),
            "pages": list(rasterize_pdf(run.root / "print" / "sheets.pdf", 300))}
