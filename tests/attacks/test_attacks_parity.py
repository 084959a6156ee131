"""Correctness against a peer: physical's FGSM, BIM, PGD (no random start) and MI-FGSM give the same
adversarial images as torchattacks (a test-only dependency; see the README's test command) on the
same model, images and parameters. Both libraries see [0,1] images: the classifier normalises inside.
TI-FGSM is compared too, with input diversity off (torchattacks draws it from the global RNG)."""
import pytest
import torch

torchattacks = pytest.importorskip("torchattacks", reason="install the test reference: pip install --no-deps torchattacks==3.5.1")

from physical.attacks import FGSM, MIFGSM, PGD, TIFGSM, BIM  # noqa: E402

pytestmark = pytest.mark.slow  # a reference run of torchattacks beside every attack: 6-15 s of CPU each

TOL = 1 / 255  # before rounding to 8 bits

EPS, ALPHA, STEPS = 8, 2, 3  # 0..255 units


def _images(sample_batch):
    x, y = sample_batch
    return x[:2], y[:2]


def _ours_theirs(lite0, x, y, ours, theirs, target=None):
    if target is not None:
        theirs.set_mode_targeted_by_function(lambda images, labels: torch.full_like(labels, target))
    a = ours(x, y)
    b = theirs(x, y)
    assert not lite0.training and not lite0.net.training  # the reference restored eval mode
    return (a - b).abs().max().item()


CASES = {
    "fgsm": (lambda m, **k: FGSM(m, EPS / 255, **k), lambda m: torchattacks.FGSM(m, eps=EPS / 255)),
    "bim": (lambda m, **k: BIM(m, EPS / 255, alpha=ALPHA / 255, steps=STEPS, **k),
            lambda m: torchattacks.BIM(m, eps=EPS / 255, alpha=ALPHA / 255, steps=STEPS)),
    "pgd": (lambda m, **k: PGD(m, EPS / 255, alpha=ALPHA / 255, steps=STEPS, random_start=False, **k),
            lambda m: torchattacks.PGD(m, eps=EPS / 255, alpha=ALPHA / 255, steps=STEPS, random_start=False)),
    "mifgsm": (lambda m, **k: MIFGSM(m, EPS / 255, alpha=ALPHA / 255, steps=STEPS, decay=1.0, **k),
               lambda m: torchattacks.MIFGSM(m, eps=EPS / 255, alpha=ALPHA / 255, steps=STEPS, decay=1.0)),
    "tifgsm": (lambda m, **k: TIFGSM(m, EPS / 255, alpha=ALPHA / 255, steps=STEPS, decay=1.0, kernel_size=7, diversity_prob=0.0, **k),
               lambda m: torchattacks.TIFGSM(m, eps=EPS / 255, alpha=ALPHA / 255, steps=STEPS, decay=1.0,
                                             len_kernel=7, nsig=3, diversity_prob=0.0)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_adversarial_images_as_torchattacks(lite0, sample_batch, name):
    x, y = _images(sample_batch)
    ours, theirs = CASES[name]
    diff = _ours_theirs(lite0, x, y, ours(lite0), theirs(lite0))
    print(f"parity {name}: max abs diff {diff * 255:.4f} / 255")
    assert diff <= TOL


@pytest.mark.parametrize("name", ["bim", "mifgsm"])
def test_same_targeted_adversarial_images_as_torchattacks(lite0, sample_batch, name):
    x, y = _images(sample_batch)
    ours, theirs = CASES[name]
    target = 409  # analog clock
    diff = _ours_theirs(lite0, x, y, ours(lite0, target=target), theirs(lite0), target=target)
    print(f"parity targeted {name}: max abs diff {diff * 255:.4f} / 255")
    assert diff <= TOL
