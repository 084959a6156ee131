"""The generate stage: clean images at each model's input size, and adversarial images for every
model x attack x eps, batched on the configured device.

Writes ``generate/<model>/clean/<image>.png`` and ``generate/<model>/<attack>_eps<eps>/<image>.png``
(8-bit: what is printed is what is evaluated) and ``generate/index.json``.

Every output image is keyed by the digest of everything it was made from (`item_key`): the source
image's bytes and label, the model and its weights file, the attack's full parameters and eps, the
seed, and, for EOT and printability attacks, the channel, frame, sheet and calibration file they
draw from. ``generate/done/<key>.json`` records an image once it is written (with the digest of its
file); an image whose record is there and whose file is intact is kept, every other one is made
again. So an interrupted stage resumes where it stopped, and a changed input redoes exactly the
images it touches. Files of images the config no longer makes are removed.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physical import attacks as attacks_mod
from physical.attacks.labels import is_least_likely

from physical.channel.build import run_channel
from physical.runs import distributed
from physical.data.images import load_images, source_files
from physical.models import (availability, load_model, model_identity, model_names, predict, preprocess, to_tensor,
                             to_uint8)
from physical import runfiles
from physical.stages.generate_fitted import generate_fitted
from physical.rundir import RunDir, digest, file_digest, read_json, write_image, write_json
from physical.runtime import Eta, tune_cpu_allocator

DONE = "generate/done"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


_WEIGHTS: dict = {}


def model_id(name: str) -> dict:
    """A model as an input of the images it makes: its name, its weights file's digest (a model of
    one's own: its TorchScript or module file's) and a model of one's own's settings."""
    name = getattr(name, "name", name)  # a config entry of a model of one's own
    ok, path = availability(name)
    own = model_identity(name)
    out = {"model": name, **({"spec": own} if own else {})}
    if not ok or not Path(path).is_file():
        return out
    stat = Path(path).stat()
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _WEIGHTS:
        _WEIGHTS[key] = file_digest(path)
    return {**out, "weights": _WEIGHTS[key]}


def source_digests(cfg) -> dict:
    """What generate reads from outside the run: the source files' bytes (and labels.csv) and the
    models' weights. Cheap (no decoding): it decides whether generate must look at its items at all."""
    return {"images": source_files(cfg.images.source, Path(cfg.base_dir)),
            "models": [model_id(m) for m in model_names(cfg.models)]}


# capture.channel keys EOT does not read: the simulator's halftone (EOT's images are not screened);
# left out of EOT's keys, so setting them neither remakes EOT's images nor makes older ones stale
SIMULATOR_ONLY = ("halftone_lpi",)


def eot_channel(channel: dict) -> dict:
    """The capture.channel keys an EOT attack draws from."""
    return {k: v for k, v in channel.items() if k not in SIMULATOR_ONLY}


def attack_reads(cfg, a) -> dict:
    """The parts of the config outside `attacks` that an attack entry's images depend on."""
    out = {}
    if cfg.run.precision != "fp32":  # bf16 autocast makes other images
        out["precision"] = cfg.run.precision
    if a.eot is not None:  # EOT draws from the channel, at the cell's size in the simulator's photos
        out["channel"] = eot_channel(dataclasses.asdict(cfg.capture.channel))
        out["frame"] = list(cfg.capture.frame)
        out["sheet"] = dataclasses.asdict(cfg.sheet)
    if (a.eot is not None or a.printability > 0) and cfg.capture.channel.calibration:
        out["calibration"] = file_digest(cfg.capture.channel.calibration)
        if a.eot is not None:  # EOT's cell takes the calibration's pixels per millimetre (images made before did not)
            out["eot_scale"] = "calibrated px/mm"
    return out


def item_key(image_digest: str, label, model: dict, attack: dict | None, eps: float | None, seed: int,
             reads: dict | None = None) -> str:
    """The digest of everything one output image is made from; `attack` None: the clean image."""
    if attack is None:
        return digest({"image": image_digest, "model": model, "role": "clean"})
    params = {k: v for k, v in attack.items() if k != "eps"}
    assert eps is not None, "an attack's image has its eps"
    return digest({"image": image_digest, "label": label, "model": model, "attack": params, "eps": float(eps),
                   "seed": int(seed), "reads": reads or {}})


def is_done(run: RunDir, key: str, rel: str) -> bool:
    """The image `rel` was written for `key` and its file is as it was written."""
    rec = run.root / DONE / f"{key}.json"
    try:
        r = read_json(rec)
        return r.get("path") == rel and file_digest(run.root / rel) == r.get("sha256")
    except (OSError, ValueError):
        return False


def mark_done(run: RunDir, key: str, rel: str, extra: dict | None = None, batch: dict | None = None) -> None:
    """`extra`: what the attack reported of this image (square: its queries), kept for the index;
    `batch`: the batch it was made in ({start, images: source digests}), to make it again the same."""
    rec = {"path": rel, "sha256": file_digest(run.root / rel), "extra": extra or {}}
    write_json(run.root / DONE / f"{key}.json", rec if batch is None else dict(rec, batch=batch))


def made_in(run: RunDir, key: str, where: dict) -> tuple | None:
    """(start, image indices) of the batch an image was made in, when its record says and every image
    of that batch is still there (`where`: source digest -> index)."""
    try:
        b = read_json(run.root / DONE / f"{key}.json").get("batch")
    except (OSError, ValueError):
        return None
    if not b or not all(d in where for d in b["images"]):
        return None
    return int(b["start"]), [where[d] for d in b["images"]]


def item_extra(run: RunDir, key: str) -> dict:
    """What the attack reported of an image when it was made (another rank's images too)."""
    try:
        return read_json(run.root / DONE / f"{key}.json").get("extra") or {}
    except (OSError, ValueError):
        return {}


def write_item(run: RunDir, key: str, rel: str, img: np.ndarray, extra: dict | None = None,
               batch: dict | None = None) -> None:
    write_image(run.root / rel, img)
    mark_done(run, key, rel, extra, batch)


class _Labels:
    """A model's true labels, asked for once: where the true class is unknown, the clean top-1
    prediction stands in for it (each rank predicts its share; a collective when labels are missing)."""

    def __init__(self, model, sources, clean: np.ndarray, mine: list, device, bs: int):
        self.model, self.sources, self.clean, self.mine, self.device, self.bs = model, sources, clean, mine, device, bs
        self.labels: np.ndarray | None = None

    def __call__(self) -> np.ndarray:
        if self.labels is None:
            sources, bs = self.sources, self.bs
            known = {i: s.label for i, s in enumerate(sources) if s.label is not None}
            ask = [i for i in self.mine if i not in known]
            top: dict = {}
            for j in range(0, len(ask), bs):  # this rank's share, a batch on the device at a time
                part = ask[j : j + bs]
                x = to_tensor(self.clean[part], self.device)
                top.update(zip(part, predict(self.model, x, bs)[0][:, 0].tolist(), strict=False))
            if len(known) < len(sources):
                known.update(distributed.merge(top, "the clean predictions of generate"))
            self.labels = np.array([int(known[i]) for i in range(len(sources))])
        return self.labels


@dataclasses.dataclass
class _Job:
    """What every model x attack x eps of one generate stage shares."""
    run: RunDir
    cfg: Any
    device: Any
    sources: list
    mine: list  # this rank's share of the images
    images_info: list
    eta: Eta
    keep: set = dataclasses.field(default_factory=lambda: {"generate/index.json"})
    channel: Any = None  # the channel EOT draws from, built when an EOT entry first needs it

    def channel_for(self, a):
        if a.eot is not None and self.channel is None:
            self.channel = run_channel(self.cfg, self.device)
        return self.channel


def _work_units(cfg, n: int) -> int:
    """Units of work (image x step x EOT draw) for the time estimate, over every model, attack and eps."""
    return n * len(cfg.models) * sum(
        (1 if a.eot is None else a.eot.samples) * (a.steps or attacks_mod.Attack.kurakin_steps(e))
        if attacks_mod.ATTACKS[a.name].iterative else 1 for a in cfg.attacks for e in a.eps)


def generate_stage(run: RunDir, cfg, device: torch.device) -> dict:
    """Every rank of a torchrun job runs this on its share of the images (`distributed.shard`) and
    writes its own images; rank 0 then writes the index and removes what the config no longer makes."""
    run.stage_dir("generate")
    if torch.device(device).type == "cpu":
        tune_cpu_allocator()  # large attack batches (EOT: B x N images) without page-fault churn
    sources = load_images(cfg.images.source, cfg.images.limit, Path(cfg.base_dir))
    mine = distributed.shard(len(sources))
    images_info = [{"name": _safe(s.name), "label": s.label, "label_known": s.label is not None,
                    "label_from": s.label_from} for s in sources]
    job = _Job(run, cfg, device, sources, mine, images_info, Eta("generate", _work_units(cfg, len(mine))))
    items: list[dict] = []
    models_info: dict = {}
    made = 0
    for model_name in cfg.models:
        model = load_model(model_name, device, cfg.run.precision)
        models_info[model.name] = {"input_size": model.input_size}
        rows, n = _model_items(job, model)
        items += rows
        made += n
    made = sum(distributed.gather(made, "the end of generate"))  # every rank's images are written
    summary = {"images": len(sources), "items": len(items), "made": made,
               "unlabelled": sum(not i["label_known"] for i in images_info)}
    for it in items:
        key = it.pop("_key", None)
        if key is not None:
            it.update(item_extra(run, key))
    if distributed.current().main:
        _remove_unlisted(run, job.keep)
        runfiles.save_index(run, runfiles.RunIndex(models_info, images_info, items))
    return summary


def _model_items(job: _Job, model) -> tuple[list[dict], int]:
    """One model's clean images and every attack entry's images: (index rows, images made here)."""
    cfg, sources = job.cfg, job.sources
    mid = model_id(model.name)
    clean = np.stack([preprocess(s.rgb, model.input_size, model.resize_ratio) for s in sources])
    _write_clean(job, model, mid, clean)
    true_labels = _Labels(model, sources, clean, job.mine, job.device, cfg.run.batch_size)
    items: list[dict] = []
    made = 0
    for i_attack, a in enumerate(cfg.attacks):
        reads = attack_reads(cfg, a)
        if attacks_mod.ATTACKS[a.name].fitted:  # uap, patch: fitted once on some images, applied to all
            channel = job.channel_for(a)
            if distributed.current().main:  # one fit per entry: rank 0's, the other ranks go on
                items += generate_fitted(job.run, cfg, i_attack, a, model, mid, sources, clean, true_labels(),
                                         job.images_info, channel, reads, DONE, job.keep)
            continue
        params = attacks_mod.key_params(a)
        for eps in a.eps:
            rows, n = _eps_items(job, model, mid, clean, true_labels, a, params, eps, reads)
            items += rows
            made += n
    return items, made


def _write_clean(job: _Job, model, mid: dict, clean: np.ndarray) -> None:
    """The clean images at the model's input size: each rank writes every world-th one."""
    world = distributed.current()
    for i, (s, info, img) in enumerate(zip(job.sources, job.images_info, clean, strict=True)):
        rel, key = f"generate/{model.name}/clean/{info['name']}.png", item_key(s.digest, None, mid, None, None, 0)
        job.keep.update((rel, f"{DONE}/{key}.json"))
        if i % world.world == world.rank and not is_done(job.run, key, rel):
            write_item(job.run, key, rel, img)


def _eps_items(job: _Job, model, mid: dict, clean: np.ndarray, true_labels: _Labels, a, params: dict, eps,
               reads: dict) -> tuple[list[dict], int]:
    """One attack entry at one eps: this rank's images that are not done made, and the index rows of
    every image (every rank's); (rows, images made here)."""
    label = attacks_mod.label_of(a, eps)
    rels = [f"generate/{model.name}/{label}/{info['name']}.png" for info in job.images_info]
    keys = [item_key(s.digest, s.label, mid, params, eps, job.cfg.run.seed, reads) for s in job.sources]
    job.keep.update(rels)
    job.keep.update(f"{DONE}/{k}.json" for k in keys)
    y_all = true_labels()  # every rank asks at the same point (a collective when labels are missing)
    todo = [i for i in job.mine if not is_done(job.run, keys[i], rels[i])]
    if todo:
        channel = job.channel_for(a)
        attack = attacks_mod.make_attack(a, model, eps, channel=channel, seed=job.cfg.run.seed, cfg=job.cfg)
        _attack_batches(job, attack, f"{model.name} {label}", clean, y_all, todo, keys, rels)
    rows = [_index_row(model.name, a, eps, label, info, rel, key, lab)
            for info, rel, key, lab in zip(job.images_info, rels, keys, y_all, strict=True)]
    return rows, len(todo)


def _batches(job: _Job, todo: list, keys: list) -> dict[tuple, int]:
    """The batches to make `todo` in, image indices -> start. A conv's sums, and so a gradient's sign
    near zero, follow the batch: an image is made again in the batch it was made in (its record), else
    in the fixed batch over this rank's images an uninterrupted run makes it in."""
    bs, mine = job.cfg.run.batch_size, job.mine
    where = {src.digest: i for i, src in enumerate(job.sources)}
    batches: dict[tuple, int] = {}
    for i in todo:
        j = mine.index(i) // bs * bs
        j, sel = made_in(job.run, keys[i], where) or (j, mine[j : j + bs])
        batches.setdefault(tuple(sel), j)
    return batches


def _attack_batches(job: _Job, attack, desc: str, clean: np.ndarray, y_all: np.ndarray, todo: list,
                    keys: list, rels: list) -> None:
    """Make the images `todo` batch by batch, each batch with its own random stream."""
    device, sources = job.device, job.sources
    work = attack.steps * attack.eot_samples if attack.iterative else 1
    left = set(todo)
    untold = [0.0]  # units of this batch the progress bar has not been told of (it hears of every step)

    def tick(units: float) -> None:
        units = min(float(units), untold[0])
        untold[0] -= units
        job.eta.done(units)

    attack.on_gradient = tick
    job.eta.describe(desc)
    for sel_t, j in _batches(job, todo, keys).items():
        sel = list(sel_t)
        untold[0] = float(len(sel) * work)
        made_with = {"start": j, "images": [sources[i].digest for i in sel]}
        attack.reseed(j)
        x = to_tensor(clean[sel], device)  # one batch on the device at a time
        adv = to_uint8(attack(x, torch.as_tensor(y_all[sel], device=device)))
        infos = attack.item_info()
        for i, img, extra in zip(sel, adv, infos, strict=True):  # extra: what the attack reports (queries, targets)
            if i in left:
                left.discard(i)  # once, should two recorded batches hold it
                write_item(job.run, keys[i], rels[i], img, extra, made_with)
        job.eta.done(untold[0])  # what the steps did not tell (a one-step or black-box attack: all of it)
    attack.on_gradient = None


def _index_row(model: str, a, eps, label: str, info: dict, rel: str, key: str, lab) -> dict:
    return {
        "key": f"{model}/{label}/{info['name']}",
        "model": model,
        "attack": a.name,
        "attack_label": label,
        "eot": a.eot is not None,
        "printability": a.printability,
        "tv": a.tv,
        "target": None if is_least_likely(a.target) else a.target,  # per image: the attack's item_info
        "eps": eps,
        "image": info["name"],
        "label": int(lab),
        "label_known": info["label_known"],
        "clean": f"generate/{model}/clean/{info['name']}.png",
        "adv": rel,
        "_key": key,  # for what the attack reported of it, read once every rank is done
    }


def _remove_unlisted(run: RunDir, keep: set[str]) -> None:
    """Remove the images (and their records) of items the config no longer makes: the stage's folder
    then holds exactly what this config made, whatever ran before."""
    root = run.root / "generate"
    for p in sorted(root.rglob("*"), reverse=True):
        rel = p.relative_to(run.root).as_posix()
        if p.is_file() and not p.name.startswith(".") and rel not in keep:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()
