"""Where architectures and their weights come from: torchvision (its weights enums, offline, and the
torch hub cache) and timm (an optional extra: `pip install physical[timm]`).

Nothing here downloads: a missing file is a message naming the URL to fetch and where to put it.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Any

import torch
from torch import nn

from physical.errors import ConfigError

TRANSFORM_INPUT = ("inception_v3", "googlenet")


def torchvision_weights(arch: str):
    """The DEFAULT ImageNet weights enum member of a torchvision architecture, or None."""
    import torchvision  # deferred: torchvision takes seconds to import; only its models need it

    try:
        return torchvision.models.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError):
        return None


def torchvision_names() -> list[str]:
    import torchvision  # deferred: torchvision takes seconds to import; only its models need it

    return sorted(torchvision.models.list_models(module=torchvision.models))


def hub_file(weights) -> str:
    """Where torchvision looks for a weights file: the torch hub cache's checkpoints folder."""
    return os.path.join(hub_dir(), os.path.basename(weights.url))


def hub_dir() -> str:
    """The folder torchvision reads cached weights from."""
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def hub_cached(weights) -> str | None:
    path = hub_file(weights)
    return path if os.path.isfile(path) else None


def timm_version() -> str | None:
    """timm's version when it is installed, else None."""
    if importlib.util.find_spec("timm") is None:
        return None
    import timm  # deferred: optional and heavy

    return timm.__version__


def _torchvision_arch(arch: str, path: str) -> tuple[nn.Module, dict, str | None]:
    import torchvision  # deferred: torchvision takes seconds to import; only its models need it

    if arch not in torchvision_names():
        raise ConfigError(f"{path}.arch: {arch!r} is not a torchvision architecture (`physical models --all` lists "
                          "them; a timm one needs library: timm)")
    w = torchvision_weights(arch)
    # torchvision builds these with transform_input=True when it loads its ImageNet weights (their
    # own normalisation inside); a checkpoint of such a network expects it
    # (and no slow random init: the weights come from a file anyway)
    kwargs = {"transform_input": w is not None, "init_weights": False} if arch in TRANSFORM_INPUT else {}
    net = torchvision.models.get_model(arch, weights=None, **kwargs)
    if w is None:
        return net, {}, None
    t = w.transforms()
    size = int(t.crop_size[0])
    defaults = {"size": size, "mean": tuple(t.mean), "std": tuple(t.std), "ratio": size / float(t.resize_size[0])}
    return net, defaults, hub_file(w)


def _timm_arch(arch: str, path: str) -> tuple[nn.Module, dict, None]:
    if timm_version() is None:
        raise ConfigError(f"{path}.library: timm is not installed; pip install 'physical[timm]' (or pip install timm)")
    import timm  # deferred: optional and heavy

    if not timm.is_model(arch):
        raise ConfigError(f"{path}.arch: {arch!r} is not a timm architecture (timm.list_models() lists them)")
    net = timm.create_model(arch, pretrained=False, num_classes=1000)
    cfg = getattr(net, "pretrained_cfg", None) or {}
    defaults: dict[str, Any] = {}
    if cfg.get("input_size"):
        defaults["size"] = int(cfg["input_size"][-1])
    for key in ("mean", "std"):
        if cfg.get(key):
            defaults[key] = tuple(cfg[key])
    if cfg.get("crop_pct"):
        defaults["ratio"] = float(cfg["crop_pct"])
    return net, defaults, None


def architecture(arch: str, library: str, path: str) -> tuple[nn.Module, dict, str | None]:
    """(network with random weights, its defaults {size, mean, std, ratio}, its torch hub file or None)."""
    if library == "timm":
        return _timm_arch(arch, path)
    return _torchvision_arch(arch, path)


def missing_weights(arch: str, library: str = "torchvision", given: str | None = None) -> str:
    """What to fetch and where to put it, for an architecture whose weights file is not here."""
    if library == "timm":
        return (f"{given} not found; timm's weights for {arch!r} are on the Hugging Face hub (timm/{arch}): download "
                f"model.safetensors there and give its path as weights")
    w = torchvision_weights(arch)
    if w is None:
        return (f"{given or 'weights'} not found; torchvision has no ImageNet weights for {arch!r}: give a checkpoint "
                "of your own as weights")
    enum = f"torchvision {type(w).__name__}.{w.name}"
    if given:
        return f"{given} not found; fetch {w.url} ({enum}) and save it as {given}"
    return (f"weights not cached: fetch {w.url} ({enum}) and put it in {os.path.dirname(hub_file(w))}/, "
            f"or give its path as models[i].weights")
