"""Bounded memory: attack steps, EOT's draws and classification run in micro-batches sized from
`run.memory_gb`, with the one-batch result; bf16 autocast as an option (`run.precision`)."""
import json
import subprocess
import sys

import pytest
import torch

from physical.attacks import BIM, DIFGSM
from physical.channel.crop import CropChannel
from physical.channel.core import Channel, params_at
from physical.config import ConfigError, EOTConfig
from physical.models import predict
from physical.runtime import GB, chunk_size, memory_budget


class Tiny(torch.nn.Module):
    """A small classifier on [0,1] images (fast; the micro-batch logic does not care which network)."""

    name = "tiny"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
                                       torch.nn.Flatten(), torch.nn.Linear(128, 10))
        self.calls = []

    device = torch.device("cpu")
    input_size = 48

    def forward(self, x):
        self.calls.append(x.shape[0])
        return self.net(x)


def _images(b=3, size=48):
    g = torch.Generator().manual_seed(1)
    return 0.2 + 0.6 * torch.rand(b, 3, size, size, generator=g), torch.tensor([1, 4, 7, 2][:b])


def _budget_for(attack, x, y, samples: int) -> float:
    """The memory_gb that holds exactly `samples` samples of a step."""
    attack.micro_batch(x, y, attack.draw(x.shape[0], x.device))
    per = next(iter(attack._sample_bytes.values()))
    attack._sample_bytes.clear()
    return (samples * per + 1) / GB


def test_eot_gradient_in_micro_batches_equals_one_batch():
    x, y = _images()
    model = Tiny()
    view = CropChannel(Channel(), cell_px=48, misalign=0.03)

    def attack(memory_gb):
        return BIM(model, 16 / 255, alpha=2 / 255, steps=3, eot=EOTConfig(samples=4), channel=view, seed=5, memory_gb=memory_gb)

    one = attack(1000.0)
    g_one = one.gradient(x, y)
    # a sample at a time; a budget under one image's 4 draws splits them; one that holds 5 draws
    # runs whole images (4), so each image is printed once per micro-batch
    for budget, k in ((1, 1), (3, 3), (5, 4), (8, 8)):
        cut = attack(_budget_for(attack(None), x, y, budget))
        model.calls.clear()
        g_cut = cut.gradient(x, y)
        assert model.calls[1:] == [k] * (12 // k) + ([12 % k] if 12 % k else [])  # after the one-sample probe
        torch.testing.assert_close(g_cut, g_one, rtol=1e-4, atol=1e-7)
    adv_one = attack(1000.0)(x, y)
    adv_cut = attack(_budget_for(attack(None), x, y, 3))(x, y)
    assert (adv_one - adv_cut).abs().max() < 1e-6


def test_input_diversity_draws_the_same_for_every_micro_batch():
    x, y = _images(4)
    model = Tiny()

    def attack(memory_gb):
        return DIFGSM(model, 8 / 255, steps=4, diversity_prob=1.0, resize_rate=1.3, seed=2, memory_gb=memory_gb)

    adv_one = attack(1000.0)(x, y)
    adv_cut = attack(_budget_for(attack(None), x, y, 3))(x, y)
    assert (adv_one - adv_cut).abs().max() < 1e-6


def test_a_sample_goes_through_the_channel_alike_in_any_batch():
    """Noise from each sample's own seed, blur ending at each sample's own radius: the photo of a
    sample does not depend on the samples beside it."""
    ch = Channel()
    x = torch.rand(5, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    p = ch.sample(5, generator=torch.Generator().manual_seed(4))
    p["blur_sigma"] = torch.tensor([0.0, 0.3, 2.5, 0.8, 1.2])  # very different radii in one batch
    p["noise_sigma"] = torch.full((5,), 0.05)
    whole = ch(x, p).images
    for i in range(5):
        alone = ch(x[i : i + 1], params_at(p, i)).images
        torch.testing.assert_close(alone[0], whole[i], rtol=0, atol=1e-6)


def test_budget_too_small_names_the_smallest_that_works():
    x, y = _images(2)
    a = BIM(Tiny(), 8 / 255, steps=1, memory_gb=1e-9)
    with pytest.raises(ConfigError, match=r"run\.memory_gb: .* too small for one image of tiny .* smallest budget that works is"):
        a(x, y)
    assert chunk_size(10, 100) == 10 and chunk_size(10, 9) == 0 and memory_budget("cpu", 2.0) == 2 * GB
    assert 0 < memory_budget("cpu") <= 2 * GB  # default: capped on the CPU


def test_classification_runs_in_batches_the_budget_holds(lite0, sample_batch):
    x, _ = sample_batch
    calls = []
    fwd = lite0.forward

    def spy(z):
        calls.append(z.shape[0])
        return fwd(z)

    top_all, prob_all = predict(lite0, x, 4)
    from physical.models import image_bytes

    per = image_bytes(lite0, 224, "cpu")
    from physical import runtime

    runtime.set_memory_gb((2 * per + 1) / GB)
    try:
        lite0.forward = spy
        top, prob = predict(lite0, x, 4)
    finally:
        del lite0.forward
        runtime.set_memory_gb(None)
    assert calls == [2, 2]
    assert (top == top_all).all() and abs(prob - prob_all).max() < 1e-5


def test_bf16_precision_runs_attacks_and_classification_on_the_cpu():
    from physical.models import Classifier, load_model

    net = Tiny().net
    fp32 = Classifier(net, "tiny", 48, (0.5,) * 3, (0.5,) * 3)
    bf16 = Classifier(net, "tiny", 48, (0.5,) * 3, (0.5,) * 3, precision="bf16")
    x, y = _images(4)
    logits = bf16(x)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, fp32(x), rtol=0.05, atol=0.05)  # bf16 keeps 8 bits of mantissa
    top32, _ = predict(fp32, x)
    top16, _ = predict(bf16, x)
    assert top16.shape == top32.shape
    adv = BIM(bf16, 8 / 255, steps=2)(x, y)
    assert adv.dtype == torch.float32 and 0 < (adv - x).abs().max() <= 8 / 255 + 1e-6
    lite = load_model("efficientnet_lite0", "cpu", "bf16")  # the run's models take run.precision
    assert lite.precision == "bf16" and lite is not load_model("efficientnet_lite0", "cpu")


def test_cli_budget_too_small_is_one_line_and_exit_2(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text(json.dumps({"run": {"name": "t", "output": str(tmp_path / "runs"), "memory_gb": 0.001},
                               "images": {"limit": 1}, "attacks": [{"name": "bim", "eps": [2], "steps": 1}],
                               "experiments": {"enabled": False}}))
    r = subprocess.run([sys.executable, "-m", "physical", "run", str(cfg)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    err = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert "Traceback" not in r.stderr and "run.memory_gb: 0.001 GB is too small" in err[-1]
    assert "smallest budget that works is" in err[-1]
