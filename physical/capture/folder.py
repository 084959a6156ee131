"""A folder of photos as the capture's source, and emptying capture/photos for a new capture."""
from __future__ import annotations

import shutil
from pathlib import Path

from physical.capture.keep import set_aside_photos
from physical.capture.sources import SOURCES, list_photos, not_available, parse_source
from physical.log import say, warn
from physical.rundir import RunDir, atomic_path, file_digest, read_json, write_json


def check_capture_source(cfg) -> None:
    """What capture.source names, checked before any status is touched (a folder: that it holds photos)."""
    spec = parse_source(cfg.capture.source, cfg.resolve)
    if spec.kind == "folder":
        list_photos(spec.path)
    elif spec.kind not in SOURCES:
        raise not_available(spec)


FOLDER_RECORD = "folder.json"  # capture/folder.json: the photos folder captures copied in, kept by the next one


def clear_photos(run: RunDir) -> None:
    """Empty capture/photos for a new capture: the simulator's photos are removed, any other is archived."""
    set_aside_photos(run)
    (run.root / "capture" / FOLDER_RECORD).unlink(missing_ok=True)


def _earlier(run: RunDir) -> list[str]:
    """The photos earlier folder captures copied in that are still there."""
    path = run.root / "capture" / FOLDER_RECORD
    try:
        names = read_json(path).get("photos", []) if path.is_file() else []
    except (ValueError, AttributeError):
        names = []
    return [n for n in names if isinstance(n, str) and (run.photos_dir / n).is_file()]


def _name_for(dest: Path, photo: Path) -> str | None:
    """The name `photo` gets in `dest`: its own, or with -2, -3 ... where another photo has it
    (phones number every folder from 1); None where the same photo is there already."""
    name, k = photo.name, 2
    while (dest / name).is_file():
        if file_digest(dest / name) == file_digest(photo):
            return None
        name, k = f"{photo.stem}-{k}{photo.suffix}", k + 1
    return name


def copy_folder(run: RunDir, folder: Path) -> dict:
    """Copy every photo of `folder` into capture/photos, keeping names; CaptureError if none.

    The photos of earlier folder captures stay (a folder of new photos of the sheets the align
    stage named adds to them, and align keeps each cell's best crop); any other earlier photo is
    set aside as `set_aside_photos` does."""
    photos, skipped = list_photos(folder)  # checks before anything is removed
    for s in skipped:
        warn(f"capture: skipping {folder / s['file']}: {s['reason']}")
    dest = run.photos_dir
    if folder.resolve() == dest.resolve():  # the photos are already in place: they are kept as they are
        for record in ("simulated.json", "guided.json"):
            (run.root / "capture" / record).unlink(missing_ok=True)
        _record(run, [p.name for p in photos])
        return {"photos": len(photos), "source": "folder", "folder": str(folder), "skipped": skipped}
    earlier = _earlier(run)
    set_aside_photos(run, keep=earlier, copies_of=None if earlier else folder)
    (run.root / "capture" / "guided.json").unlink(missing_ok=True)
    new = []
    for p in photos:
        name = _name_for(dest, p)
        if name is not None:
            with atomic_path(dest / name) as tmp:
                shutil.copyfile(p, tmp)
            new.append(name)
    if earlier:
        say(f"capture: {len(new)} new photo(s) added to the {len(earlier)} of earlier folder captures "
            "(align uses each cell's best crop of them all)")
    _record(run, earlier + new)
    return {"photos": len(earlier) + len(new), "new": len(new), "source": "folder", "folder": str(folder),
            "skipped": skipped}


def _record(run: RunDir, names: list[str]) -> None:
    write_json(run.root / "capture" / FOLDER_RECORD, {"photos": sorted(set(names))})
