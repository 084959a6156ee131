"""The whole loop, driven through the command line as a user would."""
import json
from pathlib import Path

import pytest
import yaml

from physical.cli.main import main

TINY = {
    "run": {"name": "tiny", "output": "runs", "seed": 1},
    "images": {"limit": 2},
    "attacks": [{"name": "fgsm", "eps": [16]}],
    "capture": {"dpi": 120, "frame": [1400, 1050]},
    "experiments": {"enabled": False},
    "report": {"gallery": 4},
}


def write_config(tmp_path: Path, **changes) -> Path:
    cfg = json.loads(json.dumps(TINY))
    cfg.update(changes)
    p = tmp_path / "pipeline.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def mtimes(root: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file() and p.name not in ("manifest.json", "run.log")}  # run.log: every run appends to it


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = write_config(tmp)
    assert main(["run", str(cfg)]) == 0
    return tmp, cfg, tmp / "runs" / "tiny"


def test_end_to_end_report_counts_add_up(tiny_run):
    tmp, cfg, root = tiny_run
    report = json.loads((root / "report" / "report.json").read_text())
    (row,) = report["kurakin"]
    assert row["attack_label"] == "fgsm_eps16" and row["average"]["n"] == 2
    # the channel the photos went through, and where each of its parameters came from
    ch = report["channel"]
    assert ch["preset"] == "phone" and ch["calibration"] is None and ch["frame"] == [1400, 1050]
    assert ch["parameters"]["blur_sigma"] == {"range": [0.5, 1.0], "source": "preset phone"}
    acc = row["average"]["accuracy"]
    assert acc["digital_clean"]["top1"]["n"] == 2 and acc["digital_adv"]["top1"]["n"] == 2
    # every printed cell was photographed and found: 2 clean + 2 adversarial crops
    assert acc["photo_clean"]["top1"]["n"] == 2 and acc["photo_adv"]["top1"]["n"] == 2
    d = row["average"]["destruction"]["top1"]
    preds = json.loads((root / "classify" / "predictions.json").read_text())["records"]
    fooled = [r for r in preds if r["pred"]["digital_clean"]["top"][0] == r["label"] != r["pred"]["digital_adv"]["top"][0]]
    assert d["n"] == len(fooled)
    crops = json.loads((root / "align" / "crops.json").read_text())
    assert not crops["missing"] and sum(c["best"] for c in crops["crops"]) == 4
    # the sheets are easy to find, and the HTML report shows the gallery with photo crops
    assert (tmp / "prints" / "tiny.pdf").is_file()
    html = (root / "report" / "report.html").read_text()
    assert "photo adversarial" in html and html.count("data:image/jpeg;base64") >= 8
    manifest = json.loads((root / "manifest.json").read_text())
    assert all(manifest["stages"][s]["state"] == "done" for s in ("generate", "print", "capture", "align", "classify", "report"))
    assert manifest["seed"] == 1 and manifest["versions"]["torch"]


def test_rerun_redoes_nothing_and_from_redoes_the_rest(tiny_run, capsys):
    tmp, cfg, root = tiny_run
    before = mtimes(root)
    assert main(["run", str(cfg)]) == 0
    assert mtimes(root) == before
    assert capsys.readouterr().out.count("already done") >= 6
    assert main(["run", str(cfg), "--from", "align"]) == 0
    after = mtimes(root)
    gen = [p for p in before if "/generate/" in p or "/capture/" in p]
    assert gen and all(after[p] == before[p] for p in gen)
    assert after[str(root / "align" / "crops.json")] != before[str(root / "align" / "crops.json")]


def test_interrupted_stage_resumes_without_redoing_finished_ones(tmp_path, monkeypatch):
    cfg = write_config(tmp_path)
    import physical.stages.classify as classify

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(classify, "classify_stage", boom)
    assert main(["run", str(cfg)]) == 130
    root = tmp_path / "runs" / "tiny"
    m = json.loads((root / "manifest.json").read_text())["stages"]
    assert m["align"]["state"] == "done" and m["classify"]["state"] == "interrupted"  # not left "running"
    assert not (root / "classify" / "predictions.json").exists()
    before = mtimes(root)
    monkeypatch.undo()
    assert main(["run", str(cfg)]) == 0
    after = mtimes(root)
    assert all(after[p] == before[p] for p in before)  # nothing that finished was rewritten
    assert (root / "report" / "report.json").is_file()


def test_lab_day_stop_after_print_then_photos_from_a_folder(tmp_path):
    """Stop after print, 'photograph' the sheets (here: the simulator into a folder), go on from capture."""
    cfg = write_config(tmp_path)
    assert main(["run", str(cfg), "--until", "print"]) == 0
    root = tmp_path / "runs" / "tiny"
    assert not (root / "capture").exists()
    # the phone's photos: any names, any order
    from physical.runs.checks import load_config
    from physical.runs.pipeline import run_dir_for
    from physical.sim.print_camera import simulate_stage

    c, _ = load_config(cfg)
    run = run_dir_for(c)
    simulate_stage(run, c)
    phone = tmp_path / "phone"
    phone.mkdir()
    for i, p in enumerate(sorted(run.photos_dir.iterdir())):
        p.rename(phone / f"IMG_{9000 - i}.jpg")
    (phone / "notes.txt").write_text("not a photo")
    (phone / "IMG_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert main(["run", str(cfg), "--from", "capture", "--set", f"capture.source={phone}"]) == 0
    report = json.loads((root / "report" / "report.json").read_text())
    (row,) = report["kurakin"]
    assert row["average"]["accuracy"]["photo_adv"]["top1"]["n"] == 2
    skipped = [p["photo"] for p in report["align"]["photos_skipped"]]
    assert any("IMG_broken" in p for p in skipped)


def test_unknown_stage_start_without_finished_predecessors(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert main(["run", str(cfg), "--from", "align"]) != 0
