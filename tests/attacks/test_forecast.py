"""The survival forecast map: isotonic regression by hand, its scores, and `physical calibrate forecast`
fitting it on the calibrated channel's own simulated photos for `physical predict` to apply."""
from __future__ import annotations

import json

import numpy as np
import pytest

from physical.measure.forecast import (ForecastMap, expected_calibration_error, fit_forecast, isotonic, load_forecast,
                                       map_path, save_forecast)


def test_isotonic_pools_adjacent_violators_by_hand():
    # y by x: 0, 1, 0, 1 -> the middle pair violates and pools to 0.5
    bx, by, n = isotonic([0.3, 0.0, 0.2, 0.1], [1, 0, 0, 1])
    assert bx.tolist() == pytest.approx([0.0, 0.15, 0.3]) and by.tolist() == [0.0, 0.5, 1.0] and n.tolist() == [1, 2, 1]
    # a decreasing run pools to one block: its mean
    bx, by, n = isotonic([0.1, 0.2, 0.3], [1.0, 0.5, 0.0])
    assert by.tolist() == [0.5] and n.tolist() == [3]
    rng = np.random.default_rng(0)
    x = rng.random(200)
    _, fitted, counts = isotonic(x, rng.random(200) < x)
    assert (np.diff(fitted) > 0).all() and counts.sum() == 200


def test_forecast_map_interpolates_is_flat_beyond_and_round_trips(tmp_path):
    fmap = ForecastMap([0.2, 0.6], [0.4, 0.8], 30, "test")
    assert fmap([0.0, 0.2, 0.4, 0.6, 1.0]) == [0.4, 0.4, 0.6, 0.8, 0.8]
    cal = tmp_path / "colour.json"
    assert map_path(cal).name == "colour.forecast.json" and load_forecast(cal) is None
    save_forecast(cal, fmap)
    again = load_forecast(cal)
    assert again is not None and (again.x, again.y, again.n) == ([0.2, 0.6], [0.4, 0.8], 30)
    with pytest.raises(ValueError, match="at least 20"):
        fit_forecast([0.5] * 5, [True] * 5)
    # an over-harsh forecast (draws say 0.2, the photos survive 0.8 of the time) is mapped up
    draws = [0.2] * 40 + [0.9] * 40
    seen = [i % 5 != 0 for i in range(40)] + [True] * 40
    mapped = fit_forecast(draws, seen)([0.2, 0.9])
    assert mapped == [0.8, 1.0]


def test_expected_calibration_error_by_hand():
    # bin [0, 0.2): predicted 0.1 twice, observed 1 of 2 -> |0.1 - 0.5| x 2; bin [0.8, 1]: 0.9, observed 1 -> 0.1
    assert expected_calibration_error([0.1, 0.1, 0.9], [True, False, True]) == pytest.approx((0.4 * 2 + 0.1) / 3)
    assert expected_calibration_error([], []) is None


def test_a_bad_forecast_map_beside_the_calibration_is_one_line(tmp_path, capsys):
    from physical.cli.main import main
    from tests.runs.test_run_trust import one_line_error

    cal = tmp_path / "colour.json"
    map_path(cal).write_text(json.dumps({"kind": "physical/forecast-map", "x": [0.5, 0.1], "y": [0.2, 0.3]}))
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"run: {{name: pre, output: {tmp_path / 'runs'}}}\nimages: {{limit: 1}}\n"
                   f"attacks: [{{name: fgsm, eps: [16]}}]\ncapture: {{channel: {{calibration: {cal}}}}}\n")
    from tests.channel.test_fidelity import identity_document
    from physical.rundir import write_json

    write_json(cal, identity_document())
    assert main(["run", str(cfg), "--until", "generate"]) == 0
    capsys.readouterr()
    assert main(["predict", str(cfg), "--draws", "1"]) == 2
    one_line_error(capsys, "colour.forecast.json: not a forecast map", "physical calibrate forecast")


def _labelled_images(folder, model) -> None:
    """Eight crops of scikit-image's photos, each labelled with the model's clean top-1 (so every clean
    image is right and an attack's success means something)."""
    from physical.data.images import load_images
    from physical.models import predict, preprocess, to_tensor
    from physical.rundir import write_image

    folder.mkdir()
    rgb = []
    for k, s in enumerate(load_images("samples", 0)[:8]):
        r = preprocess(s.rgb, int(model.input_size * 1.2), model.resize_ratio)
        o = (k * 7) % (r.shape[0] - model.input_size + 1)
        rgb.append(np.ascontiguousarray(r[o: o + model.input_size, o: o + model.input_size]))
    top, _ = predict(model, to_tensor(np.stack(rgb), "cpu"))
    lines = ["file,class_index"]
    for k, img in enumerate(rgb):
        write_image(folder / f"im{k}.png", img)
        lines.append(f"im{k}.png,{int(top[k, 0])}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.slow  # a printed run, simulated, aligned and classified, then K draws per image
def test_calibrate_forecast_fits_on_simulated_photos_and_predict_applies_it(tmp_path, capsys, lite0):
    from physical.cli.main import main
    from physical.rundir import write_json
    from tests.channel.test_fidelity import identity_document

    _labelled_images(tmp_path / "images", lite0)
    cal = write_json(tmp_path / "colour.json", identity_document())
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"run: {{name: fc, output: {tmp_path / 'runs'}}}\nimages: {{source: {tmp_path / 'images'}}}\n"
                   "attacks: [{name: fgsm, eps: [4, 16]}, {name: bim, eps: [4, 16]}]\n"
                   f"capture: {{frame: [1500, 2000], channel: {{calibration: {cal}}}}}\n")
    assert main(["run", str(cfg), "--until", "print"]) == 0
    capsys.readouterr()
    assert main(["calibrate", "forecast", str(cfg), "--draws", "4"]) == 0
    out = capsys.readouterr().out
    assert "forecast map from" in out and "colour.forecast.json" in out
    fmap = load_forecast(cal)
    assert fmap is not None and fmap.n >= 20 and all(b >= a for a, b in zip(fmap.y, fmap.y[1:], strict=False))
    assert not list((tmp_path / "runs").glob("forecast-*"))  # the scratch copy is gone
    assert main(["predict", str(cfg), "--draws", "4"]) == 0
    out = capsys.readouterr().out
    assert "through the forecast map fitted on" in out
    # every mean it prints is a value the map can give (the map's range)
    means = [float(line.split("mean ")[1].split(" %")[0]) / 100 for line in out.splitlines() if "mean " in line]
    assert means and all(min(fmap.y) - 1e-6 <= m <= max(fmap.y) + 1e-6 for m in means)
