"""Image sources: photos that ship with installed packages (scikit-image, matplotlib), or a folder:
a folder with a labels.csv, an ImageNet validation folder (class sub-folders named by wnid, or flat
files with the devkit's ground truth), the NIPS 2017 adversarial competition dev set (images.csv), or
plain images (see `physical.data.imagesets`).

A source yields `SourceImage`s: a name, the full-size 8-bit RGB photo, and its true ImageNet class
where it is known (None otherwise: the run then uses the clean top-1 prediction and says so).

labels.csv: read strictly by `physical.data.labels` (its header, encodings, duplicates, rows for
missing files). Files not listed in labels.csv are used without a label (with a warning).

Every image has a unique name in the run (`run_names`): its file name without suffix, made safe for
a file name; where two would share one (``a b.JPEG`` and ``a_b.JPEG``, or ``A.png`` and ``a.png``
on a case-insensitive disk), each that is not already that name gets a short digest of its path.

``limit`` takes a deterministic stratified sample of a folder: one image of every class round by
round (evenly spaced classes when there are more classes than images wanted).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import skimage.data

from physical.errors import ConfigError
from physical.data.imagesets import IMAGE_SUFFIXES, class_folders, detect, devkit, images_in, nips2017, stratified
from physical.data.labels import read_labels
from physical.log import warn
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
    label_from: str = ""  # where the label comes from (labels.csv, class folders, ...); "" when unknown


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


def _folder(source: str, base: Path) -> Path:
    folder = Path(source).expanduser()
    folder = folder if folder.is_absolute() else base / folder
    if not folder.is_dir():
        raise ConfigError(f"images.source: folder {str(folder)!r} does not exist")
    return folder


LABEL_FROM = {"nips2017": "images.csv (NIPS 2017 dev set)", "imagenet-classes": "ImageNet class folders",
              "imagenet-devkit": "the ImageNet devkit's ground truth", "labels": "labels.csv"}


def _entries(folder: Path, say_problems: bool = False) -> tuple[list[tuple[Path, Optional[int]]], str]:
    """(image file, label) of every image of a folder, by its layout (see `physical.data.imagesets`),
    and where the labels come from. `say_problems`: warn about labels.csv's ignored lines."""
    layout = detect(folder)
    if layout == "nips2017":
        entries = nips2017(folder)
    elif layout == "imagenet-classes":
        entries = class_folders(folder)
    elif layout == "imagenet-devkit":
        entries = devkit(folder)
    else:
        images = images_in(folder)
        labels, problems = read_labels(folder / "labels.csv", images) if layout == "labels" else ({}, [])
        for line in problems if say_problems else ():
            warn(line)
        entries = [(p, labels.get(p)) for p in images]
    if not entries:
        raise ConfigError(f"images.source: folder {str(folder)!r} holds no images "
                          f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return entries, LABEL_FROM.get(layout, "")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def run_names(paths: list[Path], folder: Path) -> list[str]:
    """A unique, stable name in the run for each image file (its outputs are named by it): the file
    name without suffix made safe (class folders that repeat a file name: prefixed with the folder),
    and where two safe names are the same ignoring case, a short digest of the file's path after
    each that is not already its safe name."""
    stems = [p.stem for p in paths]
    clash = len(set(stems)) < len(stems)  # class folders may repeat a file name: keep the run's names apart
    raw = [f"{p.parent.name}_{p.stem}" if clash else p.stem for p in paths]
    safe = [_safe(r) for r in raw]
    groups: dict[str, list[int]] = {}
    for k, s in enumerate(safe):
        groups.setdefault(s.lower(), []).append(k)
    names = list(safe)
    for members in groups.values():
        plain = [k for k in members if raw[k] == safe[k]]
        keep = plain[0] if len(members) > 1 and len(plain) == 1 else None
        for k in members if len(members) > 1 else ():
            if k != keep:
                rel = paths[k].relative_to(folder).as_posix() if paths[k].is_relative_to(folder) else str(paths[k])
                names[k] = f"{safe[k]}-{hashlib.sha256(rel.encode()).hexdigest()[:6]}"
    if len({n.lower() for n in names}) < len(names):  # a digest that meets another name: vanishingly rare
        raise ConfigError(f"images.source: two images of {str(folder)!r} get the same name in the run; rename one")
    return names


def check_source(source: str, base: Path = Path("."), limit: int = 0) -> int:
    """The checks of `load_images` that need no decoding: the folder, its images and their labels.
    Returns how many images the run takes (`limit` applied)."""
    if source == "samples":
        return min(len(SAMPLES), limit) if limit else len(SAMPLES)
    folder = _folder(source, base)
    chosen = stratified(_entries(folder)[0], limit)
    run_names([p for p, _ in chosen], folder)
    return len(chosen)


def source_files(source: str, base: Path = Path(".")) -> dict:
    """{file: digest of its bytes} of a source folder's images and label files (samples: their names)."""
    if source == "samples":
        return {"samples": list(SAMPLES)}
    folder = _folder(source, base)
    out = {str(p.relative_to(folder)): file_digest(p) for p, _ in _entries(folder)[0]}
    for name in ("labels.csv", "images.csv"):
        if (folder / name).is_file():
            out[name] = file_digest(folder / name)
    return out


def load_images(source: str, limit: int = 0, base: Path = Path(".")) -> list[SourceImage]:
    """The images of a source ("samples" or a folder), in a stable order (a stratified sample with `limit`)."""
    if source == "samples":
        names = list(SAMPLES)[: limit or None]
        out = [SourceImage(n, _sample(n), SAMPLES[n], label_from="the sample list" if SAMPLES[n] is not None else "")
               for n in names]
        for s in out:
            s.digest = digest([s.name, s.rgb.shape, hashlib.sha256(s.rgb.tobytes()).hexdigest()])
        return out
    folder = _folder(source, base)
    entries, label_from = _entries(folder, say_problems=True)
    chosen = stratified(entries, limit)
    names = run_names([p for p, _ in chosen], folder)
    out = []
    for (p, label), name in zip(chosen, names, strict=True):
        try:
            rgb = read_image(p)
        except ValueError as e:
            warn(f"skipped image {p}: {e}")
            continue
        out.append(SourceImage(name, rgb, label, file_digest(p), label_from if label is not None else ""))
    if not out:
        raise ConfigError(f"images.source: no readable image in {str(folder)!r}")
    return out
