"""A lab day through the command line: `physical print CONFIG` writes the sheets and says where they
are; the sheets are "photographed" (the real PDF rasterized and placed into phone-sized photos with
odd names, the way a phone names them, beside files that are not photos); `physical run CONFIG
--from capture --set capture.source=FOLDER` goes on with them to the report.
"""
from __future__ import annotations

import json
import os

import numpy as np
import yaml

from physical.cli.main import main
from physical.rundir import read_json, write_image
from physical.sim import posed_photos as syn
from physical.sheets.layout import Layout
from physical.sim.print_camera import rasterize_pdf

TINY = {
    "run": {"name": "lab", "output": "runs", "seed": 1},
    "images": {"limit": 2},
    "attacks": [{"name": "fgsm", "eps": [16]}],
    "experiments": {"enabled": False},
    "report": {"gallery": 4},
}


def test_print_then_phone_photos_to_the_report(tmp_path, capsys):
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    assert main(["print", str(cfg)]) == 0
    out = capsys.readouterr().out
    root = tmp_path / "runs" / "lab"
    assert "1 sheet (a4 210 x 297 mm), 4 cells of 45 mm, up to 12 per sheet" in out
    assert f"PDF: {root / 'print' / 'sheets.pdf'}" in out and "prints/lab.pdf" in out
    assert "must measure 50 mm" in out and f"physical run {cfg} --from capture --set capture.source=" in out
    assert not (root / "capture").exists()
    # asked again: nothing to do, same answer; from the run directory too
    assert main(["print", str(cfg)]) == 0 and "wrote the sheets" not in capsys.readouterr().out
    assert main(["print", str(root)]) == 0 and "1 sheet (a4" in capsys.readouterr().out
    assert main(["print", str(root), "--force"]) == 0
    out = capsys.readouterr().out
    assert "wrote the sheets" in out
    # given as a run directory, the run's paths stay relative to its YAML's folder, not to where the
    # command runs: the printer's copy lands beside the YAML; and written files are not private (0600)
    copy = tmp_path / "prints" / "lab.pdf"
    assert f"copy for the printer: {copy}" in out
    umask = os.umask(0)
    os.umask(umask)
    assert copy.stat().st_mode & 0o777 == 0o666 & ~umask
    assert main(["print", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such run directory or pipeline file" in capsys.readouterr().err

    # the phone: two photos of the sheet at odd angles, odd names; and what else lands in a folder
    lay = read_json(root / "print" / "layout.json")
    layout = Layout.from_dict(lay["layout"])
    page = next(rasterize_pdf(root / "print" / "sheets.pdf", 200))
    rng = np.random.default_rng(3)
    phone = tmp_path / "phone"
    phone.mkdir()
    shots = (("IMG_20261125_101512.jpg", 97.0, (2400, 1800)), ("Photo 3 (copy).JPG", 192.0, (1800, 2400)))
    for name, angle, size in shots:
        h = syn.fit_in_frame(layout, angle, 240, (0.15, -0.1), size, rng)
        photo = syn.camera(syn.place(syn.desk(size, rng), page, 200, h), rng, blur=0.9, noise=3.0, gradient=0.2)
        write_image(phone / name, photo, quality=88)
    (phone / "notes.txt").write_text("sheet 1 printed on the office printer")
    (phone / "IMG_broken.jpg").write_bytes((phone / "IMG_20261125_101512.jpg").read_bytes()[:4000])

    assert main(["run", str(cfg), "--from", "capture", "--set", f"capture.source={phone}"]) == 0
    out = capsys.readouterr().out
    assert "align: skipped IMG_broken.jpg: corrupt or truncated image" in out
    crops = read_json(root / "align" / "crops.json")
    assert crops["missing"] == [] and len([c for c in crops["crops"] if c["best"]]) == 4
    assert {c["photo"] for c in crops["crops"] if c["accepted"]} == {"IMG_20261125_101512.jpg", "Photo 3 (copy).JPG"}
    report = json.loads((root / "report" / "report.json").read_text())
    (row,) = report["kurakin"]
    assert row["average"]["accuracy"]["photo_adv"]["top1"]["n"] == 2
    assert row["average"]["accuracy"]["photo_clean"]["top1"]["n"] == 2
    assert [p["photo"] for p in report["align"]["photos_skipped"]] == ["IMG_broken.jpg"]
