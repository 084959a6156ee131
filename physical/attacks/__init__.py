"""Attacks by name. One file per family, one small base (`base.Attack`).

=========  ====================================================================================
fgsm       fast gradient sign (Goodfellow et al. 2015); one step of eps
bim        basic iterative (Kurakin et al. 2016); alpha 1, min(eps + 4, 1.25 eps) steps
ill        iterative least-likely class (Kurakin et al. 2016)
pgd        projected gradient descent (Madry et al. 2018); BIM from a random start
mifgsm     momentum iterative FGSM (Dong et al. 2018); `decay`
difgsm     diverse inputs (Xie et al. 2019) with momentum; `diversity_prob`, `resize_rate`
tifgsm     translation-invariant (Dong et al. 2019) with DI and momentum; `kernel_size`
=========  ====================================================================================

Every attack is untargeted, or targeted with `target` (a class index or name). Every iterative
attack takes `eot: {samples: N, ...}` (Expectation over Transformation through the shared channel;
see `eot.CropChannel`).
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from ..config import AttackConfig, ConfigError
from .base import Attack
from .bim import BIM
from .difgsm import DIFGSM
from .fgsm import FGSM
from .ill import IterativeLeastLikely
from .mifgsm import MIFGSM
from .pgd import PGD
from .tifgsm import TIFGSM

ATTACKS: dict[str, type[Attack]] = {
    "fgsm": FGSM,
    "bim": BIM,
    "ill": IterativeLeastLikely,
    "pgd": PGD,
    "mifgsm": MIFGSM,
    "difgsm": DIFGSM,
    "tifgsm": TIFGSM,
}
ALIASES = {
    "fast": "fgsm", "iter": "bim", "basic_iterative": "bim", "ll": "ill", "least_likely": "ill",
    "i-fgsm": "bim", "madry": "pgd", "mi-fgsm": "mifgsm", "mi_fgsm": "mifgsm", "momentum": "mifgsm",
    "di-fgsm": "difgsm", "di_fgsm": "difgsm", "ti-fgsm": "tifgsm", "ti_fgsm": "tifgsm",
}


def canonical(name: str) -> str:
    return ALIASES.get(name.lower(), name.lower())


def check_config(a: AttackConfig, path: str) -> None:
    """Config-time checks of one attack entry, naming the key path."""
    name = canonical(a.name)
    if name not in ATTACKS:
        raise ConfigError(f"{path}.name: unknown attack {a.name!r}; allowed: {', '.join(ATTACKS)}")
    a.name = name
    if not a.eps:
        raise ConfigError(f"{path}.eps: at least one eps is required")
    if a.alpha is not None and a.alpha <= 0:
        raise ConfigError(f"{path}.alpha: {a.alpha:g} must be > 0 (a step size in 0..255 units)")
    if a.target is not None:
        from ..models import class_index

        a.target = class_index(a.target, f"{path}.target")
    if a.eot is not None and not ATTACKS[name].iterative:
        raise ConfigError(f"{path}.eot: {name} is a single-step attack; EOT needs an iterative one")
    ATTACKS[name].check(a, path)


def check_labels(entries: list[AttackConfig]) -> None:
    """Every attack x eps makes its own images under its own label: two that would share one are an error."""
    seen: dict[str, str] = {}
    for i, a in enumerate(entries):
        for j, eps in enumerate(a.eps):
            if eps in a.eps[:j]:
                raise ConfigError(f"attacks[{i}].eps[{j}]: {eps:g} appears twice in this list "
                                  f"(also attacks[{i}].eps[{a.eps.index(eps)}])")
            label = label_of(a, eps)
            here = f"attacks[{i}].eps[{j}]"
            if label in seen:
                raise ConfigError(f"{here}: makes {label!r}, as {seen[label]} does; merge the two entries or give "
                                  f"one a distinct `label:`")
            seen[label] = here


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
        from ..channel import Channel
        from .eot import CropChannel

        if channel is None:
            channel = Channel(cfg.capture.channel if cfg is not None else None)
        if isinstance(channel, Channel):
            channel = CropChannel.from_config(channel, a.eot, cfg)
    palette = None
    if a.printability > 0:  # the config check made sure a colour calibration is there
        path = Path(cfg.capture.channel.calibration)
        palette = _palette(str(path), path.stat().st_mtime_ns)
    return cls(model, eps, steps=a.steps, alpha=a.alpha, target=a.target, eot=a.eot, channel=channel,
               seed=attack_seed(seed, label_of(a, eps)), decay=a.decay, random_start=a.random_start,
               diversity_prob=a.diversity_prob, resize_rate=a.resize_rate, kernel_size=a.kernel_size,
               printability=a.printability, palette=palette)


@functools.lru_cache(maxsize=4)
def _palette(path: str, mtime_ns: int):
    """The printable colours of a colour calibration, read once per file version (every attack and
    eps of a run asks for them)."""
    from ..calibrate.files import load_colour
    from ..calibrate.model import printable_palette

    return printable_palette(load_colour(path))


def label_of(a: AttackConfig, eps: float) -> str:
    """How an attack and eps are named in paths and tables: bim_eps16, eot-bim_eps16, eot-np-bim_eps16
    (np-: with the non-printability penalty); an entry's own `label:` replaces the part before _eps."""
    if getattr(a, "label", None):
        return f"{a.label}_eps{eps:g}"
    prefix = ("eot-" if a.eot is not None else "") + ("np-" if a.printability > 0 else "")
    tgt = f"-t{a.target}" if a.target is not None else ""
    return f"{prefix}{canonical(a.name)}{tgt}_eps{eps:g}"


__all__ = ["ATTACKS", "Attack", "check_config", "make_attack", "label_of", "attack_seed"]
