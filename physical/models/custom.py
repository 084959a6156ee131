"""Models users bring (a `models:` entry that is a mapping, config.ModelConfig): a torchvision or timm
architecture with weights from a local file, a TorchScript file, or `package.module:callable`.

Each is checked when the config is (`register`): the file is there, it loads into its architecture,
and the network gives 1000 ImageNet logits for one image of its input size; every failure is one
`UserError` naming the key path and the file. The file whose bytes are the model (`source_file`)
enters the generate stage's inputs, so a changed checkpoint remakes the images.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from physical.config import ModelConfig
from physical.errors import ConfigError
from physical.models.sources import architecture, missing_weights

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
N_CLASSES = 1000  # every image set is labelled with the 1000 ImageNet-1k classes

_SPECS: dict[str, tuple[ModelConfig, str]] = {}  # name -> (spec with absolute paths, its key path)
_BUILT: dict[tuple, tuple] = {}  # (spec, file stamp) -> (network, input size, mean, std, resize ratio, name)


def spec_of(name: str) -> ModelConfig | None:
    """The registered spec of a model of one's own, or None for a zoo name."""
    got = _SPECS.get(name)
    return got[0] if got else None


def _absolute(spec: ModelConfig, base_dir: str | Path) -> ModelConfig:
    out = dataclasses.replace(spec)
    for key in ("weights", "torchscript"):
        v = getattr(spec, key)
        if v:
            p = Path(v).expanduser()
            setattr(out, key, str(p if p.is_absolute() else (Path(base_dir) / p).resolve()))
    if spec.module:
        out.module = spec.module.strip()
        _module_dirs[out.module] = str(Path(base_dir).resolve())
    return out


_module_dirs: dict[str, str] = {}  # "pkg.mod:callable" -> the config's folder (importable from there)


def _check_spec(spec: ModelConfig, path: str) -> None:
    n = spec.name
    if not n:
        raise ConfigError(f"{path}.name: required (the model's name in the run and the report)")
    if not all(c.isalnum() or c in "_.-" for c in n) or n.startswith("."):
        raise ConfigError(f"{path}.name: {n!r} must be letters, digits, _ . - (it names the model's files)")
    given = [k for k in ("weights", "torchscript", "module") if getattr(spec, k)]
    if len(given) > 1:
        raise ConfigError(f"{path}: give one of weights, torchscript, module (given: {', '.join(given)})")
    for k in ("mean", "std"):
        v = getattr(spec, k)
        if v is not None and len(v) != 3:
            raise ConfigError(f"{path}.{k}: {v!r} must be 3 numbers (R, G, B)")


def register(spec: ModelConfig, base_dir: str | Path, path: str) -> ModelConfig:
    """Check a user's model (ConfigError naming `path` and the file) and make it loadable by name."""
    _check_spec(spec, path)
    spec = _absolute(spec, base_dir)
    build_net(spec, path)  # the checks: file, architecture, output size (cached: the run loads it again for free)
    _SPECS[spec.name] = (spec, path)
    return spec


def register_config(entries: list, base_dir: str | Path) -> None:
    """The models of one config: its mappings registered (and checked), any earlier ones forgotten, so
    a zoo name a former config shadowed is the zoo's again."""
    _SPECS.clear()
    names = set()
    for i, entry in enumerate(entries):
        name = getattr(entry, "name", entry)
        if name in names:
            raise ConfigError(f"models[{i}]: {name!r} is listed twice; give each model its own name")
        names.add(name)
        if isinstance(entry, ModelConfig):
            register(entry, base_dir, f"models[{i}]")


def identity(name: str) -> dict | None:
    """What makes a model of one's own compute what it does besides its file's bytes (architecture,
    library, callable, input size, normalisation); None for a zoo name."""
    spec = spec_of(name)
    if spec is None:
        return None
    keys = ("arch", "library", "module", "input_size", "mean", "std", "resize_ratio")
    return {k: getattr(spec, k) for k in keys if getattr(spec, k) is not None}


def own_source(name: str) -> str:
    """Where a registered model of one's own comes from, in words (`physical models`)."""
    spec = spec_of(name)
    if spec is None:
        return ""
    if spec.torchscript:
        return f"TorchScript: {spec.torchscript}"
    if spec.module:
        return f"module {spec.module}: {source_file(spec) or '?'}"
    return f"{spec.library} {spec.arch or spec.name}: {spec.weights or 'torch hub cache'}"


def source_file(spec: ModelConfig) -> str | None:
    """The file whose bytes are the model: weights, TorchScript, or the module's source."""
    if spec.weights or spec.torchscript:
        return spec.weights or spec.torchscript
    if spec.module:
        mod = spec.module.split(":", 1)[0]
        local = _local_file(mod, _module_dirs.get(spec.module))
        if local:
            return local
        with _on_path(spec):
            try:
                found = importlib.util.find_spec(mod)
            except (ImportError, ValueError):
                found = None
        return found.origin if found and found.origin and os.path.isfile(found.origin) else None
    return None


_IMPORTED: dict[str, tuple] = {}  # module name -> (file, size, mtime) when this module imported it


def _import(mod_name: str, folder: str | None):
    """Import a user's module; again when the loaded one is another folder's or its file changed."""
    loaded = sys.modules.get(mod_name)
    if loaded is not None:
        f = getattr(loaded, "__file__", None)
        local = _local_file(mod_name, folder)
        other = local is not None and f is not None and Path(f).resolve() != Path(local).resolve()
        if other or _IMPORTED.get(mod_name, _file_stamp(f)) != _file_stamp(f):
            for name in [n for n in sys.modules if n == mod_name or n.startswith(mod_name + ".")]:
                del sys.modules[name]
    mod = importlib.import_module(mod_name)
    _IMPORTED[mod_name] = _file_stamp(getattr(mod, "__file__", None))
    return mod


def _local_file(mod_name: str, folder: str | None) -> str | None:
    """The module's file in the config's folder, if it is there."""
    if not folder:
        return None
    base = Path(folder) / mod_name.replace(".", "/")
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return str(f)
    return None


def _file_stamp(f) -> tuple:
    st = os.stat(f) if f and os.path.isfile(f) else None
    return f, st and st.st_size, st and st.st_mtime_ns


class _on_path:
    """The config's folder on sys.path while a user's module is imported."""

    def __init__(self, spec: ModelConfig):
        self.folder = _module_dirs.get(spec.module or "")

    def __enter__(self):
        self.added = bool(self.folder) and self.folder not in sys.path
        if self.added:
            sys.path.insert(0, str(self.folder))

    def __exit__(self, *exc):
        if self.added and self.folder in sys.path:
            sys.path.remove(self.folder)


def stamp(spec: ModelConfig) -> tuple:
    """What a loaded model of one's own depends on: its spec and its file's size and time."""
    f = source_file(spec)
    st = os.stat(f) if f and os.path.isfile(f) else None
    return json.dumps(dataclasses.asdict(spec), sort_keys=True), f, st and (st.st_size, st.st_mtime_ns)


def build_net(spec: ModelConfig, path: str | None = None) -> tuple:
    """(network in eval mode on the CPU, input size, mean, std, resize ratio); checked once per file."""
    key = stamp(spec)
    if key not in _BUILT:
        path = path or _SPECS.get(spec.name, (None, "models"))[1]
        defaults: dict[str, Any]
        if spec.torchscript:
            net, defaults = _torchscript(spec, path), {}
        elif spec.module:
            net, defaults = _from_module(spec, path), {}
        else:
            net, defaults = _architecture(spec, path)
        size = spec.input_size or defaults.get("size", 224)
        mean = tuple(spec.mean or defaults.get("mean", IMAGENET_MEAN))
        std = tuple(spec.std or defaults.get("std", IMAGENET_STD))
        ratio = spec.resize_ratio or defaults.get("ratio", 0.875)
        _check_output(net.eval(), size, spec, path)
        for old in [k for k, v in _BUILT.items() if v[-1] == spec.name]:  # an older file or spec of this name
            del _BUILT[old]
        _BUILT[key] = (net, size, mean, std, ratio, spec.name)
    return _BUILT[key][:5]


def _what(spec: ModelConfig) -> str:
    return spec.weights or spec.torchscript or spec.module or spec.name


def _check_output(net: nn.Module, size: int, spec: ModelConfig, path: str) -> None:
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, 3, size, size))
    except Exception as e:  # noqa: BLE001 - a user's network: its error, in one line
        raise ConfigError(f"{path}: {_what(spec)} fails on one {size}x{size} image ({type(e).__name__}: "
                          f"{_first_line(e)}); set {path}.input_size to the size it was trained with") from None
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if shape != (1, N_CLASSES):
        got = f"an output of shape {list(shape)}" if shape else f"a {type(out).__name__}"
        raise ConfigError(f"{path}: {_what(spec)} gives {got} for one image, not the {N_CLASSES} ImageNet-1k "
                          "logits the image sets are labelled with; use a model with a 1000-class ImageNet head")


def _first_line(e: BaseException) -> str:
    """An exception's first sentence, for one line."""
    text = str(e).strip().splitlines()
    return text[0].split(". ")[0][:200] if text else ""


def _torchscript(spec: ModelConfig, path: str) -> nn.Module:
    f = spec.torchscript or ""
    if not os.path.isfile(f):
        raise ConfigError(f"{path}.torchscript: {f} not found; save one with "
                          "torch.jit.save(torch.jit.script(model), path)")
    try:
        with warnings.catch_warnings():  # torch's deprecation notice: the user chose TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(f, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - torch's errors for a file that is not one vary
        raise ConfigError(f"{path}.torchscript: {f} is not a TorchScript file ({_first_line(e)}); save one with "
                          "torch.jit.save(torch.jit.script(model), path), or give a state dict as weights") from None


def _from_module(spec: ModelConfig, path: str) -> nn.Module:
    target = spec.module or ""
    mod_name, _, attr = target.partition(":")
    if not mod_name or not attr:
        raise ConfigError(f"{path}.module: {target!r} must be 'package.module:callable'")
    with _on_path(spec):
        try:
            mod = _import(mod_name, _module_dirs.get(target))
        except ModuleNotFoundError as e:
            raise ConfigError(f"{path}.module: cannot import {mod_name!r} ({e}); put {mod_name.split('.')[0]}.py "
                              "beside the config file or on PYTHONPATH") from None
        except Exception as e:  # noqa: BLE001 - the user's module raised while importing
            raise ConfigError(f"{path}.module: importing {mod_name!r} failed "
                              f"({type(e).__name__}: {_first_line(e)})") from None
    obj = getattr(mod, attr, None)
    if obj is None:
        raise ConfigError(f"{path}.module: {mod_name!r} ({getattr(mod, '__file__', '?')}) has no {attr!r}")
    if not isinstance(obj, nn.Module):
        if not callable(obj):
            raise ConfigError(f"{path}.module: {target} is a {type(obj).__name__}, not a callable or an nn.Module")
        try:
            obj = obj()
        except Exception as e:  # noqa: BLE001 - the user's callable raised
            raise ConfigError(f"{path}.module: calling {target}() failed "
                              f"({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(obj, nn.Module):
        raise ConfigError(f"{path}.module: {target}() returned {type(obj).__name__}, not a torch.nn.Module; "
                          "return the network (an nn.Module taking normalised NCHW images)")
    return obj


def _architecture(spec: ModelConfig, path: str) -> tuple[nn.Module, dict]:
    arch = spec.arch or spec.name
    net, defaults, hub_file = architecture(arch, spec.library, path)
    f = spec.weights or hub_file
    if not f or not os.path.isfile(f):
        key = f"{path}.weights" if spec.weights else path
        raise ConfigError(f"{key}: {missing_weights(arch, spec.library, spec.weights)}")
    _load_state(net, f, arch, path)
    return net, defaults


def _load_state(net: nn.Module, f: str, arch: str, path: str) -> None:
    state: Any
    if f.endswith(".safetensors") and importlib.util.find_spec("safetensors") is None:
        raise ConfigError(f"{path}.weights: {f} is a safetensors file: pip install safetensors (it comes with timm)")
    try:
        if f.endswith(".safetensors"):
            from safetensors.torch import (
                load_file,  # deferred: optional (comes with timm)
            )

            state = load_file(f)
        else:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - not a checkpoint: pickle, zip or safetensors errors
        raise ConfigError(f"{path}.weights: {f} is not a PyTorch checkpoint ({_first_line(e)}); save one with "
                          "torch.save(model.state_dict(), path)") from None
    for key in ("state_dict", "model", "model_state_dict"):  # training scripts' wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"{path}.weights: {f} holds a {type(state).__name__}, not a state dict; save one with "
                          "torch.save(model.state_dict(), path)")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel's prefix
    detail = _mismatch(net.state_dict(), state)
    if detail:
        raise ConfigError(f"{path}.weights: {f} does not match the architecture {arch!r} ({detail}); set {path}.arch "
                          "to the architecture the checkpoint was saved from")
    net.load_state_dict(state)


def _mismatch(want: dict, got: dict) -> str:
    """How a state dict differs from an architecture's, in a few words ('' when it fits)."""
    missing, extra = [k for k in want if k not in got], [k for k in got if k not in want]
    shapes = [(k, list(got[k].shape), list(want[k].shape)) for k in want
              if k in got and hasattr(got[k], "shape") and tuple(got[k].shape) != tuple(want[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} of its {len(want)} tensors missing, e.g. {missing[0]}")
    if extra:
        parts.append(f"{len(extra)} tensors it does not have, e.g. {extra[0]}")
    if shapes:
        k, g, w = shapes[0]
        parts.append(f"{k} is {g} in the file, {w} in the architecture")
        if w and w[0] == N_CLASSES and g and g[0] != N_CLASSES and k.endswith(("weight", "bias")):
            parts.append(f"a {g[0]}-class head: the image sets are labelled with the {N_CLASSES} ImageNet classes")
    return "; ".join(parts)
