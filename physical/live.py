"""The live view: `physical live --source ...` classifies frames continuously and draws what the
classifier sees.

Two loops share nothing but two one-item slots (:class:`physical.capture.sources.LatestFrame`):

- the *display loop* reads the source at its own rate, hands the frame to the inference slot
  (replacing the one waiting there: frames are dropped, never queued), draws the newest result on
  the frame and shows it (window), serves it (MJPEG on 127.0.0.1) and records it (mp4v);
- the *inference thread* takes the newest frame, classifies it (centre crop at the model's input
  size) and, when a sheet of the run is in view, aligns it (:func:`physical.align.align_photo`
  with one fast marker pass) and classifies every cell crop in the same batch.

So the view never waits for the model: it runs at the stream's rate, and the overlay is the result
of the last frame classified (its frame number is shown). Each cell found is outlined in the frame
with its top-1 class: an adversarial cell in green when it still fools the model (top-1 is not the
image's label), in red when the print-and-camera trip destroyed the attack; a clean cell in white
when it is classified correctly, yellow when not. That is Kurakin's survival seen live.

A defence of :mod:`physical.transforms.defences` (the experiments' code) can be put in front of the
model: ``--defence jpeg:quality=50``, ``blur``, ``binarize``, ``multicrop:n=8``; in the window the
key ``d`` cycles through none / the chosen one / blur / jpeg / binarize / multicrop, and the served
HTML page has the same switches. ``q`` or Esc stops.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .config import ConfigError, register_section, rng

log = logging.getLogger(__name__)

CYCLE = [None, "blur", "jpeg", "binarize", "multicrop"]  # the `d` key and the HTML page's switches


@dataclass
class LiveConfig:
    """`physical live`: the command line's options override these."""

    source: str = "webcam:0"  # as capture.source: webcam:N, a URL, video:PATH, folder:PATH, simulate
    model: Optional[str] = None  # null: the run's model, else models[0]
    defence: Optional[Union[str, dict[str, Any]]] = None  # a defence name or {name: ..., <parameter>: ...}
    run: Optional[str] = None  # run directory whose sheets get per-cell overlays; null: this config's run
    cells: bool = True  # per-cell overlays when a sheet of the run is in view
    top_k: int = rng(1, 10, default=5)
    jpeg_quality: int = rng(10, 100, default=80)  # of the served MJPEG stream

    def validate(self, path: str) -> None:
        if self.defence is not None:
            from .transforms.defences import check_defence

            self.defence = check_defence(self.defence, f"{path}.defence")


register_section("live", LiveConfig)


def parse_defence(text: Optional[str]) -> Optional[dict]:
    """'jpeg', 'jpeg:quality=50', 'multicrop:n=8,fraction=0.8' (or 'none') -> a checked defence entry."""
    from .transforms.defences import check_defence

    if text is None or str(text).strip().lower() in ("", "none", "off"):
        return None
    name, _, rest = str(text).partition(":")
    entry: dict[str, Any] = {"name": name.strip()}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        k, eq, v = part.partition("=")
        if not eq:
            raise ConfigError(f"--defence {text!r}: expected NAME[:PARAM=VALUE,...], e.g. jpeg:quality=50")
        try:
            entry[k.strip()] = float(v) if any(ch in v for ch in ".eE") else int(v)
        except ValueError:
            raise ConfigError(f"--defence {text!r}: {k.strip()}={v!r} is not a number") from None
    return check_defence(entry, "--defence")


# ----------------------------------------------------------------------------------------------
# what the classifier sees


class LiveModel:
    """The classifier, with a switchable defence in front (``physical.transforms.Defended``)."""

    def __init__(self, classifier, defence: Optional[dict] = None):
        self.classifier = classifier
        self.chosen = defence  # the one given on the command line / in the config
        self.defence: Optional[dict] = None
        self.current: tuple = (classifier, "none")  # (model, defence label), replaced as one
        self.set_defence(defence)

    def set_defence(self, entry: Optional[dict]) -> str:
        from .transforms.defences import Defended, make_defence

        if entry is None:
            self.current, self.defence = (self.classifier, "none"), None
        else:
            d = make_defence(**entry)
            self.current, self.defence = (Defended(self.classifier, d).eval(), d.label), entry
        return self.label

    def cycle(self) -> str:
        """The next defence of: none, the chosen one, then the standard ones (the `d` key)."""
        from .transforms.defences import check_defence

        names = [None] + ([self.chosen] if self.chosen else []) + [check_defence(n, "live") for n in CYCLE[1:]]
        labels = [self._label(e) for e in names]
        uniq = [e for i, e in enumerate(names) if labels[i] not in labels[:i]]
        cur = self._label(self.defence)
        i = next((k for k, e in enumerate(uniq) if self._label(e) == cur), -1)
        return self.set_defence(uniq[(i + 1) % len(uniq)])

    @staticmethod
    def _label(entry: Optional[dict]) -> str:
        if entry is None:
            return "none"
        from .transforms.defences import make_defence

        return make_defence(**entry).label

    @property
    def label(self) -> str:
        return self.current[1]

    @property
    def model(self):
        return self.current[0]


@dataclass
class RunCells:
    """A run's printed sheets with each cell's image label: what per-cell overlays need."""

    printed: Any  # physical.capture.guided.PrintedRun
    labels: dict  # (sheet, slot) -> {"label": int, "role": "clean" | "adv", "item": key, "attack": ...}
    model: Optional[str]  # the model the run attacked

    @classmethod
    def load(cls, root: Path) -> "RunCells":
        from .capture.guided import PrintedRun
        from .rundir import RunDir, read_json

        run = RunDir(Path(root))
        printed = PrintedRun.load(run)
        index_path = run.root / "generate" / "index.json"
        items = {it["key"]: it for it in read_json(index_path)["items"]} if index_path.is_file() else {}
        labels = {}
        for k, c in printed.cells.items():
            it = items.get(c["item"], {})
            labels[k] = {"label": it.get("label"), "role": c["role"], "item": c["item"],
                         "attack": it.get("attack_label") or it.get("attack"), "eps": it.get("eps")}
        model = next((it.get("model") for it in items.values() if it.get("model")), None)
        return cls(printed, labels, model)


def classify_frame(frame: np.ndarray, model, cells: Optional[RunCells], align_cfg, top_k: int = 5) -> dict:
    """The frame's top-k (centre crop at the model's size) and, per cell of the run in view, its
    top-k and whether it fools the model; one batch. Deterministic for a given frame and model
    (randomised defences aside): the live view's results are reproducible from the frames."""
    from .classify import classify_images
    from .models import class_names, preprocess

    images = [preprocess(frame, model.input_size, getattr(model, "resize_ratio", 0.875))]
    found: list[dict] = []
    quads: dict = {}
    if cells is not None:
        from .capture.guided import align_frame
        from .sheets.markers import detect_all

        markers = detect_all(frame, thorough=False)  # one fast pass: the live view's budget
        if markers:
            p = cells.printed
            crops, _ = align_frame(frame, p, align_cfg, markers)
            found = [c for c in crops if c["accepted"]]
            quads = {(c["sheet"], c["slot"]): np.asarray(c["corners_px"]) for c in found}
            images += [c["image"] for c in found]
    preds = classify_images(model, images, batch_size=max(1, len(images)))
    names = class_names()

    def top(pr):
        return [[int(i), names[int(i)], float(v)] for i, v in zip(pr["top"][:top_k], pr["prob"][:top_k])]

    out_cells = []
    for c, pr in zip(found, preds[1:]):
        info = cells.labels.get((c["sheet"], c["slot"]), {})
        label = info.get("label")
        t1 = int(pr["top"][0])
        role = info.get("role")
        fooled = None if label is None else (t1 != int(label))
        out_cells.append({"sheet": c["sheet"], "slot": c["slot"], "role": role, "item": info.get("item"),
                          "label": label, "top": top(pr), "fooled": fooled,
                          "quad": quads.get((c["sheet"], c["slot"])), "sharpness": c["sharpness"]})
    return {"top": top(preds[0]), "cells": out_cells}


# ----------------------------------------------------------------------------------------------
# drawing


def cell_style(cell: dict) -> tuple[tuple, str]:
    """Colour and caption of a cell: adversarial green (still fools) / red (destroyed), clean white
    (correct) / yellow (wrong); grey when the image's label is not known."""
    from .capture import draw

    name = cell["top"][0][1] if cell["top"] else "?"
    pct = f"{100 * cell['top'][0][2]:.0f}%" if cell["top"] else ""
    if cell["fooled"] is None:
        return draw.GREY, f"{cell['role']}: {name} {pct}"
    if cell["role"] == "adv":
        return (draw.GREEN, f"adv fools: {name} {pct}") if cell["fooled"] else (draw.RED, f"adv destroyed: {name} {pct}")
    return (draw.YELLOW, f"clean wrong: {name} {pct}") if cell["fooled"] else (draw.WHITE, f"clean ok: {name} {pct}")


def annotate(frame: np.ndarray, result: Optional[dict], stats: dict, title: str = "") -> np.ndarray:
    """The frame with the top-k (confidence bars), the per-cell overlays and the frame rates."""
    import cv2

    from .capture import draw

    img = frame.copy()
    s = draw.scale_for(img)
    lw = max(2, int(round(img.shape[1] / 640)))
    if result is not None:
        for cell in result.get("cells", []):
            if cell.get("quad") is None:
                continue
            color, caption = cell_style(cell)
            q = np.asarray(cell["quad"])
            draw.poly(img, q, color, lw)
            draw.label_at(img, caption, (q[:, 0].min() + lw, q[:, 1].min() + lw), color)  # inside, at the top
    # top-k panel with bars
    lh = int(28 * s) + 6
    x0, y0 = 8, 8
    top = result["top"] if result else []
    bar_w = int(160 * s)
    names = [t[1][:28] for t in top]
    tw = max([cv2.getTextSize(n, draw.FONT, s, 1)[0][0] for n in names] + [int(220 * s)])
    head = title + (f"  (frame {result['frame']})" if result else "  (waiting for the model)")
    hw = cv2.getTextSize(draw.ascii_text(head), draw.FONT, s, 1)[0][0]
    w = max(tw + bar_w + int(90 * s), hw + 16)
    draw.shade(img, x0, y0, x0 + w, y0 + lh * (len(top) + 1) + 8)
    draw.text(img, head, (x0 + 8, y0 + lh - 6), s, draw.CYAN, outline=False)
    for i, (idx, name, p) in enumerate(top):
        y = y0 + lh * (i + 2) - 6
        draw.text(img, name[:28], (x0 + 8, y), s, draw.WHITE, outline=False)
        bx = x0 + 16 + tw
        draw.bar(img, bx, y - int(18 * s), bar_w, int(18 * s), p, draw.GREEN if i == 0 else draw.GREY)
        draw.text(img, f"{100 * p:5.1f}%", (bx + bar_w + 6, y), s, draw.WHITE, outline=False)
    # rates
    line = (f"display {stats.get('display_fps', 0):.1f} fps   classified {stats.get('classified_fps', 0):.1f}/s   "
            f"model {stats.get('infer_ms', 0):.0f} ms   defence {stats.get('defence', 'none')}")
    h = img.shape[0]
    (tw2, th2), _ = cv2.getTextSize(line, draw.FONT, s, 1)
    draw.shade(img, 0, h - th2 - 16, tw2 + 20, h)
    draw.text(img, line, (10, h - 9), s, draw.WHITE, outline=False)
    return img


# ----------------------------------------------------------------------------------------------
# outputs: MJPEG server, recorder


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
        from .capture.sources import LatestFrame

        self.quality = int(quality)
        self.slot = LatestFrame()  # encoded JPEG bytes
        self.status = status
        self.set_defence = set_defence
        self.title = title
        self.watchers = 0
        self._lock = threading.Lock()
        self._last_rgb: Optional[np.ndarray] = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                u = urlsplit(self.path)
                try:
                    if u.path in ("/", "/index.html"):
                        self._send(200, "text/html; charset=utf-8", server.page().encode())
                    elif u.path in ("/stream.mjpg", "/video", "/stream"):
                        self._stream()
                    elif u.path == "/frame.jpg":
                        jpg = server.encode_last()
                        self._send(200 if jpg else 503, "image/jpeg" if jpg else "text/plain",
                                   jpg or b"no frame yet")
                    elif u.path == "/status.json":
                        self._send(200, "application/json", json.dumps(server.status(), default=str).encode())
                    elif u.path == "/defence" and server.set_defence is not None:
                        name = parse_qs(u.query).get("name", ["none"])[0]
                        try:
                            server.set_defence(name)
                        except ConfigError as e:
                            self._send(400, "text/plain", str(e).encode())
                            return
                        self.send_response(303)
                        self.send_header("Location", "/")
                        self.end_headers()
                    else:
                        self._send(404, "text/plain", b"not found")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, code, ctype, body):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                with server._lock:
                    server.watchers += 1
                try:
                    seen = 0
                    while not server.slot.closed:
                        seq, jpg = server.slot.get(seen, timeout=1.0)
                        if jpg is None:
                            continue
                        seen = seq
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
                        self.wfile.flush()
                finally:
                    with server._lock:
                        server.watchers -= 1

        self.httpd = ThreadingHTTPServer((host, int(port)), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.host = host
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="mjpeg server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def page(self) -> str:
        from html import escape

        cur = self.status().get("defence", "none")
        links = " ".join(f'<a class="{"on" if (n or "none") == cur.split("-")[0] else ""}" '
                         f'href="/defence?name={n or "none"}">{n or "none"}</a>' for n in CYCLE)
        return PAGE.format(title=escape(self.title), links=links)

    def publish(self, rgb: np.ndarray) -> None:
        self._last_rgb = rgb
        if self.watchers > 0:
            self.slot.put(self._encode(rgb))

    def _encode(self, rgb: np.ndarray) -> bytes:
        import cv2

        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        return buf.tobytes() if ok else b""

    def encode_last(self) -> Optional[bytes]:
        rgb = self._last_rgb
        return self._encode(rgb) if rgb is not None else None

    def close(self) -> None:
        self.slot.close()
        self.httpd.shutdown()
        self.httpd.server_close()


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
        import cv2

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
        import cv2

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


class Rate:
    """Events per second over the last `window` seconds."""

    def __init__(self, window: float = 2.0):
        self.window = window
        self.times: list[float] = []

    def tick(self, t: Optional[float] = None) -> None:
        t = time.perf_counter() if t is None else t
        self.times.append(t)
        while self.times and t - self.times[0] > self.window:
            self.times.pop(0)

    def rate(self) -> float:
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0


def lower_priority(step: int = 5) -> None:
    """Lower this thread's CPU priority (Linux: threads have their own nice value; the model's worker
    threads, started from here, inherit it): on a busy CPU the display loop goes first."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + step))
    except (AttributeError, OSError):  # not Linux, or not allowed: same priority as the view
        pass


class LiveView:
    """The display loop and the inference thread; see the module docstring."""

    def __init__(self, source, model: LiveModel, *, cells: Optional[RunCells] = None, align_cfg=None,
                 top_k: int = 5, title: str = "", keep_log: bool = False, say: Callable[[str], None] = print):
        from .capture.sources import LatestFrame
        from .config import AlignConfig

        self.source = source
        self.model = model
        self.cells = cells
        self.align_cfg = align_cfg or AlignConfig()
        self.top_k = top_k
        self.title = title
        self.say = say
        self.keep_log = keep_log
        self.n_results = 0
        self.inbox = LatestFrame()  # display loop -> inference: the newest frame only
        self.result: Optional[dict] = None
        self.results: list[dict] = []  # every result, for the log
        self.shown: list[Optional[int]] = []  # per displayed frame: the frame its overlay comes from
        self.display_rate, self.classify_rate = Rate(), Rate()
        self.infer_ms = 0.0
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self.displayed = 0
        self._infer_total = 0.0

    # -- inference thread -----------------------------------------------------------------------
    def _infer_loop(self) -> None:
        import torch

        lower_priority()
        seen = 0
        try:
            with torch.inference_mode():
                while not self._stop.is_set():
                    seq, item = self.inbox.get(seen, timeout=0.2)
                    if item is None:
                        if self.inbox.closed:
                            break
                        continue
                    seen = seq
                    index, frame = item
                    t0 = time.perf_counter()
                    model, label = self.model.current  # the defence a result was computed with
                    r = classify_frame(frame, model, self.cells, self.align_cfg, self.top_k)
                    dt = time.perf_counter() - t0
                    r.update(frame=index, infer_ms=round(1000 * dt, 1), defence=label)
                    self.infer_ms = 1000 * dt
                    self._infer_total += 1000 * dt
                    self.result = r
                    self.n_results += 1
                    if self.keep_log:
                        self.results.append(r)
                    self.classify_rate.tick()
        except BaseException as e:  # shown by the display loop
            self.error = e

    def stats(self) -> dict:
        r = self.result
        return {"display_fps": round(self.display_rate.rate(), 2), "classified_fps": round(self.classify_rate.rate(), 2),
                "infer_ms": round(self.infer_ms, 1), "defence": self.model.label, "frames_shown": self.displayed,
                "frames_classified": self.n_results, "dropped": self.inbox.dropped,
                "result": None if r is None else {k: r[k] for k in ("frame", "top", "cells")}}

    # -- display loop ---------------------------------------------------------------------------
    def run(self, *, frames: Optional[int] = None, window=None, server: Optional[MjpegServer] = None,
            recorder: Optional[Recorder] = None, seconds: Optional[float] = None,
            status_every: Optional[float] = None) -> dict:
        thread = threading.Thread(target=self._infer_loop, name="live inference", daemon=True)
        self.source.open()
        if recorder is not None and recorder.fps is None and getattr(self.source, "fps", None):
            recorder.fps = float(self.source.fps)  # known once the source is open
        thread.start()
        t0 = time.perf_counter()
        next_status = t0 + (status_every or 0)
        stopped = "end of the source"
        try:
            while True:
                if self.error is not None:
                    raise self.error
                frame = self.source.read()
                if frame is None:
                    break
                now = time.perf_counter()
                self.inbox.put((self.source.index, frame))
                r = self.result
                if self.keep_log:
                    self.shown.append(None if r is None else r["frame"])
                out = annotate(frame, r, self.stats(), self.title)
                self.display_rate.tick(now)
                self.displayed += 1
                if server is not None:
                    server.publish(out)
                if recorder is not None:
                    recorder.write(out, now)
                if window is not None:
                    key = window.show(out)
                    if key in (ord("q"), 27) or window.closed:
                        stopped = "stopped by the user"
                        break
                    if key == ord("d"):
                        self.say(f"live: defence {self.model.cycle()}")
                if status_every and now >= next_status:
                    next_status = now + status_every
                    top = f"{r['top'][0][1]} {100 * r['top'][0][2]:.0f}%" if r else "-"
                    st = self.stats()
                    self.say(f"live: display {st['display_fps']:.1f} fps, classified {st['classified_fps']:.1f}/s, "
                             f"model {st['infer_ms']:.0f} ms: {top}")
                if frames is not None and self.displayed >= frames:
                    stopped = f"{frames} frames"
                    break
                if seconds is not None and now - t0 >= seconds:
                    stopped = f"{seconds:g} s"
                    break
        except KeyboardInterrupt:
            stopped = "interrupted"
        finally:
            self._stop.set()
            self.inbox.close()
            thread.join(timeout=30)
            self.source.close()
        elapsed = time.perf_counter() - t0
        if self.error is not None:
            raise self.error
        n = self.n_results
        return {"stopped": stopped, "frames_shown": self.displayed, "frames_classified": n,
                "seconds": round(elapsed, 2), "display_fps": round(self.displayed / elapsed, 2) if elapsed > 0 else 0.0,
                "classified_fps": round(n / elapsed, 2) if elapsed > 0 else 0.0,
                "mean_infer_ms": round(self._infer_total / n, 1) if n else None}

    def log_data(self, summary: dict) -> dict:
        def clean(r):
            return {**r, "cells": [{k: (np.asarray(v).round(2).tolist() if k == "quad" and v is not None else v)
                                    for k, v in c.items()} for c in r["cells"]]}

        return {"source": self.source.name, "model": getattr(self.model.classifier, "name", "?"),
                "summary": summary, "shown": self.shown, "results": [clean(r) for r in self.results]}


# ----------------------------------------------------------------------------------------------
# the command


def _add_live(p):
    p.add_argument("config", nargs="?", help="pipeline YAML (its `live` section and run; default: the embedded default)")
    p.add_argument("--source", help="webcam:N, http(s):// or rtsp:// URL, video:PATH, folder:PATH, or simulate "
                                    "(default: live.source, webcam:0)")
    p.add_argument("--run", help="run directory whose printed sheets get per-cell overlays (default: the config's run, "
                                 "when printed)")
    p.add_argument("--model", help="classifier (default: the run's model, else models[0])")
    p.add_argument("--defence", help="a defence in front of the model: blur, jpeg, binarize, multicrop, median, "
                                     "bitdepth, noise, with parameters as NAME:K=V,... (e.g. jpeg:quality=50)")
    p.add_argument("--serve", type=int, metavar="PORT", help="serve the annotated stream as MJPEG with an HTML page "
                                                             "on 127.0.0.1:PORT (0: any free port)")
    p.add_argument("--record", metavar="FILE.mp4", help="write the annotated stream to a video (mp4v; .avi: MJPG)")
    p.add_argument("--log", metavar="FILE.json", help="write every result (frame, top-k, cells) and which result each "
                                                      "displayed frame shows")
    p.add_argument("--frames", type=int, metavar="N", help="stop after N displayed frames")
    p.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--loop", action="store_true", help="play a video (or folder) source again and again")
    p.add_argument("--headless", action="store_true", help="no window even where there is a display")
    p.add_argument("--no-cells", action="store_true", help="no per-cell overlays")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override one config value (repeatable)")


def _live(args) -> int:
    from .capture import draw
    from .capture.sources import open_source, parse_source
    from .cli import _load
    from .models import load_model, pick_device
    from .pipeline import run_dir_for

    from .config import UserError

    if args.frames is not None and args.frames < 1:
        raise UserError(f"--frames {args.frames}: must be >= 1")
    if args.seconds is not None and not args.seconds > 0:
        raise UserError(f"--seconds {args.seconds:g}: must be > 0")
    if args.serve is not None and not 0 <= args.serve <= 65535:
        raise UserError(f"--serve {args.serve}: a port must be in 0 .. 65535 (0: any free port)")
    cfg = _load(args)
    lc: LiveConfig = cfg.extra_sections.get("live") or LiveConfig()
    cells = None
    run_root: Optional[Path] = None
    if args.run:
        run_root = Path(args.run)
        if not (run_root / "print" / "layout.json").is_file():
            raise FileNotFoundError(f"--run {run_root}: not a printed run (no print/layout.json)")
    elif lc.run:
        run_root = cfg.resolve(lc.run)
    else:
        guess = run_dir_for(cfg).root
        run_root = guess if (guess / "print" / "layout.json").is_file() else None
    if run_root is not None and lc.cells and not args.no_cells:
        cells = RunCells.load(run_root)
    model_name = args.model or lc.model or (cells.model if cells and cells.model else cfg.models[0])
    device = pick_device(cfg.run.device)
    classifier = load_model(model_name, device)
    defence = parse_defence(args.defence) if args.defence is not None else lc.defence
    model = LiveModel(classifier, defence)

    spec = parse_source(args.source or lc.source, Path if args.source else cfg.resolve)
    # cameras and streams as they come; videos and folders played at their frame rate (a folder: one
    # photo a second); a simulated camera filming the run's sheets, over and over
    source = open_source(spec, cfg.capture.camera, realtime=True, run=run_root, cfg=cfg,
                         **({"loop": True, "hold": 15, "move": 8, "defocus": 3} if spec.kind == "simulate"
                            else {"loop": args.loop}))
    window = None
    if not args.headless:
        if draw.has_display():
            window = draw.Window("physical live")
        elif args.serve is None and not args.record and not args.log:
            print("live: no display here; running headless (use --serve PORT to watch in a browser, "
                  "--record FILE.mp4 to keep the view)")
    title = f"{classifier.name}" + (f" + run {run_root.name}" if cells else "")
    view = LiveView(source, model, cells=cells, align_cfg=cfg.align, top_k=lc.top_k, title=title,
                    keep_log=bool(args.log))
    server = None
    if args.serve is not None:
        try:
            server = MjpegServer(args.serve, quality=lc.jpeg_quality, status=view.stats,
                                 set_defence=lambda n: model.set_defence(parse_defence(n)), title=title)
        except OSError as e:  # the port is taken (or not ours to use)
            source.close()
            raise UserError(f"--serve {args.serve}: cannot listen on 127.0.0.1:{args.serve}: {e.strerror or e}") from None
        print(f"live: serving {server.url} (stream: {server.url}stream.mjpg)", flush=True)
    recorder = Recorder(args.record, getattr(source, "fps", None)) if args.record else None
    try:
        summary = view.run(frames=args.frames, seconds=args.seconds, window=window, server=server, recorder=recorder,
                           status_every=None if window else 5.0)
    finally:
        if window is not None:
            window.close()
        if server is not None:
            server.close()
        if recorder is not None:
            recorder.close()
    if args.log:
        from .rundir import write_json

        write_json(args.log, view.log_data(summary))
    print(f"live: {summary['stopped']}: {summary['frames_shown']} frames shown ({summary['display_fps']:.1f} fps), "
          f"{summary['frames_classified']} classified ({summary['classified_fps']:.1f}/s, "
          f"{summary['mean_infer_ms'] or 0:.0f} ms each)" + (f"; recorded {args.record}" if args.record else ""))
    return 0


def register_cli(commands: dict) -> None:
    commands["live"] = ("classify a camera, phone stream or video live; draw the top-5 and, on a run's sheets, "
                        "whether each adversarial cell still fools the model", _add_live, _live)
