"""Runs a lab can trust, driven through the command line: every stage keyed by what it read, nothing
silently reused, nothing lost, one writer, one-line errors (exit 2) for bad input."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from physical.cli.main import main
from physical.rundir import read_image, write_image

pytestmark = pytest.mark.slow  # a whole run in a fixture, then the command line again and again per test

EPS = 8

CONFIG = {
    "run": {"name": "trust", "output": "runs", "seed": 1},
    "images": {"source": "images"},
    "attacks": [{"name": "fgsm", "eps": [EPS]}, {"name": "bim", "eps": [EPS], "steps": 2}],
    "sheet": {"cell_mm": 30},
    "capture": {"dpi": 100, "frame": [1000, 750]},
    "experiments": {"enabled": False},
    "report": {"gallery": 2, "html": False},
}


def make_images(folder: Path, names=("a", "b"), samples=("chelsea", "coffee")) -> None:
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    for n, s in zip(names, samples):
        write_image(folder / f"{n}.png", getattr(skimage.data, s)()[:300, :300])
    (folder / "labels.csv").write_text("file,class_index\n" + "".join(
        f"{n}.png,{281 if s == 'chelsea' else 967}\n" for n, s in zip(names, samples)))


def write_config(tmp: Path, cfg: dict | None = None, **changes) -> Path:
    cfg = json.loads(json.dumps(cfg or CONFIG))
    for k, v in changes.items():
        cfg[k] = v
    p = tmp / "pipeline.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def summary(root: Path, stage: str) -> dict:
    return manifest(root)["stages"][stage]["summary"]


def temp_files(tmp: Path) -> list[Path]:
    return [p for p in tmp.rglob(".partial-*")]


def kurakin(root: Path) -> list:
    rows = json.loads((root / "report" / "report.json").read_text())["kurakin"]
    return rows


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A finished tiny run (2 images of a folder, fgsm + 2-step bim), to copy for each test."""
    tmp = tmp_path_factory.mktemp("trust")
    make_images(tmp / "images")
    cfg = write_config(tmp)
    assert main(["run", str(cfg)]) == 0
    return tmp


@pytest.fixture
def lab(base, tmp_path):
    """A private copy of the finished run: (folder, config, run directory)."""
    dst = tmp_path / "lab"
    shutil.copytree(base, dst)
    return dst, dst / "pipeline.yaml", dst / "runs" / "trust"


def pngs(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in (root / "generate").rglob("*.png")}


# ----------------------------------------------------------------------------------------------
# content keying


def test_same_names_other_contents_redo_the_images(lab, capsys):
    tmp, cfg, root = lab
    before = pngs(root)
    # b.png now holds another photo: its clean and adversarial images are made again, a's are kept
    import skimage.data

    write_image(tmp / "images" / "b.png", skimage.data.astronaut()[:300, :300])
    assert main(["run", str(cfg)]) == 0
    after = pngs(root)
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == sorted(k for k in before if k.endswith("/b.png"))
    assert summary(root, "generate")["made"] == 2  # fgsm and bim of b; a's were kept
    for model_dir in (root / "generate").iterdir():  # every pair: clean and adversarial within eps
        for adv in model_dir.glob("*_eps*/*.png"):
            d = np.abs(read_image(adv).astype(int) - read_image(model_dir / "clean" / adv.name).astype(int)).max()
            assert d <= EPS
    # later stages ran on the new images
    assert "[print] ..." in capsys.readouterr().out


def test_changed_attack_parameter_redoes_exactly_its_items(lab, capsys):
    tmp, cfg, root = lab
    before = pngs(root)
    assert main(["run", str(cfg), "--set", "attacks[1].steps=5"]) == 0
    after = pngs(root)
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed and all("/bim_eps8/" in k for k in changed)
    assert summary(root, "generate")["made"] == 2
    # --force redoes everything, and a forced run with another parameter is not left identical
    assert main(["run", str(cfg), "--force", "--set", "attacks[1].steps=1"]) == 0
    assert summary(root, "generate")["made"] == 4  # 2 fgsm + 2 bim: nothing reused
    assert pngs(root)["generate/efficientnet_lite0/bim_eps8/a.png"] != after["generate/efficientnet_lite0/bim_eps8/a.png"]


def test_every_attack_parameter_is_in_the_item_key():
    """Each field of an attack entry (present or added later) changes the key of its images."""
    from physical.attacks import key_params
    from physical.config import AttackConfig, EOTConfig
    from physical.stages.generate import item_key

    base = key_params(AttackConfig(name="bim"))
    key = item_key("img", 1, {"model": "m"}, base, 8, 0)
    changes = {"name": "pgd", "steps": 3, "alpha": 0.5, "target": 5, "decay": 0.5, "random_start": False,
               "diversity_prob": 0.1, "resize_rate": 1.5, "kernel_size": 5, "eot": dataclasses.asdict(EOTConfig()),
               "printability": 10.0, "label": "mine",
               "tv": 1.0, "family_params": {"fraction": 0.2}}
    for name in base:  # the entry's fields and the old families' parameters, kept flat in the key
        if name == "eps":
            continue
        assert name in changes, f"attack parameter {name} has no test of its key"
        assert item_key("img", 1, {"model": "m"}, {**base, name: changes[name]}, 8, 0) != key, name
    for other in (item_key("img2", 1, {"model": "m"}, base, 8, 0), item_key("img", 2, {"model": "m"}, base, 8, 0),
                  item_key("img", 1, {"model": "m", "weights": "x"}, base, 8, 0), item_key("img", 1, {"model": "m"}, base, 16, 0),
                  item_key("img", 1, {"model": "m"}, base, 8, 1),
                  item_key("img", 1, {"model": "m"}, base, 8, 0, {"channel": {"tilt": 0.2}})):
        assert other != key


def test_eot_images_follow_the_channel_they_draw_from():
    from physical.runs.checks import from_dict
    from physical.stages.generate import attack_reads

    cfg = from_dict({"attacks": [{"name": "bim", "eps": [8], "eot": {"samples": 2}}, {"name": "fgsm", "eps": [8]}]})
    eot, plain = (attack_reads(cfg, a) for a in cfg.attacks)
    cfg.capture.channel.halftone_lpi = 150.0  # the simulator's pages only: EOT's images are not screened
    assert attack_reads(cfg, cfg.attacks[0]) == eot and "halftone_lpi" not in eot["channel"]
    cfg.capture.channel.tilt = 0.2
    assert attack_reads(cfg, cfg.attacks[0]) != eot and attack_reads(cfg, cfg.attacks[1]) == plain == {}


def test_the_simulators_halftone_redoes_capture_not_eots_generate():
    """An EOT run's finished generate stays up to date when only the simulator's halftone is set (its
    images are not screened, and runs made before the key existed stay valid); capture is redone."""
    from physical.runs.checks import from_dict
    from physical.config import to_dict
    from physical.runs.runner import section_hash

    raw = {"attacks": [{"name": "bim", "eps": [8], "eot": {"samples": 2}}]}
    before = to_dict(from_dict(raw))
    after = to_dict(from_dict(dict(raw, capture={"channel": {"halftone_lpi": 150}})))
    assert section_hash(after, "generate") == section_hash(before, "generate")
    assert section_hash(after, "capture") != section_hash(before, "capture")
    del before["capture"]["channel"]["halftone_lpi"]  # a run made before the key existed
    assert section_hash(after, "generate") == section_hash(before, "generate")


def test_more_images_after_print_and_a_deleted_output(lab, capsys):
    tmp, cfg, root = lab
    import skimage.data

    write_image(tmp / "images" / "c.png", skimage.data.rocket()[:300, :300])
    assert main(["run", str(cfg)]) == 0
    assert summary(root, "generate")["made"] == 2  # c's fgsm and bim images (and its clean one)
    assert summary(root, "classify")["records"] == 6
    # a deleted adversarial image is made again, alone, and nothing later is redone (same bytes)
    victim = root / "generate" / "efficientnet_lite0" / "bim_eps8" / "a.png"
    data = victim.read_bytes()
    victim.unlink()
    capsys.readouterr()
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "generate/efficientnet_lite0/bim_eps8/a.png is missing" in out
    assert victim.read_bytes() == data and summary(root, "generate")["made"] == 1
    assert "[print] already done" in out and "[report] already done" in out


def test_an_altered_later_output_is_rebuilt_by_its_stage(lab, capsys):
    tmp, cfg, root = lab
    rows = kurakin(root)
    (root / "align" / "crops.json").write_text("{ not json")
    capsys.readouterr()
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "align/crops.json was altered" in out and "[generate] already done" in out
    assert json.loads((root / "align" / "crops.json").read_text())["crops"]
    assert kurakin(root) == rows
    # `physical print RUN` rebuilds a deleted PDF through the same runner
    (root / "print" / "sheets.pdf").unlink()
    assert main(["print", str(root)]) == 0
    assert (root / "print" / "sheets.pdf").is_file()


# ----------------------------------------------------------------------------------------------
# config and input checks come first


@pytest.mark.parametrize("attacks, message", [
    ([{"name": "bim", "eps": [8], "steps": 1}, {"name": "bim", "eps": [8], "steps": 20}],
     "attacks[1].eps[0]: makes 'bim_eps8', as attacks[0].eps[0] does"),
    ([{"name": "fgsm", "eps": [8, 8]}], "attacks[0].eps[1]: 8 appears twice"),
    ([], "attacks: at least one attack is required"),
    (None, "attacks: null is not allowed"),
])
def test_attack_lists_that_would_mix_images_are_errors(tmp_path, capsys, attacks, message):
    cfg = write_config(tmp_path, attacks=attacks)
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "runs").exists()


def test_a_run_too_large_to_print_stops_before_generate(tmp_path, capsys):
    """Every image pair needs a cell pair on a sheet and the markers number 30 sheets (6 pairs each):
    8 sample photos x 23 eps = 184 pairs cannot be printed; said before any image is made."""
    cfg = write_config(tmp_path, attacks=[{"name": "fgsm", "eps": list(range(1, 24))}], images={"source": "samples"},
                       sheet={"cell_mm": 45})
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("physical: error: images.limit: 8 images x 1 model(s) x 23 attack images each = 184 image "
                          "pairs to print, 6 a sheet, but the sheets' marker ids number at most 30 sheets") and \
        err.count("\n") == 1
    assert not (tmp_path / "runs").exists()
    # generate alone is not printed: allowed (checked up to the source, which runs no attack here)
    assert main(["run", str(cfg), "--until", "generate", "--set", "images.limit=1"]) == 0


def test_two_bim_entries_with_their_own_labels_both_run(tmp_path):
    from physical.runs.checks import from_dict

    cfg = from_dict({"attacks": [{"name": "bim", "eps": [8], "steps": 1, "label": "bim1"},
                                 {"name": "bim", "eps": [8], "steps": 20}]})
    from physical.attacks import label_of

    assert [label_of(a, 8) for a in cfg.attacks] == ["bim1_eps8", "bim_eps8"]


def test_a_bad_input_touches_no_status(lab, capsys):
    tmp, cfg, root = lab
    before = (root / "manifest.json").read_bytes()
    assert main(["run", str(cfg), "--set", "images.source=imagez"]) == 2
    assert "images.source" in capsys.readouterr().err
    assert (root / "manifest.json").read_bytes() == before
    assert main(["run", str(cfg), "--set", "capture.source=folder:nowhere"]) == 2
    assert (root / "manifest.json").read_bytes() == before
    # going on from capture after the sheets' config changed: refused, naming the stage; nothing rewritten
    config_yaml = (root / "config.yaml").read_bytes()
    assert main(["run", str(cfg), "--from", "capture", "--set", "sheet.cell_mm=25"]) == 2
    assert "'print'" in capsys.readouterr().err
    assert (root / "manifest.json").read_bytes() == before and (root / "config.yaml").read_bytes() == config_yaml
    assert all(s["state"] == "done" for s in manifest(root)["stages"].values())


def test_a_stage_that_fails_is_marked_failed_and_the_rest_stays(lab, capsys, monkeypatch):
    tmp, cfg, root = lab
    import physical.stages.report as report

    def boom(*a, **k):
        raise ValueError("broken on purpose")

    monkeypatch.setattr(report, "report_stage", boom)
    with pytest.raises(ValueError):
        main(["run", str(cfg), "--from", "report"])
    m = manifest(root)
    assert "running" not in json.dumps(m)
    assert m["stages"]["report"]["state"] == "done" and m["attempts"]["report"]["state"] == "failed"
    monkeypatch.undo()
    assert main(["run", str(cfg)]) == 0  # the earlier report stands: nothing to redo
    assert "[report] already done" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# photos are never lost


def test_photos_from_outside_are_archived_not_replaced(lab, capsys):
    tmp, cfg, root = lab
    phone = tmp / "phone"
    shutil.copytree(root / "capture" / "photos", phone)
    for p in phone.iterdir():
        p.rename(phone / f"IMG_{p.name}")
    assert main(["run", str(cfg), "--from", "capture", "--set", f"capture.source=folder:{phone}"]) == 0
    names = sorted(p.name for p in (root / "capture" / "photos").iterdir())
    assert names and all(n.startswith("IMG_") for n in names)
    shutil.rmtree(phone)  # the lab's only copy is now the run's
    capsys.readouterr()
    # a plain rerun with the default (simulated) capture would redo capture: the photos are archived
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr().out
    archived = sorted((root / "archive").glob("capture-*/IMG_*"))
    assert [p.name for p in archived] == names and "archived, never deleted" in out
    # `physical capture` with a folder keeps them as well
    again = tmp / "again"
    shutil.copytree(root / "capture" / "photos", again)
    assert main(["capture", str(root), "--source", f"folder:{again}"]) == 0
    assert len(list((root / "archive").glob("capture-*"))) == 1  # simulator photos are simply made again


def test_a_lost_photo_of_a_stream_capture_is_named_with_the_command(lab, capsys):
    tmp, cfg, root = lab
    url = "http://127.0.0.1:9/video"  # the lab's phone; it is not needed again below
    cfg = write_config(tmp, capture={**CONFIG["capture"], "source": url})
    phone = tmp / "phone"
    phone.mkdir()
    for k in (1, 2):  # two photos of the sheet
        shutil.copyfile(next((root / "capture" / "photos").iterdir()), phone / f"IMG_{k}.jpg")
    assert main(["capture", str(cfg), "--source", f"folder:{phone}"]) == 0
    photos = sorted((root / "capture" / "photos").iterdir())
    photos[0].unlink()
    capsys.readouterr()
    assert main(["run", str(cfg)]) == 2
    one_line_error(capsys, f"capture/photos/{photos[0].name} is missing", f"physical capture {root} --source {url}",
                   f"--source folder:{root / 'capture' / 'photos'}")
    # going on with the photos as they are: recorded, and the later stages redo
    assert main(["capture", str(root), "--source", f"folder:{root / 'capture' / 'photos'}"]) == 0
    assert main(["run", str(cfg)]) == 0
    assert summary(root, "align")["photos"] == len(photos) - 1


# ----------------------------------------------------------------------------------------------
# one writer


def test_a_second_writer_is_refused_and_a_dead_ones_lock_taken_over(lab, capsys):
    tmp, cfg, root = lab
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": holder.pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00", "command": "x"}
        (root / "run.lock").write_text(json.dumps(lock))
        assert main(["run", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert f"in use by pid {holder.pid}" in err and "since 2026-01-01T00:00:00" in err
    finally:
        holder.kill()
        holder.wait()
    assert main(["run", str(cfg)]) == 0
    assert f"left by pid {holder.pid}" in capsys.readouterr().out
    assert not (root / "run.lock").exists()


# ----------------------------------------------------------------------------------------------
# where a run writes


@pytest.mark.parametrize("name", ["../../x", "", ".", "..", "a/b", " "])
def test_run_name_is_one_folder_name(tmp_path, capsys, name):
    cfg = write_config(tmp_path, run={"name": name, "output": "runs"})
    assert main(["run", str(cfg)]) == 2
    assert "run.name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.yaml"]


def test_a_folder_that_is_not_a_run_is_never_written(tmp_path, capsys):
    make_images(tmp_path / "images")
    cfg = write_config(tmp_path, run={"name": tmp_path.name, "output": ".."})  # the run dir: the config's folder
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(["run", str(cfg)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


# ----------------------------------------------------------------------------------------------
# one-line errors, exit 2


def one_line_error(capsys, *needles) -> str:
    err = capsys.readouterr().err
    assert err.startswith("physical: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


@pytest.mark.parametrize("index", ["5000", "-1"])
def test_labels_csv_class_index_out_of_range(tmp_path, capsys, index):
    make_images(tmp_path / "images")
    (tmp_path / "images" / "labels.csv").write_text(f"file,class_index\na.png,{index}\n")
    assert main(["run", str(write_config(tmp_path))]) == 2
    one_line_error(capsys, "labels.csv line 2", index, "0 .. 999")
    assert not (tmp_path / "runs").exists()


def test_config_errors_are_one_line(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert main(["run", str(cfg), "--set", "images.limit=[1,"]) == 2
    one_line_error(capsys, "--set", "images.limit=[1,", "not valid YAML")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("run: {name: caf\xe9}\n".encode("latin-1"))
    assert main(["run", str(bad)]) == 2
    one_line_error(capsys, "latin1.yaml", "UTF-8")
    assert main(["run", str(cfg), "--set", "images.limit=null"]) == 2
    err = one_line_error(capsys, "images.limit: null")
    assert "None" not in err
    assert main(["run", str(cfg), "--set", "report.html=null"]) == 2
    assert "None" not in one_line_error(capsys, "report.html: null")


def test_corrupt_manifest_is_named(lab, capsys):
    tmp, cfg, root = lab
    (root / "manifest.json").write_text("{ half")
    assert main(["run", str(cfg)]) == 2
    one_line_error(capsys, str(root / "manifest.json"), "not a valid JSON")


def test_unwritable_run_directory(lab, capsys, monkeypatch):
    tmp, cfg, root = lab
    import physical.rundir as rundir

    real = rundir.tempfile.mkstemp

    def denied(*a, dir=None, **k):  # what a read-only folder answers (tests run as root, which chmod cannot stop)
        if str(dir).startswith(str(root)):
            raise PermissionError(13, "Permission denied", str(dir))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(rundir.tempfile, "mkstemp", denied)
    before = (root / "manifest.json").read_bytes()
    assert main(["run", str(cfg), "--from", "report"]) == 2
    one_line_error(capsys, str(root), "Permission denied")
    assert (root / "manifest.json").read_bytes() == before


def test_command_line_values_out_of_range(lab, tmp_path, capsys):
    tmp, cfg, root = lab
    assert main(["compare", str(root), str(root), "--threshold", "-5"]) == 2
    one_line_error(capsys, "--threshold -5")
    assert main(["compare", str(root), str(cfg)]) == 2
    one_line_error(capsys, "pipeline.yaml", "not a report")
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    assert main(["compare", str(root), str(other)]) == 2
    one_line_error(capsys, "other.json", "not a report")
    assert main(["replay", f"folder:{root / 'capture' / 'photos'}", "--port", "99999"]) == 2
    one_line_error(capsys, "--port 99999")
    assert main(["live", "--source", f"folder:{root / 'capture' / 'photos'}", "--frames", "-3"]) == 2
    one_line_error(capsys, "--frames -3")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["live", "--source", f"folder:{root / 'capture' / 'photos'}", "--serve", str(port), "--frames",
                     "1", "--headless", "--run", str(root)]) == 2
        one_line_error(capsys, f"--serve {port}")


# ----------------------------------------------------------------------------------------------
# interrupted writes


def test_temp_files_of_an_interrupted_write_are_removed(lab, capsys):
    tmp, cfg, root = lab
    leftovers = [root / "align" / ".partial-crops.json.abc123.json", tmp / "prints" / ".partial-trust.pdf.x.pdf"]
    for p in leftovers:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half")
    assert main(["run", str(cfg)]) == 0
    assert "removed 2 temporary file(s)" in capsys.readouterr().out
    assert not temp_files(tmp)


def _physical(args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    e = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    e["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), e.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "physical", *args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=600)


FAULT_CONFIG = {**CONFIG, "experiments": {"enabled": True, "transformations": {"enabled": False},
                                          "transfer": {"enabled": False},
                                          "defences": {"use": [{"name": "jpeg", "quality": 75}]}}}


def _tables(root: Path) -> dict:
    """report.json without what differs between any two runs: the run id, timings and how many images
    a stage classified this time (the rest came from its cache)."""
    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in ("run_id", "seconds", "images_classified")}
        return [strip(v) for v in o] if isinstance(o, list) else o

    return strip(json.loads((root / "report" / "report.json").read_text()))


STAGE_NAMES = ("generate", "print", "capture", "align", "classify", "experiments", "report")


@pytest.mark.slow
def test_sigkill_anywhere_then_rerun_gives_the_uninterrupted_report(tmp_path):
    """SIGKILL `physical run` at >= 20 durable writes spread over every stage, each time in the run that
    resumes the killed one; the final report equals an uninterrupted run's, and no temporary file is left."""
    ref = tmp_path / "ref"
    make_images(ref / "images")
    write_config(ref, FAULT_CONFIG)
    log = tmp_path / "writes.log"
    r = _physical(["run", "pipeline.yaml"], ref, PHYSICAL_FAULT_LOG=str(log))
    assert r.returncode == 0, r.stderr
    # every output file of the uninterrupted run, in the order written, with its stage
    files = []
    for w in log.read_text().splitlines():
        rel = os.path.relpath(w, ref)
        parts = Path(rel).parts
        stage = parts[2] if parts[0] == "runs" and len(parts) > 3 else ("print" if parts[0] == "prints" else None)
        if stage in STAGE_NAMES:
            files.append((stage, rel))
    # kill points: per stage its first, middle and last output, and the write after the last (its "done")
    points = []
    for s in STAGE_NAMES:
        mine = [f for t, f in files if t == s]
        assert mine, f"stage {s} wrote nothing"
        for f in dict.fromkeys([mine[0], mine[len(mine) // 2], mine[-1]]):
            points.append(f)
        points.append(mine[-1] + "+1")
    assert len(points) >= 20

    lab = tmp_path / "lab"
    make_images(lab / "images")
    write_config(lab, FAULT_CONFIG)
    killed = []
    for p in points:
        r = _physical(["run", "pipeline.yaml"], lab, PHYSICAL_FAULT_AT=p)
        assert r.returncode in (-9, 0), r.stderr
        if r.returncode == -9:
            killed.append(p)
    assert len(killed) >= 20 and {Path(p).parts[2] for p in killed if p.startswith("runs")} >= set(STAGE_NAMES)
    r = _physical(["run", "pipeline.yaml"], lab)
    assert r.returncode == 0, r.stderr
    assert _tables(lab / "runs" / "trust") == _tables(ref / "runs" / "trust")
    assert not temp_files(lab) and not (lab / "runs" / "trust" / "run.lock").exists()
    assert not (lab / "runs" / "trust" / "archive").exists()  # the simulator's photos are not kept as a lab's


def test_a_resumed_generate_remakes_the_bytes_of_an_uninterrupted_one(tmp_path):
    """Images lost after generate (b in the first batch of 2, c alone in the second) are made again
    with the batch they were made in and that batch's own random stream (PGD's random start): the
    same bytes as the uninterrupted run, not a new draw nor a batch of one."""
    make_images(tmp_path / "images", names=("a", "b", "c"), samples=("chelsea", "coffee", "astronaut"))
    write_config(tmp_path, attacks=[{"name": "pgd", "eps": [EPS], "steps": 2}],
                 run={**CONFIG["run"], "batch_size": 2})
    r = _physical(["run", "pipeline.yaml", "--until", "generate"], tmp_path)
    assert r.returncode == 0, r.stderr
    made = tmp_path / "runs" / "trust" / "generate" / "efficientnet_lite0" / f"pgd_eps{EPS}"
    first = {p.name: p.read_bytes() for p in made.glob("*.png")}
    assert sorted(first) == ["a.png", "b.png", "c.png"]
    (made / "b.png").unlink()
    (made / "c.png").unlink()
    r = _physical(["run", "pipeline.yaml", "--until", "generate"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert {p.name: p.read_bytes() for p in made.glob("*.png")} == first
