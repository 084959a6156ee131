"""Folder capture that watches: `physical capture RUN --source folder:PATH --watch`.

A phone syncing its photos to a computer (AirDrop, a cloud folder, a USB import) puts them into a
folder one by one. Each photo that arrives (once its size has stopped changing: a file still being
written is not read; one that cannot be read is read again when it changes) is copied into the run's capture/photos and
aligned as the align stage will
align it; after each, the checklist of the sheets and cells still missing is printed. The watch
ends when every printed cell has an accepted crop, at the timeout, or when the user stops it
(Ctrl-C): the photos that came are kept either way, and `physical run CONFIG --from align` goes on
with them.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable, Optional

from physical.align import align_photo, read_photo
from physical.log import say
from physical.rundir import RunDir, atomic_path
from physical.capture.folder import clear_photos
from physical.capture.frames import CaptureError
from physical.capture.guided import PrintedRun
from physical.capture.sources import HEIC_SUFFIXES, IMAGE_SUFFIXES

POLL_S = 0.5  # how often the folder is looked at


def checklist(missing: set[tuple[int, int]], slots: dict[int, list[int]]) -> str:
    """"sheet 1 (all 12 cells); sheet 0: cells 3, 7" for the cells still missing."""
    parts = []
    for sheet in sorted({s for s, _ in missing}):
        cells = sorted(c for s, c in missing if s == sheet)
        parts.append(f"sheet {sheet} (all {len(cells)} cells)" if len(cells) == len(slots[sheet])
                     else f"sheet {sheet}: cell{'s' if len(cells) > 1 else ''} {', '.join(map(str, cells))}")
    return "; ".join(parts)


class _Watch:
    """What a watch has seen: each file's (size, mtime) at the last look, the photos taken, those that
    could not be read (and in which version), the cells still missing."""

    def __init__(self, run: RunDir, cfg, printed: PrintedRun, say: Callable[[str], None]):
        self.run, self.cfg, self.printed, self.say = run, cfg, printed, say
        self.slots = {s: printed.slots(s) for s in range(printed.n_sheets)}
        self.missing = set(printed.cells)
        self.sizes: dict[str, tuple[int, float]] = {}  # name -> (size, mtime) at the last look
        self.done: set[str] = set()
        self.failed: dict[str, tuple[int, float]] = {}  # name -> (size, mtime) of a version that could not be read
        self.skipped: list[dict] = []
        self.taken = 0

    def ready(self, p: Path) -> bool:
        """A photo not taken yet whose size and time have not changed since the last look."""
        if (p.name in self.done or not p.is_file() or p.name.startswith(".")
                or p.suffix.lower() not in IMAGE_SUFFIXES + HEIC_SUFFIXES):
            return False
        st = p.stat()
        now = (st.st_size, st.st_mtime)
        if self.sizes.get(p.name) != now or st.st_size == 0 or self.failed.get(p.name) == now:
            self.sizes[p.name] = now  # still being written (next look), or unreadable as it is
            return False
        return True

    def take(self, p: Path) -> None:
        """Read, copy and align one photo; say what it brought and what is still missing."""
        try:
            photo = read_photo(p)
        except ValueError as e:  # looked at again if it changes (a sync that paused)
            self.failed[p.name] = self.sizes[p.name]
            self.skipped.append({"file": p.name, "reason": str(e).split(": ", 1)[-1]})
            self.say(f"capture: skipped {e}")
            return
        self.done.add(p.name)
        self.skipped = [s for s in self.skipped if s["file"] != p.name]
        with atomic_path(self.run.photos_dir / p.name) as tmp:
            shutil.copyfile(p, tmp)
        self.taken += 1
        pr = self.printed
        crops, problems = align_photo(photo, pr.layout, pr.tag, pr.images_px, self.cfg.align, references=pr.references)
        got = {(c["sheet"], c["slot"]) for c in crops if c["accepted"]}
        new = got & self.missing
        self.missing -= got
        sheets = sorted({s for s, _ in got})
        self.say(f"capture: {p.name}: " + (f"{len(got)} cells of sheet(s) {', '.join(map(str, sheets))}, "
                                            f"{len(new)} new" if got else
                                            "no cell accepted" + (f" ({problems[0]})" if problems else "")))
        self.say("capture: every cell captured" if not self.missing
                 else f"capture: still missing: {checklist(self.missing, self.slots)}")

    def summary(self, folder: Path, stopped: str) -> dict:
        missing, slots = self.missing, self.slots
        return {"photos": self.taken, "source": "folder", "folder": str(folder), "watched": True,
                "skipped": self.skipped, "stopped": stopped, "cells_missing": [list(k) for k in sorted(missing)],
                "sheets_missing": sorted({s for s, _ in missing
                                          if set(slots[s]) <= {c for t, c in missing if t == s}})}


def watch_folder(run: RunDir, cfg, folder: Path, *, timeout_s: Optional[float] = None,
                 say: Callable[[str], None] = say, poll_s: float = POLL_S) -> dict:
    """Watch `folder` (module docstring); returns the capture summary {photos, source, folder,
    skipped, cells_missing, sheets_missing, stopped}."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CaptureError(f"capture folder {folder} "
                           f"{'is a file, not a folder' if folder.exists() else 'does not exist'}")
    printed = PrintedRun.load(run)
    if folder.resolve() == run.photos_dir.resolve():
        raise CaptureError(f"capture folder {folder} is the run's own photo folder; watch the folder the phone syncs "
                           f"to")
    clear_photos(run)  # this capture's photos are the ones that arrive
    w = _Watch(run, cfg, printed, say)
    say(f"capture: watching {folder} for photos of {len(printed.cells)} cells on {printed.n_sheets} sheet(s) "
        "(Ctrl-C stops; the photos that came are kept)")
    t0 = time.monotonic()
    stopped = "timeout"
    try:
        while w.missing:
            for p in sorted(folder.iterdir()):
                if w.ready(p):
                    w.take(p)
            if not w.missing:
                stopped = "complete"
                break
            if timeout_s is not None and time.monotonic() - t0 >= timeout_s:
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        stopped = "stopped by the user"
    return w.summary(folder, stopped)
