"""A tiny run directory for the experiments and report tests, made by the real generate and
classify stages (2 sample images, BIM at eps 4 in 2 steps, EfficientNet-Lite0); "photos" are JPEG copies of
the digital images standing in for the align stage's crops, so the photo columns have data without
depending on print, capture or align. Built once per test session by conftest's `tiny` fixture."""
from __future__ import annotations

from pathlib import Path

import torch

EXPERIMENTS = {
    "transformations": {"sweeps": {"blur": [1.0], "jpeg": [30]}},
    "defences": {"use": [{"name": "median", "size": 3}, {"name": "noise", "sigma": 0.05}], "adaptive": ["all"],
                 "eot_samples": 2},
    "transfer": {"models": ["efficientnet_lite1"]},
    "generalisation": {"enabled": True, "max_images": 2, "random_draws": 2},
}


def config(root: Path, experiments=None, **over):
    import physical.experiments  # noqa: F401  (registers the section)
    from physical.runs.checks import from_dict

    data = {"run": {"name": "tiny", "output": str(root), "batch_size": 8}, "images": {"limit": 2},
            "attacks": [{"name": "bim", "eps": [4], "steps": 2, "alpha": 2}],
            "experiments": EXPERIMENTS if experiments is None else experiments}
    data.update(over)
    return from_dict(data)


def fake_photos(run) -> None:
    """align/crops.json with every cell 'photographed' (a JPEG at quality 60 of its digital image)."""
    from physical.runfiles import AlignedCrops, load_index, save_crops
    from physical.rundir import read_image, write_image

    crops = []
    for it in load_index(run).items:
        for role in ("clean", "adv"):
            rel = f"align/crops/{it['key'].replace('/', '__')}__{role}.png"
            img = read_image(run.root / it[role])
            import cv2

            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 60])
            write_image(run.root / rel, cv2.imdecode(buf, cv2.IMREAD_COLOR))
            crops.append({"item": it["key"], "role": role, "path": rel, "best": True, "accepted": True,
                          "photo": "fake.jpg", "sheet": 0, "slot": 0, "reason": None})
    save_crops(run, AlignedCrops(crops, [{"photo": "fake.jpg", "status": "ok"}], []))


def run_stages(root: Path, cfg, experiments: bool = True):
    """(run, cfg) with generate, (fake) align, classify, experiments (if asked) and report done."""
    from physical.config import to_dict
    from physical.rundir import RunDir
    from physical.stages.classify import classify_stage
    from physical.stages.experiments import experiments_stage
    from physical.stages.generate import generate_stage
    from physical.stages.report import report_stage

    run = RunDir(root / "tiny")
    run.init(to_dict(cfg), 0, "cpu")
    dev = torch.device("cpu")
    torch.manual_seed(0)
    stages = [("generate", lambda: generate_stage(run, cfg, dev)), ("align", lambda: fake_photos(run)),
              ("classify", lambda: classify_stage(run, cfg, dev))]
    if experiments:
        stages.append(("experiments", lambda: experiments_stage(run, cfg, dev)))
    for stage, fn in stages + [("report", lambda: report_stage(run, cfg, dev))]:
        fn()
        run.mark(stage, "done")
    return run, cfg


def tiny_run(root: Path):
    """(run, cfg) with generate, (fake) align, classify, experiments and report done."""
    return run_stages(root, config(root))
