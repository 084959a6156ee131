"""`physical scene` on a simulated scene: a cat's photo (scikit-image) with a printed patch posed at
random through the channel (physical.sim.scene), written as a video, scored as a user would, offline
(--video) and live (--source video:...). The classifier is a model of one's own (module:callable)
that calls the patch's target exactly when a red patch covers over 1 % of what it sees, so the test
knows every frame's answer and checks the counts and the intervals exactly."""
from __future__ import annotations

import csv
import json
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from skimage import data

from physical.cli.main import main
from physical.live import Recorder
from physical.measure.stats import wilson
from physical.sim.scene import patch_share, scene_frames

TARGET, CAT = 859, 281  # toaster, tabby cat
FPS, SIDE = 8, 240
SHOWN = [1, 1, 0, 1, 0, 0]  # per second of the video: the adversarial (red) patch, else a grey control patch
REGION = (0, 0, 120, 120)  # the top-left quarter: square, so the model sees all of it

STUB = textwrap.dedent(f"""\
    import torch


    class RedPatch(torch.nn.Module):
        # ImageNet logits: the tabby cat 1; the toaster 50 x (share of strongly red pixels - 1 %) + 1, so the
        # toaster is the top-1 exactly when a red patch covers more than 1 % of the input
        def forward(self, x):
            red = ((x[:, 0] - torch.maximum(x[:, 1], x[:, 2])) > 0.35).float().mean((1, 2))
            out = torch.zeros(x.shape[0], 1000)
            out[:, {CAT}] = 1.0
            out[:, {TARGET}] = 50 * (red - 0.01) + 1
            return out


    def build():
        return RedPatch()
    """)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The lab folder (stub model, pipeline file, video) and each frame's ground truth."""
    lab = tmp_path_factory.mktemp("scene")
    (lab / "scenenets.py").write_text(STUB)
    model = {"name": "redpatch", "module": "scenenets:build", "input_size": 64, "mean": [0, 0, 0],
             "std": [1, 1, 1], "resize_ratio": 1.0}
    (lab / "pipeline.yaml").write_text(yaml.safe_dump({"run": {"device": "cpu"}, "models": [model]}))
    cat = cv2.resize(data.chelsea()[:, 75:375], (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    red, grey = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 128, np.uint8)
    red[..., 0] = 255
    shown = np.repeat(SHOWN, FPS).astype(bool)
    frames, corners = scene_frames(cat, np.stack([red if s else grey for s in shown]), seed=4, hold=4)
    rec = Recorder(lab / "scene.avi", FPS)  # MJPG: what cv2.VideoWriter writes
    for f in frames:
        rec.write(f)
    rec.close()
    share = np.array([patch_share(c, frames.shape[1:]) for c in corners]) * shown
    in_region = np.array([patch_share(c, frames.shape[1:], REGION) for c in corners]) * shown
    sys.modules.pop("scenenets", None)
    return {"lab": lab, "shown": shown, "share": share, "in_region": in_region}


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_scoring_a_video_counts_every_frame_and_blocks_the_interval(scene, capsys):
    lab, shown = scene["lab"], scene["shown"]
    assert scene["share"][shown].min() > 0.03  # the red patch is always well over the model's 1 %
    out = lab / "offline"
    assert main(["scene", str(lab / "pipeline.yaml"), "--video", str(lab / "scene.avi"), "--true", "tabby",
                 "--region", ",".join(map(str, REGION)), "--batch", "5", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("scene: 48 frames (5.9 s); whole frame: top-1 toaster in 24 of 48 (50.0 %")
    got = rows(out / "frames.csv")
    assert [int(r["frame"]) for r in got] == list(range(48))
    assert [float(r["time_s"]) for r in got] == pytest.approx([i / FPS for i in range(48)])
    assert [int(r["target_hit"]) for r in got] == shown.astype(int).tolist()
    assert [int(r["true_rank"]) for r in got] == [2 if s else 1 for s in shown]
    prob = np.array([float(r["target_prob"]) for r in got])
    assert prob[shown].min() > prob[~shown].max() and 0 < prob.min() and prob.max() < 1
    assert all(len(r["target_prob"].partition(".")[2]) <= 5 for r in got)  # 5 decimals, no float32 tails
    assert {r["top1_name"] for r in got} == {"toaster", "tabby"}
    # the region: frames whose red patch lies clearly inside or clearly outside it
    clear_in, clear_out = scene["in_region"] > 0.03, scene["in_region"] < 0.002
    hit = np.array([int(r["region_target_hit"]) for r in got], bool)
    assert clear_in.sum() >= 3 and clear_out.sum() >= 10
    assert hit[clear_in].all() and not hit[clear_out].any()

    s = json.loads((out / "summary.json").read_text())
    whole = s["views"]["frame"]
    means = np.array(SHOWN, float)  # each second (block) of frames: all hits or none
    assert whole["target_top1"] == {"rate": 0.5, "k": 24, "n": 48, "ci": wilson(means.sum(), 6), "blocks": 6,
                                    "block_s": 1.0, "lag1": pytest.approx(np.corrcoef(means[:-1], means[1:])[0, 1],
                                                                          abs=1e-4)}
    assert [p["k"] for p in whole["per_second"]] == [FPS * v for v in SHOWN]
    assert [p["ci"] for p in whole["per_second"]] == [wilson(FPS * v, FPS) for v in SHOWN]
    assert whole["true_top1"]["k"] == 24 and whole["true_top5"]["k"] == 48 and whole["true_rank_median"] == 1.5
    assert s["target"] == {"index": TARGET, "name": "toaster"} and s["true"] == {"index": CAT, "name": "tabby"}
    assert s["views"]["region"]["target_top1"]["k"] == int(hit.sum()) and s["fps"] == FPS
    assert s["model"] == "redpatch" and s["frames"] == 48


def test_longer_blocks_widen_the_interval(scene):
    """Two-second blocks: 3 observations instead of 6, the same rate, a wider interval."""
    lab = scene["lab"]
    out = lab / "blocks2"
    assert main(["scene", str(lab / "pipeline.yaml"), "--video", str(lab / "scene.avi"), "--block-s", "2",
                 "--out", str(out), "-q"]) == 0
    r = json.loads((out / "summary.json").read_text())["views"]["frame"]["target_top1"]
    assert r["blocks"] == 3 and r["ci"] == wilson(1.0 + 0.5 + 0.0, 3) and r["rate"] == 0.5
    assert not list((out / "frames.csv").read_text().splitlines()[1].split(",")[-1])  # no true class: empty rank


def test_live_scene_scores_what_the_view_shows_and_draws_the_rate(scene):
    """Live, from the video played at its rate: the live view's display loop, batched scoring, the
    recording of the annotated stream with the running rate drawn on it."""
    lab = scene["lab"]
    out = lab / "live"
    assert main(["scene", str(lab / "pipeline.yaml"), "--source", f"video:{lab / 'scene.avi'}", "--headless",
                 "--record", str(lab / "view.avi"), "--out", str(out), "-q"]) == 0
    got = rows(out / "frames.csv")
    assert [int(r["frame"]) for r in got] == list(range(48))  # none dropped at this pace
    assert [int(r["target_hit"]) for r in got] == scene["shown"].astype(int).tolist()
    times = [float(r["time_s"]) for r in got]
    assert times[0] == 0 and 4.5 < times[-1] < 20  # the time the frames arrived (about 8 fps; later on a busy CPU)
    s = json.loads((out / "summary.json").read_text())
    assert s["views"]["frame"]["target_top1"]["k"] == 24 and s["views"]["frame"]["target_top1"]["blocks"] >= 5
    cap = cv2.VideoCapture(str(lab / "view.avi"))
    ok, first = cap.read()
    n = 1
    while cap.read()[0]:
        n += 1
    cap.release()
    assert ok and n == 48
    # the scene panel under the top-5 panel: shaded, with its text
    source = cv2.VideoCapture(str(lab / "scene.avi"))
    _, raw = source.read()
    source.release()
    panel = (slice(135, 170), slice(10, 200))
    assert np.abs(first[panel].astype(int) - raw[panel].astype(int)).mean() > 20


def test_a_runs_patch_sets_the_target_and_model_with_the_real_classifier(scene, tmp_path, capsys):
    """--run: the target and the model come from the run's patch record (generate/index.json); the
    files go to RUN/scene/<video>; EfficientNet-Lite0 on the first 16 frames (a grey or red square on
    the cat does not hide it: the cat stays near the top)."""
    run = tmp_path / "run"
    (run / "generate").mkdir(parents=True)
    items = [{"key": f"efficientnet_lite0/{lab}/chelsea", "attack": "patch", "model": "efficientnet_lite0",
              "target": 409, "control": ctl} for lab, ctl in (("patch-t409-f0.1_eps255", False),
                                                              ("ctl-patch-t409-f0.1_eps255", True))]
    (run / "generate" / "index.json").write_text(json.dumps({"items": items}))
    video = cv2.VideoCapture(str(scene["lab"] / "scene.avi"))
    rec = Recorder(tmp_path / "short.avi", FPS)
    for _ in range(16):
        rec.write(cv2.cvtColor(video.read()[1], cv2.COLOR_BGR2RGB))
    rec.close()
    video.release()
    assert main(["scene", "--video", str(tmp_path / "short.avi"), "--run", str(run), "--true", "281"]) == 0
    assert "top-1 analog clock in" in capsys.readouterr().out
    s = json.loads((run / "scene" / "short" / "summary.json").read_text())
    assert s["model"] == "efficientnet_lite0" and s["target"] == {"index": 409, "name": "analog clock"}
    got = rows(run / "scene" / "short" / "frames.csv")
    assert len(got) == 16 and all(1 <= int(r["true_rank"]) <= 1000 for r in got)
    assert s["views"]["frame"]["true_rank_median"] <= 5 and s["views"]["frame"]["target_top1"]["k"] == 0
    assert all(0 <= float(r["target_prob"]) < 0.5 for r in got) and all(r["region_top1"] == "" for r in got)


def test_live_scene_page_serves_the_running_rate(scene, capsys):
    """--serve: the live view's page and status.json, with the scene's running rate in it."""
    import re
    import threading
    import time
    import urllib.request

    lab, done = scene["lab"], []
    t = threading.Thread(target=lambda: done.append(main(
        ["scene", str(lab / "pipeline.yaml"), "--source", f"video:{lab / 'scene.avi'}", "--headless", "--serve", "0",
         "--out", str(lab / "served")])))
    t.start()
    url, status, printed = None, None, ""
    deadline = time.time() + 60
    while time.time() < deadline and t.is_alive() and status is None:
        printed += capsys.readouterr().out
        url = url or next(iter(re.findall(r"serving (http://127\.0\.0\.1:\d+/)", printed)), None)
        if url:
            st = json.loads(urllib.request.urlopen(url + "status.json", timeout=5).read())
            status = st if st.get("scene", {}).get("n", 0) >= 8 else None
        time.sleep(0.2)
    t.join(60)
    assert done == [0] and status is not None
    run = status["scene"]
    assert run["frame"]["k"] == int(scene["shown"][: run["n"]].sum())  # the frames scored so far, in order
    assert 0 <= run["frame"]["last_s"] <= 1 and status["result"]["top"][0][1] in ("toaster", "tabby")


def test_a_region_drawn_on_the_live_page_is_scored_from_the_next_frames(scene, capsys):
    """POST /region, as the page's script sends it: a bad region is one line (400) and changes
    nothing, no token is refused, a good one is scored from the next batch on; every row names the
    region it was scored with and the region's figures count only those rows."""
    import re
    import threading
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    lab, done = scene["lab"], []
    out = lab / "drawn"
    t = threading.Thread(target=lambda: done.append(main(
        ["scene", str(lab / "pipeline.yaml"), "--source", f"video:{lab / 'scene.avi'}", "--headless", "--serve", "0",
         "--batch", "4", "--out", str(out)])))
    t.start()

    def post(url: str, **form) -> tuple[int, str]:
        req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    url, answers, printed = None, [], ""
    deadline = time.time() + 60
    while time.time() < deadline and t.is_alive() and not answers:
        printed += capsys.readouterr().out
        url = url or next(iter(re.findall(r"serving (http://127\.0\.0\.1:\d+/)", printed)), None)
        if url and json.loads(urllib.request.urlopen(url + "status.json", timeout=5).read())["scene"]["n"] >= 8:
            page = urllib.request.urlopen(url, timeout=5).read().decode()
            token = re.search(r'token: "([^"]+)"', page).group(1)
            answers = [post(url + "region", token=token, region="200,200,100,100"),
                       post(url + "region", region=",".join(map(str, REGION))),
                       post(url + "region", token=token, region=",".join(map(str, REGION)))]
        time.sleep(0.1)
    t.join(60)
    assert done == [0] and answers, printed
    (bad, bad_text), (refused, _), (ok, ok_text) = answers
    assert bad == 400 and bad_text == ("--region 200,200,100,100: reaches outside the 240x240 frame "
                                       "(x + w must be <= 240, y + h <= 240)")
    assert refused == 403 and ok == 200 and ok_text == "region 0,0,120,120: classified from the next frames"
    got = rows(out / "frames.csv")
    assert len(got) == 48 and {r["region"] for r in got} == {"", "0,0,120,120"}
    first = next(i for i, r in enumerate(got) if r["region"])
    assert 8 <= first < 48 and all(r["region"] for r in got[first:]) and not any(r["region"] for r in got[:first])
    assert all(r["region_target_hit"] == "" for r in got[:first])
    for r, inside in zip(got[first:], scene["in_region"][first:], strict=True):
        if inside > 0.03 or inside < 0.002:  # clearly inside or outside: the stub's answer is certain
            assert int(r["region_target_hit"]) == int(inside > 0.03)
    s = json.loads((out / "summary.json").read_text())
    assert s["region"] == list(REGION) and s["regions"] == [{"region": list(REGION), "frames": 48 - first}]
    region_hits = sum(int(r["region_target_hit"]) for r in got[first:])
    assert s["views"]["region"]["target_top1"]["k"] == region_hits and s["views"]["frame"]["target_top1"]["n"] == 48


def test_a_drawn_region_is_checked_against_the_frame_and_refused_before_one():
    from physical.errors import ConfigError
    from physical.live.scene import SceneScorer, SceneTarget

    scorer = SceneScorer(SceneTarget(TARGET))
    with pytest.raises(ConfigError, match="no frame has been read yet"):
        scorer.set_region("1,1,20,20")
    scorer.first_frame((100, 120, 3))
    assert scorer.set_region("1,1,20,20") == "region 1,1,20,20: classified from the next frames"
    for bad, why in (("1,1,200,20", "reaches outside the 120x100 frame"), ("abc", "expected x,y,w,h"),
                     ("1,1,4,4", "at least 8 pixels")):
        with pytest.raises(ConfigError, match=why):
            scorer.set_region(bad)
        assert scorer.region == (1, 1, 20, 20)  # a refused region keeps the one before
    assert scorer.set_region(" ").startswith("region cleared") and scorer.region is None
