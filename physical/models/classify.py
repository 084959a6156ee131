"""Classifying a list of 8-bit images of any size, a micro-batch on the device at a time."""
from __future__ import annotations

import cv2
import numpy as np

from physical.models import inference_batch, predict, to_tensor


def classify_images(model, images: list[np.ndarray], batch_size: int) -> list[dict]:
    """Predictions ({'top': 5 classes, 'prob': 5 probabilities}) for uint8 HWC images of any size."""
    if not images:
        return []
    size = model.input_size
    same = all(im.shape[:2] == (size, size) for im in images)
    if not same:
        images = [im if im.shape[:2] == (size, size) else cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
                  for im in images]
    bs = inference_batch(model, size, model.device, batch_size)
    out = []
    for i in range(0, len(images), bs):  # one batch on the device at a time
        top, prob = predict(model, to_tensor(images[i : i + bs], model.device), bs)
        out.extend(pred_list(top, prob))
    return out


def pred_list(top: np.ndarray, prob: np.ndarray) -> list[dict]:
    """Predictions as the run's files keep them: the top classes and their probabilities (5 decimals)."""
    return [{"top": t.tolist(), "prob": [round(float(v), 5) for v in p]} for t, p in zip(top, prob, strict=False)]
