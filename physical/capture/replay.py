"""Frames served as a phone camera app serves them: MJPEG over HTTP (`physical replay`).

Phone apps such as IP Webcam or DroidCam stream ``multipart/x-mixed-replace`` JPEG frames at
``http://PHONE:PORT/video``. :class:`ReplayServer` does the same from recorded frames (a video, a
folder of photos), paced at a frame rate, every connection from the first frame. A lab rehearses
``physical live`` or a guided ``physical capture`` with yesterday's footage before the phone is
at hand::

    physical replay video:sheets.mp4 --fps 15 --port 8080 --loop
    physical live --run runs/NAME --source http://127.0.0.1:8080/video

and the tests and benchmarks drive the URL source through real HTTP with it.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterable, Union

import numpy as np

from physical.capture import mjpeg
from physical.log import say, warn
from physical.capture.sources import CaptureError, open_source, parse_source

Frames = Union[list[bytes], Callable[[], Iterable[bytes]]]


def encode_jpegs(frames: Iterable[np.ndarray], quality: int = 90) -> list[bytes]:
    """RGB frames -> JPEG bytes."""
    return [mjpeg.encode_jpeg(f, quality) for f in frames]


class ReplayServer:
    """MJPEG at ``fps`` on ``host:port`` (0: a free port), at ``path`` and ``/``.

    `frames` is a list of JPEG bytes or a callable giving a fresh iterable of them (one per
    connection, for sources too long to hold in memory). Each frame is sent `repeat` times (a camera
    filming `repeat` x faster than the footage); with `loop` the frames start over when they run
    out, otherwise the stream ends. `sent` counts the frames sent on all connections; `stop()` drops
    every stream and frees the port (a phone that goes away). A context manager.
    """

    def __init__(self, frames: Frames, fps: float = 15.0, *, loop: bool = True, repeat: int = 1,
                 host: str = "127.0.0.1", port: int = 0, path: str = "/video"):
        if fps <= 0:
            raise ValueError(f"replay: fps {fps!r} must be > 0")
        self.fps, self.loop, self.repeat, self.path = float(fps), bool(loop), max(1, int(repeat)), path
        self._frames = frames
        self.sent = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.guard = mjpeg.Guard(host)  # beyond loopback: the token on every request (in `url`)
        server = self

        class Handler(mjpeg.Handler):
            guard = self.guard

            def do_GET(self):
                if self.refused():
                    return
                if self.path.split("?")[0] not in (server.path, "/"):
                    self.send_error(404)
                    return
                self.start_stream()
                try:
                    server._stream(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd, self._thread = mjpeg.serve(Handler, host, port, "replay server")
        self.host, self.port = host, self.httpd.server_address[1]
        self._closed = False

    @property
    def url(self) -> str:
        return f"http://{mjpeg.public_host(self.host)}:{self.port}{self.path}{self.guard.query()}"

    def _passes(self) -> Iterable[bytes]:
        while True:
            frames = self._frames() if callable(self._frames) else self._frames
            empty = True
            for jpg in frames:
                empty = False
                for _ in range(self.repeat):
                    yield jpg
            if empty or not self.loop:
                return

    def _stream(self, out) -> None:
        t0, i = time.perf_counter(), 0
        for jpg in self._passes():
            if self._stopping.is_set():
                return
            out.send_frame(jpg)
            i += 1
            with self._lock:
                self.sent += 1
            time.sleep(max(0.0, t0 + i / self.fps - time.perf_counter()))

    def stop(self) -> None:
        if not self._closed:
            self._closed = True
            self._stopping.set()
            mjpeg.shut(self.httpd)

    def __enter__(self) -> "ReplayServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# -- `physical replay` ----------------------------------------------------------------------------
def _add(p) -> None:
    p.add_argument("source", help="video:PATH or folder:PATH (a path alone: a folder or a video file)")
    p.add_argument("--fps", type=float, default=15.0, help="frames per second (default 15)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: the whole "
                                                       "network, "
                                                        "then the URL carries a random access token)")
    p.add_argument("--port", type=int, default=8080, help="port (0: any free port; default 8080)")
    p.add_argument("--loop", action="store_true", help="start over when the frames run out")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality of the stream (default 90)")
    p.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")


def _replay(args) -> int:
    spec = parse_source(args.source)
    if spec.kind not in ("video", "folder"):
        raise CaptureError(f"replay: source {args.source!r} must be a video:PATH or folder:PATH")
    if not args.fps > 0:
        raise CaptureError(f"replay: --fps {args.fps:g} must be > 0")
    if not 0 <= args.port <= 65535:
        raise CaptureError(f"replay: --port {args.port} must be in 0 .. 65535 (0: any free port)")
    if args.seconds is not None and not args.seconds > 0:
        raise CaptureError(f"replay: --seconds {args.seconds:g} must be > 0")
    if not 1 <= args.quality <= 100:
        raise CaptureError(f"replay: --quality {args.quality} must be in 1 .. 100")
    with open_source(spec) as src:  # fails now, with the source's own message, when it cannot be read
        if src.read() is None:
            raise CaptureError(f"replay: {args.source}: no frames to serve")

    def frames() -> Iterable[bytes]:  # read and encoded as they go out: any length of footage
        with open_source(spec) as src:
            for f in src:
                yield encode_jpegs([f], args.quality)[0]

    try:
        server = ReplayServer(frames, args.fps, loop=args.loop, host=args.host, port=args.port)
    except (OSError, OverflowError) as e:  # port taken, address not on this machine
        why = getattr(e, "strerror", None) or e
        raise CaptureError(f"replay: cannot listen on {args.host}:{args.port}: {why}") from None
    with server:
        if server.guard.token_everywhere:
            warn(f"replay: listening on {args.host}, beyond this machine: anyone on the network who has the URL "
                 f"(its token included) sees the frames")
        say(f"replay: serving {args.source} at {server.url} ({args.fps:g} fps{', looping' if args.loop else ''}); "
            f"Ctrl-C stops")
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        say(f"replay: {server.sent} frame(s) sent")
    return 0


def register_cli(commands: dict) -> None:
    commands["replay"] = ("serve a video or a folder of photos as a phone camera app does (MJPEG over HTTP), to "
                          "rehearse live mode and guided capture", _add, _replay)
