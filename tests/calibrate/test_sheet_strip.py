"""Chart photos that do not fit the sheets: another printer or paper (the sheets' colour strip says),
and too few usable patches. One line naming the photos and what to do, exit 2, nothing written."""
from __future__ import annotations

import numpy as np
import pytest

from physical.channel.core import Channel
from physical.config import ChannelConfig
from physical.rundir import read_image, write_image, write_json
from physical.sim.target_photos import simulate_target_photos
from tests.calibrate.test_calibrate import truth_document
from tests.runs.test_run_trust import one_line_error

STEADY = dict(white_balance=0.0, light_gradient=0.0, brightness=[0.0, 0.0], contrast=[1.0, 1.0],
              jpeg_quality=[90.0, 90.0], rotation_deg=5.0)


def _photos(pdf, folder, calibration, n, prefix):
    cfg = ChannelConfig(calibration=str(calibration), **STEADY)
    return simulate_target_photos(pdf, folder, Channel(cfg), n, seed=3, dpi=150, frame=(1500, 2000), prefix=prefix)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Chart photos and sheet photos of one printer (truth.json), and sheet photos of another (other.json:
    less red, more blue ink)."""
    from physical.calibrate.targets import write_targets
    from physical.runs.checks import from_dict
    from physical.runs.pipeline import run_pipeline

    d = tmp_path_factory.mktemp("lab")
    write_targets(d / "targets")
    write_json(d / "truth.json", truth_document())
    other = truth_document()
    m = np.array(other["model"]["matrix"])
    m[0] *= 0.75
    m[2] *= 1.2
    other["model"]["matrix"] = m.tolist()
    write_json(d / "other.json", other)
    data = {"run": {"name": "r", "output": str(d), "seed": 0, "device": "cpu"}, "models": ["efficientnet_lite0"],
            "images": {"source": "samples", "limit": 1}, "attacks": [{"name": "fgsm", "eps": [16]}],
            "report": {"html": False}}
    run_pipeline(from_dict(data, d), until="print", log=lambda *a: None)
    _photos(d / "targets" / "colour-chart.pdf", d / "chart", d / "truth.json", 2, "chart")
    for name in ("truth", "other"):
        _photos(d / "r" / "print" / "sheets.pdf", d / f"sheets-{name}", d / f"{name}.json", 1, "sheet")
    return d


@pytest.mark.slow  # a colour fit from two chart photos
def test_chart_of_another_printer_than_the_sheets_stops_the_calibration(lab, capsys):
    from physical.cli.main import main

    out = lab / "colour.json"
    assert main(["calibrate", "colour", "--source", str(lab / "chart"), "--out", str(out),
                 "--sheets", str(lab / "sheets-other")]) == 2
    one_line_error(capsys, f"the chart photos in {lab / 'chart'} and the sheets in sheet00.jpg were not printed "
                           "alike", "print the colour chart on the printer and paper of the sheets")
    assert not out.exists()
    assert main(["calibrate", "colour", "--source", str(lab / "chart"), "--out", str(out),
                 "--sheets", str(lab / "sheets-truth")]) == 0
    assert "the colour strip agrees with the calibration" in capsys.readouterr().out and out.is_file()


@pytest.mark.slow  # shares the chart photos above
def test_chart_photos_with_too_few_usable_patches_name_the_photos(lab, tmp_path, capsys):
    from physical.cli.main import main

    for p in sorted((lab / "chart").glob("*.jpg")):  # every photo shows only the left half of the chart
        photo = read_image(p)
        write_image(tmp_path / "cut" / p.name, np.ascontiguousarray(photo[:, : photo.shape[1] * 55 // 100]))
    assert main(["calibrate", "colour", "--source", str(tmp_path / "cut"), "--out", str(tmp_path / "c.json")]) == 2
    one_line_error(capsys, "patches were not seen in any photo (chart00.jpg, chart01.jpg)",
                   "take at least one photo that shows the whole chart")
    assert not (tmp_path / "c.json").exists()
