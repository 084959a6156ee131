"""Photos are never lost: before a capture replaces the photos of an earlier one, every photo that
came from outside (a folder, guided capture from a camera, phone stream or replay, or put there by
hand) is moved into ``archive/capture-<time>/`` inside the run; only the simulator's own photos
(listed in capture/simulated.json) are removed, since the simulator makes them again."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

from physical.log import say
from physical.rundir import RunDir, file_digest, read_json


def _simulated(run: RunDir) -> set[str]:
    path = run.root / "capture" / "simulated.json"
    try:
        return {Path(r["file"]).name for r in read_json(path).get("photos", [])} if path.is_file() else set()
    except (ValueError, KeyError, TypeError):
        return set()


def set_aside_photos(run: RunDir, keep: Iterable[str] = (), say: Callable[[str], None] = say,
                     copies_of: Optional[Path] = None) -> Optional[Path]:
    """Clear capture/photos for a new capture, except the files named in `keep`; photos from outside
    are archived (returns the archive folder, or None when nothing was archived). A photo that is an
    identical copy of one in folder `copies_of` (the folder being copied again) is not archived twice."""
    keep = set(keep)
    sim = _simulated(run)
    if copies_of is not None:
        sim |= {p.name for p in run.photos_dir.iterdir() if p.is_file() and (Path(copies_of) / p.name).is_file()
                and file_digest(p) == file_digest(Path(copies_of) / p.name)}
    files = [p for p in sorted(run.photos_dir.iterdir()) if p.is_file() and p.name not in keep]
    outside = [p for p in files if p.name not in sim]
    dest = None
    if outside:
        dest = run.root / "archive" / f"capture-{time.strftime('%Y%m%d-%H%M%S')}"
        k = 1
        while dest.exists():
            k += 1
            dest = dest.with_name(f"capture-{time.strftime('%Y%m%d-%H%M%S')}-{k}")
        dest.mkdir(parents=True)
        guided = run.root / "capture" / "guided.json"
        if guided.is_file() and not keep:
            os.replace(guided, dest / "guided.json")
        for p in outside:
            os.replace(p, dest / p.name)
        say(f"capture: kept the {len(outside)} earlier photo(s) in {dest} (photos from outside the tool are "
            "archived, never deleted)")
    for p in files:
        if p.name in sim:
            p.unlink()
    (run.root / "capture" / "simulated.json").unlink(missing_ok=True)
    if not keep:
        (run.root / "capture" / "guided.json").unlink(missing_ok=True)
    return dest
