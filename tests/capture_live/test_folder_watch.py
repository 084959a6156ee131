"""`physical capture RUN --source folder:PATH --watch`: photos arriving in a folder (a phone
syncing) are aligned as they come, the checklist of what is still missing is printed, and the
capture ends when every cell is captured."""
from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np

from physical.cli.main import main
from physical.rundir import read_json
from physical.stages.printing import print_stage
from physical.sim import posed_photos as syn
from physical.sheets.layout import Layout
from physical.sim.print_camera import rasterize_pdf


def test_watch_aligns_photos_as_they_arrive(tmp_path, capsys):
    run, cfg = syn.make_run(tmp_path, "watch", 12)  # 2 sheets of 12 cells
    print_stage(run, cfg)
    run.mark("print", "done")  # as the pipeline records it: capture follows a finished print
    layout = Layout.from_dict(read_json(run.root / "print" / "layout.json")["layout"])
    pages = list(rasterize_pdf(run.root / "print" / "sheets.pdf", 300))
    rng = np.random.default_rng(4)
    shots = [syn.random_photo(pg, 300, layout, "mild", rng, size=(2400, 1800))["jpeg"] for pg in pages]
    phone = tmp_path / "phone"
    phone.mkdir()
    errors = []

    def sync():  # the phone: one photo, a broken file, a photo written in two halves
        try:
            time.sleep(1.0)
            (phone / "IMG_0001.JPG").write_bytes(shots[0])
            time.sleep(1.5)
            (phone / "IMG_0002.JPG").write_bytes(b"\xff\xd8\xff not really a photo")
            with open(phone / "IMG_0003.JPG", "wb") as f:
                f.write(shots[1][: len(shots[1]) // 2])
                f.flush()
                time.sleep(1.2)
                f.write(shots[1][len(shots[1]) // 2:])
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    t = threading.Thread(target=sync)
    t.start()
    t0 = time.time()
    rc = main(["capture", str(run.root), "--source", f"folder:{phone}", "--watch", "--timeout", "60"])
    t.join()
    assert rc == 0 and not errors and time.time() - t0 < 60
    out = capsys.readouterr().out
    assert "capture: IMG_0001.JPG: 12 cells of sheet(s) 0, 12 new" in out, out
    assert "still missing: sheet 1 (all 12 cells)" in out
    assert "capture: skipped IMG_0002.JPG" in out
    assert "capture: IMG_0003.JPG: 12 cells of sheet(s) 1, 12 new" in out and "every cell captured" in out
    assert sorted(p.name for p in run.photos_dir.iterdir()) == ["IMG_0001.JPG", "IMG_0003.JPG"]
    assert (run.photos_dir / "IMG_0003.JPG").read_bytes() == shots[1]
    summary = json.loads((run.root / "manifest.json").read_text())["stages"]["capture"]["summary"]
    assert summary["stopped"] == "complete" and summary["cells_missing"] == [] and summary["photos"] == 2
    # a folder that never completes the run: the watch ends at the timeout with the checklist
    (phone / "IMG_0003.JPG").unlink()
    rc = main(["capture", str(run.root), "--source", f"folder:{phone}", "--watch", "--timeout", "3"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "sheets not captured: 1" in out and cv2.imread(str(run.photos_dir / "IMG_0001.JPG")) is not None
