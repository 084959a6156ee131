"""The capture stage: photos of the printed sheets into ``capture/photos``.

``capture.source`` picks where they come from (see :mod:`physical.capture.sources`): the
simulator; a folder of photos taken elsewhere, copied as they are (names kept, atomic writes; not
decoded here beyond a look at the file header, the align stage reports and skips any it cannot
read); or a stream (webcam, phone URL, video file) from which guided capture
(:mod:`physical.capture.guided`) picks a sharp, steady frame of every sheet by itself, headless
unless there is a display, within ``capture.guided.timeout_s``. The photos of an earlier capture
leave capture/photos first, so a redone capture never mixes sources: photos from outside the tool
are moved to ``archive/`` inside the run, never deleted (:mod:`physical.capture.keep`); only the
photos of an earlier guided capture of the same print stay (it resumes where a lost stream left it),
and those of earlier folder captures when the source is a folder again (new photos of the sheets the
align stage named add to them; align uses each cell's best crop: :mod:`physical.capture.folder`).
"""
from __future__ import annotations

from physical.capture.folder import clear_photos, copy_folder
from physical.capture.guided import guided_capture
from physical.capture.sources import not_available, parse_source
from physical.rundir import RunDir
from physical.sim.print_camera import simulate_stage


def capture_stage(run: RunDir, cfg) -> dict:
    """Fill capture/photos from cfg.capture.source; returns a summary {"photos": n, "source": ...}."""
    spec = parse_source(cfg.capture.source, cfg.resolve)
    if spec.kind == "simulate":
        clear_photos(run)
        return simulate_stage(run, cfg)
    if spec.kind == "folder":
        return copy_folder(run, spec.path)
    if spec.kind in ("webcam", "url", "video"):
        return guided_capture(run, cfg, spec, resume=True)
    raise not_available(spec)
