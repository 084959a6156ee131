"""Experiments: the numbers, not just the files (identity transformation and defence change nothing,
the transfer diagonal is the white-box figure, adaptive attacks see through defences), config errors
named by key path before any work, the cache, compare and the digits experiment."""
import json

import pytest
import torch

from tests.experiment_run import config
from physical.config import ConfigError
from physical.experiments import section
from physical.measure.metrics import kurakin_table
from physical.rundir import read_json


def _ctx(run, cfg):
    from physical.stages.experiments import Context

    return Context(run, cfg, torch.device("cpu"))


# -- transformations and defences ------------------------------------------------------------------


def test_transformations_at_identity_strength_destroy_nothing(tiny):
    from physical.experiments import section
    from physical.stages.experiments import transformations

    run, _ = tiny
    cfg = config(run.root.parent, {"transformations": {"sweeps": {"brightness": [0], "contrast": [1], "blur": [0],
                                                                  "noise": [0]}}})
    res = transformations(_ctx(run, cfg), section(cfg).transformations)
    kur = {r["attack_label"]: r["average"] for r in kurakin_table([r for r in _records(run)])}
    assert len(res["rows"]) == 4
    for row in res["rows"]:
        assert row["destruction_n_top1"] > 0  # the attack fooled at least one image: the rate is defined
        assert row["destruction_top1"] == 0.0 and row["destruction_top5"] == 0.0
        base = kur[row["attack_label"]]["accuracy"]
        assert row["clean_top1"] == base["digital_clean"]["top1"]["acc"]
        assert row["adv_top1"] == base["digital_adv"]["top1"]["acc"]
        assert row["adv_top5"] == base["digital_adv"]["top5"]["acc"]


def test_transformation_that_erases_the_image_makes_clean_and_adversarial_alike(tiny):
    from physical.experiments import section
    from physical.stages.experiments import transformations

    run, _ = tiny
    cfg = config(run.root.parent, {"transformations": {"sweeps": {"contrast": [0]}}})
    (row,) = transformations(_ctx(run, cfg), section(cfg).transformations)["rows"]
    # contrast 0 maps both to the same grey image: same predictions, same accuracy
    assert row["clean_top1"] == row["adv_top1"] and row["clean_top5"] == row["adv_top5"]


def test_identity_defences_change_nothing(tiny, lite0):
    from physical.experiments import section
    from physical.stages.experiments import defences
    from physical.transforms import Defended, make_defence

    run, _ = tiny
    use = [{"name": "identity"}, {"name": "bitdepth", "bits": 8}, {"name": "median", "size": 1},
           {"name": "blur", "sigma": 0}, {"name": "noise", "sigma": 0}, {"name": "multicrop", "n": 2, "fraction": 1}]
    cfg = config(run.root.parent, {"defences": {"use": use, "adaptive": ["none"]}})
    res = defences(_ctx(run, cfg), section(cfg).defences)
    assert len(res["rows"]) == len(use)
    for row in res["rows"]:
        for k in (1, 5):
            for c in ("clean", "adv", "photo_clean", "photo_adv"):
                assert row[f"defended_{c}_top{k}"] == row[f"{c}_top{k}"], (row["defence"], c)
            assert row[f"clean_lost_top{k}"] == 0 and row[f"adv_recovered_top{k}"] == 0
            assert row[f"photo_adv_recovered_top{k}"] == 0
        assert row["adaptive_adv_top1"] is None and not row["adaptive"]
    x = torch.rand(2, 3, 224, 224)
    x8 = torch.round(x * 255) / 255
    with torch.no_grad():
        ref = lite0(x8)
        for spec in use:
            out = Defended(lite0, make_defence(**spec))(x8)
            assert torch.allclose(out.log_softmax(1), ref.log_softmax(1), atol=1e-5), spec


def test_defences_table_and_adaptive_attack(tiny):
    run, _ = tiny
    d = read_json(run.root / "experiments" / "defences.json")
    assert [r["defence"] for r in d["rows"]] == ["median-size3", "noise-sigma0.05"]
    for r in d["rows"]:
        assert r["adaptive"] and r["n"] == 2 and r["n_photo"] == 2
        assert r["adv_recovered_top1"] == pytest.approx(r["defended_adv_top1"] - r["adv_top1"])
        assert r["clean_lost_top1"] == pytest.approx(r["clean_top1"] - r["defended_clean_top1"])
        # the adaptive attack sees the defence: it does at least as well as the transferred one
        assert r["adaptive_adv_top1"] <= r["defended_adv_top1"]
    info = {a["defence"]: a for a in d["adaptive"]}
    assert info["median-size3"]["straight_through"] and info["median-size3"]["eot_samples"] == 1
    assert not info["noise-sigma0.05"]["straight_through"] and info["noise-sigma0.05"]["eot_samples"] == 2
    # cached: the adaptive batches are in the run directory
    assert len(list((run.root / "experiments" / "cache").rglob("*.npz"))) == 2


def test_straight_through_and_expectation(lite0):
    from physical.transforms import Defended, Expectation, make_defence

    x = torch.rand(1, 3, 224, 224, requires_grad=True)
    for name in ("median", "jpeg", "bitdepth", "binarize"):
        d = Defended(lite0, make_defence(name))
        (g,) = torch.autograd.grad(d(x)[0, 0], x)
        # straight-through: the gradient is the classifier's at the defended image
        z = d.defence.transform(x.detach()).requires_grad_(True)
        (g_ref,) = torch.autograd.grad(lite0(z)[0, 0], z)
        assert torch.allclose(g, g_ref, rtol=1e-3, atol=1e-5), name
    noise = Defended(lite0, make_defence("noise", sigma=0.1))
    e = Expectation(noise, 3)
    assert e.samples == 3 and Expectation(Defended(lite0, make_defence("median")), 3).samples == 1
    with torch.no_grad():
        p = e(x.detach()).softmax(1)
    assert p.shape == (1, 1000) and torch.allclose(p.sum(1), torch.ones(1), atol=1e-4)


# -- transfer and generalisation -------------------------------------------------------------------


def _records(run):
    return read_json(run.root / "classify" / "predictions.json")["records"]


def test_transfer_diagonal_equals_white_box(tiny):
    run, _ = tiny
    t = read_json(run.root / "experiments" / "transfer.json")
    assert t["targets"] == ["efficientnet_lite0", "efficientnet_lite1"]
    kur = {(r["model"], r["attack_label"]): r["average"] for r in kurakin_table(_records(run))}
    diag = [r for r in t["rows"] if r["white_box"]]
    assert diag and all(r["source"] == r["target"] for r in diag)
    for r in diag:
        acc = kur[(r["source"], r["attack_label"])]["accuracy"]
        for k in (1, 5):
            assert r[f"adv_top{k}"] == acc["digital_adv"][f"top{k}"]["acc"]
            assert r[f"clean_top{k}"] == acc["digital_clean"][f"top{k}"]["acc"]
            assert r[f"photo_adv_top{k}"] == acc["photo_adv"][f"top{k}"]["acc"]
    off = [r for r in t["rows"] if not r["white_box"]]
    assert off and all(r["n"] == 2 and r["n_photo"] == 2 for r in off)


def test_off_diagonal_path_reproduces_the_classify_stage(tiny):
    """The function that classifies images for other targets gives the classify stage's predictions
    when the target is the source: the diagonal taken from classify is the same figure."""
    from physical.models import load_model

    run, cfg = tiny
    ctx = _ctx(run, cfg)
    recs = {r["key"]: r for r in _records(run)}
    items = ctx.by_model["efficientnet_lite0"]
    preds = ctx.predict_paths(load_model("efficientnet_lite0"), "check", [it["adv"] for it in items])
    for it in items:
        assert preds[it["adv"]]["top"] == recs[it["key"]]["pred"]["digital_adv"]["top"]


def test_generalisation_own_perturbation_is_the_white_box_attack(tiny):
    run, _ = tiny
    (row,) = read_json(run.root / "experiments" / "generalisation.json")["rows"]
    recs = [r for r in _records(run) if r["attack_label"] == row["attack_label"]]
    ok = [r for r in recs if r["label"] == r["pred"]["digital_clean"]["top"][0]]
    fooled = [r for r in ok if r["pred"]["digital_adv"]["top"][0] != r["label"]]
    assert row["n_clean_correct_top1"] == len(ok)
    assert row["own_fool_top1"] == len(fooled) / len(ok)
    assert row["n_pairs_top1"] == len(ok) * (row["n_images"] - 1)
    for key in ("cross_fool_top1", "random_fool_top1"):
        assert 0.0 <= row[key] <= 1.0


def test_second_run_of_the_stage_comes_from_the_cache(tiny):
    from physical.stages.experiments import experiments_stage

    run, cfg = tiny
    before = read_json(run.root / "experiments" / "defences.json")["rows"]
    summary = experiments_stage(run, cfg, torch.device("cpu"))
    assert summary["classified"] == 0 and summary["from_cache"] > 0
    assert read_json(run.root / "experiments" / "defences.json")["rows"] == before


# -- config ------------------------------------------------------------------------------------------


def _err(exp, tmp_path):
    with pytest.raises(ConfigError) as e:
        config(tmp_path, exp)
    assert not (tmp_path / "tiny").exists()  # nothing was run
    return str(e.value)


def test_bad_experiment_config_names_the_key_path(tmp_path):
    msg = _err({"transformations": {"sweeps": {"blurr": [1]}}}, tmp_path)
    assert msg.startswith("experiments.transformations.sweeps.blurr: unknown transformation") and "jpeg" in msg
    msg = _err({"transformations": {"sweeps": {"blur": [1, 25]}}}, tmp_path)
    assert msg.startswith("experiments.transformations.sweeps.blur[1]: 25") and "0 .. 20" in msg
    assert _err({"transformations": {"sweeps": {"jpeg": [0]}}}, tmp_path).startswith(
        "experiments.transformations.sweeps.jpeg[0]")
    msg = _err({"defences": {"use": ["jpeg", {"name": "erode"}]}}, tmp_path)
    assert msg.startswith("experiments.defences.use[1].name: unknown defence 'erode'") and "median" in msg
    assert _err({"defences": {"use": [{"name": "jpeg", "quality": 101}]}}, tmp_path).startswith(
        "experiments.defences.use[0].quality: 101")
    assert _err({"defences": {"use": [{"name": "median", "radius": 2}]}}, tmp_path).startswith(
        "experiments.defences.use[0].radius: unknown parameter")
    assert _err({"defences": {"adaptive": ["deepfool"]}}, tmp_path).startswith("experiments.defences.adaptive[0]")
    msg = _err({"transfer": {"models": ["efficientnet_lite1", "resnet152"]}}, tmp_path)
    assert msg.startswith("experiments.transfer.models[1]: model 'resnet152' is not available")
    assert _err({"generalisation": {"max_images": 1}}, tmp_path).startswith("experiments.generalisation.max_images")
    assert _err({"attacks": ["nope_eps4"]}, tmp_path).startswith("experiments.attacks[0]")
    assert _err({"defences": {"use": ["jpeg", {"name": "jpeg", "quality": 75}]}}, tmp_path).startswith(
        "experiments.defences.use[1]: defence 'jpeg-quality75' is listed twice")


def test_transfer_models_must_be_here_only_when_the_transfer_runs(tmp_path):
    """A machine without a transfer model can run with the experiments (or the transfer) turned off."""
    for off in ({"enabled": False}, {"transfer": {"enabled": False, "models": ["resnet152"]}}):
        cfg = config(tmp_path, {"transfer": {"models": ["resnet152"]}, **off})
        assert section(cfg).transfer.models == ["resnet152"]
    assert _err({"transfer": {"models": ["resnet152"]}}, tmp_path).startswith(
        "experiments.transfer.models[0]: model 'resnet152' is not available")


def test_default_experiments_are_valid_and_cli_errors_before_work(tmp_path, capsys):
    from physical.cli.main import main
    from physical.runs.checks import from_dict

    import physical.experiments  # noqa: F401

    ex = from_dict({}).extra_sections["experiments"]
    assert ex.transformations.enabled and ex.defences.use == [{"name": "jpeg", "quality": 75}]
    assert ex.transfer.models == ["efficientnet_lite1"] and not ex.digits.enabled
    p = tmp_path / "p.yaml"
    p.write_text("run: {output: out}\nexperiments:\n  transformations:\n    sweeps: {noise: [0.9]}\n")
    assert main(["run", str(p)]) == 2
    assert "experiments.transformations.sweeps.noise[0]: 0.9" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_stage_order():
    from physical.runs.pipeline import STAGE_SECTIONS
    from physical.rundir import STAGES

    assert STAGES.index("classify") < STAGES.index("experiments") < STAGES.index("report")
    assert STAGE_SECTIONS["experiments"] == ["experiments"]


# -- compare and digits ------------------------------------------------------------------------------


def test_compare_lists_changed_values(tiny, tmp_path, capsys):
    from physical.cli.main import main
    from physical.report.compare import compare, load_report

    run, _ = tiny
    a = load_report(run.root)
    assert compare(a, a)[1] == 0
    b = json.loads(json.dumps(a))
    b["kurakin"][0]["average"]["accuracy"]["digital_adv"]["top1"]["acc"] = 0.25 + (
        a["kurakin"][0]["average"]["accuracy"]["digital_adv"]["top1"]["acc"] or 0)
    b["transformations"]["rows"].pop()
    (tmp_path / "report.json").write_text(json.dumps(b))
    text, n = compare(a, b)
    assert n == 2 and "average.accuracy.digital_adv.top1.acc" in text and "+25.0" in text and "only in A" in text
    assert main(["compare", str(run.root), str(tmp_path / "report.json")]) == 0
    assert "+25.0" in capsys.readouterr().out
    assert main(["compare", str(run.root), str(tmp_path / "nothing")]) == 2


def test_digits_experiment_measures_the_claims(tmp_path):
    from physical.cli.main import main
    from physical.experiments import DigitsConfig
    from physical.experiments.digits import GRID, run_digits

    res = run_digits(DigitsConfig(l2=[0.0, 1.0], hidden=16, centres=20, epochs=60))
    rows = {r["model"]: r for r in res["rows"]}
    assert set(rows) == {"softmax l2=0", "softmax l2=1", "mlp", "rbf"}
    for name, r in rows.items():
        assert r["clean_accuracy"] > 0.75, name
        assert r["clean_accuracy"] == pytest.approx(1 - res["curves"][name]["error"][0])
        if r["eps50"] is not None:
            assert r["error_at_eps50"] >= 0.5
            i = next(i for i, e in enumerate(GRID) if e >= r["eps50"])
            assert all(res["curves"][name]["error"][j] < 0.5 for j in range(i))
    # strong L2 costs accuracy on digits
    assert rows["softmax l2=1"]["clean_accuracy"] < rows["softmax l2=0"]["clean_accuracy"]
    assert {c["claim"][:2] for c in res["claims"]} == {"L2", "RB"}
    out = tmp_path / "d"
    assert main(["experiment", "digits", "--out", str(out), "--set", "l2=[0.1]", "--set", "epochs=20",
                 "--set", "centres=10", "--set", "hidden=8"]) == 0
    assert (out / "digits.html").read_text().count('data-table="digits"') == 1
    assert len(read_json(out / "digits.json")["rows"]) == 3
