import numpy as np
import pytest
import torch

from physical import models
from physical.attacks import ATTACKS


def test_lite_models_load_exactly_and_take_unit_range(lite0):
    assert lite0.input_size == 224
    x = torch.rand(2, 3, 224, 224)
    out = lite0(x)
    assert out.shape == (2, 1000) and torch.isfinite(out).all()
    assert len(models.class_names()) == 1000 and models.class_names()[281] == "tabby"


def test_samples_classified_as_their_true_class(lite0, sample_batch):
    x, y = sample_batch
    top, prob = models.predict(lite0, x)
    # chelsea (tabby) and coffee (espresso) carry true labels: Lite0 gets them right in its top-5
    assert y[0].item() in top[0] and y[1].item() in top[1]


def test_unavailable_model_names_the_alternatives():
    with pytest.raises(models.ModelUnavailable) as e:
        models.load_model("resnet152")
    msg = str(e.value)
    assert "resnet152" in msg and "efficientnet_lite0" in msg
    ok, why = models.availability("efficientnet-lite1")
    assert ok


def test_preprocess_resizes_and_centre_crops():
    img = np.zeros((300, 600, 3), np.uint8)
    img[:, 250:350] = 255
    out = models.preprocess(img, 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert out[112, 112].min() == 255 and out[112, 0].max() == 0


def test_kurakin_step_rule():
    assert ATTACKS["bim"].kurakin_steps(16) == 20
    assert ATTACKS["bim"].kurakin_steps(8) == 10
    assert ATTACKS["bim"].kurakin_steps(2) == 3
