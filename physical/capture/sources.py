"""Frame sources: where photos of the printed sheets come from.

``capture.source`` is parsed by :func:`parse_source` into a :class:`SourceSpec`:

- ``simulate``                        the virtual printer and camera (physical.simulate)
- ``folder:PATH`` or an existing folder  photos taken elsewhere (a phone), copied as they are
- ``webcam:N`` or ``N``, a URL (``http://``, ``rtsp://``), ``video:PATH`` or a video file:
  recognised, not available yet (a later issue adds them as :class:`FrameSource` subclasses)

A :class:`FrameSource` yields RGB frames: ``open()``, ``read()`` (None when exhausted), ``close()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import numpy as np

from ..config import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
HEIC_SUFFIXES = (".heic", ".heif")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mjpg", ".mjpeg", ".mpg", ".mpeg")
AVAILABLE = "available: 'simulate', 'folder:PATH' (or the path of an existing folder)"


class CaptureError(UserError, RuntimeError):
    """A capture source that cannot deliver photos; the message names it."""


class SourceNotAvailable(CaptureError, NotImplementedError):
    """A recognised source kind that this version cannot read yet."""


@dataclass
class SourceSpec:
    kind: str  # simulate | folder | webcam | url | video
    target: Union[None, Path, str, int] = None
    text: str = ""  # capture.source as written


def parse_source(text: str, resolve: Callable[[str], Path] = Path) -> SourceSpec:
    """capture.source -> SourceSpec; relative paths go through `resolve` (cfg.resolve)."""
    s = str(text).strip()
    low = s.lower()
    if low == "simulate":
        return SourceSpec("simulate", None, s)
    if low.startswith("folder:"):
        return SourceSpec("folder", resolve(s[7:].strip()), s)
    if low.startswith("video:"):
        return SourceSpec("video", resolve(s[6:].strip()), s)
    if low.startswith("webcam:") and s[7:].strip().isdigit():
        return SourceSpec("webcam", int(s[7:].strip()), s)
    if s.isdigit():
        return SourceSpec("webcam", int(s), s)
    if "://" in s:
        return SourceSpec("url", s, s)
    path = resolve(s)
    if path.is_dir():
        return SourceSpec("folder", path, s)
    if path.suffix.lower() in VIDEO_SUFFIXES or path.is_file():
        return SourceSpec("video", path, s)
    return SourceSpec("folder", path, s)  # a path that is not there: reported as a missing folder


def image_kind(path: Path) -> Optional[str]:
    """The image format from the file's first bytes (jpeg, png, bmp, tiff, webp, heic), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError:
        return None
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
        return "heic"
    return None


def list_photos(folder: Path) -> tuple[list[Path], list[dict]]:
    """Photos in a folder (not its subfolders), by name, and the files skipped with the reason.

    Raises CaptureError naming the folder when it does not exist or holds no readable photo.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise CaptureError(f"capture folder {folder} {what}")
    photos, skipped = [], []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        suffix = p.suffix.lower()
        if suffix in HEIC_SUFFIXES or (suffix in IMAGE_SUFFIXES and image_kind(p) == "heic"):
            skipped.append({"file": p.name, "reason": "HEIC/HEIF is not readable by OpenCV; export the photo as JPEG"})
        elif suffix in IMAGE_SUFFIXES:
            if image_kind(p) is None:
                skipped.append({"file": p.name, "reason": f"not a {suffix[1:]} image (unknown file header)"})
            else:
                photos.append(p)
    if not photos:
        reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:5])
        extra = f" ({len(skipped)} skipped: {reasons})" if skipped else ""
        raise CaptureError(
            f"capture folder {folder} holds no photos; expected files ending in "
            f"{', '.join(IMAGE_SUFFIXES)}{extra}"
        )
    return photos, skipped


class FrameSource:
    """A source of RGB frames. Subclasses implement read(); open/close hold the device or file."""

    def open(self) -> "FrameSource":
        return self

    def read(self) -> Optional[np.ndarray]:
        """The next frame, H x W x 3 RGB uint8, or None when the source is exhausted."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        while (frame := self.read()) is not None:
            yield frame


class FolderSource(FrameSource):
    """The photos of a folder, in name order; unreadable ones are skipped."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.photos: list[Path] = []
        self.skipped: list[dict] = []
        self._next = 0

    def open(self) -> "FolderSource":
        self.photos, self.skipped = list_photos(self.folder)
        self._next = 0
        return self

    def read(self) -> Optional[np.ndarray]:
        from ..rundir import read_image

        while self._next < len(self.photos):
            path = self.photos[self._next]
            self._next += 1
            try:
                return read_image(path)
            except ValueError as e:
                self.skipped.append({"file": path.name, "reason": str(e)})
        return None


def open_source(spec: SourceSpec) -> FrameSource:
    """The FrameSource for a spec; raises SourceNotAvailable for kinds not implemented yet."""
    if spec.kind == "folder":
        return FolderSource(Path(spec.target))
    raise not_available(spec)


def not_available(spec: SourceSpec) -> SourceNotAvailable:
    return SourceNotAvailable(f"capture.source {spec.text!r}: {spec.kind} sources are not available yet; {AVAILABLE}")
