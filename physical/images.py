"""Image sources: photos that ship with installed packages (scikit-image, matplotlib), or a folder with a labels.csv.

A source yields `SourceImage`s: a name, the full-size 8-bit RGB photo, and its true ImageNet class
where it is known (None otherwise: the run then uses the clean top-1 prediction and says so).

labels.csv columns: ``file`` and ``class_index`` (an ImageNet index) or ``name`` (a class name);
other columns are ignored. Files not listed in labels.csv are used without a label.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .config import ConfigError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

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
        import matplotlib.cbook

        from .rundir import read_image

        return read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    import skimage.data

    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):  # stereo pairs: take the left view
        img = img[0]
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def read_labels(folder: Path) -> dict[str, int]:
    from .models import class_index

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
                labels[file] = int(raw) if raw else class_index((row.get("name") or "").strip(), f"{path}:{i}")
            except (ValueError, ConfigError) as e:
                raise ConfigError(f"{path} line {i}: bad label for {file!r}: {e}") from None
            if not 0 <= labels[file] < 1000:
                raise ConfigError(f"{path} line {i}: class_index {labels[file]} of {file!r} is out of range; "
                                  "ImageNet classes are 0 .. 999")
    return labels


def _folder(source: str, base: Path) -> Path:
    folder = Path(source).expanduser()
    folder = folder if folder.is_absolute() else base / folder
    if not folder.is_dir():
        raise ConfigError(f"images.source: folder {str(folder)!r} does not exist")
    return folder


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise ConfigError(f"images.source: folder {str(folder)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    seen: dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise ConfigError(f"images.source: {seen[p.stem].name} and {p.name} in {str(folder)!r} have the same name "
                              "(images are named by their file name without suffix); rename one")
        seen[p.stem] = p
    return files


def check_source(source: str, base: Path = Path(".")) -> None:
    """The checks of `load_images` that need no decoding: the folder, its images and labels.csv."""
    if source != "samples":
        folder = _folder(source, base)
        _image_files(folder)
        read_labels(folder)


def source_files(source: str, base: Path = Path(".")) -> dict:
    """{file name: digest of its bytes} of a source folder and its labels.csv (samples: their names)."""
    from .rundir import file_digest

    if source == "samples":
        return {"samples": list(SAMPLES)}
    folder = _folder(source, base)
    out = {p.name: file_digest(p) for p in _image_files(folder)}
    if (folder / "labels.csv").is_file():
        out["labels.csv"] = file_digest(folder / "labels.csv")
    return out


def load_images(source: str, limit: int = 0, base: Path = Path(".")) -> list[SourceImage]:
    """The images of a source ("samples" or a folder), in a stable order."""
    from .rundir import digest, file_digest, read_image

    if source == "samples":
        names = list(SAMPLES)[: limit or None]
        out = [SourceImage(n, _sample(n), SAMPLES[n]) for n in names]
        for s in out:
            s.digest = digest([s.name, s.rgb.shape, hashlib.sha256(s.rgb.tobytes()).hexdigest()])
        return out
    folder = _folder(source, base)
    labels = read_labels(folder)
    files = _image_files(folder)
    out = []
    for p in files:
        if limit and len(out) >= limit:
            break
        try:
            rgb = read_image(p)
        except ValueError as e:
            print(f"skipped image {p}: {e}")
            continue
        out.append(SourceImage(p.stem, rgb, labels.get(p.name), file_digest(p)))
    if not out:
        raise ConfigError(f"images.source: no readable image in {str(folder)!r}")
    return out
