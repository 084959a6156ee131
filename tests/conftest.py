"""Shared fixtures. Tests never need a GPU, a camera, a printer or ../shared data."""
from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def lite0():
    from physical.models import load_model

    return load_model("efficientnet_lite0", "cpu")


@pytest.fixture(scope="session")
def sample_batch(lite0):
    """Four scikit-image photos at Lite0's input size, as [0,1] tensors, with labels (true or top-1)."""
    import numpy as np

    from physical.data.images import load_images
    from physical.models import predict, preprocess, to_tensor

    imgs = load_images("samples", 4)
    x = to_tensor(np.stack([preprocess(i.rgb, 224) for i in imgs]), "cpu")
    top, _ = predict(lite0, x)
    y = torch.tensor([i.label if i.label is not None else int(top[k, 0]) for k, i in enumerate(imgs)])
    return x, y


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(run, cfg): a tiny run with generate, (fake) align, classify, experiments and report done,
    shared by the experiments and report tests (see experiment_run.py)."""
    from tests.experiment_run import tiny_run

    return tiny_run(tmp_path_factory.mktemp("exp"))
