"""Image sets people have, read as (file, ImageNet class index) lists.

- **ImageNet validation, class folders**: ``VAL/n01440764/*.JPEG``: one sub-folder per class,
  named by its WordNet id (wnid). The class index is the wnid's place in the sorted list of the
  1000 ImageNet-1k wnids (``physical/data/imagenet_wnids.txt``, the order torchvision's and every
  ImageNet-1k model's outputs follow).
- **ImageNet validation, flat**: ``VAL/ILSVRC2012_val_00000001.JPEG ...`` with the devkit's
  ``ILSVRC2012_validation_ground_truth.txt`` (line i: the ILSVRC2012_ID of image i, 1 .. 1000) and
  its ``meta.mat`` (ILSVRC2012_ID -> wnid; the devkit's ids follow another order than the models'),
  in the folder, its parent, or a ``ILSVRC2012_devkit_t12/data`` folder in either.
- **NIPS 2017 adversarial competition dev set**: ``images.csv`` (``ImageId``, ``TrueLabel``, ...)
  and the images ``ImageId.png`` beside it or in ``images/``. TrueLabel is 1-based over 1001 classes
  where 0 is "background" (Inception v3's output), so the ImageNet index is TrueLabel - 1.

Every bad label (missing, not a number, out of range, unknown wnid) stops with a ConfigError naming
the file, the line and what to do.
"""
from __future__ import annotations

import csv
import functools
import re
from pathlib import Path
from typing import Optional

from physical.errors import ConfigError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
WNID = re.compile(r"^n\d{8}$")
VAL_FILE = re.compile(r"^ILSVRC2012_val_(\d{8})$")
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"

Entry = tuple[Path, Optional[int]]


@functools.lru_cache(maxsize=1)
def wnids() -> list[str]:
    """The 1000 ImageNet-1k wnids in class-index order (sorted)."""
    return (Path(__file__).parent / "imagenet_wnids.txt").read_text().split()


@functools.lru_cache(maxsize=1)
def wnid_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(wnids())}


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def detect(folder: Path) -> str:
    """Which layout a folder holds: nips2017, labels (labels.csv), imagenet-classes, imagenet-devkit or plain."""
    if (folder / "images.csv").is_file():
        return "nips2017"
    if (folder / "labels.csv").is_file():
        return "labels"
    if any(p.is_dir() and WNID.match(p.name) for p in folder.iterdir()):
        return "imagenet-classes"
    if find_ground_truth(folder) is not None and any(VAL_FILE.match(p.stem) for p in images_in(folder)):
        return "imagenet-devkit"
    return "plain"


def class_folders(folder: Path) -> list[Entry]:
    """ImageNet validation in class sub-folders named by wnid."""
    index = wnid_index()
    out: list[Entry] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name not in index:
            why = ("is not one of the 1000 ImageNet-1k classes" if WNID.match(sub.name)
                   else "is not a class folder (a wnid such as n01440764)")
            raise ConfigError(f"images.source: {sub}: {sub.name!r} {why}; remove or rename it "
                              "(class folders must be ImageNet-1k wnids)")
        out += [(p, index[sub.name]) for p in images_in(sub)]
    return out


def find_ground_truth(folder: Path) -> Optional[Path]:
    for d in (folder, folder.parent):
        for cand in (d / GROUND_TRUTH, d / "ILSVRC2012_devkit_t12" / "data" / GROUND_TRUTH):
            if cand.is_file():
                return cand
    return None


def devkit_wnids(meta: Path) -> dict[int, str]:
    """ILSVRC2012_ID -> wnid from the devkit's meta.mat (its 1000 leaf synsets)."""
    import scipy.io  # deferred: scipy; only an ImageNet devkit source needs it

    if not meta.is_file():
        raise ConfigError(f"images.source: {meta} not found: the devkit's ground truth needs its meta.mat beside it "
                          "(ILSVRC2012_devkit_t12/data/meta.mat) to map its ids to classes; copy it there")
    try:
        syn = scipy.io.loadmat(str(meta), squeeze_me=True)["synsets"]
        ids, names = syn["ILSVRC2012_ID"], syn["WNID"]
    except Exception as e:  # noqa: BLE001  (a damaged or foreign .mat file: any reader error)
        raise ConfigError(f"images.source: {meta}: not the ImageNet devkit's meta.mat ({e})") from None
    return {int(i): str(w) for i, w in zip(ids, names, strict=False) if 1 <= int(i) <= 1000}


def devkit(folder: Path) -> list[Entry]:
    """ImageNet validation, flat files ILSVRC2012_val_NNNNNNNN.*, labelled by the devkit's ground truth."""
    gt = find_ground_truth(folder)
    if gt is None:
        raise ConfigError(f"images.source: {folder}: no {GROUND_TRUTH} here or in its parent folder")
    id_wnid = devkit_wnids(gt.parent / "meta.mat")
    index = wnid_index()
    lines = gt.read_text().split()
    out: list[Entry] = []
    for p in images_in(folder):
        m = VAL_FILE.match(p.stem)
        if not m:
            raise ConfigError(f"images.source: {p}: not an ImageNet validation file name (ILSVRC2012_val_NNNNNNNN); "
                              f"{gt.name} labels images by their number: move it out of the folder")
        n = int(m.group(1))
        if not 1 <= n <= len(lines):
            raise ConfigError(f"images.source: {p.name}: {gt} has no line {n} ({len(lines)} lines); "
                              "use the ground truth file of the same release")
        raw = lines[n - 1]
        if not raw.isdigit() or int(raw) not in id_wnid or id_wnid[int(raw)] not in index:
            raise ConfigError(f"{gt} line {n}: label {raw!r} of {p.name} is out of range; allowed ILSVRC2012_IDs "
                              "1 .. 1000 of the devkit's meta.mat: fix the line or remove the image")
        out.append((p, index[id_wnid[int(raw)]]))
    return out


def nips2017(folder: Path) -> list[Entry]:
    """The NIPS 2017 adversarial competition dev set: images.csv with ImageId and 1-based TrueLabel."""
    path = folder / "images.csv"
    img_dir = folder / "images" if (folder / "images").is_dir() else folder
    files = {p.stem: p for p in images_in(img_dir)}
    labels: dict[str, int] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"ImageId", "TrueLabel"} <= set(reader.fieldnames or []):
            raise ConfigError(f"images.source: {path}: needs the columns ImageId and TrueLabel (the NIPS 2017 dev "
                              f"set's images.csv); it has {', '.join(reader.fieldnames or []) or 'none'}")
        for i, row in enumerate(reader, start=2):
            image, raw = (row["ImageId"] or "").strip(), (row["TrueLabel"] or "").strip()
            try:
                label = int(raw)
            except ValueError:
                raise ConfigError(f"{path} line {i}: TrueLabel {raw!r} of {image!r} is not a number; "
                                  "fix the line or remove it") from None
            if not 1 <= label <= 1000:
                raise ConfigError(f"{path} line {i}: TrueLabel {label} of {image!r} is out of range; allowed 1 .. 1000 "
                                  "(1-based ImageNet class; 0 is background, not a class): fix the line or remove "
                                  "the image")
            if image not in files:
                raise ConfigError(f"{path} line {i}: image {image!r} not found in {img_dir}; "
                                  "download it or remove the line")
            labels[image] = label - 1
    unlisted = [p for s, p in files.items() if s not in labels]
    if unlisted:
        raise ConfigError(f"images.source: {unlisted[0]} has no TrueLabel in {path} ({len(unlisted)} image(s) "
                          "unlisted); add its line or move it out of the folder")
    return [(files[s], labels[s]) for s in sorted(labels)]


def stratified(entries: list[Entry], limit: int) -> list[Entry]:
    """`limit` entries spread over the classes (deterministic): round by round one image of every class
    (each class's images in name order); the last, partial round takes evenly spaced classes. Returned
    in the entries' own order."""
    if not limit or limit >= len(entries):
        return entries
    groups: dict = {}
    for e in entries:
        groups.setdefault(e[1], []).append(e)
    order = sorted(groups, key=lambda c: (c is None, c if c is not None else 0))
    chosen: list[Entry] = []
    r = 0
    while len(chosen) < limit:
        avail = [groups[c][r] for c in order if len(groups[c]) > r]
        need = limit - len(chosen)
        chosen += avail if need >= len(avail) else [avail[int((i + 0.5) * len(avail) / need)] for i in range(need)]
        r += 1
    keep = {id(e) for e in chosen}
    return [e for e in entries if id(e) in keep]
