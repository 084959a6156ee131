"""Experiments on a run's images: artificial transformations, defences (with adaptive attacks),
transfer between models, and how perturbations generalise across images; plus the training-side
digits experiment (`physical experiment digits`) and `physical compare RUN_A RUN_B`.

This module declares the `experiments` config section and its checks; the stage lives in `stage`,
the rest in `digits` and `compare`, the commands in `cli`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from physical import models as zoo
from physical.attacks import ATTACKS, canonical, names_attack
from physical.config import build, rng
from physical.errors import ConfigError
from physical.transforms.artificial import TRANSFORMATIONS, check_name, check_strength
from physical.transforms.defences import check_defence, make_defence


@dataclass
class TransformationsConfig:
    """Kurakin et al. section 4: every transformation at every strength, on clean and adversarial images."""

    enabled: bool = True
    # transformation name -> strengths; a name with no list (null or []) uses its default sweep
    # (the default is a small sweep that keeps the default run fast; each name's full default sweep is
    # in physical/transforms/artificial.py)
    sweeps: dict[str, Any] = field(default_factory=lambda: {"brightness": [0.2], "contrast": [0.6], "blur": [1.5],
                                                            "noise": [0.04], "jpeg": [70, 30]})

    def validate(self, path: str) -> None:
        for name, strengths in list(self.sweeps.items()):
            p = f"{path}.sweeps.{name}"
            t = check_name(str(name), p)
            if strengths is None or strengths == []:
                strengths = list(t.sweep)
            if not isinstance(strengths, list):
                strengths = [strengths]
            self.sweeps[name] = [check_strength(name, s, f"{p}[{i}]") for i, s in enumerate(strengths)]
        assert set(self.sweeps) <= set(TRANSFORMATIONS)


@dataclass
class DefencesConfig:
    """Defences in front of the classifier: clean accuracy lost, adversarial accuracy recovered,
    digitally and from photos, and against an adaptive attack that sees the defence."""

    enabled: bool = True
    # each a name or {name: ..., <parameter>: value}; see physical/transforms/defences.py
    use: list[Union[str, dict[str, Any]]] = field(default_factory=lambda: [{"name": "jpeg", "quality": 75}])
    # attacks (names as in `attacks`, or "all") also run adaptively against each defence: EOT over
    # the defence's randomness, straight-through gradients for non-differentiable defences
    adaptive: list[str] = field(default_factory=lambda: ["fgsm"])
    eot_samples: int = rng(1, 256, default=4)  # draws of a randomised defence per attack step
    seed: int = 0  # seeds the defences' randomness at evaluation

    def validate(self, path: str) -> None:
        checked = [check_defence(d, f"{path}.use[{i}]") for i, d in enumerate(self.use)]
        self.use = [*checked]
        labels = [_defence_label(d) for d in checked]
        for i, lab in enumerate(labels):
            if lab in labels[:i]:
                raise ConfigError(f"{path}.use[{i}]: defence {lab!r} is listed twice")
        out = []
        for i, a in enumerate(self.adaptive):
            if a.lower() in ("all", "none"):
                out.append(a.lower())
                continue
            if canonical(a) not in ATTACKS:
                raise ConfigError(f"{path}.adaptive[{i}]: unknown attack {a!r}; allowed: all, none, "
                                  f"{', '.join(ATTACKS)}")
            out.append(canonical(a))
        self.adaptive = out


def _defence_label(d: dict) -> str:
    return make_defence(**d).label


@dataclass
class TransferConfig:
    """Adversarial images made on each of the run's models, classified by every model listed here."""

    enabled: bool = True
    # target models besides the run's own (which are always targets: the diagonal is white-box, taken
    # from the classify stage); "available" stands for every EfficientNet-Lite installed here
    models: list[str] = field(default_factory=lambda: ["efficientnet_lite1"])

    def check_models(self, path: str) -> None:
        """The models are here (experiments.validate calls it only when the transfer runs)."""
        out = []
        for i, name in enumerate(self.models):
            if name == "available":
                out.extend(zoo.available_models())
                continue
            zoo.check_name(name, f"{path}.models[{i}]")
            out.append(zoo.canonical(name))
        self.models = list(dict.fromkeys(out))


@dataclass
class GeneralisationConfig:
    """The perturbation of image i added to image j, against random-sign perturbations of the same eps."""

    enabled: bool = False
    max_images: int = rng(2, 1000, default=16)  # the first N images of the run (N x N pairs per attack)
    random_draws: int = rng(1, 100, default=4)  # random-sign perturbations per image


@dataclass
class DigitsConfig:
    """The training-side experiment on scikit-learn's digits (also `physical experiment digits`)."""

    enabled: bool = False
    l2: list[float] = rng(0.0, 100.0, default_factory=lambda: [0.0, 0.001, 0.01, 0.1, 1.0])
    hidden: int = rng(4, 4096, default=64)  # MLP hidden units
    centres: int = rng(2, 1000, default=50)  # RBF network centres
    epochs: int = rng(1, 100000, default=300)
    seed: int = 0


@dataclass
class ExperimentsConfig:
    enabled: bool = True
    # the run's adversarial images the experiments use: attack names (fgsm) or labels (bim_eps16); [] = all
    attacks: list[str] = field(default_factory=list)
    transformations: TransformationsConfig = field(default_factory=TransformationsConfig)
    defences: DefencesConfig = field(default_factory=DefencesConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    generalisation: GeneralisationConfig = field(default_factory=GeneralisationConfig)
    digits: DigitsConfig = field(default_factory=DigitsConfig)

    def validate(self, path: str) -> None:
        # sub-sections left at their defaults were made by default_factory, not checked by `build`:
        # check every one here (the checks are idempotent)
        for name in ("transformations", "defences"):
            getattr(self, name).validate(f"{path}.{name}")
        if self.enabled and self.transfer.enabled:  # its models must be here only when it runs
            self.transfer.check_models(f"{path}.transfer")
        for i, a in enumerate(self.attacks):
            if not names_attack(a):
                raise ConfigError(f"{path}.attacks[{i}]: {a!r} is neither an attack name nor an attack label "
                                  f"(like bim_eps16); attacks: {', '.join(ATTACKS)}")



def section(cfg) -> ExperimentsConfig:
    """The run's experiments section (its defaults when the config was built before registration)."""
    sec = (getattr(cfg, "extra_sections", None) or {}).get("experiments")
    return sec if sec is not None else build(ExperimentsConfig, {}, "experiments")


__all__ = ["ExperimentsConfig", "section"]
