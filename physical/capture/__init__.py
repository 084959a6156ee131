"""The capture stage: photos of the printed sheets into ``capture/photos``.

``capture.source`` picks where they come from (see :mod:`physical.capture.sources`): the
simulator; a folder of photos taken elsewhere, copied as they are (names kept, atomic writes; not
decoded here beyond a look at the file header, the align stage reports and skips any it cannot
read); or a stream (webcam, phone URL, video file) from which guided capture
(:mod:`physical.capture.guided`) picks a sharp, steady frame of every sheet by itself, headless
unless there is a display, within ``capture.guided.timeout_s``. The photos of an earlier capture
leave capture/photos first, so a redone capture never mixes sources: photos from outside the tool
are moved to ``archive/`` inside the run, never deleted (:mod:`physical.capture.keep`); only the
photos of an earlier guided capture of the same print stay (it resumes where a lost stream left it).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..log import warn
from ..rundir import RunDir, atomic_path
from ..simulate import simulate_stage
from .guided import guided_capture
from .keep import set_aside_photos
from .sources import (
    AVAILABLE,
    CaptureError,
    FolderSource,
    FrameSource,
    Grabber,
    LatestFrame,
    SourceNotAvailable,
    SourceSpec,
    StreamLost,
    UrlSource,
    VideoSource,
    WebcamSource,
    list_photos,
    not_available,
    open_source,
    parse_source,
)

__all__ = [
    "capture_stage", "copy_folder", "parse_source", "open_source", "list_photos", "FrameSource",
    "FolderSource", "WebcamSource", "UrlSource", "VideoSource", "Grabber", "LatestFrame", "SourceSpec",
    "CaptureError", "SourceNotAvailable", "StreamLost", "AVAILABLE",
]


def capture_stage(run: RunDir, cfg) -> dict:
    """Fill capture/photos from cfg.capture.source; returns a summary {"photos": n, "source": ...}."""
    spec = parse_source(cfg.capture.source, cfg.resolve)
    if spec.kind == "simulate":
        clear_photos(run)
        return simulate_stage(run, cfg)
    if spec.kind == "folder":
        return copy_folder(run, Path(spec.target))
    if spec.kind in ("webcam", "url", "video"):
        return guided_capture(run, cfg, spec, resume=True)
    raise not_available(spec)


def check_capture_source(cfg) -> None:
    """What capture.source names, checked before any status is touched (a folder: that it holds photos)."""
    spec = parse_source(cfg.capture.source, cfg.resolve)
    if spec.kind == "folder":
        list_photos(Path(spec.target))
    elif spec.kind not in ("simulate", "webcam", "url", "video"):
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
