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

import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Union
from urllib.parse import urlsplit

import numpy as np

from ..config import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
HEIC_SUFFIXES = (".heic", ".heif")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mjpg", ".mjpeg", ".mpg", ".mpeg")
AVAILABLE = ("available: 'simulate', 'folder:PATH' (or an existing folder), 'webcam:N', an http:// or rtsp:// "
             "URL, 'video:PATH' (or a video file)")
WEBCAM_PROBE = range(10)  # indices tried when the requested camera does not open

log = logging.getLogger(__name__)


class CaptureError(UserError, RuntimeError):
    """A capture source that cannot deliver photos; the message names it."""


class SourceNotAvailable(CaptureError, NotImplementedError):
    """A recognised source kind that this version cannot read yet."""


class StreamLost(CaptureError):
    """A stream that stopped delivering frames and did not come back after the allowed reconnects."""


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
        elif suffix == ".pdf":  # the likely mistakes get a line; other files (notes, sidecars) are left alone
            skipped.append({"file": p.name, "reason": "a PDF, not a photo: print it at 100 % and photograph the printed "
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


# ----------------------------------------------------------------------------------------------
# the interface


class FrameSource:
    """A source of RGB frames. Subclasses implement read(); open/close hold the device or file.

    ``live``: frames arrive in real time whether or not they are read (a camera, a stream, a video
    played at its frame rate); ``fps``: the nominal frame rate where known; ``index``: the number of
    the frame read last (0-based, -1 before the first).
    """

    live = False
    fps: Optional[float] = None
    name = "source"
    index = -1

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

    def __str__(self) -> str:
        return self.name


class Pacer:
    """Sleeps so that frames come out at `fps` (a recorded source played as if live); when the reader
    falls more than a second behind, the clock restarts instead of bursting to catch up."""

    def __init__(self, fps: Optional[float]):
        self.fps = fps if fps and fps > 0 else None
        self.t0: Optional[float] = None
        self.n = 0

    def wait(self) -> None:
        if self.fps is None:
            return
        now = time.perf_counter()
        if self.t0 is None:
            self.t0, self.n = now, 0
        target = self.t0 + self.n / self.fps
        if target > now:
            time.sleep(target - now)
        elif now - target > 1.0:
            self.t0, self.n = now, 0
        self.n += 1


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
        from ..rundir import read_image

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
# OpenCV sources: webcam, URL, video


class quiet_opencv:
    """Silence OpenCV's own warnings for a block (probing camera indices prints one per index)."""

    def __enter__(self):
        import cv2

        self.logging = getattr(getattr(cv2, "utils", None), "logging", None)
        if self.logging is not None:
            self.level = self.logging.getLogLevel()
            self.logging.setLogLevel(self.logging.LOG_LEVEL_SILENT)
        return self

    def __exit__(self, *exc):
        if self.logging is not None:
            self.logging.setLogLevel(self.level)


def _camera_defaults():
    from ..config import CameraConfig

    return CameraConfig()


class CvSource(FrameSource):
    """A cv2.VideoCapture: webcam, URL or video. Subclasses implement `_create` and `_open_error`.

    A live source whose read fails is reopened up to ``camera.reconnects`` times (with a short,
    growing pause); then :class:`StreamLost` says so, naming the source and how many frames came.
    """

    def __init__(self, camera=None):
        self.camera = camera or _camera_defaults()
        self.cap = None
        self.granted: dict = {}
        self.reconnected = 0  # reopenings that brought the stream back
        self._first: Optional[np.ndarray] = None

    # -- subclass hooks -----------------------------------------------------------------------
    def _create(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _open_error(self) -> CaptureError:  # pragma: no cover - abstract
        raise NotImplementedError

    def _after_open(self) -> None:
        pass

    # -- the interface ------------------------------------------------------------------------
    def open(self) -> "CvSource":
        self.cap = self._create()
        if self.cap is None or not self.cap.isOpened():
            self._release()
            raise self._open_error()
        self._after_open()
        fps = float(self.cap.get(__import__("cv2").CAP_PROP_FPS) or 0)
        if self.fps is None and 0 < fps < 1000:
            self.fps = fps
        self._first = self._grab()
        if self._first is None:
            self._release()
            raise self._no_frame_error()
        self.index = -1
        return self

    def _no_frame_error(self) -> CaptureError:
        return CaptureError(f"{self.name} opened but sent no frame within {self.camera.read_timeout_s:g} s")

    def _grab(self) -> Optional[np.ndarray]:
        import cv2

        try:
            ok, bgr = self.cap.read()
        except cv2.error:
            return None
        if not ok or bgr is None or bgr.size == 0:
            return None
        if bgr.ndim == 2:
            return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB if bgr.shape[2] == 4 else cv2.COLOR_BGR2RGB)

    def read(self) -> Optional[np.ndarray]:
        if self.cap is None:
            raise CaptureError(f"{self.name}: read() before open()")
        if self._first is not None:
            frame, self._first = self._first, None
        else:
            frame = self._grab()
            if frame is None:
                frame = self._end_of_frames()
                if frame is None:
                    return None
        self.index += 1
        return frame

    def _end_of_frames(self) -> Optional[np.ndarray]:
        """No frame: the end of a video (None); a live stream is reopened, bounded."""
        if not self.live:
            return None
        n = int(self.camera.reconnects)
        for attempt in range(1, n + 1):
            log.warning("%s: no frame for %g s or the connection closed; reopening (%d of %d)",
                        self.name, self.camera.read_timeout_s, attempt, n)
            self._release()
            time.sleep(min(0.5 * attempt, 2.0))
            try:
                with quiet_opencv():
                    cap = self._create()
            except CaptureError:
                cap = None
            if cap is None or not cap.isOpened():
                continue
            self.cap = cap
            frame = self._grab()
            if frame is not None:
                self.reconnected += 1
                log.warning("%s: stream is back", self.name)
                return frame
        self._release()
        raise StreamLost(f"{self.name} stopped delivering frames after {self.index + 1} frames; "
                         f"reopened {n} time(s) without getting a frame back (capture.camera.reconnects)")

    def _release(self) -> None:
        if self.cap is not None:
            try:
                self.cap.release()
            except Exception:  # pragma: no cover
                pass
        self.cap = None

    def close(self) -> None:
        self._release()
        self._first = None

    @property
    def size(self) -> Optional[tuple[int, int]]:
        import cv2

        if self.cap is None:
            return None
        return int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))


def apply_hints(cap, camera) -> dict:
    """Ask the camera for the resolution, frame rate, focus and exposure of `camera` (a CameraConfig);
    returns {hint: {"requested": ..., "granted": ...}}. Drivers ignore what they do not support."""
    import cv2

    out: dict = {}

    def ask(name, prop, value, requested=None):
        ok = bool(cap.set(prop, float(value)))
        got = cap.get(prop)
        out[name] = {"requested": value if requested is None else requested, "granted": got if ok else None}

    if camera.resolution:
        w, h = camera.resolution
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(w))
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(h))
        out["resolution"] = {"requested": [w, h], "granted": [int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                                                              int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))]}
    if camera.fps:
        ask("fps", cv2.CAP_PROP_FPS, camera.fps)
    if camera.focus is not None:
        cap.set(cv2.CAP_PROP_AUTOFOCUS, 0.0)
        ask("focus", cv2.CAP_PROP_FOCUS, camera.focus)
    elif camera.autofocus is not None:
        ask("autofocus", cv2.CAP_PROP_AUTOFOCUS, 1.0 if camera.autofocus else 0.0, camera.autofocus)
    if camera.exposure is not None:
        backend = ""
        try:
            backend = cap.getBackendName()
        except Exception:  # pragma: no cover
            pass
        # manual exposure: V4L2 takes its menu value 1, DirectShow / MSMF the (odd) 0.25
        cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1.0 if "V4L" in backend.upper() else 0.25)
        ask("exposure", cv2.CAP_PROP_EXPOSURE, camera.exposure)
    return out


def probe_webcams(indices=WEBCAM_PROBE, skip: Optional[int] = None) -> list[int]:
    """Camera indices that open and deliver a frame."""
    import cv2

    found = []
    with quiet_opencv():
        for i in indices:
            if i == skip:
                continue
            cap = cv2.VideoCapture(i)
            try:
                if cap.isOpened() and cap.read()[0]:
                    found.append(i)
            finally:
                cap.release()
    return found


class WebcamSource(CvSource):
    """A camera by index, with the resolution / frame rate / focus / exposure hints of capture.camera."""

    live = True

    def __init__(self, index: int, camera=None):
        super().__init__(camera)
        self.cam_index = int(index)
        self.name = f"webcam {self.cam_index}"

    def _create(self):
        import cv2

        with quiet_opencv():
            return cv2.VideoCapture(self.cam_index)

    def _after_open(self) -> None:
        self.granted = apply_hints(self.cap, self.camera)
        for hint, g in self.granted.items():
            refused = g["granted"] is None or (hint != "autofocus" and g["granted"] != g["requested"])
            if refused:
                log.warning("%s: asked for %s %s, the driver gives %s", self.name, hint, g["requested"], g["granted"])

    def _open_error(self) -> CaptureError:
        answered = probe_webcams(skip=self.cam_index)
        lo, hi = WEBCAM_PROBE[0], WEBCAM_PROBE[-1]
        if answered:
            which = ", ".join(str(i) for i in answered)
            return CaptureError(f"webcam {self.cam_index} did not open; cameras answered at index {which} "
                                f"(use webcam:{answered[0]})")
        return CaptureError(f"webcam {self.cam_index} did not open, and no camera answered at indices {lo}-{hi} "
                            "(is one connected and not in use by another program?)")


DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935}


class UrlSource(CvSource):
    """A network stream through OpenCV's FFMPEG backend: MJPEG over HTTP (the phone apps IP Webcam and
    DroidCam serve one) or RTSP. An address that does not answer fails within
    ``camera.open_timeout_s``, naming the URL; a stream that stalls for ``camera.read_timeout_s``
    is reopened (``camera.reconnects`` times)."""

    live = True

    def __init__(self, url: str, camera=None):
        super().__init__(camera)
        self.url = str(url)
        self.name = f"stream {self.url}"

    def _check_reachable(self) -> None:
        parts = urlsplit(self.url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            return  # udp://, file:// and friends: left to FFMPEG
        if not parts.hostname:
            raise CaptureError(f"{self.url}: not a stream URL (no host); expected e.g. http://192.168.1.20:8080/video")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise CaptureError(f"{self.url}: the port is not a number") from None
        t = float(self.camera.open_timeout_s)
        try:
            socket.create_connection((parts.hostname, port), timeout=t).close()
        except socket.timeout:
            raise CaptureError(f"cannot reach stream {self.url}: no answer from {parts.hostname}:{port} within {t:g} s "
                               "(is the phone on this network and the app streaming?)") from None
        except OSError as e:
            reason = e.strerror or str(e)
            raise CaptureError(f"cannot reach stream {self.url}: {reason} at {parts.hostname}:{port} "
                               "(is the app streaming, and the address and port right?)") from None

    def open(self) -> "UrlSource":
        self._check_reachable()
        return super().open()

    def _create(self):
        import os

        import cv2

        if urlsplit(self.url).scheme.lower().startswith("rtsp"):
            # phone apps serve RTSP over TCP more reliably than FFMPEG's default UDP
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.camera.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.camera.read_timeout_s * 1000)]
        with quiet_opencv():
            return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)

    def _open_error(self) -> CaptureError:
        return CaptureError(f"cannot open stream {self.url}: it answers, but OpenCV's FFMPEG backend read no video "
                            f"from it within {self.camera.open_timeout_s:g} s (the app's video address is e.g. "
                            "http://PHONE:8080/video for IP Webcam, http://PHONE:4747/video for DroidCam)")


class VideoSource(CvSource):
    """A video file. With `realtime`, frames come at the video's frame rate as if from a camera
    (live mode); otherwise every frame, as fast as they are read (guided capture)."""

    def __init__(self, path: Path, camera=None, realtime: bool = False, loop: bool = False):
        super().__init__(camera)
        self.path = Path(path)
        self.name = f"video {self.path}"
        self.live = bool(realtime)
        self.loop = loop
        self._pacer: Optional[Pacer] = None

    def open(self) -> "VideoSource":
        if not self.path.exists():
            raise CaptureError(f"video file {self.path} does not exist")
        if self.path.is_dir():
            raise CaptureError(f"video file {self.path} is a folder (for photos use folder:{self.path})")
        super().open()
        self._pacer = Pacer(self.fps if self.live else None)
        return self

    def _create(self):
        import cv2

        with quiet_opencv():
            return cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)

    def _open_error(self) -> CaptureError:
        return CaptureError(f"video file {self.path} is not readable: OpenCV could not open it "
                            "(not a video, or a codec its FFMPEG backend lacks)")

    def _no_frame_error(self) -> CaptureError:
        return CaptureError(f"video file {self.path} is not readable: no frame could be decoded")

    def _end_of_frames(self) -> Optional[np.ndarray]:
        if self.loop and self.index >= 0:
            self._release()
            self.cap = self._create()
            return self._grab() if self.cap.isOpened() else None
        return None

    def read(self) -> Optional[np.ndarray]:
        frame = super().read()
        if frame is not None and self._pacer is not None:
            self._pacer.wait()
        return frame


# ----------------------------------------------------------------------------------------------
# taking the latest frame


class LatestFrame:
    """One slot holding the newest item: put() replaces what nobody took (it is dropped, never
    queued); get() waits for an item newer than the one the caller saw last."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self._seq = 0
        self._closed = False
        self.dropped = 0
        self._taken = True

    def put(self, item) -> int:
        with self._cond:
            if not self._taken:
                self.dropped += 1
            self._item, self._taken = item, False
            self._seq += 1
            self._cond.notify_all()
            return self._seq

    def get(self, after: int = 0, timeout: Optional[float] = None) -> tuple[int, object]:
        """(seq, item) of the newest item with seq > after; (after, None) on timeout or close."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > after or self._closed, timeout):
                return after, None
            if self._seq <= after:
                return after, None
            self._taken = True
            return self._seq, self._item

    def peek(self) -> tuple[int, object]:
        with self._cond:
            return self._seq, self._item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class Grabber(FrameSource):
    """Reads a live source in a thread and hands out only its newest frame: a consumer slower than
    the stream (guided capture's marker search) skips frames instead of falling behind. An error of
    the source (a lost stream) is raised by the next read()."""

    live = True

    def __init__(self, source: FrameSource):
        self.source = source
        self.name = source.name
        self.slot = LatestFrame()
        self._seen = 0
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()

    def open(self) -> "Grabber":
        self.source.open()
        self.fps = self.source.fps
        self._thread = threading.Thread(target=self._run, name=f"grab {self.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                self.slot.put((self.source.index, frame))
        except BaseException as e:  # handed to the consumer
            self._error = e
        finally:
            self.slot.close()

    ended = False

    def read_within(self, timeout: float) -> Optional[np.ndarray]:
        """The newest frame not handed out yet, waiting at most `timeout` s; None when none came (then
        `ended` tells the end of the source from a wait). Raises the source's error (a lost stream)."""
        seq, item = self.slot.get(self._seen, timeout=timeout)
        if item is not None:
            self._seen = seq
            self.index, frame = item
            return frame
        if self.slot.closed:
            self.ended = True
            if self._error is not None:
                raise self._error
        return None

    def read(self) -> Optional[np.ndarray]:
        while True:
            frame = self.read_within(0.5)
            if frame is not None or self.ended:
                return frame

    @property
    def dropped(self) -> int:
        return self.slot.dropped

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(2.0, float(getattr(getattr(self.source, "camera", None), "read_timeout_s", 2))) + 1)
        self.source.close()


# ----------------------------------------------------------------------------------------------
# choosing a source


def open_source(spec: SourceSpec, camera=None, *, realtime: bool = False, loop: bool = False, run=None, cfg=None,
                **simulate) -> FrameSource:
    """The FrameSource for a spec (not opened yet). `camera` is a CameraConfig; `realtime` plays a
    video at its frame rate and a folder at one photo a second; `loop` starts a video or a folder
    over; a ``simulate`` stream needs the run (and its config) whose sheets it films, `simulate`
    goes to `SimulatedSource.for_run`."""
    if spec.kind == "folder":
        return FolderSource(Path(spec.target), fps=1.0 if realtime else None, loop=loop)
    if spec.kind == "webcam":
        return WebcamSource(int(spec.target), camera)
    if spec.kind == "url":
        return UrlSource(str(spec.target), camera)
    if spec.kind == "video":
        return VideoSource(Path(spec.target), camera, realtime=realtime, loop=loop)
    if spec.kind == "simulate":
        if run is None:
            raise CaptureError("a simulated stream films a run's printed sheets: give the run (--run RUN)")
        from .simulated import SimulatedSource

        return SimulatedSource.for_run(run, cfg, realtime=realtime, loop=loop, **simulate)
    raise not_available(spec)


def not_available(spec: SourceSpec) -> SourceNotAvailable:
    return SourceNotAvailable(f"capture.source {spec.text!r}: {spec.kind} sources are not available here; {AVAILABLE}")
