"""Image sources: photos that ship with installed packages (scikit-image, matplotlib), or a folder:
a folder with a labels.csv, an ImageNet validation folder (class sub-folders named by wnid, or flat
files with the devkit's ground truth), the NIPS 2017 adversarial competition dev set (images.csv), or
plain images (see `physical.data.imagesets`).

A source yields `SourceImage`s: a name, the full-size 8-bit RGB photo, and its true ImageNet class
where it is known (None otherwise: the run then uses the clean top-1 prediction and says so).

labels.csv columns: ``file`` and ``class_index`` (an ImageNet index) or ``name`` (a class name);
other columns are ignored. Files not listed in labels.csv are used without a label.

``limit`` takes a deterministic stratified sample of a folder: one image of every class round by
round (evenly spaced classes when there are more classes than images wanted).
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import skimage.data

from physical.errors import ConfigError
from physical.data.imagesets import IMAGE_SUFFIXES, class_folders, detect, devkit, images_in, nips2017, stratified
from physical.log import warn
from physical.models import class_index
from physical.rundir import digest, file_digest, read_image

# Photos that ship inside installed packages (scikit-image, matplotlib), with their ImageNet class
# where one is right; the others have no single true class.
SAMPLES: dict[str, Optional[int]] = {
    "chelsea": 281,  # tabby cat (scikit-image)
    "coffee": 967,  # espresso (scikit-image)
    "grace_hopper": 652,  # military uniform (matplotlib's sample data)
    "rocket": None,  # a launching rocket: no single ImageNet class
    "astronaut": None,
    "stereo_motorcycle": None,
    "camera": None,
    "hubble_deep_field": None,
}


@dataclass
class SourceImage:
    name: str
    rgb: np.ndarray  # HxWx3 uint8
    label: Optional[int]  # ImageNet class index, None when unknown
    digest: str = ""  # of the file's bytes (a package's sample: of its pixels): what the image is made from


def _sample(name: str) -> np.ndarray:
    if name == "grace_hopper":
        import matplotlib.cbook  # deferred: matplotlib takes ~0.3 s to import; one sample photo needs it

        return read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):  # stereo pairs: take the left view
        img = img[0]
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def read_labels(folder: Path) -> dict[str, int]:
    path = folder / "labels.csv"
    if not path.is_file():
        return {}
    labels = {}
    with open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            file = (row.get("file") or "").strip()
            if not file:
                continue
            raw = (row.get("class_index") or "").strip()
            try:
                labels[file] = class_index(int(raw) if raw else (row.get("name") or "").strip(), f"{path}:{i}")
            except (ValueError, ConfigError) as e:
                raise ConfigError(f"{path} line {i}: bad label for {file!r}: {e}; fix the line or remove it") from None
    return labels


def _folder(source: str, base: Path) -> Path:
    folder = Path(source).expanduser()
    folder = folder if folder.is_absolute() else base / folder
    if not folder.is_dir():
        raise ConfigError(f"images.source: folder {str(folder)!r} does not exist")
    return folder


def _entries(folder: Path) -> list[tuple[Path, Optional[int]]]:
    """(image file, label) of every image of a folder, by its layout (see `physical.data.imagesets`)."""
    layout = detect(folder)
    if layout == "nips2017":
        entries = nips2017(folder)
    elif layout == "imagenet-classes":
        entries = class_folders(folder)
    elif layout == "imagenet-devkit":
        entries = devkit(folder)
    else:
        labels = read_labels(folder)
        entries = [(p, labels.get(p.name)) for p in images_in(folder)]
    if not entries:
        raise ConfigError(f"images.source: folder {str(folder)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return entries


def check_source(source: str, base: Path = Path("."), limit: int = 0) -> int:
    """The checks of `load_images` that need no decoding: the folder, its images and their labels.
    Returns how many images the run takes (`limit` applied)."""
    n = len(SAMPLES) if source == "samples" else len(_entries(_folder(source, base)))
    return min(n, limit) if limit else n


def source_files(source: str, base: Path = Path(".")) -> dict:
    """{file: digest of its bytes} of a source folder's images and label files (samples: their names)."""
    if source == "samples":
        return {"samples": list(SAMPLES)}
    folder = _folder(source, base)
    out = {str(p.relative_to(folder)): file_digest(p) for p, _ in _entries(folder)}
    for name in ("labels.csv", "images.csv"):
        if (folder / name).is_file():
            out[name] = file_digest(folder / name)
    return out


def load_images(source: str, limit: int = 0, base: Path = Path(".")) -> list[SourceImage]:
    """The images of a source ("samples" or a folder), in a stable order (a stratified sample with `limit`)."""
    if source == "samples":
        names = list(SAMPLES)[: limit or None]
        out = [SourceImage(n, _sample(n), SAMPLES[n]) for n in names]
        for s in out:
            s.digest = digest([s.name, s.rgb.shape, hashlib.sha256(s.rgb.tobytes()).hexdigest()])
        return out
    folder = _folder(source, base)
    chosen = stratified(_entries(folder), limit)
    stems = [p.stem for p, _ in chosen]
    clash = len(set(stems)) < len(stems)  # class folders may repeat a file name: keep the run's names apart
    names = [f"{p.parent.name}_{p.stem}" if clash else p.stem for p, _ in chosen]
    for k, name in enumerate(names):
        if name in names[:k]:
            first = chosen[names.index(name)][0]
            raise ConfigError(f"images.source: {first.name} and {chosen[k][0].name} in {str(folder)!r} have the same "
                              "name (images are named by their file name without suffix); rename one")
    out = []
    for (p, label), name in zip(chosen, names):
        try:
            rgb = read_image(p)
        except ValueError as e:
            warn(f"skipped image {p}: {e}")
            continue
        out.append(SourceImage(name, rgb, label, file_digest(p)))
    if not out:
        raise ConfigError(f"images.source: no readable image in {str(folder)!r}")
    return out
