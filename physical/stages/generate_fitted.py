"""The generate stage's part for fitted attacks (`attacks.fitted.FittedAttack`: uap, patch).

For one model and attack entry, per eps: split the run's images into fit and unseen ones (the
entry's `fit` fraction, by a seeded shuffle; or fit on a separate `fit_source` and keep every run
image unseen), fit the artifact once, and write, for every run image, the adversarial image (the
artifact applied) and the control image (a control of the same size applied the same way, at the
same places): ``generate/<model>/<label>/`` and ``generate/<model>/<control label>/`` (control label:
``rand-uap_eps10``, ``ctl-patch-t859-f0.1_eps255``). The artifact itself is kept beside the images:
``artifact.npy`` (float32, [0, 1] units: the perturbation, or the patch), a picture of it
(``universal.png``: the perturbation amplified to the full range; ``patch.png``), and for a patch
``patch.pdf`` (the patch alone at `patch_mm`, with markers). ``generate/done/<key>.json`` records the
split, the artifact's paths, the fit's time and the digest of every file written; its key digests
everything the fit read (every image's bytes and label, the model and weights, the entry's full
parameters and eps, the seed, the channel it draws from, a separate fit source's files), so a
resumed stage skips the work and any changed input, or a missing or altered file, redoes it.

Both the attack and its control become ordinary items of ``generate/index.json`` (printed, captured,
classified like every item), with ``split`` ("fit" or "unseen"), ``fitted`` and ``control``.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import torch

from physical import attacks as attacks_mod
from physical.attacks.fitted import FittedAttack
from physical.errors import ConfigError
from physical.data.images import load_images, source_files
from physical.models import predict, preprocess, to_tensor, to_uint8
from physical.rundir import digest, file_digest, read_json, write_bytes, write_image, write_json
from physical.sheets.patch import write_patch_pdf


def _fit_source(cfg, a, path: str, model, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of a separate fit source at the model's input, with labels (true or top-1)."""
    try:
        sources = load_images(a.family_params["fit_source"], 0, Path(cfg.base_dir))
    except ConfigError as e:
        raise ConfigError(f"{path}.fit_source: {str(e).split(': ', 1)[1]}") from None
    x = to_tensor(np.stack([preprocess(s.rgb, model.input_size, model.resize_ratio) for s in sources]), device)
    top, _ = predict(model, x, cfg.run.batch_size)
    y = torch.as_tensor([s.label if s.label is not None else int(top[i, 0]) for i, s in enumerate(sources)],
                        device=device)
    return x, y


def _picture(art: np.ndarray, attack) -> np.ndarray:
    """The artifact as an 8-bit picture: a patch as it is, a perturbation amplified to the full range."""
    hwc = art.transpose(1, 2, 0)
    if attack.name == "patch":
        return np.round(hwc * 255).astype(np.uint8)
    amp = max(float(np.abs(hwc).max()), 1e-12)
    return np.round(127.5 + hwc * (127.5 / amp)).astype(np.uint8)


def generate_fitted(run, cfg, index: int, a, model, mid: dict, sources, clean: np.ndarray, labels: np.ndarray,
                    images_info: list[dict], channel, reads: dict, done_dir: str, keep: set) -> list[dict]:
    """Fit, apply and write one fitted attack entry (every eps) for one model; its index items.
    `mid`, `reads`: the model and the config outside `attacks` the images depend on (as generate keys
    them); the fit's record goes to `done_dir`; every file written is added to `keep` (generate removes
    what it does not keep)."""
    params = attacks_mod.key_params(a)
    fit_source = a.family_params.get("fit_source")
    reads = {**reads, "images": [s.digest for s in sources], "labels": [int(v) for v in labels]}
    if fit_source:
        reads["fit_source"] = source_files(fit_source, Path(cfg.base_dir))
    items = []
    for eps in attacks_mod.eps_list(a):
        label = attacks_mod.label_of(a, eps)
        attack = attacks_mod.make_attack(a, model, eps, channel=channel, seed=cfg.run.seed, cfg=cfg)
        assert isinstance(attack, FittedAttack), a.name
        control = f"{attack.control_name}-{label}"
        key = digest({"fitted": label, "model": mid, "attack": {k: v for k, v in params.items() if k != "eps"},
                      "eps": float(eps), "seed": int(cfg.run.seed), "reads": reads})
        done = run.root / done_dir / f"{key}.json"
        if not _intact(run, done):
            _fit_and_write(run, cfg, f"attacks[{index}]", a, attack, model, clean, labels, images_info, eps,
                           (label, control), done)
        state = read_json(done)
        keep.update(state["files"])
        keep.add(done.relative_to(run.root).as_posix())
        fit_names = set(state["fit_images"])
        for lab, role in ((label, "attack"), (control, "control")):
            for info, y_i in zip(images_info, labels, strict=True):
                items.append({
                    "key": f"{model.name}/{lab}/{info['name']}",
                    "model": model.name, "attack": a.name, "attack_label": lab,
                    "eot": a.eot is not None, "printability": a.printability, "tv": a.tv,
                    "target": attack.target, "eps": eps, "image": info["name"], "label": int(y_i),
                    "label_known": info["label_known"],
                    "clean": f"generate/{model.name}/clean/{info['name']}.png",
                    "adv": f"generate/{model.name}/{lab}/{info['name']}.png",
                    "fitted": label, "control": role == "control",
                    "split": "fit" if info["name"] in fit_names else "unseen",
                    "fit_record": done.relative_to(run.root).as_posix(),  # the fit: split, artifact, time
                })
    return items


def _fit_and_write(run, cfg, path: str, a, attack, model, clean: np.ndarray, labels: np.ndarray,
                   images_info: list[dict], eps, labels_of: tuple[str, str], done: Path) -> None:
    """Fit the artifact (on the fit split, or on a separate fit source), write every image with it
    and with its control (`labels_of`: their labels) at `eps`, the artifact, and the fit's record `done`."""
    label, control = labels_of
    device = model.device
    fit_source = a.family_params.get("fit_source")
    out = run.root / "generate"
    adv_dir, ctl_dir = out / model.name / label, out / model.name / control
    x = to_tensor(clean, device)
    y = torch.as_tensor(labels, device=device)
    if fit_source:
        x_fit, y_fit = _fit_source(cfg, a, path, model, device)
        fit_idx = []
    else:
        fit, _ = attack.split(len(x), f"{path}.fit")
        fit_idx = fit.tolist()
        x_fit, y_fit = x[fit], y[fit]
    t0 = time.time()
    art = attack.fit_images(x_fit, y_fit)
    secs = time.time() - t0
    gen = torch.Generator().manual_seed(attack.seed + 1)  # controls and places: their own stream
    ctl_art = attack.control_artifact(art, gen)
    place = attack.placement(len(x), gen)
    bs = cfg.run.batch_size
    for i in range(0, len(x), bs):
        pl = None if place is None else place[i : i + bs]
        with torch.no_grad():
            adv = to_uint8(attack.apply(x[i : i + bs], art, pl))
            ctl = to_uint8(attack.apply(x[i : i + bs], ctl_art, pl))
        for info, img, cimg in zip(images_info[i : i + bs], adv, ctl, strict=True):
            write_image(adv_dir / f"{info['name']}.png", img)
            write_image(ctl_dir / f"{info['name']}.png", cimg)
    record = _write_artifact(adv_dir, art, attack, a, label)
    written = [adv_dir / f"{i['name']}.png" for i in images_info] + [ctl_dir / f"{i['name']}.png" for i in images_info]
    written += [run.root / record[k] for k in ("artifact", "picture", "pdf") if k in record]
    write_json(done, {"model": model.name, "attack": a.name, "eps": eps, "n": len(x),
                      "fit_images": [images_info[i]["name"] for i in fit_idx],
                      "fit_source": fit_source, "n_fit": len(x_fit),
                      "fit_seconds": round(secs, 2), "control_label": control, **record,
                      "files": {p.relative_to(run.root).as_posix(): file_digest(p) for p in written}})


def _intact(run, done: Path) -> bool:
    """The fit was recorded and every file it wrote is as it was written."""
    try:
        files = read_json(done)["files"]
        return all(file_digest(run.root / rel) == sha for rel, sha in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_artifact(adv_dir: Path, art: torch.Tensor, attack, a, label: str) -> dict:
    arr = art.float().cpu().numpy()
    buf = io.BytesIO()
    np.save(buf, arr)
    write_bytes(adv_dir / "artifact.npy", buf.getvalue())
    name = "patch" if attack.name == "patch" else "universal"
    write_image(adv_dir / f"{name}.png", _picture(arr, attack))
    rel = lambda p: str(Path("generate") / p.relative_to(adv_dir.parent.parent))  # noqa: E731
    record = {"artifact": rel(adv_dir / "artifact.npy"), "picture": rel(adv_dir / f"{name}.png"),
              "amplification": (None if name == "patch"
                                else round(127.5 / 255 / max(float(np.abs(arr).max()), 1e-12), 2))}
    if name == "patch":
        side = float(attack.param("patch_mm"))
        write_patch_pdf(adv_dir / "patch.pdf", adv_dir / "patch.png", side,
                        f"physical · adversarial patch {label} · target {attack.target}")
        record["pdf"] = rel(adv_dir / "patch.pdf")
        record["patch_mm"] = side
    return record
