"""Predict, then measure: the probability that each adversarial image survives the trip.

Before anything is printed the configured channel (``capture.channel``, with its calibration when
there is one) can say which images will not survive: every adversarial image is sent through K
draws of the channel as the classifier sees a cell after alignment (`physical.channel.crop.CropChannel`,
the view EOT attacks optimise against), rounded to 8 bits like a saved crop, and classified. The
predicted survival is the fraction of the K draws in which the attack still works (top-1 is not the
true class; for a targeted attack, top-1 is the target). Next to it the report puts what the photo
showed, the Brier score of the predictions and a reliability diagram, over the images with a photo
whose clean image the model classifies right (top-1).

The draws come from their own seeded stream (from ``run.seed``), never the attacks' nor the
simulator's, so for the simulated capture they are held-out draws of the same channel. All K draws
of a batch of images run as one batch.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Optional

import numpy as np
import torch

from physical.channel.build import crop_view
from physical.config import EOTConfig
from physical import runfiles
from physical.models import load_model, to_tensor
from physical.runtime import chunk_size, memory_budget
from physical.measure.forecast import ForecastMap, expected_calibration_error, load_forecast
from physical.measure.stats import brier, proportion, reliability


def predict_seed(seed: int) -> int:
    h = hashlib.sha256(f"{int(seed)}/predict-survival".encode()).digest()
    return int.from_bytes(h[:7], "little")


def crop_channel(cfg, device):
    """The configured channel seen as a cell's aligned crop (default EOT settings: misalign 0.03,
    cell_px from the sheet and the frame), at the photo's scale: blur, noise and JPEG act in photo
    pixels, where a calibration measured them, and the crop is resampled as align does."""

    return crop_view(cfg, EOTConfig(), device=device, photo_scale=True)


def fooled(top1: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Whether the attack works on a prediction: top-1 is the target (targeted, target >= 0) or is
    not the true class (untargeted, target = -1)."""
    return torch.where(targets >= 0, top1 == targets, top1 != labels)


@torch.no_grad()
def survival_probabilities(model, channel, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
                           draws: int, generator: torch.Generator, batch_size: int = 16) -> np.ndarray:
    """For N adversarial images ([0,1] NCHW on the model's device): the fraction of `draws` channel
    draws in which each still fools `model`."""
    top1 = draw_top1(model, channel, images, draws, generator, batch_size)
    return fooled(top1, labels[:, None], targets[:, None]).float().mean(1).cpu().numpy()


def draw_top1(model, channel, images: torch.Tensor, draws: int, generator: torch.Generator,
              batch_size: int = 16) -> torch.Tensor:
    """(N, draws): the top-1 of each image after each of `draws` channel draws, read from the crop
    saved as 8 bits. Images go `batch_size` at a time, their draws in micro-batches that the memory
    budget (`run.memory_gb`) holds: a photo-scale frame is large."""
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i: i + batch_size]
        b = x.shape[0]
        params = channel.sample(b * draws, generator=generator, device=x.device)
        xs = x.repeat_interleave(draws, 0)
        step = _draws_per_batch(channel, x)
        out.append(torch.cat([
            model(channel(xs[j: j + step], {k: v[j: j + step] for k, v in params.items()})[0]
                  .clamp(0, 1).mul(255).round().div(255)).argmax(1)  # a saved 8-bit crop
            for j in range(0, b * draws, step)]).view(b, draws))
    return torch.cat(out) if out else torch.zeros(0, draws, dtype=torch.long, device=images.device)


def _draws_per_batch(channel, x: torch.Tensor) -> int:
    """Channel draws per micro-batch: a frame's float planes and their temporaries (about 16 copies)."""
    fw, fh = channel.frame_size(*x.shape[-2:])  # a CropChannel (crop_channel)
    per = 16 * x.shape[1] * fw * fh * x.element_size()
    return max(1, chunk_size(per, memory_budget(x.device)))


def works(rec: dict, condition: str = "photo_adv") -> Optional[bool]:
    """Whether the attack works on a record's prediction in `condition` (photo_adv: does the photo of
    the adversarial image still fool the model?); None when there is no such prediction."""
    p = rec["pred"].get(condition)
    if p is None:
        return None
    t = rec.get("target")
    return p["top"][0] == t if t is not None else p["top"][0] != rec["label"]


def predict_items(run, cfg, device, items: list[dict], draws: int) -> list[float]:
    """Predicted survival of the adversarial image of each item (generate/index.json items, or the
    classify stage's records: key, model, label, target), in order; batched per model."""
    device = torch.device(device or "cpu")
    index = runfiles.load_index(run).by_key()
    channel = crop_channel(cfg, device)
    gen = torch.Generator().manual_seed(predict_seed(cfg.run.seed))
    by_model = defaultdict(list)
    for i, it in enumerate(items):
        by_model[it["model"]].append(i)
    out = [0.0] * len(items)
    for model_name, idx in by_model.items():
        model = load_model(model_name, device, cfg.run.precision)  # the model classify used
        group = [items[i] for i in idx]
        x = to_tensor(runfiles.load_item_images(run, [index[it["key"]] for it in group], "adv"), device)
        labels = torch.tensor([it["label"] for it in group], device=device)
        targets = torch.tensor([-1 if it.get("target") is None else it["target"] for it in group], device=device)
        p = survival_probabilities(model, channel, x, labels, targets, draws, gen, cfg.run.batch_size)
        for i, pi in zip(idx, p, strict=False):
            out[i] = round(float(pi), 4)
    return out


def forecast(cfg, draws_fraction: list[float]) -> tuple[list[float], Optional[ForecastMap]]:
    """The predicted survival: the draws' fraction through the forecast map stored beside the channel's
    calibration (`physical.measure.forecast`) when there is one, else the fraction itself."""
    fmap = load_forecast(cfg.capture.channel.calibration)
    return (fmap(draws_fraction) if fmap is not None else list(draws_fraction)), fmap


def survival_section(run, cfg, device, records: list[dict], draws: int) -> Optional[dict]:
    """report.json's ``survival``: per adversarial image the predicted and observed survival, per
    attack and for the run the Brier score, and the reliability diagram's points."""
    if draws <= 0 or not records:
        return None
    raw = predict_items(run, cfg, device, records, draws)
    predicted, fmap = forecast(cfg, raw)
    rows = [{"key": r["key"], "model": r["model"], "attack_label": r["attack_label"], "image": r["image"],
             "target": r.get("target"), "predicted": p, "draws_fraction": d, "observed": works(r),
             "digital_fooled": works(r, "digital_adv"),
             "clean_right": r["pred"]["digital_clean"]["top"][0] == r["label"]}
            for r, p, d in zip(records, predicted, raw, strict=False)]
    return {"draws": draws, "channel": channel_name(cfg), "forecast_map": None if fmap is None else fmap.fitted_on,
            **_scores(rows), "attacks": _by_attack(rows), "items": rows}


def channel_name(cfg) -> str:
    return cfg.capture.channel.calibration or "capture.channel (no calibration)"


def _scores(rows: list[dict]) -> dict:
    # scored where survival means something: a photo exists and the clean image is classified right
    # (an image the model gets wrong when clean "survives" any channel)
    seen = [r for r in rows if r["observed"] is not None and r["clean_right"]]
    pred = [r["predicted"] for r in seen]
    obs = [bool(r["observed"]) for r in seen]
    return {"n": len(seen), "brier": brier(pred, obs),
            # a forecaster that knows only the observed survival rate, for scale
            "brier_reference": brier([sum(obs) / len(obs)] * len(obs), obs) if obs else None,
            "predicted_mean": sum(pred) / len(pred) if pred else None,
            "observed_rate": proportion(sum(obs), len(obs)), "reliability": reliability(pred, obs),
            "ece": expected_calibration_error(pred, obs)}


def _by_attack(rows: list[dict]) -> list[dict]:
    groups = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["attack_label"])].append(r)
    out = []
    for (model, label), rs in groups.items():
        s = _scores(rs)
        s.pop("reliability")
        out.append({"model": model, "attack_label": label, "images": len(rs), **s})
    return out
