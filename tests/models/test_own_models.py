"""Models users bring (issue 26.2), driven as a user would: a pipeline file whose `models:` names a
checkpoint, a TorchScript file, a module:callable or a timm architecture, run with `physical run` and
listed by `physical models`; every tiny checkpoint is made here on the fly."""
from __future__ import annotations

import hashlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from physical.cli.main import main
from physical.models import load_model

TINY = textwrap.dedent("""\
    import torch


    class Tiny(torch.nn.Module):
        def __init__(self, classes=1000):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=4)
            self.fc = torch.nn.Linear(8, classes)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))


    def build():
        torch.manual_seed(0)
        return Tiny()


    def ten_classes():
        return Tiny(10)


    def not_a_module():
        return [1, 2, 3]


    def fixed_16px():
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 1000))
    """)


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A folder with a pipeline's worth of tiny models; the torch hub cache moved into it (empty)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    (tmp_path / "mynets.py").write_text(TINY)
    (tmp_path / "broken_nets.py").write_text("import torch\n\nnet = undefined_name\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # to trace the TorchScript file here
    sys.modules.pop("mynets", None)
    import mynets

    torch.jit.save(torch.jit.trace(mynets.build(), torch.zeros(1, 3, 64, 64)), str(tmp_path / "tiny.ts"))
    torch.jit.save(torch.jit.trace(mynets.ten_classes(), torch.zeros(1, 3, 64, 64)), str(tmp_path / "ten.ts"))
    sys.modules.pop("mynets", None)
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    return tmp_path


def pipeline(folder: Path, models: list, name: str = "own") -> Path:
    p = folder / f"{name}.yaml"
    p.write_text(yaml.safe_dump({"run": {"name": name, "output": "runs"}, "images": {"limit": 2}, "models": models,
                                 "attacks": [{"name": "fgsm", "eps": [8]}]}))
    return p


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


R18 = {"name": "r18", "arch": "resnet18", "weights": "r18.pth", "input_size": 64}
TS = {"name": "tiny_ts", "torchscript": "tiny.ts", "input_size": 64}
MOD = {"name": "tiny_mod", "module": "mynets:build", "input_size": 64}


@pytest.mark.slow  # two generate runs of three models: ~11 s on 2 shared cores
def test_checkpoint_torchscript_and_module_run_and_a_changed_checkpoint_remakes(lab, capsys):
    cfg = pipeline(lab, [R18, TS, MOD])
    assert main(["run", str(cfg), "--until", "generate"]) == 0
    run = lab / "runs" / "own"
    index = json.loads((run / "generate" / "index.json").read_text())
    assert {it["model"] for it in index["items"]} == {"r18", "tiny_ts", "tiny_mod"}
    assert index["models"]["r18"]["input_size"] == 64
    adv = {m: run / "generate" / m / "fgsm_eps8" / "chelsea.png" for m in ("r18", "tiny_ts", "tiny_mod")}
    before = {m: sha(p) for m, p in adv.items()}
    import torchvision

    torch.manual_seed(1)  # other weights in the same file: r18's images are made again, the others kept
    torch.save(torchvision.models.resnet18().state_dict(), lab / "r18.pth")
    assert main(["run", str(cfg), "--until", "generate"]) == 0
    after = {m: sha(p) for m, p in adv.items()}
    assert after["r18"] != before["r18"]
    assert after["tiny_ts"] == before["tiny_ts"] and after["tiny_mod"] == before["tiny_mod"]
    # the TorchScript file and the module compute the same network (same seed): the same images
    assert after["tiny_ts"] == after["tiny_mod"]


def test_own_models_through_the_python_api(lab, monkeypatch):
    from physical.config import ModelConfig

    monkeypatch.chdir(lab)
    clf = load_model(ModelConfig(name="api_r18", arch="resnet18", weights="r18.pth", input_size=64,
                                 mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25]))
    assert clf.name == "api_r18" and clf.input_size == 64
    assert clf(torch.rand(2, 3, 64, 64)).shape == (2, 1000)
    ref = torch.load(lab / "r18.pth", weights_only=True)
    assert torch.equal(clf.net.state_dict()["fc.weight"], ref["fc.weight"])  # the file's weights, loaded
    torch.testing.assert_close(clf.mean.flatten(), torch.tensor([0.5, 0.5, 0.5]))


def test_models_verb_lists_what_is_available_and_from_where(lab, capsys):
    import torchvision

    hub = lab / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), hub / "resnet18-f37072fd.pth")  # resnet18's file name
    cfg = pipeline(lab, [R18, TS, MOD, "resnet18"])
    assert main(["models", str(cfg)]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "yes" in lines["r18"] and str(lab / "r18.pth") in lines["r18"]
    assert "TorchScript" in lines["tiny_ts"] and str(lab / "tiny.ts") in lines["tiny_ts"]
    assert "mynets:build" in lines["tiny_mod"] and str(lab / "mynets.py") in lines["tiny_mod"]
    assert "torch hub cache" in lines["resnet18"] and "yes" in lines["resnet18"]
    assert "yes" in lines["efficientnet_lite0"]
    assert main(["models", "--all"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("resnet50 "))
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in line and str(hub.parent) in line


def test_a_zoo_name_from_the_hub_cache_runs(lab):
    import torchvision

    hub = lab / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), hub / "resnet18-f37072fd.pth")
    clf = load_model("resnet18")
    assert clf.input_size == 224 and clf.name == "resnet18"


def error_of(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("entry, words", [
    ({**R18, "weights": "missing/resnet18.pth"},
     ["models[0].weights", "missing/resnet18.pth not found", "https://download.pytorch.org/models/resnet18-f37072fd.pth",
      "ResNet18_Weights.IMAGENET1K_V1"]),
    ({**R18, "arch": "resnet34"}, ["models[0].weights", "r18.pth", "does not match the architecture 'resnet34'",
                                   "models[0].arch"]),
    ({**R18, "arch": "resnet_18"}, ["models[0].arch", "'resnet_18' is not a torchvision architecture"]),
    ({**R18, "weights": "mynets.py"}, ["models[0].weights", "mynets.py is not a PyTorch checkpoint"]),
    ({**TS, "torchscript": "r18.pth"}, ["models[0].torchscript", "r18.pth is not a TorchScript file"]),
    ({**TS, "torchscript": "ten.ts"}, ["models[0]", "ten.ts gives an output of shape [1, 10]", "1000 ImageNet"]),
    ({**MOD, "module": "mynets:not_a_module"}, ["models[0].module", "returned list, not a torch.nn.Module"]),
    ({**MOD, "module": "no_such_module:build"}, ["models[0].module", "cannot import 'no_such_module'"]),
    ({**MOD, "module": "mynets:absent"}, ["models[0].module", "mynets.py", "has no 'absent'"]),
    ({**MOD, "module": "mynets"}, ["models[0].module", "'package.module:callable'"]),
    ({**MOD, "module": "broken_nets:net"}, ["models[0].module", "importing 'broken_nets' failed (NameError"]),
    ({**MOD, "module": "mynets:fixed_16px", "input_size": 32},
     ["models[0]: mynets:fixed_16px fails on one 32x32 image (RuntimeError", "set models[0].input_size"]),
    ({**MOD, "module": "mynets:ten_classes"}, ["models[0]", "mynets:ten_classes", "[1, 10]", "1000 ImageNet"]),
    ({**R18, "torchscript": "tiny.ts"}, ["models[0]: give one of weights, torchscript, module"]),
    ({**R18, "mean": [0.5, 0.5]}, ["models[0].mean", "3 numbers"]),
    ({**R18, "colour": 1}, ["models[0].colour: unknown key"]),
    ({"arch": "resnet18"}, ["models[0].name: required"]),
])
def test_bad_models_stop_with_one_line_naming_the_key_and_file(lab, capsys, entry, words):
    cfg = pipeline(lab, [entry])
    for argv in (["run", str(cfg), "--until", "generate"], ["models", str(cfg)]):
        err = error_of(capsys, argv)
        for w in words:
            assert w in err, (w, err)
    assert not (lab / "runs" / "own" / "generate").exists()  # nothing started


def test_zoo_name_without_cached_weights_says_what_to_fetch_and_where(lab, capsys):
    err = error_of(capsys, ["run", str(pipeline(lab, ["resnet50", "efficientnet_lite0"])), "--until", "generate"])
    hub = str(lab / "torch_home" / "hub" / "checkpoints")
    for w in ("models[0]", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth", hub, "models[i].weights"):
        assert w in err, (w, err)


def test_timm_architecture_from_a_local_checkpoint(lab, capsys):
    timm = pytest.importorskip("timm")
    net = timm.create_model("test_resnet", pretrained=False, num_classes=1000)
    torch.save(net.state_dict(), lab / "timm_test.pth")
    entry = {"name": "tr", "library": "timm", "arch": "test_resnet", "weights": "timm_test.pth"}
    assert main(["run", str(pipeline(lab, [entry])), "--until", "generate"]) == 0
    index = json.loads((lab / "runs" / "own" / "generate" / "index.json").read_text())
    size = net.pretrained_cfg["input_size"][-1]
    assert index["models"]["tr"]["input_size"] == size
    err = error_of(capsys, ["models", str(pipeline(lab, [{**entry, "arch": "not_a_timm_net"}]))])
    assert "models[0].arch" in err and "'not_a_timm_net' is not a timm architecture" in err


DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def test_the_examples_of_docs_models_hold(tmp_path, monkeypatch):
    """docs/models.md: its YAML example is a valid `models:` section and its Python example runs."""
    import re

    import torchvision

    from physical.config import Config, ModelConfig, build

    text = DOC.read_text()
    yml = re.search(r"```yaml\n(.*?)```", text, re.DOTALL).group(1)
    cfg = build(Config, yaml.safe_load(yml))
    kinds = [type(m).__name__ for m in cfg.models]
    assert kinds[0] == "str" and kinds.count("ModelConfig") == 5
    assert {m.library for m in cfg.models if isinstance(m, ModelConfig)} == {"torchvision", "timm"}
    (code,) = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir()
    torch.save({"state_dict": torchvision.models.resnet18().state_dict()}, tmp_path / "ckpt" / "best.pt")
    ns: dict = {}
    exec(compile(code, str(DOC), "exec"), ns)  # noqa: S102 (the page's own example)
    assert ns["clf"].name == "my_r18" and ns["clf"].input_size == 224


def test_a_safetensors_checkpoint_and_a_wrapped_dataparallel_one_load(lab, monkeypatch):
    import torchvision

    from physical.config import ModelConfig

    safetensors = pytest.importorskip("safetensors.torch")
    monkeypatch.chdir(lab)
    torch.manual_seed(3)
    state = torchvision.models.resnet18().state_dict()
    safetensors.save_file(state, str(lab / "r18.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, lab / "dp.pth")
    for name, f in (("st", "r18.safetensors"), ("dp", "dp.pth")):
        clf = load_model(ModelConfig(name=name, arch="resnet18", weights=f, input_size=64))
        assert torch.equal(clf.net.state_dict()["fc.weight"], state["fc.weight"]), f
