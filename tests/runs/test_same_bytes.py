"""benchmarks/same_bytes.py: a run made twice with the clock pinned writes the same bytes, so a
refactor checked with it against the previous checkout proves its runs unchanged."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from physical.channel.files import colour_document
from physical.channel.texture import SIZE

ROOT = Path(__file__).resolve().parents[2]


def _calibration(path: Path) -> Path:
    g = np.linspace(0, 1, 9) ** 1.1
    psd = np.full((3, SIZE, SIZE), 2e-5)
    psd[0, 3, 5] = 5e-3
    doc = colour_document(np.stack([g, g * 0.97, g]), np.eye(3) * 0.95, np.full(3, 0.02), [0.8, 1.0], [0.01, 0.02],
                          noise_spectrum=psd)
    doc["channel"] = {"px_per_mm": [9.0, 9.0], "jpeg_quality": [80, 92], "tilt": 0.1}
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.slow
def test_a_run_with_a_calibration_halftone_and_eot_writes_the_same_bytes_twice(tmp_path):
    cfg = {"run": {"name": "same", "seed": 0, "device": "cpu"}, "models": ["efficientnet_lite0"],
           "images": {"source": "samples", "limit": 2},
           "attacks": [{"name": "fgsm", "eps": [8]}, {"name": "bim", "eps": [8], "steps": 2, "eot": {"samples": 2}}],
           "capture": {"source": "simulate", "frame": [1200, 900],
                       "channel": {"calibration": str(_calibration(tmp_path / "colour.json")), "halftone_lpi": 150}},
           "experiments": {"enabled": False}, "report": {"predict_draws": 2}}
    config = tmp_path / "same.yaml"
    config.write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "same_bytes.py"), "--reference", str(ROOT),
                        "--config", str(config)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    n = int(r.stdout.strip().splitlines()[-1].split()[0])
    assert n >= 30 and r.stdout.strip().endswith("0 differ"), r.stdout
