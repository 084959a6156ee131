"""Image sets people have: tiny fakes of an ImageNet validation folder (class folders named by wnid;
flat files with the devkit's ground truth and meta.mat), the NIPS 2017 dev set (images.csv), and
labels.csv; stratified sampling with `limit`; bad labels stop with one line naming the file."""
import csv

import numpy as np
import pytest

from physical.config import ConfigError
from physical.data.images import load_images
from physical.data.imagesets import detect, stratified, wnids
from physical.rundir import write_image

TABBY, ESPRESSO, ANALOG_CLOCK = 281, 967, 409


def _img(path, value=128):
    write_image(path, np.full((40, 50, 3), value, np.uint8))


def test_wnid_list_is_the_models_class_order():
    from physical.models import class_names

    w = wnids()
    assert len(w) == 1000 == len(set(w)) and w == sorted(w)
    names = class_names()
    assert (w[TABBY], names[TABBY]) == ("n02123045", "tabby")
    assert (w[ESPRESSO], names[ESPRESSO]) == ("n07920052", "espresso")


def test_imagenet_class_folders(tmp_path):
    for wnid, n in (("n02123045", 3), ("n07920052", 2), ("n02708093", 1)):
        for i in range(n):
            _img(tmp_path / wnid / f"img{i}.png", 10 * i)
    assert detect(tmp_path) == "imagenet-classes"
    imgs = load_images(str(tmp_path))
    assert len(imgs) == 6 and sorted({i.label for i in imgs}) == [TABBY, ANALOG_CLOCK, ESPRESSO]
    assert len({i.name for i in imgs}) == 6 and imgs[0].name == "n02123045_img0"  # same file names kept apart
    # limit: one of every class first, deterministic
    three = load_images(str(tmp_path), 3)
    assert sorted(i.label for i in three) == [TABBY, ANALOG_CLOCK, ESPRESSO]
    assert [i.name for i in three] == [i.name for i in load_images(str(tmp_path), 3)]
    assert sorted(i.label for i in load_images(str(tmp_path), 5)) == [TABBY, TABBY, ANALOG_CLOCK, ESPRESSO, ESPRESSO]
    (tmp_path / "n99999999").mkdir()
    with pytest.raises(ConfigError, match=r"n99999999.*not one of the 1000 ImageNet-1k classes"):
        load_images(str(tmp_path))


def _devkit(tmp_path, ids):
    import scipy.io

    data = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    # the devkit numbers its synsets in its own order: 1 = kit fox, 2 = tabby, 3 = espresso here; 1001: not a leaf
    syn = np.zeros((4,), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")])
    for i, (k, w) in enumerate([(1, "n02119789"), (2, "n02123045"), (3, "n07920052"), (1001, "n00001740")]):
        syn[i] = (k, w, "-", 0)
    scipy.io.savemat(str(data / "meta.mat"), {"synsets": syn})
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{i}\n" for i in ids))
    val = tmp_path / "val"
    for n in range(1, len(ids) + 1):
        _img(val / f"ILSVRC2012_val_{n:08d}.JPEG", n)
    return val


def test_imagenet_flat_folder_with_the_devkit_ground_truth(tmp_path):
    val = _devkit(tmp_path, [2, 3, 1, 2])
    assert detect(val) == "imagenet-devkit"
    imgs = load_images(str(val))
    assert [(i.name, i.label) for i in imgs] == [("ILSVRC2012_val_00000001", TABBY), ("ILSVRC2012_val_00000002", ESPRESSO),
                                                 ("ILSVRC2012_val_00000003", 278), ("ILSVRC2012_val_00000004", TABBY)]
    assert sorted(i.label for i in load_images(str(val), 3)) == [278, TABBY, ESPRESSO]


def test_devkit_label_out_of_range_names_the_file(tmp_path):
    val = _devkit(tmp_path, [2, 1500])
    with pytest.raises(ConfigError, match=r"ILSVRC2012_validation_ground_truth.txt line 2: label '1500'.*out of range"):
        load_images(str(val))


def _nips(tmp_path, rows, extra=()):
    (tmp_path / "images").mkdir(parents=True)
    with open(tmp_path / "images.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageId", "URL", "x1", "y1", "x2", "y2", "TrueLabel", "TargetClass"])
        for image, label in rows:
            w.writerow([image, "https://example.org", 0, 0, 1, 1, label, 1])
    for image, _ in rows:
        _img(tmp_path / "images" / f"{image}.png")
    for image in extra:
        _img(tmp_path / "images" / f"{image}.png")
    return tmp_path


def test_nips2017_dev_set_labels_are_one_based(tmp_path):
    src = _nips(tmp_path, [("0c7ac4a8c9dfa802", TABBY + 1), ("4aa4ab6e2ee6ebae", ESPRESSO + 1), ("9a4a8e6b4c4b1c", 1)])
    assert detect(src) == "nips2017"
    imgs = load_images(str(src))
    assert {i.name: i.label for i in imgs} == {"0c7ac4a8c9dfa802": TABBY, "4aa4ab6e2ee6ebae": ESPRESSO,
                                               "9a4a8e6b4c4b1c": 0}


@pytest.mark.parametrize("rows, extra, match", [
    ([("a", 0)], (), r"images.csv line 2: TrueLabel 0 of 'a' is out of range.*0 is background"),
    ([("a", 1001)], (), r"images.csv line 2: TrueLabel 1001 of 'a' is out of range"),
    ([("a", "cat")], (), r"images.csv line 2: TrueLabel 'cat' of 'a' is not a number"),
    ([("a", 5)], ("b",), r"b.png has no TrueLabel in .*images.csv"),
])
def test_nips2017_bad_labels_name_the_file(tmp_path, rows, extra, match):
    src = _nips(tmp_path, rows, extra)
    with pytest.raises(ConfigError, match=match):
        load_images(str(src))


def test_labels_csv_out_of_range_and_the_command_line(tmp_path, capsys):
    from physical.cli.main import main

    _img(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("file,class_index\na.png,1500\n")
    with pytest.raises(ConfigError, match=r"labels.csv line 2: bad label for 'a.png'.*1500 does not exist"):
        load_images(str(tmp_path))
    nips = _nips(tmp_path / "nips", [("a", 0)])
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"run: {{name: bad, output: {tmp_path / 'runs'}}}\nimages: {{source: {nips}}}\n")
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "TrueLabel 0" in err[0] and "Traceback" not in err[0]


def test_stratified_sampling_spreads_over_classes():
    entries = [(f"f{c}_{i}", c) for c in range(10) for i in range(c + 1)]  # class c has c + 1 images
    four = stratified(entries, 4)
    assert len({c for _, c in four}) == 4 and four == stratified(entries, 4)
    labels = [c for _, c in four]
    assert labels == sorted(labels) and labels[0] <= 2 and labels[-1] >= 7  # evenly spaced classes
    twelve = stratified(entries, 12)
    assert len({c for _, c in twelve}) == 10 and len(twelve) == 12
    assert stratified(entries, 0) == entries and stratified(entries, 1000) == entries
