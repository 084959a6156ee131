"""The channel's fidelity: presets, what a colour calibration sets in the channel (and says it set),
photos that disagree, the identity calibration, and the independent print-and-camera simulator of
benchmarks/indepsim.py exercised end to end on a small case."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from physical.channel.files import colour_document, load_colour
from physical.channel.colour import srgb_decode
from physical.channel.core import Channel
from physical.channel.report import describe
from physical.config import ChannelConfig, ConfigError
from physical.runs.checks import from_dict
from physical.rundir import read_image, write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def identity_document(**channel) -> dict:
    """A colour calibration that changes nothing: tone curves = sRGB decoding (64 segments), M = I, b = 0."""
    g = np.linspace(0, 1, 65)
    curves = np.stack([srgb_decode(torch.tensor(g)).numpy()] * 3)
    doc = colour_document(curves, np.eye(3), np.zeros(3))
    if channel:
        doc["channel"] = channel
    return doc


def test_default_channel_is_a_careful_phone_capture_and_presets_are_selectable():
    cfg = from_dict({})
    assert cfg.capture.channel.preset == "phone" and cfg.capture.frame == [3024, 4032]  # 12 MP, upright
    r = Channel(cfg.capture.channel).ranges()
    assert r["rotation_deg"] == (-4.0, 4.0) and r["jpeg_quality"] == (88.0, 95.0) and r["blur_sigma"] == (0.5, 1.0)

    web = from_dict({"capture": {"channel": {"preset": "webcam", "blur_sigma": [1, 2]}}})
    assert web.capture.frame == [1920, 1080]
    ch = Channel(web.capture.channel)
    assert ch.ranges()["blur_sigma"] == (1.0, 2.0) and ch.ranges()["jpeg_quality"] == (75.0, 90.0)
    src = ch.sources()
    assert src["blur_sigma"] == "config" and src["jpeg_quality"] == "preset webcam"
    assert "blur_sigma: 1 .. 2 (config)" in describe(ch)

    hurried = from_dict({"capture": {"channel": {"preset": "hurried"}, "frame": [1600, 1200]}})
    assert hurried.capture.frame == [1600, 1200] and Channel(hurried.capture.channel).ranges()["rotation_deg"] == (-180, 180)
    with pytest.raises(ConfigError, match=r"capture\.channel\.preset: 'tripod' is not allowed; allowed: phone, webcam"):
        from_dict({"capture": {"channel": {"preset": "tripod"}}})


def test_calibration_sets_every_measured_channel_range_and_the_frame(tmp_path):
    measured = {"jpeg_quality": [91, 94], "contrast": [0.98, 1.02], "white_balance": 0.015, "light_gradient": 0.04,
                "rotation_deg": 2.5, "tilt": 0.03, "px_per_mm": [10.0, 11.0], "image_size": [4032, 3024],
                "page_along_long_side": False}
    doc = identity_document(**measured)
    doc["blur_sigma"], doc["noise_sigma"] = [0.7, 0.9], [0.004, 0.006]
    path = write_json(tmp_path / "colour.json", doc)
    ch = Channel(ChannelConfig(calibration=str(path))).for_photo((210.0, 297.0), (3024, 4032))
    r = ch.ranges()
    assert r["jpeg_quality"] == (91, 94) and r["contrast"] == (0.98, 1.02) and r["brightness"] == (0.0, 0.0)
    assert r["wb_r"] == (0.985, 1.015) and r["light_gradient"] == (0.0, 0.04)
    assert r["rotation_deg"] == (-2.5, 2.5) and r["tilt_x"] == (-0.03, 0.03)
    assert r["blur_sigma"] == (0.7, 0.9) and r["noise_sigma"] == (0.004, 0.006)
    full = min(3024 / 210, 4032 / 297)  # px/mm with the page just filling the frame
    assert r["scale"] == pytest.approx((10.0 / full, 11.0 / full))
    src = ch.sources()
    assert {src[k] for k in ("jpeg_quality", "contrast", "white_balance", "light_gradient", "rotation_deg", "tilt",
                             "scale", "blur_sigma", "noise_sigma")} == {"calibration"}
    assert src["translate"] == "preset phone"

    # the photo's size and orientation (the page's long side across the photo's: a landscape frame);
    # capture.frame wins
    cfg = from_dict({"capture": {"channel": {"calibration": str(path)}}})
    assert cfg.capture.frame == [4032, 3024]
    assert from_dict({"capture": {"frame": [800, 600], "channel": {"calibration": str(path)}}}).capture.frame == [800, 600]

    # the report's section says the same
    from physical.channel.report import channel_report

    rep = channel_report(cfg)
    assert rep["calibration"] == str(path.resolve()) and rep["parameters"]["jpeg_quality"] == {
        "range": [91.0, 94.0], "source": "calibration"}

    doc["channel"]["jpeg_quality"] = [95, 90]
    write_json(path, doc)
    with pytest.raises(ConfigError, match=r"colour\.json: channel\.jpeg_quality: \[95, 90\] must be a range"):
        from_dict({"capture": {"channel": {"calibration": str(path)}}})


def test_a_channel_whose_calibration_is_the_identity_predicts_zero_destruction(tmp_path, lite0, sample_batch):
    from physical.attacks import make_attack
    from physical.config import AttackConfig
    from physical.measure.metrics import destruction
    from physical.models import predict

    path = write_json(tmp_path / "identity.json", identity_document())
    off = dict(rotation_deg=0.0, tilt=0.0, scale=[1.0, 1.0], translate=0.0, blur_sigma=[0.0, 0.0],
               noise_sigma=[0.0, 0.0], brightness=[0.0, 0.0], contrast=[1.0, 1.0], white_balance=0.0,
               light_gradient=0.0, jpeg_quality=[100.0, 100.0])
    ch = Channel(ChannelConfig(calibration=str(path), **off))
    x, y = sample_batch
    adv = make_attack(AttackConfig(name="bim", eps=[8.0], steps=5), lite0, 8.0).perturb(x, y)
    with torch.no_grad():
        photo, _ = ch(adv, ch.sample(len(x), generator=torch.Generator().manual_seed(0)))
    assert (photo - adv).abs().max() < 2 / 255  # the identity, up to the tone curves' segments
    preds = {}
    for name, t in (("digital_clean", x), ("digital_adv", adv), ("photo_adv", photo)):
        top, prob = predict(lite0, t)
        preds[name] = [{"top": top[i].tolist(), "prob": prob[i].tolist()} for i in range(len(x))]
    recs = [{"label": int(y[i]), "pred": {k: v[i] for k, v in preds.items()}} for i in range(len(x))]
    assert [p["top"][0] for p in preds["photo_adv"]] == [p["top"][0] for p in preds["digital_adv"]]
    d = destruction(recs, 1)
    assert d["n"] >= 2 and d["rate"] == 0.0


def _chart_photo(targets: Path, tmp: Path):
    import indepsim

    return indepsim.photograph_pdf(targets / "colour-chart.pdf", tmp, photos=1, seed=5, prefix="chart")[0]


@pytest.fixture(scope="module")
def small_indepsim():
    """The independent simulator at a quarter of its pixels (300 dpi printer, 75 lines per inch,
    2016 x 1512 photos): the same models, cheap enough for a test."""
    import indepsim

    saved = (indepsim.PRINT_DPI, indepsim.PAGE_DPI, indepsim.LPI, indepsim.FRAME)
    indepsim.PRINT_DPI, indepsim.PAGE_DPI, indepsim.LPI, indepsim.FRAME = 300, 200, 75, (2016, 1512)
    yield indepsim
    indepsim.PRINT_DPI, indepsim.PAGE_DPI, indepsim.LPI, indepsim.FRAME = saved


@pytest.mark.slow  # a whole run through the independent simulator
def test_independent_simulator_end_to_end(tmp_path, small_indepsim, capsys):
    """A run printed, photographed by benchmarks/indepsim.py, aligned and classified by the real stages;
    its chart photos calibrate the channel (the CLI says what it set); photos of two cameras stop it."""
    from physical.calibrate.targets import write_targets
    from physical.cli.main import main
    from physical.runs.pipeline import run_pipeline

    data = {"run": {"name": "r", "output": str(tmp_path), "seed": 0, "device": "cpu"},
            "models": ["efficientnet_lite0"], "images": {"source": "samples", "limit": 2},
            "attacks": [{"name": "fgsm", "eps": [16]}], "report": {"html": False}}
    run_pipeline(from_dict(data, tmp_path), until="print", log=lambda *a: None)
    photos = small_indepsim.photograph_pdf(tmp_path / "r" / "print" / "sheets.pdf", tmp_path / "photos", seed=1)
    assert photos and all(sorted(read_image(p).shape[:2]) == [1512, 2016] for p in photos)
    data["capture"] = {"source": f"folder:{tmp_path / 'photos'}"}
    run_pipeline(from_dict(data, tmp_path), from_stage="capture", until="classify", log=lambda *a: None)
    crops = json.loads((tmp_path / "r" / "align" / "crops.json").read_text())
    assert crops["crops"] and all(c["accepted"] for c in crops["crops"]) and not crops["missing"]
    recs = json.loads((tmp_path / "r" / "classify" / "predictions.json").read_text())["records"]
    assert all(r["pred"].get("photo_adv") and r["pred"].get("photo_clean") for r in recs)

    write_targets(tmp_path / "targets")
    small_indepsim.photograph_pdf(tmp_path / "targets" / "colour-chart.pdf", tmp_path / "chart", photos=2, seed=3,
                                  prefix="chart")
    capsys.readouterr()
    assert main(["calibrate", "colour", "--source", str(tmp_path / "chart"), "--out", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "channel parameters this calibration sets:" in out and "staying the preset's or the config's: translate" in out
    cal = load_colour(tmp_path / "c.json")
    q = cal.channel["jpeg_quality"]
    assert 88 <= q[0] <= q[1] <= 95  # read from the files' quantisation tables
    # indepsim: the page fills 80-92 % of the frame's matching side
    full = min(2016 / 297, 1512 / 210)
    assert 0.75 * full < cal.channel["px_per_mm"][0] <= cal.channel["px_per_mm"][1] < 0.97 * full
    assert sorted(cal.channel["image_size"]) == [1512, 2016] and cal.channel["tilt"] < 0.12
    assert cal.channel["page_along_long_side"] and cal.frame([1, 1]) == [1512, 2016]  # indepsim: page fills the frame

    # a photo from another camera (another size), and one from much further away
    img = cv2.imread(str(next((tmp_path / "chart").glob("*.jpg"))))
    other = tmp_path / "two"
    other.mkdir()
    for p in (tmp_path / "chart").glob("*.jpg"):
        (other / p.name).write_bytes(p.read_bytes())
    cv2.imwrite(str(other / "zzz.jpg"), cv2.resize(img, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA))
    assert main(["calibrate", "colour", "--source", str(other), "--out", str(tmp_path / "x.json")]) == 2
    assert "different sizes" in capsys.readouterr().err
    far = np.full_like(img, 90)
    small = cv2.resize(img, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    far[: small.shape[0], : small.shape[1]] = small
    cv2.imwrite(str(other / "zzz.jpg"), far)
    assert main(["calibrate", "colour", "--source", str(other), "--out", str(tmp_path / "x.json")]) == 2
    assert "photograph the chart from one distance" in capsys.readouterr().err


def _rows(seed: int, images: int = 40) -> list[dict]:
    """Per-image rows as benchmarks/fidelity.py keeps them: two attacks, draws that are harsher than the
    simulated photos (the forecast map has something to correct)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(images):
        for attack in ("bim_eps16", "fgsm_eps16"):
            p = float(rng.random())
            survives = bool(rng.random() < min(1.0, p + 0.3))
            rows.append({"variant": "phone", "group": 0, "attack": attack, "image": f"im{seed}-{i}",
                         "key": f"{attack}/{i}", "model": "m", "label": 1, "target": None, "d_clean": True,
                         "d_adv": False, "d_works": True,
                         "m_adv": not survives, "m_clean": bool(rng.random() < 0.8), "m_works": survives,
                         "s_adv": bool(rng.random() < 0.5 - 0.3 * p), "s_clean": bool(rng.random() < 0.8),
                         "s_works": bool(rng.random() < min(1.0, p + 0.3)), "draws": {"6": round(p, 3), "1": 0.5}})
    return rows


def test_fidelity_tables_from_parts_merge_and_the_map_never_sees_the_measured_photos(tmp_path, capsys):
    """The tables print from the per-image rows; two parts merged print the tables of the whole; the
    forecast map is cross-fitted on the simulated photos only (the measured outcomes change nothing in
    it) and lifts the harsh draws."""
    import fidelity_tables as ft

    meta = {"images": 40, "source": "x", "part": [1, 2], "variants": ["phone"], "chart": 6, "charts": [1, 6],
            "draws": 8, "threads": 1, "device": "cpu", "seconds": 1.0, "seconds_by_variant": {"phone": 1.0}}
    for k, seed in ((1, 0), (2, 1)):
        (tmp_path / f"p{k}").mkdir()
        doc = {"meta": dict(meta, part=[k, 2]), "rows": _rows(seed)}
        (tmp_path / f"p{k}" / "rows.json").write_text(json.dumps(doc))
    metas, rows = ft.load_rows([tmp_path / "p1", tmp_path / "p2"])
    assert len(metas) == 2 and len(rows) == 160
    ft.report(metas, rows)
    out = capsys.readouterr().out
    assert "80 images" in out and "McNemar p" in out and "photo clean top-1" in out and "chart photos" in out
    bim = next(line for line in out.splitlines() if line.startswith("bim_eps16") and "[" in line and "McNemar" in line)
    assert bim.split()[-1] in ("yes", "no")

    # pooled over two variants: each column is its own channel's rate, the interval a bootstrap over images
    ft.report(metas, rows + [dict(r, variant="office") for r in rows])
    pooled = capsys.readouterr().out.split("== pooled over office, phone")[1]
    sel = [r for r in rows if r["attack"] == "bim_eps16"]
    cols = next(line for line in pooled.splitlines() if line.startswith("bim_eps16")).split()
    assert float(cols[1]) == round(np.mean([r["m_adv"] for r in sel]), 2)
    assert float(cols[4]) == round(np.mean([r["s_adv"] for r in sel]), 2)

    flipped = [dict(r, m_works=not r["m_works"], m_adv=not r["m_adv"]) for r in rows]
    ft.add_mapped(rows, 6)
    ft.add_mapped(flipped, 6)
    assert [r["mapped"] for r in rows] == [r["mapped"] for r in flipped]
    assert np.mean([r["mapped"] for r in rows]) > np.mean([r["draws"]["6"] for r in rows]) + 0.15
    # a row whose fold's map is fitted on the other fold: changing its own simulated outcome leaves it
    one = [dict(r) for r in rows]
    one[0]["s_works"] = not one[0]["s_works"]
    ft.add_mapped(one, 6)
    assert one[0]["mapped"] == rows[0]["mapped"]
