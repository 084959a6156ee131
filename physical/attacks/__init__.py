"""Attacks by name. One file per family, one small base (`base.Attack`).

=========  ====================================================================================
fgsm       fast gradient sign (Goodfellow et al. 2015); one step of eps
bim        basic iterative (Kurakin et al. 2016); alpha 1, min(eps + 4, 1.25 eps) steps
ill        iterative least-likely class (Kurakin et al. 2016)
pgd        projected gradient descent (Madry et al. 2018); BIM from a random start
mifgsm     momentum iterative FGSM (Dong et al. 2018); `decay`
difgsm     diverse inputs (Xie et al. 2019) with momentum; `diversity_prob`, `resize_rate`
tifgsm     translation-invariant (Dong et al. 2019) with DI and momentum; `kernel_size`
uap        universal perturbation (SGD-UAP, Shafahi et al. 2020), fitted on part of the images
patch      targeted adversarial patch (Brown et al. 2017), fitted with EOT over place, scale, angle
square     Square Attack (Andriushchenko et al. 2020): score-based, output probabilities only
=========  ====================================================================================

`uap` and `patch` are *fitted* attacks (`fitted.FittedAttack`): fitted once on some images, applied to
others (see `physical.stages.generate_fitted`). A family's own parameters are declared in its `params`
({key: (type, default, lo, hi)}, as `transforms.defences.Defence` does) and written as plain keys of
the attack entry; a key no family field or parameter knows is a config error.

Units: the YAML's `eps` and `alpha` are Kurakin's 0..255 pixel levels (`make_attack` divides by 255);
the classes and `make` (the Python API, docs/api.md) take the images' [0, 1] units, and either side
refuses the other's (an API eps above 1, a YAML eps between 0 and 1) with the unit named.

Every attack is untargeted, or targeted with `target` (a class index or name, or `least_likely`: each
image's least-likely class, as ILL; not for a fitted attack, whose one artifact has none). Every iterative
attack takes `eot: {samples: N, ...}` (Expectation over Transformation through the shared channel;
see `eot.CropChannel`).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional, Union

from physical.channel.build import crop_view
from physical.channel.files import load_colour
from physical.channel.colour import printable_palette
from physical.channel.core import Channel
from physical.channel.crop import CropChannel
from physical.config import AttackConfig, EOTConfig, build, coerce
from physical.errors import ConfigError
from physical.models import class_index
from physical.attacks.base import Attack, AttackResult, Target
from physical.attacks.model import Normalized, as_model, model_device
from physical.attacks.labels import LEAST_LIKELY, AttackLabel, is_least_likely
from physical.attacks.bim import BIM
from physical.attacks.difgsm import DIFGSM
from physical.attacks.fgsm import FGSM
from physical.attacks.ill import IterativeLeastLikely
from physical.attacks.mifgsm import MIFGSM
from physical.attacks.patch import Patch
from physical.attacks.pgd import PGD
from physical.attacks.square import Square
from physical.attacks.tifgsm import TIFGSM
from physical.attacks.uap import UAP

ATTACKS: dict[str, type[Attack]] = {
    "fgsm": FGSM,
    "bim": BIM,
    "ill": IterativeLeastLikely,
    "pgd": PGD,
    "mifgsm": MIFGSM,
    "difgsm": DIFGSM,
    "tifgsm": TIFGSM,
    "uap": UAP,
    "patch": Patch,
    "square": Square,
}
ALIASES = {
    "fast": "fgsm", "iter": "bim", "basic_iterative": "bim", "ll": "ill", "least_likely": "ill",
    "i-fgsm": "bim", "madry": "pgd", "mi-fgsm": "mifgsm", "mi_fgsm": "mifgsm", "momentum": "mifgsm",
    "di-fgsm": "difgsm", "di_fgsm": "difgsm", "ti-fgsm": "tifgsm", "ti_fgsm": "tifgsm",
    "universal": "uap", "sgd-uap": "uap", "adversarial_patch": "patch", "square_attack": "square",
}


def canonical(name: str) -> str:
    return ALIASES.get(name.lower(), name.lower())


def check_config(a: AttackConfig, path: str) -> None:
    """Config-time checks of one attack entry, naming the key path."""
    name = canonical(a.name)
    if name not in ATTACKS:
        raise ConfigError(f"{path}.name: unknown attack {a.name!r}; allowed: {', '.join(ATTACKS)}")
    a.name = name
    check_params(ATTACKS[name], a, path)
    if not a.eps:
        raise ConfigError(f"{path}.eps: at least one eps is required")
    for j, eps in enumerate(a.eps):
        if 0 < eps < 1:
            raise ConfigError(f"{path}.eps[{j}]: {eps:g} is below 1: the YAML's eps is in 0..255 pixel levels "
                              f"(Kurakin's units: 8, not 8/255 = {8 / 255:.4f}); the Python API takes [0, 1]")
    if a.alpha is not None and a.alpha <= 0:
        raise ConfigError(f"{path}.alpha: {a.alpha:g} must be > 0 (a step size in 0..255 units)")
    if is_least_likely(a.target):
        if ATTACKS[name].fitted:
            raise ConfigError(f"{path}.target: {a.target!r}: {name} fits one artifact for every image, and the "
                              "least-likely class is each image's own; give a class index or name")
        a.target = LEAST_LIKELY
    elif a.target is not None:
        a.target = class_index(a.target, f"{path}.target")
    if a.eot is not None and not ATTACKS[name].iterative:
        raise ConfigError(f"{path}.eot: {name} is a single-step attack; EOT needs an iterative one")
    if a.tv > 0 and not ATTACKS[name].iterative:  # its one step starts from a zero perturbation: no TV gradient
        raise ConfigError(f"{path}.tv: {name} is a single-step attack; the TV penalty needs an iterative one")
    ATTACKS[name].check(a, path)


def check_labels(entries: list[AttackConfig]) -> None:
    """Every attack x eps makes its own images under its own label: two that would share one are an error."""
    seen: dict[str, str] = {}
    for i, a in enumerate(entries):
        for j, eps in enumerate(eps_list(a)):
            if eps in a.eps[:j]:
                raise ConfigError(f"attacks[{i}].eps[{j}]: {eps:g} appears twice in this list "
                                  f"(also attacks[{i}].eps[{a.eps.index(eps)}])")
            label = label_of(a, eps)
            here = f"attacks[{i}].eps[{j}]"
            if label in seen:
                raise ConfigError(f"{here}: makes {label!r}, as {seen[label]} does; merge the two entries or give "
                                  f"one a distinct `label:`")
            seen[label] = here


def check_params(cls: type[Attack], a: AttackConfig, path: str) -> None:
    """The family's own keys: each declared in `cls.params`, of its type and inside its range; the
    checked values replace the written ones (defaults are filled in by `Attack.param`)."""
    for key, value in list(a.family_params.items()):
        if key not in cls.params:
            allowed = sorted([f.name for f in fields(AttackConfig) if f.name != "family_params"] + list(cls.params))
            raise ConfigError(f"{path}.{key}: unknown key; allowed keys here: {', '.join(allowed)}")
        tp, _, lo, hi = cls.params[key]
        a.family_params[key] = coerce(value, tp, f"{path}.{key}", {"lo": lo, "hi": hi})


# the old families' parameters, once keys of every attack entry, with their defaults: the content
# keys of a run's images (generate, experiments) keep them at the top level as they always had them,
# so images made before are still found
_FLAT_KEYS = {"decay": 1.0, "random_start": True, "diversity_prob": 0.5, "resize_rate": 1.1, "kernel_size": 7}


def key_params(a: AttackConfig) -> dict:
    """Everything of an attack entry its images depend on (family parameters included), as plain
    data for a content key."""
    d = dataclasses.asdict(a)
    own = d["family_params"]
    for key, default in _FLAT_KEYS.items():
        d[key] = own.pop(key, default)
    return d


def attack_seed(seed: int, label: str) -> int:
    """The attack's own random stream: from the run seed and the attack's label, so that it never
    replays the simulator's stream (a held-out draw of the channel) nor another attack's."""
    h = hashlib.sha256(f"{int(seed)}/attack/{label}".encode()).digest()
    return int.from_bytes(h[:7], "little")


def make_attack(a: AttackConfig, model, eps: float, channel=None, seed: int = 0, cfg=None) -> Attack:
    """An attack for one config entry and eps. With `eot`, `channel` is the shared Channel (or an
    EOT view of it); a plain Channel is viewed through `eot.CropChannel` (cell_px from `cfg`)."""
    cls = ATTACKS[canonical(a.name)]
    if a.eot is not None:
        if channel is None or isinstance(channel, Channel):
            channel = crop_view(cfg, a.eot, channel)
    palette = None
    if a.printability > 0:  # the config check made sure a colour calibration is there
        path = Path(cfg.capture.channel.calibration)
        palette = _palette(str(path), path.stat().st_mtime_ns)
    # the YAML's 0..255 units -> the classes' [0, 1] (the same floats the attacks always used)
    steps = a.steps if a.steps is not None else cls.kurakin_steps(eps)
    alpha = float(a.alpha) / 255.0 if a.alpha is not None else None
    return cls(model, float(eps) / 255.0, steps=steps, tv=a.tv, family_params=a.family_params, alpha=alpha,
               target=_target(a), eot=a.eot, channel=channel, seed=attack_seed(seed, label_of(a, eps)),
               printability=a.printability, palette=palette)


@functools.lru_cache(maxsize=4)
def _palette(path: str, mtime_ns: int):
    """The printable colours of a colour calibration, read once per file version (every attack and
    eps of a run asks for them)."""
    return printable_palette(load_colour(path))


def _target(a: AttackConfig) -> Union[int, str, None]:
    """An entry's target as a class index (check_config makes a class name its index)."""
    t = a.target
    return t if t is None or isinstance(t, int) or t == LEAST_LIKELY else class_index(t, "target")


def label_of(a: AttackConfig, eps: float) -> str:
    """How an attack and eps are named in paths and tables: bim_eps16, eot-bim_eps16, eot-np-bim_eps16
    (np-: with the non-printability penalty), tv100-bim_eps16 (total-variation weight 100),
    patch-t859-f0.1_eps255 (a patch has no L-inf budget: its pixels are free, eps 255); an entry's own
    `label:` replaces the part before _eps."""
    if getattr(a, "label", None):
        return str(AttackLabel(None, eps, custom=a.label))
    cls = ATTACKS[canonical(a.name)]
    target = _target(a) if a.target is not None else cls.default_target
    return str(AttackLabel(canonical(a.name), eps, eot=a.eot is not None, printability=a.printability > 0, tv=a.tv,
                           target=target, **cls.label_fields(a)))


def names_attack(text: str) -> bool:
    """Whether `text` is an attack's name (or alias) or a label this tool writes for one."""
    return canonical(text) in ATTACKS or AttackLabel.parse(text).family in ATTACKS


def eps_list(a: AttackConfig) -> list[float]:
    """The eps an entry runs at: its `eps`, or the family's fixed one (a patch: 255)."""
    cls = ATTACKS[canonical(a.name)]
    return list(a.eps) if cls.fixed_eps is None else [cls.fixed_eps]


def make(name: str, model: Any, eps: Optional[float] = None, *, steps: Optional[int] = None,
         alpha: Optional[float] = None, target: Union[Target, str] = None, seed: int = 0,
         mean: Optional[Any] = None, std: Optional[Any] = None, eot: Union[None, int, dict, EOTConfig] = None,
         channel: Union[None, Channel, CropChannel] = None, tv: float = 0.0, memory_gb: Optional[float] = None,
         input_size: Optional[int] = None, **params: Any) -> Attack:
    """An attack by name (or alias) for the Python API, in the images' [0, 1] units: `eps` and `alpha`
    as 8/255 (above 1 is an error naming the unit); any `nn.Module` taking [0,1] NCHW (with `mean`/`std`
    it is normalised first; its device is its parameters'); `target` a class index, a class name, a
    tensor of one class per image or "least_likely" (each image's own, as ILL); `eot` the EOT samples
    per step (or an `EOTConfig` / its keys) drawn
    from `channel` (a `Channel`, default the phone preset's); the family's own parameters as keywords
    (`decay=0.5`, `queries=500`); `input_size` the images' side a plain module takes (a patch's size is a share
    of it; default its `.input_size`, else 224). Same floats as the YAML path: make("bim", m, 8/255) makes the images of
    YAML eps 8 at the same seed (`attack_seed` gives a run's)."""
    key = canonical(name)
    if key not in ATTACKS:
        raise ConfigError(f"name: unknown attack {name!r}; allowed: {', '.join(ATTACKS)}")
    cls = ATTACKS[key]
    if eps is None:
        if cls.fixed_eps is None:
            raise ConfigError(f"eps: {key} needs an L-inf budget in [0, 1] units, e.g. eps=8/255")
        eps = cls.fixed_eps / 255.0
    for k, value in params.items():
        if k not in cls.params:
            raise ConfigError(f"{k}: not a parameter of {key}; its own: {', '.join(cls.params) or 'none'}")
        tp, _, lo, hi = cls.params[k]
        params[k] = coerce(value, tp, k, {"lo": lo, "hi": hi})
    if is_least_likely(target):
        if cls.fitted:
            raise ConfigError(f"target: {target!r}: {key} fits one artifact for every image, and the least-likely "
                              "class is each image's own; give a class index or name")
        target = LEAST_LIKELY
    elif isinstance(target, str):
        target = class_index(target, "target")
    eot_cfg = _eot_config(eot)
    if eot_cfg is not None and not cls.iterative:
        raise ConfigError(f"eot: {key} is a single-step attack; EOT needs an iterative one")
    model = as_model(model, mean, std, input_size)
    if eot_cfg is not None and not isinstance(channel, CropChannel):  # a Channel (None: the phone preset's)
        channel = crop_view(None, eot_cfg, channel, device=model_device(model) if channel is None else None)
    return cls(model, eps, steps=steps, alpha=alpha, target=target, eot=eot_cfg, channel=channel, seed=seed, tv=tv,
               family_params=params, memory_gb=memory_gb)


def _eot_config(eot: Union[None, int, dict, EOTConfig]) -> Optional[EOTConfig]:
    """`make`'s eot: None, the samples per step, the EOT keys (as in the YAML) or an EOTConfig."""
    if eot is None or isinstance(eot, EOTConfig):
        return eot
    if isinstance(eot, bool) or not isinstance(eot, (int, dict)):
        raise ConfigError(f"eot: {eot!r}; give the samples per step (8), the EOT keys ({{'samples': 8}}) or None")
    return build(EOTConfig, {"samples": eot} if isinstance(eot, int) else eot, "eot")


__all__ = ["ATTACKS", "Attack", "AttackResult", "Normalized", "make", "check_config", "make_attack", "label_of",
           "eps_list", "attack_seed"]
