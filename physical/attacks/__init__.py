"""Attacks by name. One file per family, one small base (`base.Attack`)."""
from __future__ import annotations

from ..config import AttackConfig, ConfigError
from .base import Attack
from .bim import BIM
from .fgsm import FGSM
from .ill import IterativeLeastLikely

ATTACKS: dict[str, type[Attack]] = {
    "fgsm": FGSM,
    "bim": BIM,
    "ill": IterativeLeastLikely,
}
ALIASES = {"fast": "fgsm", "iter": "bim", "basic_iterative": "bim", "ll": "ill", "least_likely": "ill"}


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
    if a.target is not None:
        from ..models import class_index

        a.target = class_index(a.target, f"{path}.target")
    if a.eot is not None and not ATTACKS[name].iterative:
        raise ConfigError(f"{path}.eot: {name} is a single-step attack; EOT needs an iterative one")


def make_attack(a: AttackConfig, model, eps: float, channel=None, seed: int = 0) -> Attack:
    cls = ATTACKS[canonical(a.name)]
    return cls(model, eps, steps=a.steps, alpha=a.alpha, target=a.target, eot=a.eot, channel=channel, seed=seed,
               decay=a.decay, random_start=a.random_start, diversity_prob=a.diversity_prob,
               resize_rate=a.resize_rate, kernel_size=a.kernel_size)


def label_of(a: AttackConfig, eps: float) -> str:
    """How an attack and eps are named in paths and tables: bim_eps16, eot-bim_eps16."""
    prefix = "eot-" if a.eot is not None else ""
    tgt = f"-t{a.target}" if a.target is not None else ""
    return f"{prefix}{canonical(a.name)}{tgt}_eps{eps:g}"


__all__ = ["ATTACKS", "Attack", "check_config", "make_attack", "label_of"]
