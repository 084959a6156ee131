"""Attacks beyond Kurakin's: universal perturbations (uap), adversarial patches (patch), Square Attack
(square, black box) and the total-variation penalty (tv); each on a tiny case, then one run through the
whole pipeline with the simulated capture, driven from the command line."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from physical.attacks import make_attack
from physical.attacks.tv import total_variation
from physical.cli.main import main
from physical.config import ConfigError
from physical.runs.checks import from_dict
from physical.models import Classifier


def tiny_model(seed=0, size=16, classes=10):
    """A linear classifier on 3 x size x size images: small enough to run hundreds of queries in a second."""
    torch.manual_seed(seed)
    return Classifier(nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, classes)), "tiny", size, [0.5] * 3, [0.5] * 3)


def tiny_conv_model(seed=0, size=24, classes=10, gain=30):
    """Convolutions and global average pooling: where a patch lands matters little, as in a real network."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, classes, 3, padding=1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with torch.no_grad():  # confident logits, as a trained network's
        net[2].weight *= gain
        net[2].bias *= gain
    return Classifier(net, "tiny-conv", size, [0.5] * 3, [0.5] * 3)


def tiny_images(model, n=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = 0.2 + 0.6 * torch.rand(n, 3, model.input_size, model.input_size, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)  # the model's own predictions: every clean image is "correct"
    return x, y


def attack(entry, model, eps):
    cfg = from_dict({"attacks": [entry]})
    return make_attack(cfg.attacks[0], model, eps, seed=3, cfg=cfg)


def fooled(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) != y).float().mean().item()


def test_uap_fools_unseen_images_more_than_random_signs_of_the_same_eps():
    m = tiny_model(size=48)  # the larger the image, the more a universal direction outweighs random signs
    x, y = tiny_images(m, 48)
    uap = attack({"name": "uap", "eps": [8], "fit": 0.5, "epochs": 10, "batch": 8}, m, 8)
    fit, unseen = uap.split(len(x))
    assert len(fit) == 24 and set(fit.tolist()).isdisjoint(unseen.tolist())
    delta = uap.fit_images(x[fit], y[fit])
    assert delta.shape == x.shape[1:] and delta.abs().max() <= 8 / 255 + 1e-6
    rand = uap.control_artifact(delta, torch.Generator().manual_seed(0))
    assert torch.allclose(rand.abs(), torch.full_like(rand, 8 / 255))
    f_uap = fooled(m, uap.apply(x[unseen], delta), y[unseen])
    f_rand = fooled(m, uap.apply(x[unseen], rand), y[unseen])
    assert f_uap >= 0.5 and f_uap > f_rand + 0.3, (f_uap, f_rand)


def test_uap_augment_shows_each_fit_image_cropped_and_mirrored_afresh():
    from physical.attacks.fitted import augment

    ramp = torch.linspace(0, 1, 32).expand(2, 3, 32, 32).contiguous()  # brightness grows left to right
    flat = augment(ramp.repeat(8, 1, 1, 1), 0.0, torch.Generator().manual_seed(0))
    mirrored = torch.tensor([torch.allclose(o, ramp[0].flip(-1), atol=1e-5) for o in flat])
    same = torch.tensor([torch.allclose(o, ramp[0], atol=1e-5) for o in flat])
    assert torch.all(mirrored | same) and mirrored.any() and same.any()  # zoom 0: only the mirror
    g = torch.Generator().manual_seed(1)
    a, b = augment(ramp, 0.5, g), augment(ramp, 0.5, g)
    assert a.shape == ramp.shape and not torch.allclose(a, b)  # a fresh draw every call
    # a crop of 0.5 .. 1 of the side: the brightness spans at most the whole ramp, at least half of it
    span = (a[:, 0, 16, -1] - a[:, 0, 16, 0]).abs()
    assert torch.all((span > 0.45) & (span < 1.0 + 1e-6)), span


@pytest.mark.parametrize("settings", [{}, {"augment": 0.4, "schedule": "constant"}])
def test_patch_raises_the_target_probability_on_unseen_images(settings):
    m = tiny_conv_model()
    x, y = tiny_images(m, 24)
    target = 7
    p = attack({"name": "patch", "target": target, "fraction": 0.1, "epochs": 10, "batch": 6, "lr": 0.1, **settings}, m, 255)
    assert p.side == round(0.1 ** 0.5 * 24)
    fit, unseen = p.split(len(x))
    seen = []  # the images each fitting step pastes the patch on
    gradient = p.gradient
    p.gradient = lambda xa, *a, **k: seen.append(p.clean) or gradient(xa, *a, **k)
    patch = p.fit_images(x[fit], y[fit])
    assert len(seen) == p.total_steps(len(fit))
    # with augment every step sees fresh crops and mirrors of the fit images, else (the default) the images themselves
    originals = sum(any(torch.equal(im, f) for f in x[fit]) for b in seen for im in b)
    assert originals == (0 if settings.get("augment") else sum(len(b) for b in seen)), originals
    place = p.placement(len(unseen), torch.Generator().manual_seed(5))
    pasted = p.apply(x[unseen], patch, place)
    # the patch covers its fraction of each image and leaves the rest alone
    changed = (pasted != x[unseen]).any(1).float().mean((1, 2))
    assert torch.all((changed > 0.05) & (changed < 0.2)), changed
    ctl = p.apply(x[unseen], p.control_artifact(patch, torch.Generator().manual_seed(6)), place)
    with torch.no_grad():
        prob = {k: torch.softmax(m(v), 1)[:, target].mean().item() for k, v in
                (("clean", x[unseen]), ("patch", pasted), ("control", ctl))}
    assert prob["patch"] > 1.3 * max(prob["clean"], prob["control"]), prob


def test_patch_step_size_falls_from_lr_to_zero_with_the_cosine_schedule():
    m = tiny_conv_model()
    steps = [attack({"name": "patch", "lr": 0.05, **s}, m, 255) for s in ({}, {"schedule": "constant"})]
    cosine = [steps[0].step_size(i, 100) for i in range(100)]
    assert cosine[0] == pytest.approx(0.05) and cosine[50] == pytest.approx(0.025) and cosine[-1] < 1e-4
    assert all(a > b for a, b in zip(cosine, cosine[1:]))
    assert {steps[1].step_size(i, 100) for i in range(100)} == {0.05}


class NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("square asked for a gradient")


class ScoresOnly(nn.Module):
    """A model whose backward raises: an attack that asks for a gradient fails."""

    def __init__(self, model):
        super().__init__()
        self.model, self.input_size, self.queries = model, model.input_size, 0

    @property
    def device(self):
        return self.model.device

    def forward(self, x):
        self.queries += len(x)
        return NoBackward.apply(self.model(x))


def test_square_uses_only_scores_stays_inside_eps_and_counts_queries():
    m = ScoresOnly(tiny_model())
    x, y = tiny_images(m.model, 16)
    sq = attack({"name": "square", "eps": [4], "queries": 300}, m, 4)
    adv = sq(x, y)
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    info = sq.item_info()
    q = torch.tensor([i["queries"] for i in info])
    assert q.min() >= 1 and q.max() <= 300 and int(q.sum()) == m.queries  # one query per image and step
    ok = torch.tensor([i["search_success"] for i in info])
    with torch.no_grad():
        assert torch.equal(m.model(adv).argmax(1) != y, ok)
    with pytest.raises(RuntimeError, match="gradient"):  # the model really refuses gradients
        attack({"name": "bim", "eps": [4], "steps": 1}, m, 4)(x, y)


def test_square_succeeds_as_often_as_torchattacks_square():
    torchattacks = pytest.importorskip("torchattacks")
    m = tiny_model(seed=2)
    x, y = tiny_images(m, 32, seed=4)
    ours = fooled(m, attack({"name": "square", "eps": [2], "queries": 200}, m, 2)(x, y), y)
    ref = torchattacks.Square(m, norm="Linf", eps=2 / 255, n_queries=200, p_init=0.05, seed=0)
    theirs = fooled(m, ref(x, y), y)
    assert 0.3 < theirs < 1 or 0.3 < ours < 1  # a budget where the attack is not trivial
    assert abs(ours - theirs) <= 0.1, (ours, theirs)


def test_tv_penalty_lowers_the_perturbations_total_variation():
    m = tiny_model()
    x, y = tiny_images(m, 8)
    plain = attack({"name": "bim", "eps": [16], "steps": 20}, m, 16)(x, y)
    smooth = attack({"name": "bim", "eps": [16], "steps": 20, "tv": 300}, m, 16)(x, y)
    tv0, tv1 = total_variation(plain - x).mean().item(), total_variation(smooth - x).mean().item()
    assert tv1 < 0.7 * tv0, (tv0, tv1)


@pytest.mark.parametrize("entry, message", [
    ({"name": "patch", "fraction": 0.6}, "attacks[0].fraction: 0.6 is out of range"),
    ({"name": "patch", "fraction": 0}, "attacks[0].fraction: 0 must be inside (0, 0.5]"),
    ({"name": "uap", "fit": 1.0}, "attacks[0].fit: 1 must be inside (0, 1)"),
    ({"name": "uap", "augment": 1.0}, "attacks[0].augment: 1.0 is out of range"),
    ({"name": "patch", "augment": -0.1}, "attacks[0].augment: -0.1 is out of range"),
    ({"name": "patch", "schedule": "linear"}, "attacks[0].schedule: 'linear' is not one of cosine, constant"),
    ({"name": "patch", "lr": 0}, "attacks[0].lr: 0.0 is out of range; allowed 1e-05 .. 1"),
    ({"name": "patch", "scale": 1.5}, "attacks[0].scale: 1.5 is out of range"),
    ({"name": "patch", "rotation_deg": 200}, "attacks[0].rotation_deg: 200.0 is out of range; allowed 0 .. 180"),
    ({"name": "square", "queries": 0}, "attacks[0].queries: 0 is out of range"),
    ({"name": "square", "queries": -5}, "attacks[0].queries: -5 is out of range"),
    ({"name": "bim", "fraction": 0.1}, "attacks[0].fraction: unknown key"),
    ({"name": "square", "eot": {"samples": 2}}, "attacks[0].eot: square sees no gradient"),
    ({"name": "fgsm", "tv": 100}, "attacks[0].tv: fgsm is a single-step attack"),
])
def test_bad_family_parameters_name_the_key(entry, message):
    with pytest.raises(ConfigError) as e:
        from_dict({"attacks": [entry]})
    assert str(e.value).startswith(message), str(e.value)


TINY = {
    "run": {"name": "beyond", "output": "runs", "seed": 1},
    "images": {"limit": 2},
    "capture": {"dpi": 120, "frame": [1400, 1050]},
    "experiments": {"enabled": False},
    "report": {"gallery": 2},
}


def write_config(tmp_path: Path, attacks) -> Path:
    p = tmp_path / "pipeline.yaml"
    p.write_text(yaml.safe_dump({**TINY, "attacks": attacks}))
    return p


def test_a_fit_fraction_leaving_no_unseen_image_stops_generate_naming_the_key(tmp_path, capsys):
    cfg = write_config(tmp_path, [{"name": "uap", "eps": [8], "fit": 0.9, "epochs": 1}])
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("physical: error: attacks[0].fit: 0.9 of 2 image(s) leaves no unseen image"), err
    assert "Traceback" not in "\n".join(err)


@pytest.fixture(scope="module")
def beyond_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("beyond")
    cfg = write_config(tmp, [
        {"name": "uap", "eps": [16], "fit": 0.5, "epochs": 2, "batch": 1},
        {"name": "patch", "fraction": 0.1, "epochs": 2, "batch": 1, "patch_mm": 40},
        {"name": "square", "eps": [16], "queries": 4},
        {"name": "bim", "eps": [16], "steps": 3, "alpha": 4},
        {"name": "bim", "eps": [16], "steps": 3, "alpha": 4, "tv": 1000},
    ])
    assert main(["run", str(cfg)]) == 0
    return tmp / "runs" / "beyond"


def test_pipeline_reports_universal_patch_black_box_and_tv_sections(beyond_run):
    root = beyond_run
    report = json.loads((root / "report" / "report.json").read_text())
    labels = {r["attack_label"] for r in report["kurakin"]}
    assert {"uap_eps16", "rand-uap_eps16", "patch-t859-f0.1_eps255", "ctl-patch-t859-f0.1_eps255",
            "square_eps16", "bim_eps16", "tv1000-bim_eps16"} == labels
    # every printed cell was found: rates from photos have their n
    uni = {r["split"]: r for r in report["universal"]["rows"]}
    assert uni["fit"]["n_fit"] == 1 and uni["fit"]["fooling_digital"]["n"] == 1 and uni["unseen"]["fooling_photo"]["n"] == 1
    for key in ("fooling_digital", "fooling_photo", "random_digital", "random_photo"):
        r = uni["unseen"][key]
        assert r["rate"] in (0, 1) and r["ci"][0] <= r["rate"] <= r["ci"][1]
    pat = {r["split"]: r for r in report["patch"]["rows"]}
    assert pat["unseen"]["target"] == 859 and pat["unseen"]["success_photo"]["n"] == 1
    (bb,) = report["black_box"]["rows"]
    assert bb["budget"] <= 4 and bb["success_digital"]["n"] == 2 and bb["success_photo"]["n"] == 2
    preds = {r["key"]: r for r in json.loads((root / "classify" / "predictions.json").read_text())["records"]}
    wins = [preds[k] for k in preds if "/square_eps16/" in k and preds[k]["pred"]["digital_adv"]["top"][0] != preds[k]["label"]]
    assert bb["n_success"] == len(wins)
    tv = {r["tv"]: r for r in report["tv"]["rows"]}
    assert set(tv) == {0.0, 1000.0} and tv[1000.0]["attack"] == "bim_eps16"
    assert tv[1000.0]["tv_perturbation"] < tv[0.0]["tv_perturbation"]
    # the artifacts, the CSVs and the HTML sections with the pictures
    idx = json.loads((root / "generate" / "index.json").read_text())["items"]
    uap_items = [it for it in idx if it["attack_label"] == "uap_eps16"]
    delta = np.load(root / "generate" / "efficientnet_lite0" / "uap_eps16" / "artifact.npy")
    from physical.rundir import read_image

    for it in uap_items:  # every image carries the same perturbation (up to rounding and clipping)
        d = read_image(root / it["adv"]).astype(float) - read_image(root / it["clean"]).astype(float)
        inside = (read_image(root / it["clean"]) > 20) & (read_image(root / it["clean"]) < 235)
        assert np.abs(d - delta.transpose(1, 2, 0) * 255)[inside].max() <= 0.51
    for name in ("universal", "patch", "black_box", "tv"):
        assert (root / "report" / f"{name}.csv").is_file()
    html = (root / "report" / "report.html").read_text()
    for section in ('id="universal"', 'id="patch"', 'id="black_box"', 'id="tv"', 'data-table="universal"'):
        assert section in html


def test_the_patch_pdf_prints_the_patch_at_its_size_with_markers(beyond_run):
    import pypdfium2 as pdfium

    from physical.sheets.patch import find_patch

    pdf = beyond_run / "generate" / "efficientnet_lite0" / "patch-t859-f0.1_eps255" / "patch.pdf"
    dpi = 150
    page = pdfium.PdfDocument(str(pdf))[0]
    rgb = page.render(scale=dpi / 72).to_numpy()[..., ::-1].copy()
    corners = find_patch(rgb, 40.0)
    assert corners is not None
    side_mm = np.linalg.norm(corners[1] - corners[0]) / dpi * 25.4
    assert abs(side_mm - 40.0) < 0.5
    # the printed patch shows the patch's pixels: sample the page at each patch pixel's centre
    import cv2

    from physical.rundir import read_image

    patch = read_image(beyond_run / "generate" / "efficientnet_lite0" / "patch-t859-f0.1_eps255" / "patch.png")
    n = patch.shape[0]
    u = (np.arange(n) + 0.5) / n
    (x0, y0), (x1, y1) = corners[0], corners[2]
    mx, my = np.meshgrid(x0 + u * (x1 - x0) - 0.5, y0 + u * (y1 - y0) - 0.5)
    seen = cv2.remap(rgb, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_LINEAR).astype(float)
    assert np.corrcoef(seen.ravel(), patch.astype(float).ravel())[0, 1] > 0.8
