"""MJPEG over HTTP, the one implementation: live mode's annotated stream (`live.server`) and the
replay of recorded frames (`capture.replay`) both serve ``multipart/x-mixed-replace`` JPEG frames
as phone camera apps do, from a threaded server on its own daemon thread.

Who may use such a server (:class:`Guard`): every request's Host must name this machine (an IP
address, ``localhost`` or this host's name), so a web page that rebinds its own domain name to
127.0.0.1 gets 403; a request carrying an Origin (or, on POST, a Referer) of another site gets 403;
state changes are POST only and carry the server's per-session token; and a server bound beyond
loopback (``--host 0.0.0.0``) wants the token on every request (its URL carries it, ``?token=``).
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """One RGB frame -> JPEG bytes (b"" when OpenCV cannot encode it)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return buf.tobytes() if ok else b""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: an address only this machine reaches."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def public_host(host: str) -> str:
    """The address to put in a URL of a server bound to `host`: for 0.0.0.0 (or ::) this machine's
    address on its network (the interface of its default route), else `host` itself."""
    if host not in ("0.0.0.0", "::", ""):
        return host
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the interface
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def _host_name(netloc: str) -> str:
    """'example.com:8080' / '[::1]:80' / '127.0.0.1' -> the host alone, lower case."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")] if "]" in netloc else ""
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


class Guard:
    """The same-origin check and the per-session token of one server (see the module docstring)."""

    def __init__(self, host: str, token_everywhere: Optional[bool] = None):
        self.host = host
        self.token = secrets.token_urlsafe(16)
        # a server reachable from the network wants the token on every request
        self.token_everywhere = (not is_loopback(host)) if token_everywhere is None else bool(token_everywhere)

    def host_ok(self, host_header: Optional[str]) -> bool:
        """The Host a client asked for names this machine: an IP address, localhost, this host's name
        or the address bound. A domain name that resolves here only by rebinding does not."""
        name = _host_name(host_header or "")
        if not name:
            return False
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
        ours = {"localhost", self.host.lower(), socket.gethostname().lower(), socket.getfqdn().lower()}
        return name in ours or name.endswith(".localhost")

    @staticmethod
    def same_origin(headers, post: bool) -> bool:
        """An Origin (or, for a POST without one, a Referer) must name the Host asked for; a
        non-browser client sends neither (a GET from anywhere; a POST still needs the token)."""
        origin = headers.get("Origin")
        if origin is None and post:
            origin = headers.get("Referer")
        if origin is None:
            return True
        parts = urlsplit(origin)
        return bool(parts.netloc) and parts.netloc.lower() == (headers.get("Host") or "").strip().lower()

    def token_ok(self, given: Optional[str]) -> bool:
        return given is not None and hmac.compare_digest(str(given).encode(), self.token.encode())

    def query(self) -> str:
        """What a URL of this server carries: '?token=...' where every request wants it, else ''."""
        return f"?token={self.token}" if self.token_everywhere else ""


class Handler(BaseHTTPRequestHandler):
    """A quiet request handler with the replies an MJPEG server sends, and the guard's checks
    (`refused`). A server sets `guard` on its handler class."""

    guard: Optional[Guard] = None

    def log_message(self, *a):  # quiet
        pass

    def send_body(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def given_token(self, form: Optional[dict] = None) -> Optional[str]:
        """The token of this request: the header X-Physical-Token, a form field or the query's `token`."""
        q = parse_qs(urlsplit(self.path).query)
        vals = (form or {}).get("token") or q.get("token") or [self.headers.get("X-Physical-Token")]
        return vals[0]

    def refused(self, post: bool = False, form: Optional[dict] = None) -> bool:
        """403 (and True) for a request the guard does not let through: a Host that is not this
        machine, another site's Origin, a POST without the token, any request without it where the
        server wants it everywhere."""
        g = self.guard
        if g is None:
            return False
        why = None
        if not g.host_ok(self.headers.get("Host")):
            why = b"forbidden: the Host header does not name this server"
        elif not g.same_origin(self.headers, post):
            why = b"forbidden: a request from another site"
        elif (post or g.token_everywhere) and not g.token_ok(self.given_token(form)):
            why = b"forbidden: open the URL with its ?token= as printed when the server started"
        if why is None:
            return False
        self.send_body(403, "text/plain", why)
        return True

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def send_frame(self, jpg: bytes) -> None:
        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
        self.wfile.write(head + jpg + b"\r\n")


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
