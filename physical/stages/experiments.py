"""The experiments stage: artificial transformations, defences (and adaptive attacks on them),
transfer between models, and generalisation of perturbations across images.

Everything starts from what earlier stages wrote: the 8-bit clean and adversarial images of
``generate/`` (an attack is computed once and feeds every transformation, defence and target
model), the predictions of ``classify/`` (the untransformed, undefended figures) and the best
accepted photo crops of ``align/`` (the photo columns; absent without photos).

Work is batched per model, and every computed set of predictions and every adaptive adversarial
batch is cached under ``experiments/cache/<stamp>/`` (the stamp follows the generate stage, and
predictions on photo crops also carry the align stage's, so images that changed are never mixed
with old results): running the stage again after
adding a transformation, a defence or a target model computes only what is new.

Writes ``experiments/{transformations,defences,transfer,generalisation}.json``; the report stage
reads them (report.json sections of the same names, CSV tables, HTML sections).
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from collections import defaultdict
from typing import Callable, Optional

import cv2
import numpy as np
import torch

from physical import attacks as attacks_mod
from physical.models.classify import pred_list
from physical.runs import distributed
from physical.stages.classify import best_crops, load_records
from physical.channel.build import run_channel
from physical.log import say
from physical.measure.metrics import accuracy, destruction
from physical.models import load_model, model_names, predict, to_tensor, to_uint8
from physical import runfiles
from physical.rundir import RunDir, read_image, read_json, write_bytes, write_json
from physical.runtime import Eta
from physical.transforms.artificial import TRANSFORMATIONS, apply_transformation
from physical.transforms.defences import Defended, Expectation, make_defence
from physical.transforms.ops import seeded_generator
from physical.experiments import section
from physical.experiments.digits import run_digits

SUBS = ("transformations", "defences", "transfer", "generalisation", "digits")


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _fit(img: np.ndarray, size: int) -> np.ndarray:
    """An image at the model's input size, resized as the classify stage does."""
    return img if img.shape[:2] == (size, size) else cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


class Context:
    """What every sub-experiment shares: the run's items, records, crops, images and caches."""

    def __init__(self, run: RunDir, cfg, device):
        self.run, self.cfg, self.device = run, cfg, device
        self.bs = cfg.run.batch_size
        self.index = runfiles.load_index(run)
        self.items = self.index.items
        self.records = {r["key"]: r for r in load_records(run)}
        self.crops = best_crops(run)
        only = set(section(cfg).attacks)
        if only:  # experiments.attacks: names or labels
            self.items = [it for it in self.items if it["attack"] in only or it["attack_label"] in only]
        self.by_model: dict[str, list[dict]] = defaultdict(list)
        for it in self.items:
            self.by_model[it["model"]].append(it)
        # the cache follows the images: the generate stage's run for everything, and the align stage's
        # run too for predictions made on photo crops (a new align keeps the digital results)
        gen, ali = run.status("generate"), run.status("align")
        # (by their outputs' digests where the runner recorded them: the same images keep their results)
        self.stamp = _sha([gen.get("outputs_digest") or gen.get("time"), gen.get("config")])
        self.align_stamp = _sha([ali.get("outputs_digest") or ali.get("time"), ali.get("config")])
        root = run.root / "experiments" / "cache"
        self.cache = root / self.stamp
        if root.is_dir():  # results of images that no longer exist
            for d in root.iterdir():
                if d.is_dir() and d.name != self.stamp:
                    shutil.rmtree(d, ignore_errors=True)
        self._images: dict[str, np.ndarray] = {}
        self.computed = 0  # images classified in this call (the rest came from the cache)
        self.cached = 0
        self.eta: Optional[Eta] = None  # told of every batch classified (the stage's remaining time)

    # -- images and predictions -------------------------------------------------------------
    def image(self, path: str) -> np.ndarray:
        """An 8-bit image of the run; clean images (shared by every attack) are kept in memory."""
        if path in self._images:
            return self._images[path]
        img = read_image(self.run.root / path)
        if "/clean/" in path:
            self._images[path] = img
        return img

    def model(self, name: str):
        return load_model(name, self.device, self.cfg.run.precision)

    def predict_arrays(self, model, tag: str, key, n: int, make: Callable[[int, int], np.ndarray],
                       transform: Optional[Callable] = None) -> list[dict]:
        """Top-5 of n uint8 images made batch by batch by make(start, stop), through `transform`
        (a [0,1] batch function, result rounded to 8 bits) and `model`; cached under (model, tag, key)."""
        path = self.cache / "preds" / f"{_sha([model.name, tag, key])}.json"
        if path.is_file():
            data = read_json(path)
            if data.get("n") == n:
                self.cached += n
                return data["preds"]
        parts = {}  # batch start -> predictions; under torchrun each rank makes its share of the batches
        starts = list(range(0, n, self.bs))
        for start in (starts[i] for i in distributed.shard(len(starts))):
            stop = min(n, start + self.bs)
            x = to_tensor(np.ascontiguousarray(make(start, stop)), self.device)
            if transform is not None:
                x = to_tensor(to_uint8(transform(x, start)), self.device)
            top, prob = predict(model, x, self.bs)
            parts[start] = pred_list(top, prob)
            if self.eta is not None:
                self.eta.done(stop - start)
        parts = distributed.merge(parts, "the experiments' predictions")
        out = [p for start in starts for p in parts[start]]
        self.computed += n
        write_json(path, {"model": model.name, "tag": tag, "n": n, "preds": out})
        return out

    def predict_paths(self, model, tag: str, paths: list[str], transform=None, before=None) -> dict[str, dict]:
        """path -> prediction for the run's images (resized to the model, as the classify stage does)."""
        paths = list(dict.fromkeys(paths))
        size = model.input_size

        def make(a, b):
            if before is not None:
                before(paths[a])
            return np.stack([_fit(self.image(p), size) for p in paths[a:b]])

        tf = None if transform is None else (lambda x, start: transform(x, paths[start]))
        key = [paths, self.align_stamp] if any(p.startswith("align/") for p in paths) else paths
        return dict(zip(paths, self.predict_arrays(model, tag, key, len(paths), make, tf), strict=False))

    def photo_paths(self, items: list[dict]) -> list[str]:
        return [self.crops[k] for it in items for k in ((it["key"], "clean"), (it["key"], "adv")) if k in self.crops]

    def groups(self, items: list[dict]) -> dict[str, list[dict]]:
        """attack_label -> items, in index order."""
        g: dict[str, list[dict]] = defaultdict(list)
        for it in items:
            g[it["attack_label"]].append(it)
        return g


def _acc(recs, cond, k):
    return accuracy(recs, cond, k)["acc"]


def _rec(it: dict, base: dict, **preds) -> dict:
    """A record with the classify stage's predictions and extra conditions."""
    p = dict(base["pred"])
    p.update(preds)
    return {"key": it["key"], "label": it["label"], "pred": p}


# ----------------------------------------------------------------------------------------------
# 1. artificial transformations


def transformations(ctx: Context, tc) -> dict:
    rows = []
    for model_name, items in ctx.by_model.items():
        model = ctx.model(model_name)
        # every clean image once (it is shared by all attacks) and every adversarial image
        paths = [p for it in items for p in (it["clean"], it["adv"])]
        for name, strengths in tc.sweeps.items():
            for s in strengths:
                def tf(x, first, name=name, s=s):
                    return apply_transformation(x, name, s, seeded_generator("transformation", name, s, first))

                preds = ctx.predict_paths(model, f"transformation:{name}:{s:g}", paths, tf)
                for label, group in ctx.groups(items).items():
                    recs = [_rec(it, ctx.records[it["key"]], t_clean=preds[it["clean"]], t_adv=preds[it["adv"]])
                            for it in group]
                    row = {"model": model_name, "attack": group[0]["attack"], "attack_label": label,
                           "eps": group[0]["eps"], "transformation": name, "strength": s, "n": len(recs)}
                    for k in (1, 5):
                        row[f"clean_top{k}"] = _acc(recs, "t_clean", k)
                        row[f"adv_top{k}"] = _acc(recs, "t_adv", k)
                        d = destruction(recs, k, "t_adv")
                        row[f"destruction_top{k}"] = d["rate"]
                        row[f"destruction_n_top{k}"] = d["n"]
                    rows.append(row)
    units = {n: {"unit": t.unit, "range": [t.lo, t.hi], "identity": t.identity} for n, t in TRANSFORMATIONS.items()
             if n in tc.sweeps}
    untransformed = []  # the classify stage's figures: where every curve starts (identity strength)
    for model_name, items in ctx.by_model.items():
        for label, group in ctx.groups(items).items():
            recs = [ctx.records[it["key"]] for it in group]
            untransformed.append({"model": model_name, "attack_label": label, "n": len(recs),
                                  **{f"{c}_top{k}": _acc(recs, f"digital_{c}", k)
                                     for c in ("clean", "adv") for k in (1, 5)}})
    return {"rows": rows, "transformations": units, "untransformed": untransformed,
            "note": "applied to the 8-bit clean and adversarial images, rounded to 8 bits again, classified by the "
                    "model the images were made for; destruction rate as in Kurakin et al. Eq. 1 with T = the "
                    "transformation (average case)"}


# ----------------------------------------------------------------------------------------------
# 2. defences


def _adaptive_specs(ctx: Context, dc) -> list:
    if "none" in dc.adaptive and "all" not in dc.adaptive:
        return []
    return [a for a in ctx.cfg.attacks if "all" in dc.adaptive or a.name in dc.adaptive]


def adaptive_adversarial(ctx: Context, defended, dc, a, eps: float, items: list[dict]) -> np.ndarray:
    """Adversarial images of the attack `a` at eps made against the defended model (EOT over its
    randomness, straight-through gradients), uint8 NHWC in the order of items; cached."""
    label = attacks_mod.label_of(a, eps)
    path = ctx.cache / "adaptive" / items[0]["model"] / defended.defence.label / f"{label}.npz"
    names = [it["image"] for it in items]
    key = _sha([attacks_mod.key_params(a), eps, names, dc.eot_samples, dc.seed, ctx.cfg.run.seed])
    if path.is_file():
        data = np.load(path)
        if str(data["key"]) == key:
            return data["adv"]
    channel = run_channel(ctx.cfg, ctx.device) if a.eot is not None else None
    model = Expectation(defended, dc.eot_samples)
    attack = attacks_mod.make_attack(a, model, eps, channel=channel, seed=ctx.cfg.run.seed, cfg=ctx.cfg)
    defended.defence.reseed("attack", dc.seed, label)
    x = to_tensor(np.stack([ctx.image(it["clean"]) for it in items]), ctx.device)
    y = torch.as_tensor([it["label"] for it in items], device=ctx.device)
    # the attack batch holds eot_samples x views images per input image
    per = max(1, model.samples * defended.defence.views * (a.eot.samples if a.eot is not None else 1))
    bs = max(1, ctx.bs // per)
    adv = np.concatenate([to_uint8(attack(x[i : i + bs], y[i : i + bs])) for i in range(0, len(x), bs)])
    buf = io.BytesIO()
    np.savez_compressed(buf, adv=adv, names=np.array(names), key=np.array(key))
    write_bytes(path, buf.getvalue())
    return adv


def defences(ctx: Context, dc) -> dict:
    rows: list[dict] = []
    adaptive_info: list[dict] = []
    for model_name, items in ctx.by_model.items():
        model = ctx.model(model_name)
        groups = ctx.groups(items)
        photo_paths = ctx.photo_paths(items)
        for spec in dc.use:
            defence = make_defence(**spec).to(ctx.device)
            defended = Defended(model, defence)
            reseed = lambda first, defence=defence: defence.reseed("eval", dc.seed, first)  # noqa: E731
            tag = f"defended:{dc.seed}" if defence.randomised else "defended"
            preds = {"digital": ctx.predict_paths(defended, tag, [p for it in items for p in (it["clean"], it["adv"])],
                                                  before=reseed),
                     "photo": ctx.predict_paths(defended, tag, photo_paths, before=reseed) if photo_paths else {}}
            adaptive = _adaptive(ctx, dc, defended, defence, reseed, tag, groups, model_name, adaptive_info)
            rows += [_defence_row(ctx, model_name, spec, defence.label, label, group, preds, adaptive.get(label, {}),
                                  label in adaptive) for label, group in groups.items()]
    return {"rows": rows, "adaptive": adaptive_info, "eot_samples": dc.eot_samples,
            "note": "accuracy without and with the defence; lost = clean accuracy given up, recovered = adversarial "
                    "accuracy won back (both in fractions; photos: the best accepted crops). The adaptive column "
                    "attacks the defended model itself (same attack and eps; EOT over a randomised defence's "
                    "draws, straight-through gradients through non-differentiable ones); its images are not "
                    "printed, so it has no photo column."}


def _adaptive(ctx: Context, dc, defended, defence, reseed, tag: str, groups: dict, model_name: str,
              info: list[dict]) -> dict[str, dict]:
    """Adaptive attacks: one per attack config and eps, on the distinct clean images; label -> item
    key -> predictions (each attack's figures appended to `info`)."""
    adaptive: dict[str, dict] = {}
    for a in _adaptive_specs(ctx, dc):
        for eps in a.eps:
            label = attacks_mod.label_of(a, eps)
            group = groups.get(label)
            if not group:
                continue
            t0 = time.time()
            adv = adaptive_adversarial(ctx, defended, dc, a, eps, group)

            def make(s, e, adv=adv, g=group):
                reseed(g[s]["adv"])
                return adv[s:e]

            preds = ctx.predict_arrays(defended, tag, ["adaptive", label, adv_key(adv)], len(adv), make)
            adaptive[label] = dict(zip([it["key"] for it in group], preds, strict=True))
            info.append({"model": model_name, "defence": defence.label, "attack_label": label,
                         "eot_samples": dc.eot_samples if defence.randomised else 1,
                         "straight_through": not defence.differentiable, "seconds": round(time.time() - t0, 2)})
    return adaptive


def _defence_row(ctx: Context, model_name: str, spec: dict, dlabel: str, label: str, group: list[dict],
                 preds: dict, adaptive: dict, has_adaptive: bool) -> dict:
    """One defence x attack label's row: accuracies without and with it, what it loses and wins back."""
    digital, photo = preds["digital"], preds["photo"]
    recs = [_rec(it, ctx.records[it["key"]], def_clean=digital[it["clean"]], def_adv=digital[it["adv"]],
                 def_photo_clean=photo.get(ctx.crops.get((it["key"], "clean"))),
                 def_photo_adv=photo.get(ctx.crops.get((it["key"], "adv"))), adaptive_adv=adaptive.get(it["key"]))
            for it in group]
    row = {"model": model_name, "defence": dlabel, "defence_name": spec["name"],
           "params": {k: v for k, v in spec.items() if k != "name"},
           "attack": group[0]["attack"], "attack_label": label, "eps": group[0]["eps"],
           "n": len(recs), "n_photo": accuracy(recs, "photo_adv", 1)["n"], "adaptive": has_adaptive}
    for k in (1, 5):
        t = f"_top{k}"
        v = {c: _acc(recs, c, k) for c in ("digital_clean", "def_clean", "digital_adv", "def_adv", "adaptive_adv",
                                           "photo_clean", "def_photo_clean", "photo_adv", "def_photo_adv")}
        row.update({f"clean{t}": v["digital_clean"], f"defended_clean{t}": v["def_clean"], f"adv{t}": v["digital_adv"],
                    f"defended_adv{t}": v["def_adv"], f"adaptive_adv{t}": v["adaptive_adv"],
                    f"photo_clean{t}": v["photo_clean"], f"defended_photo_clean{t}": v["def_photo_clean"],
                    f"photo_adv{t}": v["photo_adv"], f"defended_photo_adv{t}": v["def_photo_adv"]})
        row[f"clean_lost{t}"] = _diff(v["digital_clean"], v["def_clean"])
        row[f"adv_recovered{t}"] = _diff(v["def_adv"], v["digital_adv"])
        row[f"adaptive_recovered{t}"] = _diff(v["adaptive_adv"], v["digital_adv"])
        row[f"photo_clean_lost{t}"] = _diff(v["photo_clean"], v["def_photo_clean"])
        row[f"photo_adv_recovered{t}"] = _diff(v["def_photo_adv"], v["photo_adv"])
    return row


def adv_key(adv: np.ndarray) -> str:
    """A short digest of an image batch (the cache key of predictions made on it)."""
    return hashlib.sha256(adv.tobytes()).hexdigest()[:20]


def _diff(a, b):
    return None if a is None or b is None else a - b


# ----------------------------------------------------------------------------------------------
# 3. transfer


def transfer(ctx: Context, tc) -> dict:
    targets = list(dict.fromkeys([*model_names(ctx.cfg.models), *tc.models]))
    sources = list(ctx.by_model)
    rows = []
    for target in targets:
        model = None
        for source in sources:
            items = ctx.by_model[source]
            if source == target:  # white-box: the classify stage's predictions, nothing to compute
                preds = {it["key"]: ctx.records[it["key"]]["pred"] for it in items}
                get = lambda it, c, preds=preds: preds[it["key"]][  # noqa: E731
                    {"clean": "digital_clean", "adv": "digital_adv"}.get(c, c)]
            else:
                model = model or ctx.model(target)
                digital = ctx.predict_paths(model, "plain", [p for it in items for p in (it["clean"], it["adv"])])
                photo_paths = [ctx.crops[(it["key"], "adv")] for it in items if (it["key"], "adv") in ctx.crops]
                photo = ctx.predict_paths(model, "plain", photo_paths) if photo_paths else {}

                def get(it, c, digital=digital, photo=photo):
                    if c in ("clean", "adv"):
                        return digital[it[c]]
                    return photo.get(ctx.crops.get((it["key"], "adv")))
            for label, group in ctx.groups(items).items():
                recs = [{"key": it["key"], "label": it["label"],
                         "pred": {c: get(it, c) for c in ("clean", "adv", "photo_adv")}} for it in group]
                row = {"source": source, "target": target, "white_box": source == target,
                       "attack": group[0]["attack"], "attack_label": label, "eps": group[0]["eps"],
                       "n": len(recs), "n_photo": accuracy(recs, "photo_adv", 1)["n"]}
                for k in (1, 5):
                    for c in ("clean", "adv", "photo_adv"):
                        row[f"{c}_top{k}"] = _acc(recs, c, k)
                rows.append(row)
    return {"rows": rows, "sources": sources, "targets": targets,
            "note": "adversarial images made on the source model, classified by the target model (resized to its "
                    "input size as the classify stage does) and the photos of them (best accepted crops); the diagonal "
                    "(source = target) is the white-box figure of the classify stage. "
                    "Images without a true class use the source model's clean top-1 as their label"}


# ----------------------------------------------------------------------------------------------
# 4. generalisation across images


def generalisation(ctx: Context, gc) -> dict:
    rows = []
    for model_name, items in ctx.by_model.items():
        model = ctx.model(model_name)
        for label, group in ctx.groups(items).items():
            group = group[: gc.max_images]
            n = len(group)
            clean = np.stack([ctx.image(it["clean"]) for it in group]).astype(np.int16)
            delta = np.stack([ctx.image(it["adv"]) for it in group]).astype(np.int16) - clean
            eps = float(group[0]["eps"])
            labels = [it["label"] for it in group]

            def pairs(a, b, clean=clean, delta=delta, n=n):  # p = j * n + i: image i's perturbation on image j
                return np.stack([np.clip(clean[p // n] + delta[p % n], 0, 255).astype(np.uint8) for p in range(a, b)])

            r = gc.random_draws
            signs: dict = {}

            def random(a, b, r=r, signs=signs, label=label, clean=clean, eps=eps):  # draw q = j * r + d
                out = []
                for q in range(a, b):
                    j, d = divmod(q, r)
                    if q not in signs:
                        g = seeded_generator("random-sign", ctx.cfg.run.seed, label, j, d)
                        signs[q] = torch.randint(0, 2, clean.shape[1:], generator=g).numpy().astype(np.int16) * 2 - 1
                    out.append(np.clip(clean[j] + np.round(eps * signs[q]), 0, 255).astype(np.uint8))
                return np.stack(out)

            keys = [it["key"] for it in group]
            pp = ctx.predict_arrays(model, "generalisation", [label, keys], n * n, pairs)
            rp = ctx.predict_arrays(model, "random-sign", [label, keys, r, ctx.cfg.run.seed], n * r, random)
            row = {"model": model_name, "attack": group[0]["attack"], "attack_label": label, "eps": eps,
                   "n_images": n, "random_draws": r}
            for k in (1, 5):
                ok = [labels[j] in ctx.records[keys[j]]["pred"]["digital_clean"]["top"][:k] for j in range(n)]
                own = [labels[j] not in pp[j * n + j]["top"][:k] for j in range(n) if ok[j]]
                cross = [labels[j] not in pp[j * n + i]["top"][:k]
                         for j in range(n) for i in range(n) if i != j and ok[j]]
                rnd = [labels[j] not in rp[j * r + d]["top"][:k] for j in range(n) for d in range(r) if ok[j]]
                row[f"own_fool_top{k}"] = _mean(own)
                row[f"cross_fool_top{k}"] = _mean(cross)
                row[f"random_fool_top{k}"] = _mean(rnd)
                row[f"n_clean_correct_top{k}"] = sum(ok)
                row[f"n_pairs_top{k}"] = len(cross)
            rows.append(row)
    return {"rows": rows,
            "note": "fool rate = fraction of images j, correctly classified when clean, that the perturbed image "
                    "makes wrong (top-1: not the true class; top-5: not among the five). own: image j's own "
                    "perturbation; cross: the perturbation of every other image i (i != j) added to j; random: "
                    "random-sign perturbations of the same eps"}


def planned(ctx: Context, subs: dict) -> int:
    """Images the switched-on sub-experiments will classify if nothing is cached (the unit of the
    stage's time estimate; adaptive attacks' gradient steps are not counted, so it errs short there)."""
    total = 0
    for source, items in ctx.by_model.items():
        digital, photo = 2 * len(items), len(ctx.photo_paths(items))
        tf, dc, tr, gc = (subs.get(k) for k in ("transformations", "defences", "transfer", "generalisation"))
        total += digital * sum(len(v) for v in tf.sweeps.values()) if tf else 0
        total += len(dc.use) * (digital + photo + len(items) * bool(_adaptive_specs(ctx, dc))) if dc else 0
        others = [t for t in dict.fromkeys([*model_names(ctx.cfg.models), *tr.models]) if t != source] if tr else []
        total += len(others) * (digital + photo // 2)
        total += sum(len(g) * (len(g) + gc.random_draws) for g in ctx.groups(items).values()) if gc else 0
    return total


def _mean(v):
    return sum(v) / len(v) if v else None


# ----------------------------------------------------------------------------------------------


def experiments_stage(run: RunDir, cfg, device, log=say) -> dict:
    ex = section(cfg)
    out = run.stage_dir("experiments")
    summary: dict = {}
    todo = {
        "transformations": (ex.enabled and ex.transformations.enabled and bool(ex.transformations.sweeps),
                            transformations, ex.transformations),
        "defences": (ex.enabled and ex.defences.enabled and bool(ex.defences.use), defences, ex.defences),
        "transfer": (ex.enabled and ex.transfer.enabled, transfer, ex.transfer),
        "generalisation": (ex.enabled and ex.generalisation.enabled, generalisation, ex.generalisation),
    }
    ctx = Context(run, cfg, device) if any(v[0] for v in todo.values()) else None
    if ctx is not None:
        ctx.eta = Eta("experiments", planned(ctx, {k: v[2] for k, v in todo.items() if v[0]})
                      / distributed.current().world, log, unit="image")
    for name, (on, fn, sub) in todo.items():
        path = out / f"{name}.json"
        if not on:
            path.unlink(missing_ok=True)  # an old result of a sub-experiment now switched off
            continue
        t0 = time.time()
        assert ctx is not None  # made when any sub-experiment is on
        before = ctx.computed
        result = fn(ctx, sub)
        result["seconds"] = round(time.time() - t0, 2)
        result["images_classified"] = ctx.computed - before
        write_json(path, result)
        summary[name] = f"{len(result['rows'])} rows, {result['seconds']:.1f}s"
    dpath = out / "digits.json"
    if ex.enabled and ex.digits.enabled:
        t0 = time.time()
        res = run_digits(ex.digits)
        res["seconds"] = round(time.time() - t0, 2)
        write_json(dpath, res)
        summary["digits"] = f"{len(res['rows'])} models, {res['seconds']:.1f}s"
    else:
        dpath.unlink(missing_ok=True)
    if ctx is not None:
        summary["classified"] = ctx.computed
        summary["from_cache"] = ctx.cached
    return summary
