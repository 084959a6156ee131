"""A folder of photos as the capture's source, and emptying capture/photos for a new capture."""
from __future__ import annotations

import shutil
from pathlib import Path

from physical.capture.keep import set_aside_photos
from physical.capture.sources import SOURCES, list_photos, not_available, parse_source
from physical.log import warn
from physical.rundir import RunDir, atomic_path


def check_capture_source(cfg) -> None:
    """What capture.source names, checked before any status is touched (a folder: that it holds photos)."""
    spec = parse_source(cfg.capture.source, cfg.resolve)
    if spec.kind == "folder":
        list_photos(spec.path)
    elif spec.kind not in SOURCES:
        raise not_available(spec)


def clear_photos(run: RunDir) -> None:
    """Empty capture/photos for a new capture: the simulator's photos are removed, any other is archived."""
    set_aside_photos(run)


def copy_folder(run: RunDir, folder: Path) -> dict:
    """Copy every photo of `folder` into capture/photos, keeping names; CaptureError if none."""
    photos, skipped = list_photos(folder)  # checks before anything is removed
    for s in skipped:
        warn(f"capture: skipping {folder / s['file']}: {s['reason']}")
    dest = run.photos_dir
    if folder.resolve() != dest.resolve():
        set_aside_photos(run, copies_of=folder)
        for p in photos:
            with atomic_path(dest / p.name) as tmp:
                shutil.copyfile(p, tmp)
    else:  # the photos are already in place: they are kept as they are
        (run.root / "capture" / "simulated.json").unlink(missing_ok=True)
        (run.root / "capture" / "guided.json").unlink(missing_ok=True)
    return {"photos": len(photos), "source": "folder", "folder": str(folder), "skipped": skipped}
