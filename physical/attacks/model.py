"""Any classifier as the attacks see one: [0,1] RGB NCHW in, logits out, on a device.

The project's models (`physical.models.Classifier`) normalise inside and carry `.device` and
`.input_size`; a plain `nn.Module` (a torchvision network, one's own) is taken as it is, its device
read from its parameters, and with `mean`/`std` it is wrapped to normalise first (torchattacks'
`set_normalization_used`, foolbox's `preprocessing`).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import nn

from physical.errors import ConfigError
from physical.log import warn

Stats = Union[Sequence[float], torch.Tensor]


def model_device(model: Any) -> torch.device:
    """Where a model runs: its `.device` if it names one, else that of its first parameter or buffer,
    else the CPU."""
    dev = getattr(model, "device", None)
    if isinstance(dev, (torch.device, str)):
        return torch.device(dev)
    if isinstance(model, nn.Module):
        for t in list(model.parameters()) + list(model.buffers()):
            return t.device
    return torch.device("cpu")


class Normalized(nn.Module):
    """`net((x - mean) / std)`: a network trained on normalised inputs, fed [0,1] images."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: Any, mean: Optional[Stats] = None, std: Optional[Stats] = None,
                 input_size: Optional[int] = None):
        super().__init__()
        self.net = net
        device = model_device(net)
        m = torch.as_tensor(mean if mean is not None else (0.0, 0.0, 0.0), dtype=torch.float32, device=device)
        s = torch.as_tensor(std if std is not None else (1.0, 1.0, 1.0), dtype=torch.float32, device=device)
        if m.numel() not in (1, 3) or s.numel() not in (1, 3) or bool((s <= 0).any()):
            raise ValueError(f"mean {m.tolist()} / std {s.tolist()}: give 1 or 3 values each, std > 0")
        self.register_buffer("mean", m.reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", s.reshape(1, -1, 1, 1), persistent=False)
        self.name = str(getattr(net, "name", type(net).__name__))
        size = input_size if input_size is not None else getattr(net, "input_size", 224)
        self.input_size = int(size)  # a patch's side is a share of it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    @property
    def device(self) -> torch.device:
        return self.mean.device


def as_model(model: Any, mean: Optional[Stats] = None, std: Optional[Stats] = None,
             input_size: Optional[int] = None) -> Any:
    """The model an attack uses: as given when it carries its device and needs no normalisation (the
    project's classifiers, test doubles, None for an attack that is only inspected), else wrapped in
    `Normalized` (identity statistics without mean / std). A model that normalises inside (it holds
    `mean` and `std` buffers, as `physical.models.Classifier`) given `mean` / `std` again is an error;
    a wrapped model in training mode is warned about (batch norm and dropout would change under the
    attack)."""
    given = mean is not None or std is not None
    if model is None or (not given and input_size is None and isinstance(getattr(model, "device", None), torch.device)):
        return model
    if (given and isinstance(getattr(model, "mean", None), torch.Tensor)
            and isinstance(getattr(model, "std", None), torch.Tensor)):
        raise ConfigError(f"mean/std: {getattr(model, 'name', type(model).__name__)} normalises its inputs itself; "
                          "give mean and std only for a network that expects normalised inputs")
    if isinstance(model, nn.Module) and model.training:
        warn(f"{type(model).__name__} is in training mode (batch norm and dropout change under the attack); "
             "call model.eval() first")
    return Normalized(model, mean, std, input_size)
