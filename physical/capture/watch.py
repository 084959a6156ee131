"""Folder capture that watches: `physical capture RUN --source folder:PATH --watch`.

A phone syncing its photos to a computer (AirDrop, a cloud folder, a USB import) puts them into a
folder one by one. Each photo that arrives (once its size has stopped changing: a file still being
written is not read; one that cannot be read is read again when it changes) is copied into the run's capture/photos and aligned as the align stage will
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


def watch_folder(run: RunDir, cfg, folder: Path, *, timeout_s: Optional[float] = None,
                 say: Callable[[str], None] = say, poll_s: float = POLL_S) -> dict:
    """Watch `folder` (module docstring); returns the capture summary {photos, source, folder,
    skipped, cells_missing, sheets_missing, stopped}."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CaptureError(f"capture folder {folder} {'is a file, not a folder' if folder.exists() else 'does not exist'}")
    printed = PrintedRun.load(run)
    slots = {s: printed.slots(s) for s in range(printed.n_sheets)}
    missing = set(printed.cells)
    if folder.resolve() == run.photos_dir.resolve():
        raise CaptureError(f"capture folder {folder} is the run's own photo folder; watch the folder the phone syncs to")
    clear_photos(run)  # this capture's photos are the ones that arrive
    sizes: dict[str, tuple[int, float]] = {}  # name -> (size, mtime) at the last look
    done: set[str] = set()
    failed: dict[str, tuple[int, float]] = {}  # name -> (size, mtime) of a version that could not be read
    skipped: list[dict] = []
    taken = 0
    say(f"capture: watching {folder} for photos of {len(printed.cells)} cells on {printed.n_sheets} sheet(s) "
        "(Ctrl-C stops; the photos that came are kept)")
    t0 = time.monotonic()
    stopped = "timeout"
    try:
        while missing:
            for p in sorted(folder.iterdir()):
                suffix = p.suffix.lower()
                if (p.name in done or not p.is_file() or p.name.startswith(".")
                        or suffix not in IMAGE_SUFFIXES + HEIC_SUFFIXES):
                    continue
                st = p.stat()
                now = (st.st_size, st.st_mtime)
                if sizes.get(p.name) != now or st.st_size == 0 or failed.get(p.name) == now:
                    sizes[p.name] = now  # still being written (next look), or unreadable as it is
                    continue
                try:
                    photo = read_photo(p)
                except ValueError as e:  # looked at again if it changes (a sync that paused)
                    failed[p.name] = now
                    skipped.append({"file": p.name, "reason": str(e).split(": ", 1)[-1]})
                    say(f"capture: skipped {e}")
                    continue
                done.add(p.name)
                skipped = [s for s in skipped if s["file"] != p.name]
                with atomic_path(run.photos_dir / p.name) as tmp:
                    shutil.copyfile(p, tmp)
                taken += 1
                crops, problems = align_photo(photo, printed.layout, printed.tag, printed.images_px, cfg.align,
                                              references=printed.references)
                got = {(c["sheet"], c["slot"]) for c in crops if c["accepted"]}
                new = got & missing
                missing -= got
                sheets = sorted({s for s, _ in got})
                say(f"capture: {p.name}: " + (f"{len(got)} cells of sheet(s) {', '.join(map(str, sheets))}, "
                                               f"{len(new)} new" if got else
                                               "no cell accepted" + (f" ({problems[0]})" if problems else "")))
                say("capture: every cell captured" if not missing else f"capture: still missing: {checklist(missing, slots)}")
            if not missing:
                stopped = "complete"
                break
            if timeout_s is not None and time.monotonic() - t0 >= timeout_s:
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        stopped = "stopped by the user"
    return {"photos": taken, "source": "folder", "folder": str(folder), "watched": True, "skipped": skipped,
            "stopped": stopped, "cells_missing": [list(k) for k in sorted(missing)],
            "sheets_missing": sorted({s for s, _ in missing if set(slots[s]) <= {c for t, c in missing if t == s}})}
