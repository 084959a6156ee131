"""`physical compare` flags a difference of two rates only when the statistics say it is real:
McNemar's paired test on the same images when both runs' predictions are there, else the 95 %
intervals."""
import json

from physical.report.compare import compare, load_report
from physical.measure.metrics import kurakin_table


def _run(root, photo_right: list[bool]):
    """A run directory with report.json and classify/predictions.json: one attack on len(photo_right)
    images, digital adversarial always wrong, photo adversarial right where photo_right says."""
    recs = []
    for i, ok in enumerate(photo_right):
        p = lambda top: {"top": top, "prob": [0.9, 0.05, 0.02, 0.02, 0.01]}  # noqa: E731
        recs.append({"key": f"m/bim_eps16/i{i}", "model": "m", "attack": "bim", "attack_label": "bim_eps16",
                     "eps": 16.0, "image": f"i{i}", "label": 1, "label_known": True, "target": None,
                     "pred": {"digital_clean": p([1, 2, 3, 4, 5]), "digital_adv": p([9, 8, 7, 6, 5]),
                              "photo_clean": p([1, 2, 3, 4, 5]), "photo_adv": p([1, 8, 7, 6, 5] if ok else [9, 8, 7, 6, 5])}})
    (root / "classify").mkdir(parents=True)
    (root / "report").mkdir()
    (root / "classify" / "predictions.json").write_text(json.dumps({"records": recs}))
    (root / "report" / "report.json").write_text(json.dumps({"run_id": root.name, "name": root.name,
                                                             "kurakin": kurakin_table(recs)}))
    return root


def _line(text, col):
    return next(line for line in text.splitlines() if line.strip().startswith("m / bim_eps16") and f" {col} " in line)


def test_paired_test_flags_a_real_difference(tmp_path):
    a = load_report(_run(tmp_path / "a", [False] * 12))
    b = load_report(_run(tmp_path / "b", [True] * 12))
    text, n = compare(a, b)
    line = _line(text, "average.accuracy.photo_adv.top1.acc")
    assert "+100.0" in line and "* McNemar p 0.00049 (n 12)" in line  # exact: 2 / 2^12
    assert n == 12 and "12 difference(s), 12 of them real" in text


def test_a_small_difference_on_few_images_is_not_flagged(tmp_path):
    a = load_report(_run(tmp_path / "a", [True, False, False]))
    b = load_report(_run(tmp_path / "b", [True, True, False]))
    text, _ = compare(a, b)
    line = _line(text, "average.accuracy.photo_adv.top1.acc")
    assert "+33.3" in line and "McNemar p 1 (n 3)" in line and "*" not in line
    assert " 0 of them real" in text
    # without the predictions the intervals decide: overlapping here
    (tmp_path / "a" / "classify" / "predictions.json").unlink()
    text, _ = compare(load_report(tmp_path / "a"), b)
    assert "intervals overlap" in _line(text, "average.accuracy.photo_adv.top1.acc")


def test_intervals_apart_without_predictions(tmp_path):
    a = load_report(_run(tmp_path / "a", [False] * 30))
    _run(tmp_path / "b", [True] * 30)
    for r in (tmp_path / "a", tmp_path / "b"):
        (r / "classify" / "predictions.json").unlink()
    text, _ = compare(load_report(tmp_path / "a"), load_report(tmp_path / "b"), threshold=0.01)
    assert "* intervals apart" in _line(text, "average.destruction.top1.rate")
    assert "average.accuracy.digital_adv" not in text  # no difference there
    assert a["kurakin"][0]["average"]["destruction"]["top1"]["n"] == 30
