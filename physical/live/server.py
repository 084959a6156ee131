"""Live mode's outputs: the annotated stream served as MJPEG with an HTML page, and a recorder."""
from __future__ import annotations

import json
import threading
import time
from html import escape
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from physical.capture import mjpeg
from physical.capture.sources import LatestFrame
from physical.errors import ConfigError

CYCLE = [None, "blur", "jpeg", "binarize", "multicrop"]  # the `d` key and the HTML page's switches



PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>physical live</title>
<style>body{{background:#111;color:#ddd;font:14px sans-serif;margin:12px}}img{{max-width:100%;border:1px solid #333}}
a{{color:#8cf;margin-right:10px}}.on{{color:#fff;font-weight:bold}}</style></head><body>
<h3>physical live: {title}</h3><p><img src="/stream.mjpg" alt="live stream"></p>
<p>defence: {links}</p><p><a href="/status.json">status.json</a> <a href="/frame.jpg">frame.jpg</a></p>
</body></html>"""


class MjpegServer:
    """The annotated stream as MJPEG (``/stream.mjpg``, multipart/x-mixed-replace) with a small HTML
    page (``/``), the newest frame (``/frame.jpg``), the newest result (``/status.json``) and defence
    switches (``/defence?name=jpeg``). Frames are encoded only while someone watches."""

    def __init__(self, port: int, host: str = "127.0.0.1", quality: int = 80,
                 status: Callable[[], dict] = dict, set_defence: Optional[Callable[[Optional[str]], str]] = None,
                 title: str = ""):
        self.quality = int(quality)
        self.slot = LatestFrame()  # encoded JPEG bytes
        self.status = status
        self.set_defence = set_defence
        self.title = title
        self.watchers = 0
        self._lock = threading.Lock()
        self._last_rgb: Optional[np.ndarray] = None
        server = self

        class Handler(mjpeg.Handler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):
                u = urlsplit(self.path)
                try:
                    if u.path in ("/", "/index.html"):
                        self.send_body(200, "text/html; charset=utf-8", server.page().encode())
                    elif u.path in ("/stream.mjpg", "/video", "/stream"):
                        self._stream()
                    elif u.path == "/frame.jpg":
                        jpg = server.encode_last()
                        self.send_body(200 if jpg else 503, "image/jpeg" if jpg else "text/plain",
                                   jpg or b"no frame yet")
                    elif u.path == "/status.json":
                        self.send_body(200, "application/json", json.dumps(server.status()).encode())
                    elif u.path == "/defence" and server.set_defence is not None:
                        name = parse_qs(u.query).get("name", ["none"])[0]
                        try:
                            server.set_defence(name)
                        except ConfigError as e:
                            self.send_body(400, "text/plain", str(e).encode())
                            return
                        self.send_response(303)
                        self.send_header("Location", "/")
                        self.end_headers()
                    else:
                        self.send_body(404, "text/plain", b"not found")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _stream(self):
                self.start_stream()
                with server._lock:
                    server.watchers += 1
                try:
                    seen = 0
                    while not server.slot.closed:
                        seq, jpg = server.slot.get(seen, timeout=1.0)
                        if jpg is None:
                            continue
                        seen = seq
                        self.send_frame(jpg)
                        self.wfile.flush()
                finally:
                    with server._lock:
                        server.watchers -= 1

        self.httpd, self._thread = mjpeg.serve(Handler, host, port, "mjpeg server")
        self.port = self.httpd.server_address[1]
        self.host = host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def page(self) -> str:
        cur = self.status().get("defence", "none")
        links = " ".join(f'<a class="{"on" if (n or "none") == cur.split("-")[0] else ""}" '
                         f'href="/defence?name={n or "none"}">{n or "none"}</a>' for n in CYCLE)
        return PAGE.format(title=escape(self.title), links=links)

    def publish(self, rgb: np.ndarray) -> None:
        self._last_rgb = rgb
        if self.watchers > 0:
            self.slot.put(self._encode(rgb))

    def _encode(self, rgb: np.ndarray) -> bytes:
        return mjpeg.encode_jpeg(rgb, self.quality)

    def encode_last(self) -> Optional[bytes]:
        rgb = self._last_rgb
        return self._encode(rgb) if rgb is not None else None

    def close(self) -> None:
        self.slot.close()
        mjpeg.shut(self.httpd)


class Recorder:
    """Writes the annotated frames to a video: mp4v for .mp4/.m4v/.mov, MJPG for .avi (OpenCV's
    FFMPEG here cannot write H.264). Without a known frame rate, the first 15 frames measure it."""

    CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}

    def __init__(self, path: str | Path, fps: Optional[float] = None):
        self.path = Path(path)
        if self.path.suffix.lower() not in self.CODECS:
            raise ConfigError(f"--record {self.path}: use a .mp4 (mp4v) or .avi (MJPG) file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps if fps and 0 < fps < 1000 else None
        self.writer = None
        self.frames = 0
        self._buffer: list[tuple[float, np.ndarray]] = []

    def write(self, rgb: np.ndarray, t: Optional[float] = None) -> None:
        if self.writer is None:
            if self.fps is None:
                self._buffer.append((time.perf_counter() if t is None else t, rgb))
                if len(self._buffer) >= 15:
                    self._start()  # writes the buffered frames, this one included
                return
            self._start(rgb)
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def _start(self, first: Optional[np.ndarray] = None) -> None:
        if self.fps is None:
            ts = [t for t, _ in self._buffer]
            span = ts[-1] - ts[0]
            self.fps = (len(ts) - 1) / span if len(ts) > 1 and span > 0 else 15.0
        shape = (first if first is not None else self._buffer[0][1]).shape
        fourcc = cv2.VideoWriter_fourcc(*self.CODECS[self.path.suffix.lower()])
        self.writer = cv2.VideoWriter(str(self.path), fourcc, float(self.fps), (shape[1], shape[0]))
        if not self.writer.isOpened():
            self.writer = None
            raise ConfigError(f"--record {self.path}: OpenCV cannot write this file "
                              f"(codec {self.CODECS[self.path.suffix.lower()]})")
        buffered, self._buffer = self._buffer, []
        for _, f in buffered:
            self.writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
            self.frames += 1

    def close(self) -> None:
        if self.writer is None and self._buffer:
            self._start()
        if self.writer is not None:
            self.writer.release()
            self.writer = None


# ----------------------------------------------------------------------------------------------
# the view
