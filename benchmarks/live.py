"""Live mode on a 1280x720 stream: frames displayed per second and frames classified per second.

A loopback MJPEG server (`physical.capture.replay.ReplayServer`, what `physical replay` serves)
streams, at `--fps` (30), 1280x720 frames of a simulated camera filming a
printed run (a tiny run made here: 3 images, FGSM, one A4 sheet of six 45 mm cells), as a phone
app would. `physical live`'s view (:class:`physical.live.LiveView`) reads it through OpenCV's FFMPEG
backend, exactly as `--source http://...`, for `--seconds` per mode:

- ``top5``      whole-frame top-5 only (``--no-cells``);
- ``cells``     top-5 and the per-cell overlays (markers, alignment, every cell in the same batch);
- ``cells+serve`` the same, also serving the annotated stream as MJPEG to one reader (which decodes it).

The figure that matters: the display rate stays at the stream rate (the view never waits for the
model; frames the model has no time for are dropped, never queued), while the classification rate is
whatever the CPU leaves. Also printed: the model's time per classified frame, and Lite0 alone on one
224x224 image (the floor of that time).

    python benchmarks/live.py [--seconds 20] [--fps 30] [--threads 2] [--modes top5,cells,cells+serve]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import setup  # noqa: E402

W, H = 1280, 720


def make_frames(tmp: Path, n_poses: int) -> tuple[list[bytes], Path]:
    import yaml

    from physical.capture.replay import encode_jpegs
    from physical.capture.simulated import SimulatedSource
    from physical.cli import main
    from physical.config import load_config

    cfg_path = tmp / "bench.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "run": {"name": "bench", "output": "runs", "device": "cpu"},
        "images": {"limit": 3}, "attacks": [{"name": "fgsm", "eps": [16]}],
        "capture": {"dpi": 150, "channel": {"rotation_deg": 15, "tilt": 0.05, "scale": [0.92, 0.98],
                                            "translate": 0.02, "blur_sigma": [0.3, 0.5]}},
        "experiments": {"enabled": False},
    }))
    assert main(["run", str(cfg_path), "--until", "print"]) == 0
    cfg, _ = load_config(cfg_path)
    src = SimulatedSource.for_run(tmp / "runs" / "bench", cfg, frame=(W, H), poses=n_poses, move=8, defocus=2, hold=20)
    src.open()
    return encode_jpegs(src, 85), tmp / "runs" / "bench"


def reader(url: str, stop: threading.Event, counted: list) -> None:
    import cv2

    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000])
    while not stop.is_set() and cap.read()[0]:
        counted[0] += 1
    cap.release()


def run_mode(mode: str, url: str, model, cells, seconds: float) -> dict:
    from physical.capture.sources import UrlSource
    from physical.live import LiveModel, LiveView, MjpegServer

    view = LiveView(UrlSource(url), LiveModel(model), cells=cells if mode != "top5" else None, title=mode)
    server, stop, got = None, threading.Event(), [0]
    if mode.endswith("serve"):
        server = MjpegServer(0, status=view.stats)
        threading.Thread(target=reader, args=(server.url + "stream.mjpg", stop, got), daemon=True).start()
    try:
        s = view.run(seconds=seconds, server=server)
    finally:
        stop.set()
        if server is not None:
            server.close()
    s["served_frames_read"] = got[0]
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="top5,cells,cells+serve")
    ap.add_argument("--poses", type=int, default=3)
    a = ap.parse_args(argv)
    setup(a.threads)
    import torch

    from physical.capture.replay import ReplayServer
    from physical.live import RunCells, classify_frame
    from physical.models import load_model

    model = load_model("efficientnet_lite0", "cpu")
    x = torch.rand(1, 3, 224, 224)
    times = []
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        for _ in range(30):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    alone = 1000 * min(times)  # least disturbed on a shared machine

    with tempfile.TemporaryDirectory() as d:
        frames, run_root = make_frames(Path(d), a.poses)
        cells = RunCells.load(run_root)
        import cv2
        import numpy as np

        # how many cells one frame shows (what the cell mode classifies with the frame)
        sample = [cv2.cvtColor(cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                  for f in frames[:: max(1, len(frames) // 12)]]
        from physical.config import AlignConfig

        per_frame = [len(classify_frame(f, model, cells, AlignConfig())["cells"]) for f in sample]
        stream = ReplayServer(frames, a.fps)
        try:
            rows = {}
            for mode in a.modes.split(","):
                rows[mode] = run_mode(mode.strip(), stream.url, model, cells, a.seconds)
        finally:
            stream.stop()

    print(f"\nlive view, EfficientNet-Lite0 on the CPU ({torch.get_num_threads()} threads), "
          f"{W}x{H} MJPEG stream at {a.fps:g} fps, {a.seconds:g} s per mode")
    print(f"Lite0 alone, 1 image 224x224: {alone:.0f} ms; cells in view per frame (sampled): "
          f"{', '.join(map(str, per_frame))}")
    print(f"{'mode':<13} {'display fps':>11} {'classified/s':>12} {'model ms':>9} {'dropped':>8} {'served read':>11}")
    ok = True
    for mode, s in rows.items():
        print(f"{mode:<13} {s['display_fps']:>11.1f} {s['classified_fps']:>12.1f} {s['mean_infer_ms'] or 0:>9.0f} "
              f"{s['frames_shown'] - s['frames_classified']:>8d} "
              f"{s['served_frames_read'] / s['seconds'] if s['served_frames_read'] else 0:>10.1f}/s")
        ok &= s["display_fps"] >= 0.95 * a.fps
    print(f"display at the stream rate ({a.fps:g} fps, 5 % slack) in every mode: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
