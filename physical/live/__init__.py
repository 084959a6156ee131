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

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from physical import runfiles
from physical.capture.guided import PrintedRun, align_frame
from physical.capture.sources import LatestFrame
from physical.models.classify import classify_images
from physical.config import AlignConfig, rng
from physical.errors import ConfigError
from physical.log import say
from physical.models import class_names, preprocess
from physical.rundir import RunDir
from physical.sheets.markers import detect_all
from physical.transforms.defences import Defended, check_defence, make_defence
from physical.live.overlay import annotate, cell_style, cells_now  # noqa: F401  (cell_style: part of live mode's interface)
from physical.live.server import CYCLE, MjpegServer, Recorder


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
            self.defence = check_defence(self.defence, f"{path}.defence")



def parse_defence(text: Optional[str]) -> Optional[dict]:
    """'jpeg', 'jpeg:quality=50', 'multicrop:n=8,fraction=0.8' (or 'none') -> a checked defence entry."""
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
        if entry is None:
            self.current, self.defence = (self.classifier, "none"), None
        else:
            d = make_defence(**entry)
            self.current, self.defence = (Defended(self.classifier, d).eval(), d.label), entry
        return self.label

    def cycle(self) -> str:
        """The next defence of: none, the chosen one, then the standard ones (the `d` key)."""
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
        run = RunDir(Path(root))
        printed = PrintedRun.load(run)
        has_index = runfiles.path(run, runfiles.INDEX).is_file()
        items = runfiles.load_index(run).by_key() if has_index else {}
        labels = {}
        for k, c in printed.cells.items():
            it = items.get(c["item"], {})
            labels[k] = {"label": it.get("label"), "role": c["role"], "item": c["item"],
                         "attack": it.get("attack_label") or it.get("attack"), "eps": it.get("eps")}
        model = next((it.get("model") for it in items.values() if it.get("model")), None)
        return cls(printed, labels, model)


def classify_frame(frame: np.ndarray, model, cells: Optional[RunCells], align_cfg, top_k: int = 5,
                   markers: Optional[list] = None) -> dict:
    """The frame's top-k (centre crop at the model's size) and, per cell of the run in view, its
    top-k and whether it fools the model; one batch. Deterministic for a given frame and model
    (randomised defences aside): the live view's results are reproducible from the frames."""
    images = [preprocess(frame, model.input_size, getattr(model, "resize_ratio", 0.875))]
    found: list[dict] = []
    quads: dict = {}
    if cells is not None:
        if markers is None:  # one fast pass: the live view's budget (the display loop's, when given)
            markers = detect_all(frame, thorough=False)
        if markers:
            p = cells.printed
            crops, _ = align_frame(frame, p, align_cfg, markers)
            found = [c for c in crops if c["accepted"]]
            quads = {(c["sheet"], c["slot"]): np.asarray(c["corners_px"]) for c in found}
            images += [c["image"] for c in found]
    preds = classify_images(model, images, batch_size=max(1, len(images)))
    names = class_names()

    def top(pr):
        return [[int(i), names[int(i)], float(v)] for i, v in zip(pr["top"][:top_k], pr["prob"][:top_k], strict=False)]

    out_cells = []
    for c, pr in zip(found, preds[1:], strict=False):
        info = cells.labels.get((c["sheet"], c["slot"]), {}) if cells is not None else {}  # found: cells given
        label = info.get("label")
        t1 = int(pr["top"][0])
        role = info.get("role")
        fooled = None if label is None else (t1 != int(label))
        out_cells.append({"sheet": c["sheet"], "slot": c["slot"], "role": role, "item": info.get("item"),
                          "label": label, "top": top(pr), "fooled": fooled,
                          "quad": quads.get((c["sheet"], c["slot"])), "sharpness": c["sharpness"]})
    return {"top": top(preds[0]), "cells": out_cells}


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
                 top_k: int = 5, title: str = "", keep_log: bool = False, say: Callable[[str], None] = say):
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
        self._next_status = 0.0

    # -- inference thread -----------------------------------------------------------------------
    def _infer_loop(self) -> None:
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
                    index, frame, markers = item
                    t0 = time.perf_counter()
                    model, label = self.model.current  # the defence a result was computed with
                    r = classify_frame(frame, model, self.cells, self.align_cfg, self.top_k, markers)
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
        return {"display_fps": round(self.display_rate.rate(), 2),
                "classified_fps": round(self.classify_rate.rate(), 2),
                "infer_ms": round(self.infer_ms, 1), "defence": self.model.label, "frames_shown": self.displayed,
                "frames_classified": self.n_results, "dropped": self.inbox.dropped,
                "result": None if r is None else plain({k: r[k] for k in ("frame", "top", "cells")})}

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
        self._next_status = t0 + (status_every or 0)
        stopped = "end of the source"
        try:
            while True:
                if self.error is not None:
                    raise self.error
                frame = self.source.read()
                if frame is None:
                    break
                now = time.perf_counter()
                why = self._show(frame, now, window, server, recorder, status_every)
                if why is None and frames is not None and self.displayed >= frames:
                    why = f"{frames} frames"
                if why is None and seconds is not None and now - t0 >= seconds:
                    why = f"{seconds:g} s"
                if why is not None:
                    stopped = why
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

    def _show(self, frame, now: float, window, server, recorder, status_every) -> Optional[str]:
        """One displayed frame: handed to the model, drawn with the newest result, served, recorded,
        shown; the reason to stop when the user asked to."""
        markers = detect_all(frame, thorough=False) if self.cells is not None else None
        self.inbox.put((self.source.index, frame, markers))
        r = self.result
        if self.keep_log:
            self.shown.append(None if r is None else r["frame"])
        if r is not None and markers is not None and self.cells is not None:  # each cell drawn where it is now
            r = {**r, "cells": cells_now(self.cells.printed.layout, markers, r["cells"])}
        out = self.draw(frame, r)
        self.display_rate.tick(now)
        self.displayed += 1
        if server is not None:
            server.publish(out)
        if recorder is not None:
            recorder.write(out, now)
        if window is not None:
            key = window.show(out)
            if key in (ord("q"), 27) or window.closed:
                return "stopped by the user"
            if key == ord("d"):
                self.say(f"live: defence {self.model.cycle()}")
        if status_every and now >= self._next_status:
            self._next_status = now + status_every
            top = f"{r['top'][0][1]} {100 * r['top'][0][2]:.0f}%" if r else "-"
            st = self.stats()
            self.say(f"live: display {st['display_fps']:.1f} fps, classified {st['classified_fps']:.1f}/s, "
                     f"model {st['infer_ms']:.0f} ms: {top}")
        return None

    def draw(self, frame: np.ndarray, result: Optional[dict]) -> np.ndarray:
        """The displayed frame: `frame` with the newest result and the rates drawn over it."""
        return annotate(frame, result, self.stats(), self.title)

    def log_data(self, summary: dict) -> dict:
        return {"source": self.source.name, "model": getattr(self.model.classifier, "name", "?"),
                "summary": summary, "shown": self.shown, "results": [plain(r) for r in self.results]}


def plain(r: dict) -> dict:
    """A result as plain JSON: each cell's quad as a list of [x, y] (px, 2 decimals)."""
    return {**r, "cells": [{k: (np.asarray(v, float).round(2).tolist() if k == "quad" and v is not None else v)
                            for k, v in c.items()} for c in r["cells"]]}

