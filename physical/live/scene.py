"""A printed patch in a scene (`physical scene`): every frame of a camera, a phone stream or a
recorded video classified, whole and in a region the user draws, and the fraction of frames whose
top-1 is the patch's target class, per second and overall, with an interval that accounts for
neighbouring frames being alike (:mod:`physical.measure.frames`: Wilson on the means of blocks of
`block_s` seconds).

Frames are classified in batches: the whole frame (the model's resize and centre crop) and the
region (its shorter side scaled to the model's input, the longer one centre-cropped: no margin
trimmed) go through one forward pass. From a recorded video (`score_video`) every frame is read,
as fast as it decodes, its time the video's (frame / fps). Live (`SceneView`, the live view's
display loop, overlay and page), the frames that arrived while the model was busy are the next
batch, their time the time they arrived; frames beyond `queue` waiting are dropped and counted.
On the live page the user draws the region with the mouse (or clears it): it is classified from the
next batch on, and each frame's row names the region it was scored with (frames.csv `region`); the
region's figures count only the frames scored with a region.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional

import cv2
import numpy as np
import torch

from physical.capture import draw
from physical.errors import ConfigError
from physical.live import LiveView, lower_priority
from physical.log import say
from physical.measure.frames import CORRELATED, block_rate, per_second
from physical.models import class_index, class_names, predict, preprocess, to_tensor
from physical.report.tables import flat_csv

VIEWS = {"frame": "", "region": "region_"}  # view -> its columns' prefix in frames.csv
FIELDS = ["frame", "time_s", "defence", "region"] + [f"{p}{c}" for p in VIEWS.values()
                                           for c in ("top1", "top1_name", "target_prob", "target_hit", "true_rank")]


@dataclass(frozen=True)
class SceneTarget:
    """What is measured: the target class, the object's true class (optional), the region (x, y, w, h
    in frame pixels; optional)."""

    target: int
    true: Optional[int] = None
    region: Optional[tuple[int, int, int, int]] = None


def check_region(region: Optional[tuple[int, int, int, int]], shape: tuple) -> None:
    """The region lies inside the frame (known once the first frame is read); ConfigError otherwise."""
    if region is None:
        return
    x, y, w, h = region
    fh, fw = shape[:2]
    if x + w > fw or y + h > fh:
        raise ConfigError(f"--region {x},{y},{w},{h}: reaches outside the {fw}x{fh} frame "
                          f"(x + w must be <= {fw}, y + h <= {fh})")


def parse_region(text: str) -> tuple[int, int, int, int]:
    """'x,y,w,h' (frame pixels) -> a tuple; ConfigError naming --region otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    example = "expected x,y,w,h in pixels of the frame, e.g. 100,80,320,240"
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"--region {text!r}: {example}")
    x, y, w, h = (int(p) for p in parts)
    if w < 8 or h < 8:
        raise ConfigError(f"--region {text!r}: width and height must be at least 8 pixels")
    return x, y, w, h


def class_arg(text: str, flag: str) -> int:
    """A class on the command line, by index or by name; ConfigError naming the flag."""
    s = str(text).strip()
    return class_index(int(s) if s.lstrip("-").isdigit() else s, flag)


class SceneScorer:
    """Classifies batches of frames and turns the predictions into frames.csv's rows. The region
    starts as the target's (--region) and can be drawn anew on the live page (`set_region`)."""

    def __init__(self, target: SceneTarget, top_k: int = 5):
        self.target = target
        self.top_k = top_k
        self.names = class_names()
        self.region = target.region
        self.frame_shape: Optional[tuple] = None

    def first_frame(self, shape: tuple) -> None:
        """The frame's size, known once the first frame is read: --region must lie inside it."""
        check_region(self.target.region, shape)
        self.frame_shape = tuple(shape)

    def set_region(self, text: str) -> str:
        """A region drawn on the page ('x,y,w,h' in frame pixels; '' clears it): what was set, in one
        line; ConfigError for a region that is malformed or leaves the frame (the region is kept)."""
        if not str(text).strip():
            self.region = None
            return "region cleared: the whole frame only, from the next frames"
        region = parse_region(text)
        if self.frame_shape is None:
            raise ConfigError(f"--region {text!r}: no frame has been read yet: draw it once the stream shows one")
        check_region(region, self.frame_shape)
        self.region = region
        return f"region {','.join(map(str, region))}: classified from the next frames"

    def score(self, model, frames: list[np.ndarray], indices: list[int], times: list[float],
              defence: str = "none") -> tuple[list[dict], list]:
        """Rows for `frames` (one forward pass for every view of every frame), and the last frame's
        top-k as the live overlay draws it ([index, name, probability] each)."""
        size, ratio = model.input_size, getattr(model, "resize_ratio", 0.875)
        images = [preprocess(f, size, ratio) for f in frames]
        region = self.region  # one region for the whole batch, however the page changes it meanwhile
        if region is not None:
            x, y, w, h = region
            images += [preprocess(f[y : y + h, x : x + w], size, 1.0) for f in frames]
        top, prob = predict(model, to_tensor(images, model.device), batch_size=len(images), k=len(self.names))
        n = len(frames)
        cols: dict[str, Any] = {"frame": indices, "time_s": np.round(times, 3), "defence": [defence] * n,
                                "region": [",".join(map(str, region)) if region else ""] * n}
        for k, prefix in enumerate(VIEWS.values()):
            if k * n >= len(top):
                break
            cols.update(self._view(top[k * n : (k + 1) * n], prob[k * n : (k + 1) * n], prefix))
        rows = [{c: _plain(v[i]) for c, v in cols.items()} for i in range(n)]
        last = [[int(c), self.names[int(c)], float(p)] for c, p in zip(top[n - 1, : self.top_k],
                                                                       prob[n - 1, : self.top_k], strict=True)]
        return rows, last

    def _view(self, top: np.ndarray, prob: np.ndarray, prefix: str) -> dict[str, Any]:
        """One view's columns from its sorted predictions (every class, best first)."""
        t = self.target
        out: dict[str, Any] = {f"{prefix}top1": top[:, 0], f"{prefix}top1_name": [self.names[c] for c in top[:, 0]],
                               f"{prefix}target_prob": np.round(prob[top == t.target].astype(np.float64), 5),
                               f"{prefix}target_hit": (top[:, 0] == t.target).astype(int)}
        if t.true is not None:
            out[f"{prefix}true_rank"] = np.argmax(top == t.true, axis=1) + 1
        return out


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


class SceneLog:
    """Every scored frame's row; the running rate the overlay shows; frames.csv and summary.json."""

    def __init__(self, target: SceneTarget, block_s: float = 1.0):
        self.target = target
        self.block_s = block_s
        self.rows: list[dict] = []
        self._lock = threading.Lock()

    def add(self, rows: list[dict]) -> None:
        with self._lock:
            self.rows.extend(rows)

    def column(self, name: str, rows: Optional[list[dict]] = None) -> np.ndarray:
        return np.array([r[name] for r in (self.rows if rows is None else rows)], np.float64)

    def running(self) -> dict:
        """The target's rate so far and over the last second, per view (the live overlay)."""
        with self._lock:
            rows = list(self.rows)
        out: dict[str, Any] = {"n": len(rows)}
        if not rows:
            return out
        end = rows[-1]["time_s"]
        for view, prefix, scored in self._views(rows):
            hit = self.column(f"{prefix}target_hit", scored)
            recent = self.column("time_s", scored) > end - 1.0
            out[view] = {"k": int(hit.sum()), "rate": float(hit.mean()),
                         "last_s": float(hit[recent].mean()) if recent.any() else 0.0}
        return out

    @staticmethod
    def _views(rows: list[dict]) -> list[tuple[str, str, list[dict]]]:
        """(view, its columns' prefix, the rows scored in that view): the region's only where one was set."""
        out = []
        for view, prefix in VIEWS.items():
            scored = [r for r in rows if f"{prefix}target_hit" in r]
            if view == "frame" or scored:
                out.append((view, prefix, scored))
        return out

    def csv(self) -> str:
        return flat_csv(self.rows, FIELDS)

    def summary(self) -> dict:
        names = class_names()
        t = self.target
        times = self.column("time_s")
        regions = self.regions()
        out: dict[str, Any] = {
            "target": {"index": t.target, "name": names[t.target]},
            "true": None if t.true is None else {"index": t.true, "name": names[t.true]},
            "region": regions[-1]["region"] if regions else None, "regions": regions,
            "frames": len(self.rows), "seconds": round(float(times.max()), 3) if len(times) else 0.0,
            "interval": f"95 % Wilson interval on the means of blocks of {self.block_s:g} s of frames (each block "
                        f"one observation; per second: Wilson over that second's frames)",
            "block_s": self.block_s, "views": {}}
        for view, prefix, scored in self._views(self.rows):
            out["views"][view] = self._view_summary(prefix, scored)
        lags = [v["target_top1"]["lag1"] for v in out["views"].values() if v["target_top1"]["lag1"] is not None]
        if lags and max(lags) > CORRELATED:
            out["note"] = (f"neighbouring blocks are correlated (lag-1 r = {max(lags):.2f} > {CORRELATED}): the "
                           f"interval is too narrow; measure again with longer blocks (--block-s)")
        return out

    def regions(self) -> list[dict]:
        """The regions frames were scored with, in the order first used, with their frame counts."""
        counts: dict[str, int] = {}
        for r in self.rows:
            if r["region"]:
                counts[r["region"]] = counts.get(r["region"], 0) + 1
        return [{"region": [int(v) for v in k.split(",")], "frames": n} for k, n in counts.items()]

    def _view_summary(self, prefix: str, rows: list[dict]) -> dict:
        times = self.column("time_s", rows)
        hit = self.column(f"{prefix}target_hit", rows).astype(bool)
        out = {"target_top1": block_rate(hit, times, self.block_s), "per_second": per_second(hit, times),
               "target_prob_mean": round(float(self.column(f"{prefix}target_prob", rows).mean()), 5)
               if len(hit) else None}
        if self.target.true is not None:
            rank = self.column(f"{prefix}true_rank", rows)
            out.update(true_top1=block_rate(rank == 1, times, self.block_s),
                       true_top5=block_rate(rank <= 5, times, self.block_s),
                       true_rank_median=float(np.median(rank)) if len(rank) else None)
        return out


def summary_line(s: dict) -> str:
    """The one-line summary of summary.json."""
    parts = [f"{s['frames']} frames ({s['seconds']:.1f} s)"]
    for view, v in s["views"].items():
        r = v["target_top1"]
        if r["rate"] is None:
            continue
        lo, hi = r["ci"]
        where = "whole frame" if view == "frame" else "region"
        parts.append(f"{where}: top-1 {s['target']['name']} in {r['k']} of {r['n']} ({100 * r['rate']:.1f} %, "
                     f"95 % CI {100 * lo:.1f}-{100 * hi:.1f} %, {r['blocks']} blocks of {r['block_s']:g} s)"
                     + (f", true class median rank {v['true_rank_median']:g}"
                        if v.get("true_rank_median") is not None else ""))
    return "; ".join(parts)


def score_video(source, model, scorer: SceneScorer, log: SceneLog, batch: int = 16,
                status_every: float = 5.0) -> float:
    """Score every frame of an opened recorded source (times: frame / fps); returns the fps used."""
    fps = float(source.fps) if getattr(source, "fps", None) else 0.0
    if not fps:
        fps = 30.0
        say(f"scene: {source.name} does not say its frame rate; times assume {fps:g} fps")
    frames: list[np.ndarray] = []
    indices: list[int] = []
    next_status = time.perf_counter() + status_every

    def flush() -> None:
        rows, _ = scorer.score(model, frames, indices, [i / fps for i in indices])
        log.add(rows)
        frames.clear()
        indices.clear()

    with torch.inference_mode():
        while (frame := source.read()) is not None:
            if not log.rows and not frames:
                scorer.first_frame(frame.shape)
            frames.append(frame)
            indices.append(source.index)
            if len(frames) >= batch:
                flush()
                if time.perf_counter() >= next_status:
                    next_status += status_every
                    run = log.running()
                    say(f"scene: {run['n']} frames, target top-1 {100 * run['frame']['rate']:.1f} % so far")
        if frames:
            flush()
    return fps


class FrameQueue:
    """Frames in arrival order for a batched consumer: `put` appends with the arrival time (beyond
    `most` waiting, the oldest is dropped and counted), `take` returns up to n of them."""

    def __init__(self, most: int):
        self.most = most
        self.dropped = 0
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item) -> None:
        with self._cond:
            if len(self._items) >= self.most:
                self._items.popleft()
                self.dropped += 1
            self._items.append((time.perf_counter(), item))
            self._cond.notify_all()

    def take(self, n: int, timeout: float) -> list:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._items) or self._closed, timeout)
            return [self._items.popleft() for _ in range(min(n, len(self._items)))]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class SceneView(LiveView):
    """The live view (display loop, window, MJPEG page, recorder) with batched scene scoring in its
    inference thread and the running rate drawn over the frame."""

    def __init__(self, source, model, scorer: SceneScorer, log: SceneLog, *, batch: int = 16, queue: int = 64,
                 title: str = "", top_k: int = 5):
        super().__init__(source, model, top_k=top_k, title=title)
        self.scorer, self.log, self.batch = scorer, log, batch
        self.inbox = FrameQueue(queue)  # type: ignore[assignment]  # put/close/closed/dropped as LatestFrame's
        self._t0: Optional[float] = None

    def _infer_loop(self) -> None:
        lower_priority()
        try:
            with torch.inference_mode():
                while True:
                    batch = self.inbox.take(self.batch, timeout=0.2)  # type: ignore[attr-defined]
                    if batch:
                        self._score(batch)
                    elif self.inbox.closed:  # every frame that arrived is scored
                        break
        except BaseException as e:  # shown by the display loop
            self.error = e

    def _score(self, batch: list) -> None:
        t0 = time.perf_counter()
        if self._t0 is None:
            self._t0 = batch[0][0]
            self.scorer.first_frame(batch[0][1][1].shape)
        model, label = self.model.current
        indices = [item[0] for _, item in batch]
        rows, last = self.scorer.score(model, [item[1] for _, item in batch], indices,
                                       [t - self._t0 for t, _ in batch], label)
        self.log.add(rows)
        dt = time.perf_counter() - t0
        self.infer_ms = 1000 * dt / len(batch)
        self._infer_total += 1000 * dt
        self.result = {"frame": indices[-1], "top": last, "cells": [], "infer_ms": round(1000 * dt, 1),
                       "defence": label}
        self.n_results += len(batch)
        for _ in batch:
            self.classify_rate.tick()

    def set_region(self, text: str) -> str:
        """The region drawn on the page (`physical.live.server`'s POST /region)."""
        return self.scorer.set_region(text)

    def stats(self) -> dict:
        region = self.scorer.region
        return {**super().stats(), "scene": self.log.running(), "region": None if region is None else list(region)}

    def draw(self, frame: np.ndarray, result: Optional[dict]) -> np.ndarray:
        out = super().draw(frame, result)
        draw_scene(out, self.log.running(), self.scorer, self.top_k)
        return out


def draw_scene(img: np.ndarray, running: dict, scorer: SceneScorer, top_k: int) -> None:
    """The region's outline and, under the top-k panel, the target's rate so far and in the last second."""
    t = scorer.target
    if scorer.region is not None:
        x, y, w, h = scorer.region
        cv2.rectangle(img, (x, y), (x + w, y + h), draw.YELLOW, max(2, img.shape[1] // 640))
        draw.label_at(img, "region", (x, y), draw.YELLOW)
    name = scorer.names[t.target]
    lines = [(f"target {name}: waiting for the model", draw.CYAN)]
    if running.get("n"):
        lines = [(f"target {name}: top-1 in {running['frame']['k']} of {running['n']} frames", draw.CYAN)]
        for view, v in running.items():
            if isinstance(v, dict):
                where = "whole frame" if view == "frame" else "region"
                lines.append((f"{where}: {100 * v['rate']:.0f} % so far, {100 * v['last_s']:.0f} % in the last "
                              f"second", draw.GREEN if v["last_s"] else draw.WHITE))
    s = draw.scale_for(img)
    draw.panel(img, lines, origin=(8, 8 + (int(28 * s) + 6) * (top_k + 1) + 16), scale=s)
