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
<link rel="icon" href="/favicon.ico{q}">
<style>body{{background:#111;color:#ddd;font:14px sans-serif;margin:12px}}
.wrap{{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}}.view{{position:relative;max-width:100%}}
.view img{{display:block;max-width:100%;border:1px solid #333}}#hot div{{position:absolute;cursor:help}}
#hot div:hover{{outline:2px solid #8cf}}table{{border-collapse:collapse;font-size:13px}}
td,th{{white-space:pre-line;padding:2px 6px;border-bottom:1px solid #333;text-align:left;vertical-align:top}}
h4{{margin:6px 0}}a{{color:#8cf;margin-right:10px}}
button{{background:#222;color:#ddd;border:1px solid #555;margin-right:6px}}
button.on{{color:#fff;font-weight:bold;border-color:#8cf}}.side{{min-width:280px;max-width:520px}}</style></head><body>
<h3>physical live: {title}</h3>
<div class="wrap"><div class="view"><img id="stream" src="/stream.mjpg{q}" alt="live stream"><div id="hot"></div></div>
<div class="side"><h4>whole frame (centre crop): top-{k}</h4><table id="frame"></table>
<h4>cells of the run in view: top-{k}</h4><table id="cells"><tr><td>no cell in view</td></tr></table></div></div>
<form method="post" action="/defence{q}"><input type="hidden" name="token" value="{token}">defence: {buttons}</form>
{region_tool}
<p><a href="/status.json{q}">status.json</a> <a href="/frame.jpg{q}">frame.jpg</a></p>
<script>
const Q = "{q}";
function pct(p) {{ return (100 * p).toFixed(1) + "%"; }}
function topText(top) {{ return top.map(t => t[1] + " " + pct(t[2])).join("\\n"); }}
function cellName(c) {{ return "sheet " + c.sheet + " cell " + c.slot + " (" + c.role + ")"; }}
function verdict(c) {{ return c.fooled === null ? "label unknown" : c.role === "adv"
  ? (c.fooled ? "still fools" : "destroyed") : (c.fooled ? "wrong" : "correct"); }}
function fill(id, rows) {{ const t = document.getElementById(id); t.replaceChildren();
  for (const r of rows) {{ const tr = t.insertRow(); for (const v of r) {{ tr.insertCell().textContent = v; }} }} }}
async function poll() {{
  try {{
    const st = await (await fetch("/status.json" + Q)).json(); const r = st.result;
    fill("frame", r ? r.top.map(t => [t[1], pct(t[2])]) : [["waiting for the model"]]);
    const cells = r ? r.cells : [];
    fill("cells", cells.length ? cells.map(c => [cellName(c) + ": " + verdict(c), topText(c.top)])
                               : [["no cell in view"]]);
    const img = document.getElementById("stream"), hot = document.getElementById("hot");
    const k = img.naturalWidth ? img.clientWidth / img.naturalWidth : 0; hot.replaceChildren();
    for (const c of cells) {{ if (!c.quad || !k) continue;
      const xs = c.quad.map(p => p[0]), ys = c.quad.map(p => p[1]), d = document.createElement("div");
      d.style.left = k * Math.min(...xs) + "px"; d.style.top = k * Math.min(...ys) + "px";
      d.style.width = k * (Math.max(...xs) - Math.min(...xs)) + "px";
      d.style.height = k * (Math.max(...ys) - Math.min(...ys)) + "px";
      d.title = cellName(c) + ": " + verdict(c) + "\\n" + topText(c.top); hot.appendChild(d); }}
  }} catch (e) {{}}
  setTimeout(poll, 1000);
}}
poll();
</script></body></html>"""

# the scene's region, drawn with the mouse over the stream (frame pixels: the image's natural size)
REGION_TOOL = """<p>region: drag over the view to draw it, <a href="#" id="clearregion">clear</a>
<span id="regionmsg"></span></p>
<script>
(function() {{
  const img = document.getElementById("stream"), view = img.parentElement, box = document.createElement("div");
  box.id = "regionbox"; box.style.cssText = "position:absolute;border:2px dashed #fc0;display:none;pointer-events:none";
  view.appendChild(box);
  let start = null;
  function at(e) {{ const r = img.getBoundingClientRect();
    return [Math.min(Math.max(e.clientX - r.left, 0), r.width), Math.min(Math.max(e.clientY - r.top, 0), r.height)]; }}
  function rect(a, b) {{
    return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1])]; }}
  function show(r) {{ box.style.display = "block"; box.style.left = r[0] + "px"; box.style.top = r[1] + "px";
    box.style.width = r[2] + "px"; box.style.height = r[3] + "px"; }}
  async function send(text) {{
    const body = new URLSearchParams({{token: "{token}", region: text}});
    const r = await fetch("/region" + Q, {{method: "POST", body: body}});
    document.getElementById("regionmsg").textContent = await r.text(); }}
  view.addEventListener("mousedown", e => {{ e.preventDefault(); start = at(e); show(rect(start, start)); }});
  window.addEventListener("mousemove", e => {{ if (start) show(rect(start, at(e))); }});
  window.addEventListener("mouseup", e => {{ if (!start) return;
    const k = img.naturalWidth / img.clientWidth, r = rect(start, at(e)).map(v => Math.round(k * v));
    start = null; box.style.display = "none"; send(r.join(",")); }});
  document.getElementById("clearregion").addEventListener("click", e => {{ e.preventDefault(); send(""); }});
}})();
</script>"""

FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           b'fill="#111"/><rect x="3" y="3" width="10" height="10" fill="none" stroke="#4c4" stroke-width="2"/></svg>')


def _handler(server: "MjpegServer") -> type:
    """The request handler of one MjpegServer: GETs read, the one state change (the defence) is a POST
    with the page's token, every request passes the server's guard (physical.capture.mjpeg)."""

    class Handler(mjpeg.Handler):
        protocol_version = "HTTP/1.0"
        guard = server.guard

        def do_GET(self):
            if self.refused():
                return
            path = urlsplit(self.path).path
            try:
                if path in ("/", "/index.html"):
                    self.send_body(200, "text/html; charset=utf-8", server.page().encode())
                elif path in ("/stream.mjpg", "/video", "/stream"):
                    server.stream_to(self)
                elif path == "/frame.jpg":
                    jpg = server.encode_last()
                    self.send_body(200 if jpg else 503, "image/jpeg" if jpg else "text/plain", jpg or b"no frame yet")
                elif path == "/status.json":
                    self.send_body(200, "application/json", json.dumps(server.status()).encode())
                elif path == "/favicon.ico":
                    self.send_body(200, "image/svg+xml", FAVICON)
                elif path == "/defence":
                    self.send_body(405, "text/plain", b"switch the defence with a POST from the page")
                else:
                    self.send_body(404, "text/plain", b"not found")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(min(n, 4096)).decode("latin-1")) if n > 0 else {}
            if self.refused(post=True, form=form):
                return
            path = urlsplit(self.path).path
            if path == "/region" and server.set_region is not None:
                try:  # the page's script posts it and shows the answer
                    self.send_body(200, "text/plain", server.set_region(form.get("region", [""])[0]).encode())
                except ConfigError as e:
                    self.send_body(400, "text/plain", str(e).encode())
                return
            if path != "/defence" or server.set_defence is None:
                self.send_body(404, "text/plain", b"not found")
                return
            try:
                server.set_defence(form.get("name", ["none"])[0])
            except ConfigError as e:
                self.send_body(400, "text/plain", str(e).encode())
                return
            self.send_response(303)
            self.send_header("Location", "/" + server.guard.query())
            self.end_headers()

    return Handler


class MjpegServer:
    """The annotated stream as MJPEG (``/stream.mjpg``, multipart/x-mixed-replace) with a small HTML
    page (``/``: the stream, the whole frame's and each cell's top-k, the defence switches), the newest
    frame (``/frame.jpg``), the newest result (``/status.json``) and the defence switch (POST
    ``/defence`` with ``name`` and the page's token); with `set_region` (physical scene), a region drawn
    over the stream (POST ``/region`` with ``region`` = x,y,w,h and the token; answered in one line).
    Frames are encoded only while someone watches.
    Bound beyond loopback, every URL wants the token (`url` carries it): see physical.capture.mjpeg."""

    def __init__(self, port: int, host: str = "127.0.0.1", quality: int = 80,
                 status: Callable[[], dict] = dict, set_defence: Optional[Callable[[Optional[str]], str]] = None,
                 title: str = "", top_k: int = 5, set_region: Optional[Callable[[str], str]] = None):
        self.quality = int(quality)
        self.slot = LatestFrame()  # encoded JPEG bytes
        self.status = status
        self.set_defence = set_defence
        self.set_region = set_region
        self.title = title
        self.top_k = top_k
        self.watchers = 0
        self._lock = threading.Lock()
        self._last_rgb: Optional[np.ndarray] = None
        self.guard = mjpeg.Guard(host)
        self.httpd, self._thread = mjpeg.serve(_handler(self), host, port, "mjpeg server")
        self.port = self.httpd.server_address[1]
        self.host = host

    @property
    def url(self) -> str:
        return f"http://{mjpeg.public_host(self.host)}:{self.port}/{self.guard.query()}"

    @property
    def stream_url(self) -> str:
        return f"http://{mjpeg.public_host(self.host)}:{self.port}/stream.mjpg{self.guard.query()}"

    def page(self) -> str:
        cur = self.status().get("defence", "none")
        buttons = " ".join(f'<button type="submit" name="name" value="{n or "none"}" '
                           f'class="{"on" if (n or "none") == cur.split("-")[0] else ""}">{n or "none"}</button>'
                           for n in CYCLE)
        tool = REGION_TOOL.format(token=self.guard.token) if self.set_region is not None else ""
        return PAGE.format(title=escape(self.title), buttons=buttons, q=self.guard.query(), token=self.guard.token,
                           k=self.top_k, region_tool=tool)

    def stream_to(self, handler) -> None:
        """Send the stream to one watcher until the server closes or the watcher goes."""
        handler.start_stream()
        with self._lock:
            self.watchers += 1
        try:
            seen = 0
            while not self.slot.closed:
                seq, jpg = self.slot.get(seen, timeout=1.0)
                if jpg is None:
                    continue
                seen = seq
                handler.send_frame(jpg)
                handler.wfile.flush()
        finally:
            with self._lock:
                self.watchers -= 1

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
        self.writer: Optional[cv2.VideoWriter] = None
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
        assert self.writer is not None  # _start opened it or raised
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def _start(self, first: Optional[np.ndarray] = None) -> None:
        if self.fps is None:
            ts = [t for t, _ in self._buffer]
            span = ts[-1] - ts[0]
            self.fps = (len(ts) - 1) / span if len(ts) > 1 and span > 0 else 15.0
        shape = (first if first is not None else self._buffer[0][1]).shape
        fourcc = cv2.VideoWriter.fourcc(*self.CODECS[self.path.suffix.lower()])
        writer = cv2.VideoWriter(str(self.path), fourcc, float(self.fps), (shape[1], shape[0]))
        if not writer.isOpened():
            raise ConfigError(f"--record {self.path}: OpenCV cannot write this file "
                              f"(codec {self.CODECS[self.path.suffix.lower()]})")
        self.writer = writer
        buffered, self._buffer = self._buffer, []
        for _, f in buffered:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
            self.frames += 1

    def close(self) -> None:
        if self.writer is None and self._buffer:
            self._start()
        if self.writer is not None:
            self.writer.release()
            self.writer = None


# ----------------------------------------------------------------------------------------------
# the view
