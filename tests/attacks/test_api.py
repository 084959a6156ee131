"""The Python API as a torchattacks / foolbox / ART user drives it (issue 26 item 3): eps in [0, 1]
units, any nn.Module with mean/std, per-image targets, a success mask, a seed, the same images as the
YAML path at the same eps, and one clear error for the 0..255 habit."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import physical
from physical.attacks import ATTACKS, make, make_attack
from physical.errors import ConfigError
from physical.models import to_uint8
from physical.rundir import RunDir, read_image
from physical.runfiles import load_index
from physical.runs.checks import from_dict


def tiny_net(classes: int = 10) -> torch.nn.Module:
    """A plain nn.Module (no .device, no .input_size, no normalisation inside), seeded."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(8, classes)).eval()


def images(n: int = 4, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_import_physical_is_cheap_and_exports_the_api():
    code = ("import sys, physical; assert 'torch' not in sys.modules, 'import physical loaded torch'; "
            "print(physical.make.__module__, physical.run.__module__, physical.Channel.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["physical.attacks", "physical.runs.api", "Channel"]
    assert {"make", "run", "Channel", "AttackResult", "load_model"} <= set(dir(physical))


@pytest.mark.parametrize("name", ["fgsm", "bim", "pgd", "mifgsm", "square"])
def test_a_plain_module_with_mean_std_in_unit_eps(name):
    net, x = tiny_net(), images()
    y = torch.tensor([0, 1, 2, 3])
    attack = make(name, net, eps=4 / 255, seed=3, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                  **({"queries": 20} if name == "square" else {}))
    r = attack.generate(x, y)
    assert r.adv.shape == x.shape and r.adv.dtype == x.dtype
    assert float((r.adv - x).abs().max()) <= 4 / 255 + 1e-6 and float((r.adv - x).abs().max()) > 3.5 / 255
    logits = net((r.adv - attack.model.mean) / attack.model.std)  # the wrapper normalised before the net
    assert torch.equal(r.predictions, logits.argmax(1))
    assert torch.equal(r.success, r.predictions != y) and r.target is None
    assert torch.equal(make(name, net, eps=4 / 255, seed=3, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                            **({"queries": 20} if name == "square" else {}))(x, y), r.adv)  # the seed fixes it


def test_per_image_targets_and_one_class_and_labels_from_the_model():
    torch.manual_seed(0)
    net, x = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).eval(), images()
    target = torch.tensor([5, 6, 7, 8])
    attack = make("bim", net, eps=32 / 255, steps=20, alpha=2 / 255)
    r = attack.generate(x, target=target)  # y None: the model's own top-1 is what is attacked
    assert torch.equal(r.labels, net(x).argmax(1)) and torch.equal(r.target, target)
    assert torch.equal(r.success, r.predictions == target)
    assert r.success.sum() >= 3, "a targeted BIM of 32/255 reaches most per-image targets of a linear net"
    one = attack.generate(x, target=9)
    assert torch.equal(one.target, torch.full((4,), 9))
    with pytest.raises(ConfigError, match="target: 3 classes for 4 images"):
        attack(x, target=torch.tensor([1, 2, 3]))


def test_the_0_255_habit_is_one_error_naming_the_unit():
    net = tiny_net()
    with pytest.raises(ConfigError, match=r"eps: 8 is outside \[0, 1\].*8/255"):
        make("fgsm", net, eps=8)
    with pytest.raises(ConfigError, match=r"alpha: 2 is outside \[0, 1\]"):
        ATTACKS["bim"](net, 8 / 255, alpha=2)
    with pytest.raises(ConfigError, match=r"x: values from [0-9.]+ to 25[0-9.]+; images must be in \[0, 1\]"):
        make("fgsm", net, eps=8 / 255)(images() * 255, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"attacks\[0\]\.eps\[1\]: 0.0314 is below 1: the YAML's eps is in 0..255"):
        from_dict({"attacks": [{"name": "bim", "eps": [8, 0.0314]}]})
    with pytest.raises(ConfigError, match="decay: not a parameter of bim"):
        make("bim", net, eps=8 / 255, decay=0.5)
    with pytest.raises(ConfigError, match="unknown attack 'nope'"):
        make("nope", net, eps=8 / 255)


def test_api_eps_is_the_yaml_eps_over_255_to_the_bit():
    net, x = tiny_net(1000), images(2)
    y = torch.tensor([3, 4])
    for entry, api in [({"name": "pgd", "eps": [8], "steps": 3}, {"steps": 3}),
                       ({"name": "mifgsm", "eps": [8], "alpha": 2, "decay": 0.5}, {"alpha": 2 / 255, "decay": 0.5}),
                       ({"name": "ill", "eps": [6]}, {})]:
        a = from_dict({"attacks": [entry]}).attacks[0]
        yaml_attack = make_attack(a, net, a.eps[0], seed=7)
        api_attack = make(entry["name"], net, eps=a.eps[0] / 255, seed=yaml_attack.seed, **api)
        assert api_attack.steps == yaml_attack.steps and api_attack.eps == yaml_attack.eps
        assert torch.equal(api_attack(x, y), yaml_attack(x, y)), entry


def test_api_makes_the_png_the_run_made(tmp_path, lite0, monkeypatch):
    """The run (physical.run, YAML units: eps 4) and the API (eps 4/255, the run's attack seed) on the
    run's clean images: the same 8-bit adversarial images, byte for byte."""
    monkeypatch.chdir(tmp_path)
    config = {"run": {"name": "t", "output": "runs", "seed": 1}, "images": {"limit": 2},
              "attacks": [{"name": "bim", "eps": [4], "steps": 2}]}
    result = physical.run(config, ["run.batch_size=8"], until="generate", quiet=True)
    assert result.run_dir.is_absolute() and result.report is None
    items = load_index(RunDir(result.run_dir)).items
    x = torch.from_numpy(np.stack([read_image(result.run_dir / it["clean"]) for it in items])).permute(0, 3, 1, 2)
    attack = make("bim", lite0, eps=4 / 255, steps=2, seed=physical.attacks.attack_seed(1, "bim_eps4"))
    adv = to_uint8(attack(x.float() / 255, torch.tensor([it["label"] for it in items])))
    for it, img in zip(items, adv):
        assert np.array_equal(read_image(result.run_dir / it["adv"]), img), it["key"]


def test_eot_through_the_api_is_the_yaml_entrys_eot():
    """make(eot=2, channel=Channel.from_calibration(...)) draws what a YAML `eot: {samples: 2}` entry
    draws from the same channel (the same crop view, the same seeded stream)."""
    net, x = tiny_net(1000), images(2, 64)
    y = torch.tensor([3, 4])
    channel = physical.Channel.from_calibration(preset="webcam", blur_sigma=[0.5, 1.0])
    a = from_dict({"attacks": [{"name": "bim", "eps": [8], "steps": 2, "eot": {"samples": 2}}]}).attacks[0]
    yaml_attack = make_attack(a, net, 8, channel=channel, cfg=from_dict({}))
    api_attack = make("bim", net, eps=8 / 255, steps=2, eot={"samples": 2}, channel=channel, seed=yaml_attack.seed)
    assert api_attack.eot_samples == 2 and type(api_attack.channel) is type(yaml_attack.channel)
    assert torch.equal(api_attack(x, y), yaml_attack(x, y))
    plain = make("bim", net, eps=8 / 255, steps=2, seed=yaml_attack.seed)(x, y)
    assert not torch.equal(plain, api_attack(x, y)), "EOT changed nothing"
    with pytest.raises(ConfigError, match="eot: fgsm is a single-step attack"):
        make("fgsm", net, eps=8 / 255, eot=2)


def test_model_mistakes_are_named(lite0, capsys):
    with pytest.raises(ConfigError, match="mean/std: efficientnet_lite0 normalises its inputs itself"):
        make("fgsm", lite0, eps=8 / 255, mean=[0.5] * 3, std=[0.5] * 3)
    net = tiny_net().train()
    make("fgsm", net, eps=8 / 255)
    assert "Sequential is in training mode" in capsys.readouterr().err


def test_a_fitted_patch_on_a_plain_module_at_its_input_size():
    net, x = tiny_net(), images(4, 32)
    attack = make("patch", net, input_size=32, target=3, epochs=2, batch=4, fraction=0.1, seed=0)
    assert attack.eps == 1.0 and attack.side == round(0.1 ** 0.5 * 32)
    adv = attack(x, torch.zeros(4, dtype=torch.long))
    changed = (adv != x).any(1)  # the pixels the patch covers
    assert 0 < changed.float().mean(dim=(1, 2)).max() <= 0.2


def test_cli_yaml_eps_in_api_units_is_one_line_and_exit_2(tmp_path, capsys):
    from physical.cli.main import main

    p = tmp_path / "pipeline.yaml"
    p.write_text("attacks:\n  - {name: bim, eps: [0.0314]}\n")
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "attacks[0].eps[0]: 0.0314 is below 1: the YAML's eps is in 0..255" in err[0]
    assert not (tmp_path / "runs").exists()
