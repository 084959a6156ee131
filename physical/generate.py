"""The generate stage: clean images at each model's input size, and adversarial images for every
model x attack x eps, batched on the configured device.

Writes ``generate/<model>/clean/<image>.png`` and ``generate/<model>/<attack>_eps<eps>/<image>.png``
(8-bit: what is printed is what is evaluated) and ``generate/index.json``. Each model x attack x eps
is recorded in ``generate/done/`` once all its images are written, so an interrupted stage resumes
where it stopped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import attacks as attacks_mod
from .images import load_images
from .models import load_model, predict, preprocess, to_tensor, to_uint8
from .rundir import RunDir, read_image, read_json, write_image, write_json


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def build_channel(cfg, device):
    """The shared print-and-camera channel, used by EOT attacks (and by the simulator)."""
    from .channel import Channel

    return Channel(cfg.capture.channel).to(device)


def generate_stage(run: RunDir, cfg, device: torch.device) -> dict:
    out = run.stage_dir("generate")
    if torch.device(device).type == "cpu":
        from .runtime import tune_cpu_allocator

        tune_cpu_allocator()  # large attack batches (EOT: B x N images) without page-fault churn
    sources = load_images(cfg.images.source, cfg.images.limit, Path(cfg.base_dir))
    images_info = [{"name": _safe(s.name), "label": s.label, "label_known": s.label is not None} for s in sources]
    items, models_info = [], {}
    channel = None
    for model_name in cfg.models:
        model = load_model(model_name, device)
        models_info[model.name] = {"input_size": model.input_size}
        clean_dir = out / model.name / "clean"
        clean = np.stack([preprocess(s.rgb, model.input_size, model.resize_ratio) for s in sources])
        for info, img in zip(images_info, clean):
            write_image(clean_dir / f"{info['name']}.png", img)
        x = to_tensor(clean, device)
        # where the true class is unknown, the clean top-1 prediction stands in for it
        top, _ = predict(model, x, cfg.run.batch_size)
        labels = np.array([s.label if s.label is not None else int(top[i, 0]) for i, s in enumerate(sources)])
        y = torch.as_tensor(labels, device=device)
        for i_attack, a in enumerate(cfg.attacks):
            if a.eot is not None and channel is None:
                channel = build_channel(cfg, device)
            if attacks_mod.ATTACKS[a.name].fitted:  # uap, patch: fitted once, applied to every image
                from .fitted import generate_fitted

                items += generate_fitted(out, cfg, i_attack, a, model, x, y, images_info, labels, channel)
                continue
            for eps in a.eps:
                label = attacks_mod.label_of(a, eps)
                adv_dir = out / model.name / label
                done = out / "done" / f"{model.name}__{label}.json"
                if not done.is_file():
                    attack = attacks_mod.make_attack(a, model, eps, channel=channel, seed=cfg.run.seed, cfg=cfg)
                    bs = cfg.run.batch_size
                    extra = {}  # per image, what the attack reports of itself (square: queries)
                    for i in tqdm(range(0, len(x), bs), desc=f"generate {model.name} {label}", unit="batch", leave=False):
                        adv = to_uint8(attack(x[i : i + bs], y[i : i + bs]))
                        for info, img in zip(images_info[i : i + bs], adv):
                            write_image(adv_dir / f"{info['name']}.png", img)
                        if hasattr(attack, "item_info"):
                            extra.update(zip([info["name"] for info in images_info[i : i + bs]], attack.item_info()))
                    write_json(done, {"model": model.name, "attack": a.name, "eps": eps, "n": len(x), "extra": extra})
                extra = read_json(done).get("extra", {})
                for info, lab in zip(images_info, labels):
                    items.append({
                        "key": f"{model.name}/{label}/{info['name']}",
                        "model": model.name,
                        "attack": a.name,
                        "attack_label": label,
                        "eot": a.eot is not None,
                        "printability": a.printability,
                        "tv": a.tv,
                        "target": a.target,
                        "eps": eps,
                        "image": info["name"],
                        "label": int(lab),
                        "label_known": info["label_known"],
                        "clean": f"generate/{model.name}/clean/{info['name']}.png",
                        "adv": f"generate/{model.name}/{label}/{info['name']}.png",
                        **extra.get(info["name"], {}),
                    })
    index = {"models": models_info, "images": images_info, "items": items}
    write_json(out / "index.json", index)
    return {"images": len(sources), "items": len(items), "unlabelled": sum(not i["label_known"] for i in images_info)}


def load_index(run: RunDir) -> dict:
    return read_json(run.root / "generate" / "index.json")


def load_item_images(run: RunDir, items: list[dict], role: str) -> np.ndarray:
    """The 8-bit images of `role` ('clean' or 'adv') of items, as uint8 NHWC."""
    return np.stack([read_image(run.root / it[role]) for it in items])
