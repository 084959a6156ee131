"""MJPEG over HTTP, the one implementation: live mode's annotated stream (`live.server`) and the
replay of recorded frames (`capture.replay`) both serve ``multipart/x-mixed-replace`` JPEG frames
as phone camera apps do, from a threaded server on its own daemon thread."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """One RGB frame -> JPEG bytes (b"" when OpenCV cannot encode it)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return buf.tobytes() if ok else b""


class Handler(BaseHTTPRequestHandler):
    """A quiet request handler with the replies an MJPEG server sends."""

    def log_message(self, *a):  # quiet
        pass

    def send_body(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def send_frame(self, jpg: bytes) -> None:
        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg) + jpg + b"\r\n")


def serve(handler: type[Handler], host: str, port: int, name: str) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A threaded HTTP server on host:port (0: a free port), serving on a daemon thread."""
    httpd = ThreadingHTTPServer((host, int(port)), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name=name, daemon=True)
    thread.start()
    return httpd, thread


def shut(httpd: ThreadingHTTPServer) -> None:
    """Stop serving and free the port."""
    httpd.shutdown()
    httpd.server_close()
