"""OpenCV sources: a webcam by index, a network stream (MJPEG over HTTP, RTSP), a video file."""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import cv2
import numpy as np

from physical.config import CameraConfig
from physical.log import say, warn
from physical.capture.frames import CaptureError, FrameSource, Pacer, StreamLost, quiet_opencv

WEBCAM_PROBE = range(10)  # indices tried when the requested camera does not open


def _camera_defaults():
    return CameraConfig()


class CvSource(FrameSource):
    """A cv2.VideoCapture: webcam, URL or video. Subclasses implement `_create` and `_open_error`.

    A live source whose read fails is reopened up to ``camera.reconnects`` times (with a short,
    growing pause); then :class:`StreamLost` says so, naming the source and how many frames came.
    """

    def __init__(self, camera=None):
        self.camera = camera or _camera_defaults()
        self.cap: Any = None  # a cv2.VideoCapture once open
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
        frame: Optional[np.ndarray]
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
            # progress, not a fault of the user's: the error line, if reopening fails, is the one on stderr
            say(f"{self.name}: no frame for {self.camera.read_timeout_s:g} s or the connection closed; "
                f"reopening ({attempt} of {n})")
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
                say(f"{self.name}: stream is back")
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
        if self.cap is None:
            return None
        return int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))


def apply_hints(cap, camera) -> dict:
    """Ask the camera for the resolution, frame rate, focus and exposure of `camera` (a CameraConfig);
    returns {hint: {"requested": ..., "granted": ...}}. Drivers ignore what they do not support."""
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
        with quiet_opencv():
            return cv2.VideoCapture(self.cam_index)

    def _after_open(self) -> None:
        self.granted = apply_hints(self.cap, self.camera)
        for hint, g in self.granted.items():
            refused = g["granted"] is None or (hint != "autofocus" and g["granted"] != g["requested"])
            if refused:
                warn(f"{self.name}: asked for {hint} {g['requested']}, the driver gives {g['granted']}")

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

    def _check_url(self) -> None:
        """A URL without a host or with a non-numeric port is named before anything is opened."""
        parts = urlsplit(self.url)
        if parts.scheme.lower() not in DEFAULT_PORTS:
            return  # udp://, file:// and friends: left to FFMPEG
        if not parts.hostname:
            raise CaptureError(f"{self.url}: not a stream URL (no host); expected e.g. http://192.168.1.20:8080/video")
        try:
            _ = parts.port  # raises for a port that is not a number
        except ValueError:
            raise CaptureError(f"{self.url}: the port is not a number") from None

    def open(self) -> "UrlSource":
        self._check_url()
        super().open()
        return self

    def _create(self):
        """cv2.VideoCapture of the URL, opened in a thread: the caller waits at most
        ``open_timeout_s`` (and a second) whatever FFMPEG does. No connection is made before it
        (a camera that serves one client at a time would count a probe as that client)."""
        if urlsplit(self.url).scheme.lower().startswith("rtsp"):
            # phone apps serve RTSP over TCP more reliably than FFMPEG's default UDP
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.camera.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.camera.read_timeout_s * 1000)]
        box: list = []

        def opening() -> None:
            with quiet_opencv():
                cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
            box.append(cap)
            if abandoned.is_set():  # the caller gave up waiting: nobody else will release it
                cap.release()

        abandoned = threading.Event()
        thread = threading.Thread(target=opening, name=f"open {self.url}", daemon=True)
        thread.start()
        thread.join(float(self.camera.open_timeout_s) + 1.0)
        if not box:
            abandoned.set()
            if box:  # it finished in between
                box[0].release()
            return None
        return box[0]

    def _open_error(self) -> CaptureError:
        """Why the stream did not open, found out after the failed open: whether anything listens
        at the address is asked only now (a single-client camera is not open to us anyway)."""
        parts = urlsplit(self.url)
        t = float(self.camera.open_timeout_s)
        scheme = parts.scheme.lower()
        if scheme in DEFAULT_PORTS and parts.hostname:
            port = parts.port or DEFAULT_PORTS[scheme]
            try:
                socket.create_connection((parts.hostname, port), timeout=min(t, 2.0)).close()
            except socket.timeout:
                return CaptureError(f"cannot reach stream {self.url}: no answer from {parts.hostname}:{port} within "
                                    f"{t:g} s (is the phone on this network and the app streaming?)")
            except OSError as e:
                reason = e.strerror or str(e)
                return CaptureError(f"cannot reach stream {self.url}: {reason} at {parts.hostname}:{port} "
                                    "(is the app streaming, and the address and port right?)")
        return CaptureError(f"cannot open stream {self.url}: OpenCV's FFMPEG backend read no video from it within "
                            f"{t:g} s (not a video stream at this address, or it serves another client; the app's "
                            "video address is e.g. http://PHONE:8080/video for IP Webcam, http://PHONE:4747/video "
                            "for DroidCam)")

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
