"""The capture stage: photos of the printed sheets into ``capture/photos``.

``capture.source`` picks where they come from (see :mod:`physical.capture.sources`): the
simulator, or a folder of photos taken elsewhere, copied as they are (names kept, atomic writes).
Photos are not decoded here beyond a look at the file header; the align stage reports and skips
any it cannot read. Photos of an earlier capture are removed first, so a redone capture never
mixes sources.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..rundir import RunDir, atomic_path
from .sources import (
    AVAILABLE,
    CaptureError,
    FolderSource,
    FrameSource,
    SourceNotAvailable,
    SourceSpec,
    list_photos,
    not_available,
    open_source,
    parse_source,
)

__all__ = [
    "capture_stage", "copy_folder", "parse_source", "open_source", "list_photos", "FrameSource",
    "FolderSource", "SourceSpec", "CaptureError", "SourceNotAvailable", "AVAILABLE",
]

log = logging.getLogger(__name__)


def capture_stage(run: RunDir, cfg) -> dict:
    """Fill capture/photos from cfg.capture.source; returns a summary {"photos": n, "source": ...}."""
    spec = parse_source(cfg.capture.source, cfg.resolve)
    if spec.kind == "simulate":
        from ..simulate import simulate_stage

        clear_photos(run)
        return simulate_stage(run, cfg)
    if spec.kind == "folder":
        return copy_folder(run, Path(spec.target))
    raise not_available(spec)  # webcam, URL, video: recognised, added by a later issue


def clear_photos(run: RunDir) -> None:
    """Remove the photos (and simulator ground truth) of an earlier capture."""
    for p in run.photos_dir.iterdir():
        if p.is_file():
            p.unlink()
    (run.root / "capture" / "simulated.json").unlink(missing_ok=True)


def copy_folder(run: RunDir, folder: Path) -> dict:
    """Copy every photo of `folder` into capture/photos, keeping names; CaptureError if none."""
    photos, skipped = list_photos(folder)  # checks before anything is removed
    for s in skipped:
        log.warning("capture: skipping %s: %s", folder / s["file"], s["reason"])
    dest = run.photos_dir
    if folder.resolve() != dest.resolve():
        clear_photos(run)
        for p in photos:
            with atomic_path(dest / p.name) as tmp:
                shutil.copyfile(p, tmp)
    else:
        (run.root / "capture" / "simulated.json").unlink(missing_ok=True)
    return {"photos": len(photos), "source": "folder", "folder": str(folder), "skipped": skipped}
