"""The attack family beyond Kurakin's three: PGD, MI-FGSM, DI-FGSM, TI-FGSM; targeted attacks; the
config checks that name key paths. The contract every attack keeps (eps ball, range, seed, effect, NaN
gradients named) is test_attack_contract.py's table."""
import pytest
import torch

from physical import models
from physical.attacks import ATTACKS, DIFGSM, PGD, TIFGSM, label_of, make_attack
from physical.attacks.tifgsm import gaussian_kernel
from physical.config import AttackConfig, ConfigError
from physical.runs.checks import from_dict


def err(data):
    with pytest.raises(ConfigError) as e:
        from_dict(data)
    return str(e.value)


def q8(x):
    return torch.from_numpy(models.to_uint8(x)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.slow  # 8 steps of MI-FGSM on the real model until the target class is reached
def test_targeted_attack_by_class_name_reaches_the_class(lite0, sample_batch):
    x, y = sample_batch
    cfg = from_dict({"attacks": [{"name": "mi-fgsm", "eps": [16], "steps": 8, "alpha": 2, "target": "Analog Clock"}]})
    a = cfg.attacks[0]
    assert a.name == "mifgsm" and a.target == 409 and label_of(a, 16) == "mifgsm-t409_eps16"
    adv = make_attack(a, lite0, 16)(x[:2], y[:2])
    top, _ = models.predict(lite0, q8(adv))
    assert (top[:, 0] == 409).all()


def test_pgd_random_start_is_seeded_and_inside_the_ball(sample_batch):
    x, _ = sample_batch
    a, b, c = (PGD(None, 8 / 255, seed=s) for s in (1, 1, 2))
    sa, sb, sc = a.start(x), b.start(x), c.start(x)
    assert torch.equal(sa, sb) and not torch.equal(sa, sc)
    assert (sa - x).abs().max() <= 8 / 255 + 1e-6 and sa.min() >= 0 and sa.max() <= 1
    assert torch.equal(PGD(None, 8 / 255, random_start=False).start(x), x)


def test_input_diversity_resizes_and_pads_at_random(sample_batch):
    x, _ = sample_batch
    di = DIFGSM(None, 8 / 255, diversity_prob=1.0, resize_rate=1.1, seed=0)
    sizes = {tuple(di.inputs(x).shape[-2:]) for _ in range(6)}
    assert sizes == {(246, 246)}  # resized into [224, 246), padded to 246
    assert DIFGSM(None, 8 / 255, diversity_prob=0.0).inputs(x) is x


def test_ti_kernel_is_a_normalised_odd_gaussian_and_smooths():
    k = gaussian_kernel(7)
    assert k.shape == (7, 7) and abs(float(k.sum()) - 1) < 1e-12 and k.argmax() == 24
    ti = TIFGSM(None, 8 / 255, kernel_size=7)
    g = torch.zeros(1, 3, 32, 32)
    g[..., 16, 16] = 1
    s = ti.smooth(g)
    assert torch.allclose(s[0, 0, 13:20, 13:20], k.float(), atol=1e-7) and s.sum().item() == pytest.approx(3, abs=1e-5)
    with pytest.raises(ValueError, match="odd"):
        TIFGSM(None, 8 / 255, kernel_size=6)


def test_bad_attack_config_names_the_key_path():
    assert err({"attacks": [{"name": "bim"}, {"name": "tifgsm", "kernel_size": 6}]}).startswith("attacks[1].kernel_size: 6")
    assert err({"attacks": [{"name": "bim", "eot": {"samples": 0}}]}).startswith("attacks[0].eot.samples: 0")
    assert err({"attacks": [{"name": "pgd", "steps": 0}]}).startswith("attacks[0].steps: 0")
    assert err({"attacks": [{"name": "pgd", "eps": [4, 256]}]}).startswith("attacks[0].eps[1]: 256")
    assert err({"attacks": [{"name": "pgd", "alpha": 0}]}).startswith("attacks[0].alpha:")
    assert err({"attacks": [{"name": "fgsm", "eot": {"samples": 4}}]}).startswith("attacks[0].eot:")
    assert err({"attacks": [{"name": "mifgsm", "target": 1000}]}).startswith("attacks[0].target:")
    assert err({"attacks": [{"name": "cw"}]}).startswith("attacks[0].name:")
    assert err({"attacks": [{"name": "bim", "eot": {"misalign": 0.5}}]}).startswith("attacks[0].eot.misalign:")
    assert set(ATTACKS) >= {"fgsm", "bim", "ill", "pgd", "mifgsm", "difgsm", "tifgsm"}


def test_each_family_takes_only_its_own_parameters():
    """A family's keys are declared in its `params`; a key of another family is an error naming its path,
    and the keys every run wrote before (decay, random_start, ...) still work on their own families."""
    assert err({"attacks": [{"name": "fgsm", "kernel_size": 9}]}).startswith("attacks[0].kernel_size: unknown key")
    assert err({"attacks": [{"name": "pgd", "decay": 0.5}]}).startswith("attacks[0].decay: unknown key")
    assert err({"attacks": [{"name": "mifgsm", "decay": 11}]}).startswith("attacks[0].decay: 11")
    assert err({"attacks": [{"name": "pgd", "random_start": "yes"}]}).startswith("attacks[0].random_start:")
    cfg = from_dict({"attacks": [{"name": "pgd", "random_start": False}, {"name": "mifgsm", "decay": 0.5},
                                 {"name": "tifgsm", "kernel_size": 9, "diversity_prob": 0, "decay": 0}]})
    pgd, mi, ti = (make_attack(a, None, 8) for a in cfg.attacks)
    assert pgd.random_start is False and mi.decay == 0.5
    assert (ti.kernel_size, ti.diversity_prob, ti.decay, ti.resize_rate) == (9, 0.0, 0.0, 1.1)
    assert set(ATTACKS["tifgsm"].params) >= {"decay", "diversity_prob", "resize_rate", "kernel_size"}


def test_content_key_of_an_attack_holds_its_family_parameters():
    from physical.attacks import key_params

    a, b = from_dict({"attacks": [{"name": "tifgsm"}, {"name": "tifgsm", "kernel_size": 7, "label": "t"}]}).attacks
    ka, kb = key_params(a), key_params(b)
    assert ka["kernel_size"] == kb["kernel_size"] == 7 and ka["decay"] == 1.0  # written or default: one key
    c = from_dict({"attacks": [{"name": "tifgsm", "kernel_size": 9}]}).attacks[0]
    assert key_params(c)["kernel_size"] == 9


def test_attack_labels_format_and_parse_in_one_place():
    from physical.attacks.labels import AttackLabel

    entries = [AttackConfig(name="bim", eot=None, tv=1e-05), AttackConfig(name="patch", family_params={"fraction": 0.2}),
               AttackConfig(name="mifgsm", target=5)]
    labels = [label_of(a, e) for a, e in zip(entries, (16, 255, 2.5))]
    assert labels == ["tv1e-05-bim_eps16", "patch-t859-f0.2_eps255", "mifgsm-t5_eps2.5"]
    for text in labels + ["eot-np-bim_eps16", "rand-uap_eps10", "ctl-patch-t859-f0.1_eps255", "my.bim_eps8"]:
        assert str(AttackLabel.parse(text)) == text
    p = AttackLabel.parse("eot-np-tv100-bim-t3_eps16")
    assert (p.family, p.eps, p.eot, p.printability, p.tv, p.target) == ("bim", 16.0, True, True, 100.0, 3)
    assert AttackLabel.parse("patch-t859-f0.1_eps255").fraction == 0.1
    assert AttackLabel.parse("my.bim_eps8").family is None and AttackLabel.parse("my.bim_eps8").name == "my.bim"
    # a label the run itself writes names an attack in experiments.attacks; a made-up one does not
    ex = from_dict({"experiments": {"attacks": ["eot-np-bim_eps16", "mi-fgsm", "tv100-pgd-t3_eps8"]}})
    assert ex.extra_sections["experiments"].attacks[0] == "eot-np-bim_eps16"
    assert err({"experiments": {"attacks": ["cw_eps8"]}}).startswith("experiments.attacks[0]: 'cw_eps8'")
