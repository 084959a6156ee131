"""The frame source interface and what every source shares: errors that name the source, pacing,
and a reader thread that hands out only the newest frame of a live source."""
from __future__ import annotations

import threading
import time
from typing import Any, Iterator, Optional

import cv2
import numpy as np

from physical.errors import UserError


class CaptureError(UserError, RuntimeError):
    """A capture source that cannot deliver photos; the message names it."""


class SourceNotAvailable(CaptureError, NotImplementedError):
    """A recognised source kind that this version cannot read yet."""


class StreamLost(CaptureError):
    """A stream that stopped delivering frames and did not come back after the allowed reconnects."""


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


class quiet_opencv:
    """Silence OpenCV's own warnings for a block (probing camera indices prints one per index)."""

    def __enter__(self):
        self.logging = getattr(getattr(cv2, "utils", None), "logging", None)
        if self.logging is not None:
            self.level = self.logging.getLogLevel()
            self.logging.setLogLevel(self.logging.LOG_LEVEL_SILENT)
        return self

    def __exit__(self, *exc):
        if self.logging is not None:
            self.logging.setLogLevel(self.level)


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

    def get(self, after: int = 0, timeout: Optional[float] = None) -> tuple[int, Any]:
        """(seq, item) of the newest item with seq > after; (after, None) on timeout or close."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > after or self._closed, timeout):
                return after, None
            if self._seq <= after:
                return after, None
            self._taken = True
            return self._seq, self._item

    def peek(self) -> tuple[int, Any]:
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
            read_timeout = float(getattr(getattr(self.source, "camera", None), "read_timeout_s", 2))
            self._thread.join(timeout=max(2.0, read_timeout) + 1)
        self.source.close()
