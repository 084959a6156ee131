import pytest

from physical.cli.main import main
from physical.config import ConfigError, set_override
from physical.runs.checks import from_dict, load_config


def err(data):
    with pytest.raises(ConfigError) as e:
        from_dict(data)
    return str(e.value)


def test_defaults_are_a_valid_run():
    cfg = from_dict({})
    assert cfg.models == ["efficientnet_lite0"]
    assert [a.name for a in cfg.attacks] == ["fgsm", "bim", "ill"]


def test_unknown_key_names_full_path():
    msg = err({"attacks": [{"name": "fgsm"}, {"name": "bim", "epz": [4]}]})
    assert msg.startswith("attacks[1].epz: unknown key") and "eps" in msg


def test_wrong_type_and_range_name_the_path():
    assert err({"run": {"seed": "abc"}}).startswith("run.seed:")
    msg = err({"attacks": [{"name": "bim", "eps": [8, 300]}]})
    assert msg.startswith("attacks[0].eps[1]: 300") and "0 .. 255" in msg
    assert err({"sheet": {"paper": "a3"}}).startswith("sheet.paper:")
    assert "allowed: a4, letter, custom" in err({"sheet": {"paper": "a3"}})
    assert err({"run": {"device": "tpu"}}).startswith("run.device:")


def test_unknown_model_and_attack_named():
    msg = err({"models": ["efficientnet_lite0", "nosuchnet"]})
    assert msg.startswith("models[1]:") and "efficientnet_lite0" in msg
    msg = err({"attacks": [{"name": "deepfool"}]})
    assert msg.startswith("attacks[0].name:") and "fgsm" in msg
    assert err({"attacks": [{"name": "bim", "target": "no such class"}]}).startswith("attacks[0].target:")
    assert err({"attacks": [{"name": "bim", "target": 1000}]}).startswith("attacks[0].target:")


def test_sheet_that_cannot_hold_two_cells():
    assert err({"sheet": {"cell_mm": 400}}).startswith("sheet:")


def test_set_override(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("attacks:\n  - {name: fgsm, eps: [4]}\n")
    cfg, raw = load_config(p, ["attacks[0].eps=[2, 8]", "run.seed=7", "sheet.paper=letter"])
    assert cfg.attacks[0].eps == [2.0, 8.0] and cfg.run.seed == 7 and cfg.sheet.paper == "letter"
    with pytest.raises(ConfigError, match="index 3"):
        set_override(raw, "attacks[3].eps=1")


def test_cli_reports_bad_config_before_work(tmp_path, capsys):
    p = tmp_path / "p.yaml"
    p.write_text("run: {output: out}\nattacks:\n  - {name: bim, eps: [-1]}\n")
    assert main(["run", str(p)]) == 2
    assert "attacks[0].eps[0]: -1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_renamed_key_still_works_with_one_deprecation_line(capsys):
    cfg = from_dict({"capture": {"guided": {"min_sharpness": 25}}})
    assert cfg.capture.guided.min_laplacian == 25 and cfg.align.min_sharpness == 0.0  # the align ratio is another key
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "capture.guided.min_sharpness is deprecated; use capture.guided.min_laplacian" in err[0]
    with pytest.raises(ConfigError, match="capture.guided.min_sharpness: the old name"):
        from_dict({"capture": {"guided": {"min_sharpness": 25, "min_laplacian": 30}}})
