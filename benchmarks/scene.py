"""`physical scene`: how fast a recorded video is scored, and whether its interval holds its 95 %.

throughput  A simulated scene (scikit-image's cat, 640x480, a printed noise patch posed at random
            through the channel: physical.sim.scene, pose held 4 frames), written as an MJPG video of
            `--frames` frames and scored offline (`score_video`, what `physical scene --video` runs)
            with EfficientNet-Lite0, one frame a pass against `--batch` frames a pass, whole frame
            only and with a region. Wall time and the process's CPU time per frame.

coverage    Synthetic recordings whose frames are correlated as a hand-held patch's are: the patch
            is held in poses of random length (exponential, mean `D` s); in a pose the target wins
            (probability `p`) or not, and each frame flips that outcome with probability 0.1 (noise,
            blur). The long-run rate is p x 0.9 + (1 - p) x 0.1. For each setting, `--reps`
            recordings of `--seconds` s at 30 fps; the share of recordings whose 95 % interval holds
            the long-run rate (with its own Wilson interval), for Wilson over single frames (frames
            as independent) and Wilson on the means of blocks of 1, 2 and 5 s
            (physical.measure.frames.block_rate), and how often the summary's note about correlated
            blocks (lag-1 r > 0.5) fires. Pure numpy: the interval, not the model, is measured.

    python benchmarks/scene.py [--part throughput,coverage] [--frames 96] [--batch 16] [--reps 1000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import setup  # noqa: E402

FPS = 30.0


def scene_video(path: Path, n: int) -> None:
    import cv2
    from skimage import data

    from physical.live import Recorder
    from physical.sim.scene import scene_frames

    cat = cv2.resize(data.chelsea(), (640, 480), interpolation=cv2.INTER_AREA)
    patch = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    frames, _ = scene_frames(cat, np.repeat(patch[None], n, 0), seed=1, hold=4)
    rec = Recorder(path, FPS)
    for f in frames:
        rec.write(f)
    rec.close()


def throughput(n: int, batch: int, threads: int) -> None:
    from physical.capture.sources import VideoSource
    from physical.live.scene import SceneLog, SceneScorer, SceneTarget, score_video
    from physical.models import load_model

    model = load_model("efficientnet_lite0")
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "scene.avi"
        scene_video(video, n)
        print(f"{n} frames 640x480, EfficientNet-Lite0, {threads} torch threads")
        print("| region | frames a pass | wall ms per frame | CPU ms per frame | frames per s |")
        print("|---|---|---|---|---|")
        for region in (None, (160, 80, 320, 320)):
            target = SceneTarget(859, 281, region)
            for b in (1, batch):
                source = VideoSource(video).open()
                log = SceneLog(target)
                w0, c0 = time.perf_counter(), time.process_time()
                score_video(source, model, SceneScorer(target), log, b, status_every=1e9)
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                source.close()
                assert len(log.rows) == n
                print(f"| {'yes' if region else 'no'} | {b} | {1000 * wall / n:.1f} | {1000 * cpu / n:.1f} | "
                      f"{n / wall:.1f} |")


def recording(rng: np.random.Generator, seconds: float, mean_pose_s: float, p: float) -> np.ndarray:
    """One synthetic recording's hits (see the module docstring)."""
    n = int(seconds * FPS)
    hits = np.empty(n, bool)
    i = 0
    while i < n:
        k = max(1, int(round(rng.exponential(mean_pose_s) * FPS)))
        hits[i : i + k] = rng.random() < p
        i += k
    return hits ^ (rng.random(n) < 0.1)


def coverage(reps: int, seconds: float) -> None:
    from physical.measure.frames import CORRELATED, block_rate
    from physical.measure.stats import wilson

    rng = np.random.default_rng(0)
    times = np.arange(int(seconds * FPS)) / FPS
    print(f"{reps} recordings of {seconds:g} s at {FPS:g} fps each; coverage of the long-run rate (95 % Wilson)")
    print("| pose mean s | p | interval | covers | mean width | note fires |")
    print("|---|---|---|---|---|---|")
    for mean_pose in (0.3, 1.0, 3.0):
        for p in (0.5, 0.9):
            truth = p * 0.9 + (1 - p) * 0.1
            rows: dict[str, list] = {"single frames": [], "blocks 1 s": [], "blocks 2 s": [], "blocks 5 s": []}
            notes = {k: 0 for k in rows}
            for _ in range(reps):
                hits = recording(rng, seconds, mean_pose, p)
                rows["single frames"].append(wilson(int(hits.sum()), len(hits)))
                for b in (1.0, 2.0, 5.0):
                    r = block_rate(hits, times, b)
                    rows[f"blocks {b:g} s"].append(r["ci"])
                    notes[f"blocks {b:g} s"] += r["lag1"] is not None and r["lag1"] > CORRELATED
            for name, cis in rows.items():
                c = np.array(cis)
                k = int(((c[:, 0] <= truth) & (truth <= c[:, 1])).sum())
                lo, hi = wilson(k, reps)
                note = f"{100 * notes[name] / reps:.0f} %" if name != "single frames" else "-"
                print(f"| {mean_pose:g} | {p:g} | {name} | {100 * k / reps:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] | "
                      f"{np.mean(c[:, 1] - c[:, 0]):.3f} | {note} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", default="throughput,coverage")
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    setup(args.threads)
    parts = args.part.split(",")
    if "coverage" in parts:
        coverage(args.reps, args.seconds)
    if "throughput" in parts:
        throughput(args.frames, args.batch, args.threads)


if __name__ == "__main__":
    main()
