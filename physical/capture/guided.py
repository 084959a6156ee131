"""Guided capture: the tool takes the photos of the printed sheets from a stream by itself.

For every frame (the newest one, for a live stream: frames that arrive while one is looked at are
dropped) the markers are found and grouped by sheet. A sheet of this run is *ready* when

1. its markers are found: at least ``capture.guided.marker_fraction`` of its lattice and run tag
   markers (all of them by default), with this run's tag where a tag is seen;
2. it is *stable*: seen so for ``stable_frames`` consecutive frames, its marker corners moving at
   most ``max_motion`` x the marker side from one frame to the next;
3. it is *sharp*: the sharpest frame of that stable window has a sheet sharpness (variance of the
   Laplacian over the sheet's outline, grey 0..255, after a 0.8 px Gaussian that keeps sensor
   noise from passing for detail) of at least ``min_laplacian``.

That frame is then aligned as the align stage will (:func:`physical.align.align_photo`); when every
cell of the sheet is accepted it is saved as ``capture/photos/sheetNNN-K.jpg`` (JPEG quality 95) and
recorded in ``capture/guided.json`` at once, so a stream that drops later keeps every photo taken.
A sheet gets ``capture.photos_per_sheet`` photos, each after the camera has moved again.

Capture ends when every sheet has its photos, at the time limit, at the end of a video, or when a
stream is lost (after ``capture.camera.reconnects`` reopenings; the photos taken are kept). A later
capture of the same printed sheets resumes an *incomplete* one (lost stream, time limit, stopped):
its photos are kept and its captured sheets are not asked for again. A complete capture that is
run again starts over, as does ``restart``.

With a display, a window shows the detected markers, each sheet's outline and the checklist;
space takes the frame in view, q (or Esc, or closing the window) stops.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from physical.log import say
from physical.rundir import RunDir, read_json, write_image, write_json
from physical.sheets.markers import Marker
from physical.capture.keep import set_aside_photos
from physical.capture import draw
from physical.capture.view import (PREBLUR_SIGMA, PrintedRun, SheetView, align_frame, find_markers, fit_sheet,  # noqa: F401
                   refined, sheet_sharpness, sheets_in_view)
from physical.capture.sources import (CaptureError, FrameSource, Grabber, SourceSpec, StreamLost, open_source,
                                      parse_source)


GUIDED_JSON = "capture/guided.json"
STATUS_EVERY_S = 10.0  # headless: a status line this often while sheets are missing
JPEG_QUALITY = 95


# ----------------------------------------------------------------------------------------------
# the capture


@dataclass
class _Seen:
    index: int
    frame: np.ndarray
    markers: list[Marker]
    view: SheetView


@dataclass
class _SheetState:
    photos: int = 0
    window: deque = field(default_factory=deque)  # _Seen of the current stable run of frames
    last: Optional[SheetView] = None  # the previous frame's view (motion)
    moved: bool = True  # the camera moved since the last photo of this sheet
    status: str = "not seen yet"


class GuidedCapture:
    """Takes photos of every sheet of a run from a frame source; see the module docstring."""

    def __init__(self, run: RunDir, cfg, source: FrameSource, *, timeout_s: Optional[float] = None,
                 preview: Optional[bool] = None, resume: bool = True, source_text: str = "",
                 say: Callable[[str], None] = say, on_start: Optional[Callable[[], None]] = None):
        self.run = run
        self.cfg = cfg
        self.g = cfg.capture.guided
        self.per_sheet = int(cfg.capture.photos_per_sheet)
        self.source = source
        self.source_text = source_text or source.name
        self.timeout_s = float(timeout_s if timeout_s is not None else self.g.timeout_s)
        self.preview = draw.has_display() if preview is None else bool(preview)
        self.say = say
        self.printed = PrintedRun.load(run)
        self.state = {s: _SheetState() for s in range(self.printed.n_sheets)}
        self.records: list[dict] = []
        self.frames = 0  # frames looked at
        self.last_views: dict[int, SheetView] = {}
        self.last_markers: list[Marker] = []
        self.foreign_seen: set[int] = set()
        self.resume = resume
        self.on_start = on_start  # called once the source is open, before any photo is touched

    # -- photos on disk -------------------------------------------------------------------------
    @property
    def json_path(self) -> Path:
        return self.run.root / GUIDED_JSON

    def _prepare(self, resume: bool) -> None:
        """Keep the photos of an earlier, incomplete guided capture of the same print (resume);
        remove every other photo. Runs once the source is open: a source that fails to open
        leaves an earlier capture as it was."""
        kept: list[dict] = []
        if resume and self.json_path.is_file():
            try:
                old = read_json(self.json_path)
            except ValueError:
                old = {}
            if old.get("layout_sha") == self.printed.sha and not old.get("complete") \
                    and old.get("photos_per_sheet") == self.per_sheet:
                kept = [r for r in old.get("photos", []) if (self.run.photos_dir / r["file"]).is_file()]
        set_aside_photos(self.run, {r["file"] for r in kept}, self.say)
        self.records = kept
        for r in kept:
            for s in r.get("complete_sheets", []):
                if s in self.state:
                    self.state[s].photos += 1
        if kept:
            done = [s for s, st in self.state.items() if st.photos >= self.per_sheet]
            self.say(f"capture: resuming; {len(kept)} photo(s) of an earlier capture kept "
                     f"(sheets done: {', '.join(map(str, done)) or 'none'})")
        self._write_json()

    def _write_json(self) -> None:
        write_json(self.json_path, {"layout_sha": self.printed.sha, "source": self.source_text,
                                    "photos_per_sheet": self.per_sheet, "complete": self.complete(),
                                    "sheets_missing": self.missing_sheets(), "photos": self.records})

    def _save(self, frame: np.ndarray, crops: list[dict], index: int, sharpness: float, manual: bool) -> dict:
        ok_cells = sorted((c["sheet"], c["slot"]) for c in crops if c["accepted"])
        complete = [s for s in sorted({c["sheet"] for c in crops})
                    if all((s, slot) in ok_cells for slot in self.printed.slots(s))]
        first = complete[0] if complete else min(s for s, _ in ok_cells)
        k = 1 + sum(1 for r in self.records if r["file"].startswith(f"sheet{first:03d}-"))
        name = f"sheet{first:03d}-{k}.jpg"
        while (self.run.photos_dir / name).exists():
            k += 1
            name = f"sheet{first:03d}-{k}.jpg"
        write_image(self.run.photos_dir / name, frame, quality=JPEG_QUALITY)
        rec = {"file": name, "complete_sheets": complete, "cells": [list(c) for c in ok_cells],
               "sharpness": round(sharpness, 1), "frame": index, "manual": manual,
               "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.records.append(rec)
        for s in complete:
            self.state[s].photos += 1
            self.state[s].moved = False
            self.state[s].window.clear()
        self._write_json()
        return rec

    # -- checklist ------------------------------------------------------------------------------
    def cells_done(self) -> set[tuple[int, int]]:
        return {tuple(c) for r in self.records for c in r["cells"]}

    def missing_sheets(self) -> list[int]:
        return [s for s, st in self.state.items() if st.photos < self.per_sheet]

    def missing_cells(self) -> list[tuple[int, int]]:
        done = self.cells_done()
        return sorted(k for k in self.printed.cells if k not in done)

    def complete(self) -> bool:
        return not self.missing_sheets()

    def checklist(self) -> list[tuple[str, tuple]]:
        done = self.cells_done()
        lines = []
        for s, st in self.state.items():
            slots = self.printed.slots(s)
            n_ok = sum((s, slot) in done for slot in slots)
            if st.photos >= self.per_sheet:
                lines.append((f"[x] sheet {s}: cells {n_ok}/{len(slots)}, {st.photos} photo(s)", draw.GREEN))
            else:
                lines.append((f"[ ] sheet {s}: cells {n_ok}/{len(slots)}; {st.status}", draw.YELLOW))
        return lines

    # -- one frame ------------------------------------------------------------------------------
    def process(self, frame: np.ndarray, index: int) -> list[dict]:
        """Look at one frame; returns the records of photos saved from it."""
        self.frames += 1
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        markers = find_markers(frame, self.printed, grey)
        views, foreign = sheets_in_view(markers, self.printed)
        self.foreign_seen.update(foreign)
        self.last_views, self.last_markers = views, markers
        saved = []
        for s, st in self.state.items():
            v = views.get(s)
            if v is None:
                st.window.clear()
                st.moved = True
                if st.photos < self.per_sheet:
                    st.status = "not in view" if st.last is not None or st.status != "not seen yet" else st.status
                st.last = None
                continue
            enough = v.n_found >= max(1, int(np.ceil(self.g.marker_fraction * v.expected - 1e-9)))
            if st.last is not None:
                common = [p for p in v.found if p in st.last.found]
                if common and v.marker_side > 0:
                    d = max(float(np.abs(v.found[p] - st.last.found[p]).max()) for p in common)
                    v.motion = d / v.marker_side
            st.last = v
            if v.motion is None or v.motion > self.g.max_motion:
                st.moved = True
            if not enough:
                st.window.clear()
                if st.photos < self.per_sheet:
                    st.status = f"markers {v.n_found}/{v.expected}"
                continue
            v.sharpness = sheet_sharpness(grey, v.outline)
            # every look either extends a sheet's window or clears it: windows hold consecutive looks
            if st.window and (v.motion is None or v.motion > self.g.max_motion):
                st.window.clear()
            st.window.append(_Seen(index, frame, markers, v))
            while len(st.window) > self.g.stable_frames:
                st.window.popleft()
            if st.photos >= self.per_sheet:
                continue
            best = max(st.window, key=lambda e: e.view.sharpness)
            if len(st.window) < self.g.stable_frames:
                st.status = f"hold still ({len(st.window)}/{self.g.stable_frames}), sharpness {v.sharpness:.0f}"
                continue
            if best.view.sharpness < self.g.min_laplacian:
                st.status = f"not sharp: {best.view.sharpness:.0f} < {self.g.min_laplacian:g}"
                continue
            if st.photos and not st.moved:
                st.status = "move the camera for the next photo"
                continue
            rec = self._try_save(best, s)
            if rec is not None:
                saved.append(rec)
        return saved

    def _try_save(self, best: _Seen, sheet: int) -> Optional[dict]:
        st = self.state[sheet]
        crops, problems = align_frame(best.frame, self.printed, self.cfg.align, best.markers)
        mine = [c for c in crops if c["sheet"] == sheet]
        bad = [c for c in mine if not c["accepted"]]
        if len(mine) < len(self.printed.slots(sheet)) or bad:
            why = ("; ".join(f"cell {c['slot']}: {c['reason']}" for c in bad) or "; ".join(problems[:2])
                   or "cells not found")
            st.status = f"align: {why}"
            st.window.clear()
            return None
        rec = self._save(best.frame, crops, best.index, best.view.sharpness, manual=False)
        missing = self.missing_sheets()
        self.say(f"capture: sheet {sheet} -> {rec['file']} (frame {best.index}, sharpness {best.view.sharpness:.0f}, "
                 f"cells {len(mine)}/{len(mine)}); "
                 + (f"still missing: sheet {', '.join(map(str, missing))}" if missing else "every sheet captured"))
        return rec

    def take_now(self, frame: np.ndarray, index: int) -> Optional[dict]:
        """Save the frame in view (a key press): kept when at least one cell of this run is accepted."""
        crops, problems = align_frame(frame, self.printed, self.cfg.align, self.last_markers)
        if not any(c["accepted"] for c in crops):
            self.say(f"capture: frame {index} not saved: {'; '.join(problems[:2]) or 'no cell accepted'}")
            return None
        sharp = max((v.sharpness for v in self.last_views.values()), default=0.0)
        rec = self._save(frame, crops, index, sharp, manual=True)
        self.say(f"capture: frame {index} saved by hand as {rec['file']} (cells {len(rec['cells'])})")
        return rec

    # -- preview --------------------------------------------------------------------------------
    def annotate(self, frame: np.ndarray) -> np.ndarray:
        img = frame.copy()
        lw = max(1, int(round(img.shape[1] / 800)))
        for m in self.last_markers:
            dec = self.printed.layout.decode_id(m.id)
            mine = (dec is not None and dec[0] < self.printed.n_sheets) or m.id in self.printed.tag
            draw.poly(img, m.corners, draw.CYAN if mine else draw.GREY, lw)
        for s, v in self.last_views.items():
            if v.outline is None:
                continue
            st = self.state[s]
            color = draw.GREEN if st.photos >= self.per_sheet else (draw.YELLOW if st.window else draw.RED)
            draw.poly(img, v.outline, color, 2 * lw)
            draw.label_at(img, f"sheet {s}", v.outline.mean(axis=0), color)
        lines = [(f"capture {self.run.root.name}: {len(self.records)} photo(s)", draw.WHITE)] + self.checklist()
        lines.append(("space: take this frame   q: stop", draw.GREY))
        draw.panel(img, lines)
        return img

    # -- the loop -------------------------------------------------------------------------------
    def run_capture(self) -> dict:
        stopped = "complete"
        src = Grabber(self.source) if self.source.live else self.source
        src.open()
        window = None
        try:
            if self.on_start is not None:
                self.on_start()
            self._prepare(self.resume)
            t0 = time.monotonic()
            if self.preview:
                window = draw.Window(f"physical capture - {self.run.root.name}")
            self.say(f"capture: reading {self.source.name}; {len(self.missing_sheets())} sheet(s) to capture, "
                     f"time limit {self.timeout_s:g} s" + ("" if window else " (headless)"))
            next_status = t0 + STATUS_EVERY_S
            while True:
                now = time.monotonic()
                if now - t0 > self.timeout_s:
                    stopped = "time limit"
                    break
                try:
                    frame = src.read_within(0.5) if isinstance(src, Grabber) else src.read()
                except StreamLost as e:
                    raise self._lost(e) from None
                if frame is None:
                    if isinstance(src, Grabber) and not src.ended:
                        continue
                    stopped = "end of the source"
                    break
                self.process(frame, src.index)
                if window is not None:
                    key = window.show(self.annotate(frame))
                    if key == ord(" "):
                        self.take_now(frame, src.index)
                    elif key in (ord("q"), 27) or window.closed:
                        stopped = "stopped by the user"
                        break
                if self.complete():
                    break
                if now >= next_status:
                    next_status = now + STATUS_EVERY_S
                    self.say(f"capture: {now - t0:.0f} s, {self.frames} frames; "
                             + "; ".join(t for t, _ in self.checklist() if t.startswith("[ ]")))
        finally:
            if window is not None:
                window.close()
            src.close()
        return self.summary(stopped, time.monotonic() - t0, getattr(src, "dropped", 0))

    def _lost(self, e: StreamLost) -> CaptureError:
        if not self.records:
            return e
        done = ", ".join(str(s) for s, st in self.state.items() if st.photos >= self.per_sheet) or "none"
        return StreamLost(f"{e}; the {len(self.records)} photo(s) taken before are kept in {self.run.photos_dir} "
                          f"(sheets done: {done}); "
                          "run the capture again to take the rest")

    def summary(self, stopped: str, seconds: float, dropped: int = 0) -> dict:
        return {"photos": len(self.records), "source": self.source_text, "stopped": stopped,
                "sheets": self.printed.n_sheets, "sheets_missing": self.missing_sheets(),
                "cells_missing": len(self.missing_cells()), "frames": self.frames, "dropped": dropped,
                "seconds": round(seconds, 1)}


def guided_capture(run: RunDir, cfg, spec: SourceSpec | str, *, timeout_s: Optional[float] = None,
                   preview: Optional[bool] = None, resume: bool = True, say: Callable[[str], None] = say,
                   on_start: Optional[Callable[[], None]] = None) -> dict:
    """Guided capture of a run's sheets from `spec` (webcam, URL, video, or a simulated stream).

    Raises CaptureError when the source cannot be opened, when it is lost (photos taken are kept),
    or when not one photo could be taken; with some sheets missing it returns the summary and says
    which (the align stage then reports the cells not found)."""
    if isinstance(spec, str):
        spec = parse_source(spec, cfg.resolve)
    if spec.kind == "folder":
        raise CaptureError(f"{spec.text}: a folder of photos is copied as it is, not captured (capture.source "
                           f"folder:PATH)")
    source = open_source(spec, cfg.capture.camera, loop=spec.kind == "simulate", run=run, cfg=cfg)
    if preview is None:
        p = cfg.capture.guided.preview
        preview = draw.has_display() if p == "auto" else p == "on"
        if preview and not draw.has_display():
            say("capture: capture.guided.preview is on but there is no display here; running headless")
            preview = False
    gc = GuidedCapture(run, cfg, source, timeout_s=timeout_s, preview=preview, resume=resume,
                       source_text=spec.text, say=say, on_start=on_start)
    summary = gc.run_capture()
    if not gc.records:
        raise CaptureError(f"no photo of this run's sheets was taken from {source.name} ({summary['stopped']} after "
                           f"{summary['seconds']:g} s, {summary['frames']} frames looked at; "
                           + "; ".join(t for t, _ in gc.checklist()) + ")")
    if summary["sheets_missing"]:
        say(f"capture: {summary['stopped']}; sheet(s) {', '.join(map(str, summary['sheets_missing']))} not captured "
            f"({summary['cells_missing']} cells missing); the align stage will report them")
    return summary
