"""Frame sources: where photos of the printed sheets come from.

``capture.source`` (or ``--source``) is parsed by :func:`parse_source` into a :class:`SourceSpec`:

==================================  ===========================================================
``simulate``                        the virtual printer and camera (the pipeline photographs every
                                    sheet directly; as a stream: :class:`SimulatedSource`)
``folder:PATH`` or a folder         photos taken elsewhere (a phone), copied as they are
``webcam:N`` or ``N``               a camera by index (:class:`WebcamSource`)
``http://...``, ``rtsp://...``      a phone or IP camera stream: MJPEG over HTTP (IP Webcam:
                                    ``http://PHONE:8080/video``, DroidCam: ``http://PHONE:4747/video``)
                                    or RTSP (:class:`UrlSource`)
``video:PATH`` or a video file      a recorded video (:class:`VideoSource`)
==================================  ===========================================================

A :class:`FrameSource` yields RGB frames: ``open()``, ``read()`` (None when exhausted), ``close()``;
``live`` says whether frames arrive in real time (a consumer slower than the source takes the
latest frame and drops the rest, see :class:`LatestFrame`). Webcams, URLs and videos go through
OpenCV's ``VideoCapture`` (:class:`CvSource`): a stream that stops delivering frames is reopened
``capture.camera.reconnects`` times, then :class:`StreamLost` is raised naming the source.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from physical.rundir import HEIF_BRANDS, NO_HEIF_PLUGIN, heif_plugin, read_image
from physical.capture.frames import (CaptureError, FrameSource, Grabber, LatestFrame, Pacer, SourceNotAvailable,
                                     StreamLost, quiet_opencv)
from physical.capture.simulated_stream import SimulatedSource
from physical.capture.streams import (WEBCAM_PROBE, CvSource, UrlSource, VideoSource, WebcamSource, apply_hints,
                                      probe_webcams)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
HEIC_SUFFIXES = (".heic", ".heif")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mjpg", ".mjpeg", ".mpg", ".mpeg")
AVAILABLE = ("available: 'simulate', 'folder:PATH' (or an existing folder), 'webcam:N', an http:// or rtsp:// "
             "URL, 'video:PATH' (or a video file)")

__all__ = [  # the capture sources' names, wherever they live
    "CaptureError", "CvSource", "FolderSource", "FrameSource", "Grabber", "LatestFrame", "Pacer",
    "SourceNotAvailable", "SourceSpec", "StreamLost", "UrlSource", "VideoSource", "WEBCAM_PROBE", "WebcamSource",
    "apply_hints", "image_kind", "list_photos", "not_available", "open_source", "parse_source", "probe_webcams",
    "quiet_opencv",
]


@dataclass
class SourceSpec:
    kind: str  # simulate | folder | webcam | url | video
    target: Union[None, Path, str, int] = None
    text: str = ""  # capture.source as written

    @property
    def path(self) -> Path:
        """The folder or file of a folder or video source."""
        assert isinstance(self.target, (str, Path)), f"{self.text}: not a folder or a file"
        return Path(self.target)


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
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return "heic"
    return None


def heif_readable(path: Path) -> bool:
    """Whether pillow-heif can parse a HEIC/HEIF file's container (no pixels decoded: cheap)."""
    from pillow_heif import open_heif  # deferred: optional HEIC plugin; asked only when heif_plugin() found it

    try:
        open_heif(str(path))
    except (ValueError, RuntimeError, OSError):
        return False
    return True


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
            if not heif_plugin():
                skipped.append({"file": p.name, "reason": NO_HEIF_PLUGIN})
            elif heif_readable(p):
                photos.append(p)
            else:
                skipped.append({"file": p.name, "reason": "not a readable HEIC/HEIF image (corrupt or truncated)"})
        elif suffix == ".pdf":  # the likely mistakes get a line; other files (notes, sidecars) are left alone
            skipped.append({"file": p.name, "reason": "a PDF, not a photo: print it at 100 % and photograph the "
                                                      "printed "
                                                      "page"})
        elif suffix in VIDEO_SUFFIXES:
            skipped.append({"file": p.name, "reason": f"a video, not a photo: give it as a source of its own "
                                                      f"(video:{p}), guided capture picks its frames"})
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


class FolderSource(FrameSource):
    """The photos of a folder, in name order; unreadable ones are skipped."""

    def __init__(self, folder: Path, fps: Optional[float] = None, loop: bool = False):
        self.folder = Path(folder)
        self.loop = loop
        self.name = f"folder {self.folder}"
        self.photos: list[Path] = []
        self.skipped: list[dict] = []
        self._next = 0
        self.fps = fps
        self.live = fps is not None
        self._pacer = Pacer(fps)

    def open(self) -> "FolderSource":
        self.photos, self.skipped = list_photos(self.folder)
        self._next = 0
        self.index = -1
        return self

    def read(self) -> Optional[np.ndarray]:
        while self._next < len(self.photos) or (self.loop and self.index >= 0):
            if self._next >= len(self.photos):
                self._next = 0
            path = self.photos[self._next]
            self._next += 1
            try:
                img = read_image(path)
            except ValueError as e:
                self.skipped.append({"file": path.name, "reason": str(e)})
                continue
            self._pacer.wait()
            self.index += 1
            return img
        return None


# ----------------------------------------------------------------------------------------------
# choosing a source


def _folder(spec: SourceSpec, o: dict) -> FrameSource:
    return FolderSource(Path(str(spec.target)), fps=1.0 if o["realtime"] else None, loop=o["loop"])


def _webcam(spec: SourceSpec, o: dict) -> FrameSource:
    return WebcamSource(int(str(spec.target)), o["camera"])


def _url(spec: SourceSpec, o: dict) -> FrameSource:
    return UrlSource(str(spec.target), o["camera"])


def _video(spec: SourceSpec, o: dict) -> FrameSource:
    return VideoSource(Path(str(spec.target)), o["camera"], realtime=o["realtime"], loop=o["loop"])


def _simulate(spec: SourceSpec, o: dict) -> FrameSource:
    if o["run"] is None:
        raise CaptureError("a simulated stream films a run's printed sheets: give the run (--run RUN)")
    return SimulatedSource.for_run(o["run"], o["cfg"], realtime=o["realtime"], loop=o["loop"], **o["simulate"])


# the frame sources, by the kind `parse_source` reads off capture.source: kind -> opener
SOURCES: dict[str, Callable[[SourceSpec, dict], FrameSource]] = {
    "simulate": _simulate, "folder": _folder, "webcam": _webcam, "url": _url, "video": _video,
}


def open_source(spec: SourceSpec, camera=None, *, realtime: bool = False, loop: bool = False, run=None, cfg=None,
                **simulate) -> FrameSource:
    """The FrameSource for a spec (not opened yet). `camera` is a CameraConfig; `realtime` plays a
    video at its frame rate and a folder at one photo a second; `loop` starts a video or a folder
    over; a ``simulate`` stream needs the run (and its config) whose sheets it films, `simulate`
    goes to `SimulatedSource.for_run`."""
    opener = SOURCES.get(spec.kind)
    if opener is None:
        raise not_available(spec)
    return opener(spec, {"camera": camera, "realtime": realtime, "loop": loop, "run": run, "cfg": cfg,
                         "simulate": simulate})


def not_available(spec: SourceSpec) -> SourceNotAvailable:
    return SourceNotAvailable(f"capture.source {spec.text!r}: {spec.kind} sources are not available here; {AVAILABLE}")
