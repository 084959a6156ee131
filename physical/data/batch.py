"""Images as the Python API takes them: a batch of [0,1] RGB NCHW tensors and their true labels.

`load_batch("samples")` gives the photos that ship inside scikit-image and matplotlib that have a
true ImageNet class (a tabby cat, an espresso, a uniform); a folder gives its images that have one
(class folders, a labels file: as the YAML's ``images.source``). Each image is resized and
centre-cropped to `size` as the pipeline does (`physical.models.preprocess`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import torch

from physical.data.images import load_images
from physical.errors import UserError
from physical.models import preprocess, to_tensor


def load_batch(source: str = "samples", limit: int = 0, size: int = 224, *, resize_ratio: float = 0.875,
               base: Union[str, Path] = ".",
               device: Union[str, torch.device] = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): the source's images that have a true label (N x 3 x size x size in [0, 1]) and their
    ImageNet classes (N,), at most `limit` (0: all) of the source's images looked at."""
    imgs = [i for i in load_images(source, limit, Path(base)) if i.label is not None]
    if not imgs:
        raise UserError(f"{source}: none of its images has a true ImageNet label; give a folder of class folders "
                        "or a labels file (see the configuration's images.source)")
    x = to_tensor(np.stack([preprocess(i.rgb, size, resize_ratio) for i in imgs]), device)
    return x, torch.tensor([int(i.label) for i in imgs if i.label is not None], device=device)
