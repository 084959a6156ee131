"""Bad input people really have (issue 27), one row per case: image names that sanitise alike,
labels.csv as spreadsheets write it, files with absurd headers, a run.output that is a file, a key
given twice, a corrupt manifest, SIGTERM, a full disk. Each either works (and says what it did) or
stops with one line and exit 2; none is silent, none a traceback. docs/bad-input.md lists them."""
from __future__ import annotations

import errno
import json
import os
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from physical.align.photo_files import read_photo
from physical.cli.main import main
from physical.data.images import load_images
from physical.rundir import write_image
from tests.runs.test_run_trust import one_line_error

CAT, COFFEE = 281, 967


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no data."""
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in names:
        if n.endswith(".gif"):  # a kind the tool does not read
            (folder / n).write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
            continue
        write_image(folder / n, rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))


def config(tmp: Path, source: str = "images", **run) -> Path:
    cfg = {"run": {"name": "bad", "output": "runs", "device": "cpu", **run}, "images": {"source": source},
           "attacks": [{"name": "fgsm", "eps": [8]}], "sheet": {"cell_mm": 30},
           "capture": {"frame": [1000, 750]}, "experiments": {"enabled": False}}
    p = tmp / "pipeline.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p




# ----------------------------------------------------------------------------------------------
# labels.csv: (case, image files, labels.csv bytes, expected labels by file | error needles, warning needles)

LABELS = [
    ("utf-8 BOM (Excel's CSV UTF-8)", ["a.png", "b.png"], "\ufefffile,class_index\na.png,281\nb.png,967\n".encode(),
     {"a": CAT, "b": COFFEE}, []),
    ("UTF-16 with its BOM", ["a.png"], "file,class_index\na.png,281\n".encode("utf-16"), {"a": CAT}, []),
    ("header filename,label", ["a.png", "b.png"], b"filename,label\na.png,281\nb.png,espresso\n",
     {"a": CAT, "b": COFFEE}, []),
    ("header with spaces and capitals", ["a.png"], b" File , Class_Index \na.png,281\n", {"a": CAT}, []),
    ("x.jpeg written for X.JPEG", ["X.JPEG"], b"file,class_index\nx.jpeg,281\n", {"X": CAT}, []),
    ("the same row twice", ["a.png"], b"file,class_index\na.png,281\na.png,281\n", {"a": CAT},
     ["line 3", "listed again (as on line 2)"]),
    ("a row for a missing file", ["a.png"], b"file,class_index\na.png,281\ngone.png,967\n", {"a": CAT},
     ["line 3", "'gone.png' not found"]),
    ("a listed .gif", ["a.png", "anim.gif"], b"file,class_index\na.png,281\nanim.gif,967\n", {"a": CAT},
     ["line 3", "'anim.gif' is not an image the tool reads"]),
    ("an image not listed", ["a.png", "b.png"], b"file,class_index\na.png,281\n", {"a": CAT, "b": None},
     ["1 image(s) not listed (b.png)", "without a label"]),
    ("latin-1", ["caf\xe9.png"], "file,class_index\ncaf\xe9.png,281\n".encode("latin-1"), None,
     ["labels.csv line 2", "byte 0xe9 is not UTF-8", "save the file as UTF-8"]),
    ("the same file with two classes", ["a.png"], b"file,class_index\na.png,281\na.png,967\n", None,
     ["labels.csv line 3", "'a.png' is labelled 967 here and 281 on line 2", "keep the right line"]),
    ("an empty labels.csv", ["a.png"], b"", None, ["labels.csv: empty", "remove it"]),
    ("a header and no lines", ["a.png"], b"file,class_index\n", None,
     ["labels no image", "100 % by construction"]),
    ("no row names an image", ["a.png"], b"file,class_index\nb.png,281\n", None,
     ["labels no image", "none of its 1 line(s)"]),
    ("an unknown header", ["a.png"], b"image_id,truth\na.png,281\n", None,
     ["lacks a file column", "accepted: file columns file, filename", "label columns class_index, label"]),
    ("case-insensitive match that is ambiguous", ["A.png", "a.PNG"], b"file,class_index\nA.PnG,281\n", None,
     ["labels.csv line 2", "'A.PnG' matches", "write the exact file name"]),
    ("a bad class", ["a.png"], b"file,class_index\na.png,tabby cat food\n", None,
     ["labels.csv line 2", "bad label for 'a.png'"]),
]


@pytest.mark.parametrize("case, files, text, labels, needles", LABELS, ids=[c[0] for c in LABELS])
def test_labels_csv_as_people_write_it(tmp_path, capsys, case, files, text, labels, needles):
    images(tmp_path / "images", files)
    (tmp_path / "images" / "labels.csv").write_bytes(text)
    if labels is None:  # a wrong result otherwise: one line, exit 2, before anything is written
        assert main(["run", str(config(tmp_path))]) == 2
        one_line_error(capsys, *needles)
        assert not (tmp_path / "runs").exists()
        return
    got = load_images(str(tmp_path / "images"))
    assert {s.name: s.label for s in got} == labels
    assert all(s.label_from == ("labels.csv" if s.label is not None else "") for s in got)
    err = capsys.readouterr().err
    for n in needles:
        assert n in err, err
    assert len(err.splitlines()) == len(needles and [1]), err  # one line per problem


# ----------------------------------------------------------------------------------------------
# names: every image keeps its own name in the run


@pytest.mark.parametrize("files", [["a b.JPEG", "a_b.JPEG", "a+b.JPEG"], ["A.png", "a.png"],
                                   ["x.png", "x.jpg"]])
def test_images_whose_names_sanitise_alike_keep_their_own_names(tmp_path, files):
    images(tmp_path / "images", files)
    got = load_images(str(tmp_path / "images"))
    names = [s.name for s in got]
    assert len(got) == len(files) and len({n.lower() for n in names}) == len(files), names
    assert all(n.replace("-", "").replace("_", "").replace(".", "").isalnum() for n in names)
    plain = [f.rsplit(".", 1)[0] for f in files if f.rsplit(".", 1)[0].replace("_", "").isalnum()]
    if len(plain) == 1:  # the one already safe keeps its plain name: an existing run's files stay
        assert plain[0] in names
    assert [s.name for s in load_images(str(tmp_path / "images"))] == names  # stable


# ----------------------------------------------------------------------------------------------
# files with absurd headers: one line each


def jpeg_claiming(width: int, height: int) -> bytes:
    """A 16 x 16 JPEG whose frame header (SOF0) claims width x height pixels."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


PHOTOS = [
    ("a PNG claiming 100000 x 100000", png_claiming(100_000, 100_000), "header claims 10,000 megapixels"),
    ("a JPEG claiming 65000 x 65000", jpeg_claiming(65_000, 65_000), "header claims 4,225 megapixels"),
    ("a PNG claiming 40000 x 1", png_claiming(40_000, 1), "corrupt or truncated"),
    ("an empty file", b"", "not an image file"),
    ("text named .jpg", b"hello", "not an image file"),
    ("half a PNG header", png_claiming(10, 10)[:30], "not an image file"),
]


@pytest.mark.parametrize("case, data, needle", PHOTOS, ids=[c[0] for c in PHOTOS])
def test_a_photo_with_an_absurd_header_is_one_line(tmp_path, case, data, needle):
    p = tmp_path / "photo.jpg"
    p.write_bytes(data)
    with pytest.raises(ValueError) as e:
        read_photo(p)  # the align stage skips the photo with this line and goes on with the others
    assert str(e.value).startswith("photo.jpg: ") and needle in str(e.value) and "\n" not in str(e.value)


def test_a_source_image_with_an_absurd_header_is_skipped_with_a_line(tmp_path, capsys):
    images(tmp_path / "images", ["a.png"])
    (tmp_path / "images" / "huge.png").write_bytes(png_claiming(100_000, 100_000))
    assert [s.name for s in load_images(str(tmp_path / "images"))] == ["a"]
    err = capsys.readouterr().err
    assert "skipped image" in err and "huge.png" in err and "header claims" in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------------------------------------
# the command line: one line, exit 2 (or 130 for a signal)


def test_run_output_that_is_a_file(tmp_path, capsys):
    images(tmp_path / "images", ["a.png"])
    (tmp_path / "runs").write_text("not a folder")
    assert main(["run", str(config(tmp_path))]) == 2
    one_line_error(capsys, "run.output", "is a file, not a folder")


def test_a_key_given_twice_in_the_yaml(tmp_path, capsys):
    p = tmp_path / "p.yaml"
    p.write_text("run: {name: a}\nimages: {source: samples}\nrun: {name: b}\n")
    assert main(["run", str(p)]) == 2
    one_line_error(capsys, "p.yaml line 3", "'run' is given twice (first on line 1)")


def _quick_generate(monkeypatch, action=None):
    """generate replaced by a stand-in that does `action` (a signal, a full disk) or nothing."""
    import physical.stages.generate as generate

    def stand_in(run, cfg, device):
        if action:
            action()
        return {"images": 0}

    monkeypatch.setattr(generate, "generate_stage", stand_in)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_like_ctrl_c(tmp_path, capsys, monkeypatch, sig):
    images(tmp_path / "images", ["a.png"])
    _quick_generate(monkeypatch, lambda: os.kill(os.getpid(), getattr(signal, sig)))
    before = signal.getsignal(signal.SIGTERM)
    assert main(["run", str(config(tmp_path)), "--until", "generate"]) == 130
    err = capsys.readouterr().err
    assert err == f"physical: interrupted by {sig}; finished stages and files are kept, run again to resume\n"
    root = tmp_path / "runs" / "bad"
    m = json.loads((root / "manifest.json").read_text())
    assert m["stages"]["generate"]["state"] == "interrupted" and not (root / "run.lock").exists()
    assert signal.getsignal(signal.SIGTERM) == before  # the handlers are put back


def test_a_full_disk_names_the_file_and_what_to_free(tmp_path, capsys, monkeypatch):
    import physical.rundir as rundir

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")  # as a write into an open file: no file name

    images(tmp_path / "images", ["a.png"])
    monkeypatch.setattr(rundir, "_fault_point", full)
    assert main(["run", str(config(tmp_path)), "--until", "generate"]) == 2
    one_line_error(capsys, str(tmp_path / "runs" / "bad" / "config.yaml"), "No space left on device",
                   "free space on the disk that holds", "nothing finished was lost")


def test_a_corrupt_manifest_says_how_to_recover_and_force_recovers(tmp_path, capsys, monkeypatch):
    images(tmp_path / "images", ["a.png"])
    root = tmp_path / "runs" / "bad"
    root.mkdir(parents=True)
    (root / "manifest.json").write_text("{ half")
    cfg = config(tmp_path)
    assert main(["run", str(cfg), "--until", "generate"]) == 2
    one_line_error(capsys, "manifest.json: not a valid JSON file", "run again with --force")
    _quick_generate(monkeypatch)
    assert main(["run", str(cfg), "--until", "generate", "--force"]) == 0
    assert "set aside as manifest.json.corrupt" in capsys.readouterr().out
    assert (root / "manifest.json.corrupt").read_text() == "{ half"
    assert json.loads((root / "manifest.json").read_text())["stages"]["generate"]["state"] == "done"


# ----------------------------------------------------------------------------------------------
# a photo of an outdated print


@pytest.mark.slow
def test_a_photo_of_the_outdated_print_is_refused_as_other_print(tmp_path, capsys):
    """Run, keep a photo of its sheets, change fgsm eps 8 -> 16 and rerun with that photo as the
    capture source: the reprint has another tag, and align refuses the old photo, naming the print."""
    import shutil
    import skimage.data

    (tmp_path / "images").mkdir()
    write_image(tmp_path / "images" / "cat.png", skimage.data.chelsea()[:200, :200])
    cfg = config(tmp_path)
    data = yaml.safe_load(cfg.read_text())
    data["capture"]["dpi"] = 100
    data["report"] = {"html": False}
    cfg.write_text(yaml.safe_dump(data))
    assert main(["run", str(cfg)]) == 0
    root = tmp_path / "runs" / "bad"
    old = tmp_path / "old_photos"
    old.mkdir()
    for p in (root / "capture" / "photos").iterdir():
        shutil.copy(p, old / p.name)
    first_tag = json.loads((root / "print" / "layout.json").read_text())["tag"]
    data["attacks"][0]["eps"] = [16]
    data["capture"]["source"] = f"folder:{old}"
    cfg.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert json.loads((root / "print" / "layout.json").read_text())["tag"] != first_tag
    m = json.loads((root / "manifest.json").read_text())
    assert m["stages"]["align"]["summary"]["other_print"] >= 1 and m["stages"]["align"]["summary"]["crops"] == 0
    assert "other print: a sheet of print 1 of this run" in out
    rep = json.loads((root / "report" / "report.json").read_text())
    assert rep["align"]["other_print"] >= 1
    assert all(r["average"]["accuracy"]["photo_adv"]["top1"]["n"] == 0 for r in rep["kurakin"])  # nothing measured


@pytest.mark.parametrize("flag", ["--record", "--log"])
def test_live_record_and_log_into_a_missing_folder_stop_before_the_session(tmp_path, capsys, flag):
    name = "view.mp4" if flag == "--record" else "log.json"
    assert main(["live", "--headless", "--frames", "1", flag, str(tmp_path / "missing" / name)]) == 2
    one_line_error(capsys, flag, "folder", "does not exist")


@pytest.mark.parametrize("flag", ["--record", "--log"])
def test_live_record_and_log_into_a_read_only_folder_stop_before_the_session(tmp_path, capsys, flag):
    name = "view.mp4" if flag == "--record" else "log.json"
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o555)
    try:
        if os.access(tmp_path / "ro", os.W_OK):
            pytest.skip("running as a user who writes anywhere (root)")
        assert main(["live", "--headless", "--frames", "1", flag, str(tmp_path / "ro" / name)]) == 2
        one_line_error(capsys, flag, "not writable")
    finally:
        os.chmod(tmp_path / "ro", 0o755)


def test_a_full_disk_while_copying_photos_names_the_copy_not_the_source(tmp_path, monkeypatch):
    import shutil

    from physical.rundir import atomic_path

    def full(src, dst):
        e = OSError(errno.ENOSPC, "No space left on device")
        e.filename, e.filename2 = str(src), str(dst)  # as shutil's sendfile copy reports it
        raise e

    monkeypatch.setattr(shutil, "copyfile", full)
    (tmp_path / "IMG_1.jpg").write_bytes(b"x")
    with pytest.raises(OSError) as e, atomic_path(tmp_path / "run" / "IMG_1.jpg") as tmp:
        shutil.copyfile(tmp_path / "IMG_1.jpg", tmp)
    from physical.cli.main import os_error_line

    line = os_error_line(e.value)
    assert line.startswith(f"{tmp_path / 'run' / 'IMG_1.jpg'}: No space left on device; free space on the disk")
    assert not list((tmp_path / "run").iterdir())  # no temporary file left


# ----------------------------------------------------------------------------------------------
# physical scene (issue 28.3): a video that cannot be read, a class or a region that does not exist


def _tiny_video(path: Path, frames: int) -> Path:
    """A 64 x 48 MJPG video of `frames` frames (0: the file OpenCV writes when nothing was written)."""
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 8, (64, 48))
    for i in range(frames):
        w.write(np.full((48, 64, 3), 40 * i % 256, np.uint8))
    w.release()
    return path


SCENE_BAD = [  # (case, arguments after `scene` (VIDEO: a readable 64 x 48 video), the line's needles)
    ("missing video", ["--video", "{tmp}/missing.mp4"], ["video file", "missing.mp4 does not exist"]),
    ("not a video", ["--video", "{tmp}/notes.mp4"], ["notes.mp4 is not readable", "OpenCV could not open it"]),
    ("zero frames", ["--video", "{tmp}/empty.avi"], ["empty.avi is not readable: no frame could be decoded"]),
    ("a folder", ["--video", "{tmp}"], ["is a folder"]),
    ("unknown target name", ["--video", "VIDEO", "--target", "toastr"],
     ["--target: 'toastr' is not an ImageNet class"]),
    ("target index out of range", ["--video", "VIDEO", "--target", "1000"], ["--target: class index 1000 does not"]),
    ("unknown true class", ["--video", "VIDEO", "--true", "kitty"], ["--true: 'kitty' is not an ImageNet class"]),
    ("region not x,y,w,h", ["--video", "VIDEO", "--region", "10,10,40"], ["--region '10,10,40': expected x,y,w,h"]),
    ("region outside the frame", ["--video", "VIDEO", "--region", "30,20,40,40"],
     ["--region 30,20,40,40: reaches outside the 64x48 frame"]),
    ("video and source", ["--video", "VIDEO", "--source", "webcam:0"], ["give one"]),
    ("live option with a video", ["--video", "VIDEO", "--serve", "0"], ["--serve: only for a live --source"]),
    ("run without a patch", ["--video", "VIDEO", "--run", "{tmp}/run"],
     ["--run", "has no patch attack; give --target"]),
]


@pytest.mark.parametrize("case,args,needles", SCENE_BAD, ids=[c[0] for c in SCENE_BAD])
def test_scene_bad_input_is_one_line(tmp_path, capsys, case, args, needles):
    video = _tiny_video(tmp_path / "ok.avi", 3)
    _tiny_video(tmp_path / "empty.avi", 0)
    (tmp_path / "notes.mp4").write_text("not a video\n" * 50)
    (tmp_path / "run" / "generate").mkdir(parents=True)
    (tmp_path / "run" / "generate" / "index.json").write_text(json.dumps(
        {"items": [{"key": "a", "attack": "fgsm", "model": "efficientnet_lite0", "target": None}]}))
    argv = [str(video) if a == "VIDEO" else a.format(tmp=tmp_path) for a in args]
    assert main(["scene", *argv, "--out", str(tmp_path / "out")]) == 2
    one_line_error(capsys, *needles)
    assert not (tmp_path / "out").exists()  # nothing written


# ----------------------------------------------------------------------------------------------
# printed attacks (issue 28): one line naming the key, exit 2, before anything is written

ATTACK_ENTRIES = [
    ("eot on a single-step attack", {"name": "fgsm", "eps": [8], "eot": {"samples": 4}},
     ["attacks[0].eot", "fgsm is a single-step attack"]),
    ("eot on a black-box attack", {"name": "square", "eps": [8], "eot": {"samples": 4}},
     ["attacks[0].eot", "square sees no gradient"]),
    ("a target index that does not exist", {"name": "bim", "eps": [16], "target": 1000, "eot": {"samples": 2}},
     ["attacks[0].target", "class index 1000 does not exist", "0 .. 999"]),
    ("a target name that does not exist", {"name": "pgd", "eps": [16], "target": "toastr"},
     ["attacks[0].target", "'toastr' is not an ImageNet class name"]),
    ("a least-likely target on a universal perturbation", {"name": "uap", "eps": [10], "target": "least_likely"},
     ["attacks[0].target", "'least_likely': uap fits one artifact for every image", "give a class"]),
    ("a least-likely target on a patch", {"name": "patch", "target": "ll", "eot": {"samples": 2}},
     ["attacks[0].target", "'ll': patch fits one artifact"]),
    ("a patch larger than the image", {"name": "patch", "fraction": 1.5},
     ["attacks[0].fraction", "1.5 is out of range"]),
]


@pytest.mark.parametrize("case, entry, needles", ATTACK_ENTRIES, ids=[c[0] for c in ATTACK_ENTRIES])
def test_printed_attack_entries_that_cannot_work_stop_with_one_line(tmp_path, capsys, case, entry, needles):
    images(tmp_path / "images", ["a.png", "b.png"])
    p = config(tmp_path)
    data = yaml.safe_load(p.read_text())
    data["attacks"] = [entry]
    p.write_text(yaml.safe_dump(data))
    assert main(["run", str(p)]) == 2
    one_line_error(capsys, *needles)
    assert not (tmp_path / "runs").exists()


def test_a_patch_larger_than_the_images_given_to_the_api_is_one_line(lite0):
    import torch

    from physical.attacks import make
    from physical.errors import ConfigError

    attack = make("patch", lite0, epochs=1)  # 71 px: 10 % of Lite0's 224 x 224 input
    with pytest.raises(ConfigError) as e:
        attack(torch.rand(1, 3, 64, 64), torch.tensor([1]))
    assert str(e.value) == ("patch: its 71 px side is larger than the 64 x 64 px images it goes on; give images of "
                            "the model's input size, or a smaller fraction")
