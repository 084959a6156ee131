"""The attack contract, one table over every registered attack (`physical.attacks.ATTACKS`): the
output stays inside the eps ball and [0, 1], keeps the input's dtype, shape and device, is the same
under the same seed, lowers accuracy (or moves toward its aim), and a NaN gradient stops the attack
with a message naming the attack and the step.

A newly registered attack joins the table with the default contract; an attack whose contract
differs (a fitted or a score-based one) declares how in `TABLE`, with the reason."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from physical import models
from physical.attacks import ATTACKS, Attack, make_attack
from physical.runs.checks import from_dict

# What every attack is held to unless its row says otherwise.
DEFAULT = {
    "entry": {"steps": 4, "alpha": 2},  # the config entry (besides name and eps)
    "eps": 8,
    "ball": True,  # inside the eps ball
    "effect": "lowers",  # "lowers": top-1 accuracy on the sample batch drops; "least_likely": see test; None: not here
    "nan_steps": (0, 2),  # a NaN gradient from these steps on is named with the step; () for gradient-free attacks
    "nan_entry": {"steps": 5},  # the config entry of the NaN check (at eps 4)
    "forwards_first": 0,  # model calls before the first step, besides the one that sizes the micro-batches
}
TABLE = {
    # Kurakin's three with their own default steps and step size
    "fgsm": {"entry": {}, "nan_steps": (0,), "nan_entry": {}},  # a single step
    "bim": {"entry": {}, "nan_entry": {}},
    "ill": {"entry": {}, "nan_entry": {}, "effect": "least_likely",
            "forwards_first": 1},  # finds the least-likely class first
    # families that may be registered beside these: their contract differs as declared here
    "uap": {"entry": {"fit": 0.5, "epochs": 10, "batch": 8}, "effect": None,
            "nan_steps": ()},  # fitted: its effect is measured on unseen images against random signs
    "patch": {"ball": False, "effect": None,
              "nan_steps": ()},  # a patch replaces pixels (no eps ball); its effect is the target's probability
    "square": {"entry": {"queries": 300}, "nan_steps": ()},  # score-based: no gradient
}


def row(name: str) -> dict:
    return {**DEFAULT, **TABLE.get(name, {})}


def attack_for(name: str, model, seed: int = 0, eps: float | None = None, entry: dict | None = None):
    """The attack of the row's config entry (or `entry`) at the row's eps (or `eps`), built as a run builds it."""
    r = row(name)
    eps = r["eps"] if eps is None else eps
    a = from_dict({"attacks": [{"name": name, "eps": [eps], **(r["entry"] if entry is None else entry)}]}).attacks[0]
    return make_attack(a, model, eps, seed=seed)


def q8(x):
    return torch.from_numpy(models.to_uint8(x)).permute(0, 3, 1, 2).float() / 255


class Tiny(torch.nn.Module):
    """A small seeded classifier of any input size with ImageNet's 1000 classes, for the checks that
    do not need a real model."""

    device = torch.device("cpu")
    input_size = 224

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 1000)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).mean((2, 3)))


class Poisoned(torch.nn.Module):
    """A model whose logits turn NaN from its `bad`-th call on."""

    device = torch.device("cpu")
    input_size = 224

    def __init__(self, bad):
        super().__init__()
        self.calls, self.bad = 0, bad

    def forward(self, x):
        self.calls += 1
        out = x.mean((2, 3)) @ torch.ones(3, 10)
        return out * float("nan") if self.calls > self.bad else out + torch.arange(10.0)


ALL = sorted(ATTACKS)


@pytest.mark.slow  # every attack on the real model (about 50 s here); the quick loop keeps the tiny-model rows below
@pytest.mark.parametrize("name", ALL)
def test_output_inside_the_ball_and_the_unit_range_with_dtype_shape_device_kept(lite0, sample_batch, name):
    x, y = sample_batch
    r = row(name)
    adv = attack_for(name, lite0)(x, y)
    assert adv.shape == x.shape and adv.dtype == x.dtype and adv.device == x.device
    assert adv.min() >= 0 and adv.max() <= 1
    if r["ball"]:
        assert (adv - x).abs().max() <= r["eps"] / 255 + 1e-6
    top_clean, _ = models.predict(lite0, x)
    top_adv, _ = models.predict(lite0, q8(adv))
    if r["effect"] == "lowers":
        assert (top_adv[:, 0] == y.numpy()).mean() < (top_clean[:, 0] == y.numpy()).mean()
    elif r["effect"] == "least_likely":
        # aimed at the least-likely class: accuracy drops and that class climbs into the top-5 for most images
        assert (top_adv[:, 0] == y.numpy()).mean() < (top_clean[:, 0] == y.numpy()).mean()
        ll = lite0(x).argmin(1).numpy()
        assert np.mean([ll[i] in top_adv[i] for i in range(len(ll))]) >= 0.5


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_images(sample_batch, name):
    x, y = sample_batch
    model = Tiny()
    a = attack_for(name, model, seed=3)(x[:2], y[:2])
    b = attack_for(name, model, seed=3)(x[:2], y[:2])
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_nan_gradient_names_attack_and_step(sample_batch, name):
    x, _ = sample_batch
    r = row(name)
    if not r["nan_steps"]:
        assert name in TABLE, f"{name}: only a declared exception may skip the NaN check"
    for step in r["nan_steps"]:
        # calls: 1 sizes the micro-batches (one sample, once per input shape), the row's forwards_first,
        # then one per step; bad=0: NaN from the very first call
        bad = 0 if step == 0 else 1 + r["forwards_first"] + step
        attack = attack_for(name, Poisoned(bad=bad), eps=4, entry=r["nan_entry"])
        with pytest.raises(FloatingPointError, match=f"'{name}'.*step {step}"):
            attack(x[:1], torch.tensor([1]))


@pytest.mark.parametrize("name", ALL)
def test_the_call_is_final_and_the_family_implements_the_one_hook(name):
    # issue 25: the base's call (devices, labels, per-call targets, the deferred NaN check) is no
    # family's to change; a family implements `perturb` (a fitted one `fit`, under FittedAttack's perturb)
    assert getattr(Attack.__call__, "__final__", False) and getattr(Attack.generate, "__final__", False)
    cls = ATTACKS[name]
    for method in ("__call__", "generate", "prepare"):
        assert getattr(cls, method) is getattr(Attack, method), f"{name} overrides Attack.{method}"
    assert cls.perturb is not Attack.perturb, f"{name} implements no perturb"
    assert cls.perturb.__annotations__.get("return") in ("torch.Tensor", torch.Tensor), f"{name}.perturb is untyped"
