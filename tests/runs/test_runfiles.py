"""The run files as typed objects: a run's index, crops and predictions, as the stages wrote them,
load into RunIndex, AlignedCrops and Predictions and write back to the same file (the format on
disk is unchanged, so older runs still load)."""
import json
import shutil

import pytest

from physical import runfiles
from physical.rundir import RunDir


def _copy(run, tmp_path, name: str) -> RunDir:
    other = RunDir(tmp_path / "copy")
    (other.root / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(runfiles.path(run, name), other.root / name)
    return other


def test_index_and_predictions_round_trip_byte_for_byte(tiny, tmp_path):
    run, _ = tiny
    index = runfiles.load_index(run)
    assert index.items and len(index.by_key()) == len(index.items)
    assert {"key", "model", "clean", "adv", "label"} <= set(index.items[0])
    preds = runfiles.load_predictions(run)
    assert {r["key"] for r in preds.records} == set(index.by_key())
    for name, load, save in ((runfiles.INDEX, runfiles.load_index, runfiles.save_index),
                             (runfiles.PREDICTIONS, runfiles.load_predictions, runfiles.save_predictions)):
        other = _copy(run, tmp_path, name)
        before = runfiles.path(other, name).read_bytes()
        save(other, load(other))
        assert runfiles.path(other, name).read_bytes() == before, name


def test_crops_of_an_older_run_load(tiny, tmp_path):
    """A crops.json without the `excluded` list (as runs made before it was added wrote it) loads
    with an empty one, and its accepted crops are the ones marked so."""
    run = _copy(tiny[0], tmp_path / "older", runfiles.CROPS)
    raw = json.loads(runfiles.path(run, runfiles.CROPS).read_text())
    raw.pop("excluded", None)
    runfiles.path(run, runfiles.CROPS).write_text(json.dumps(raw))
    crops = runfiles.load_crops(run)
    assert crops.excluded == [] and crops.missing == raw["missing"] and crops.photos == raw["photos"]
    assert crops.accepted() == [c for c in raw["crops"] if c["accepted"]]
    assert runfiles.load_crops(RunDir(tmp_path / "none")) is None
    other = _copy(run, tmp_path, runfiles.CROPS)
    runfiles.save_crops(other, crops)
    assert json.loads(runfiles.path(other, runfiles.CROPS).read_text()) == {**raw, "excluded": []}


def test_a_missing_index_names_the_file_and_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"generate/index.json: missing; run the generate stage first"):
        runfiles.load_index(RunDir(tmp_path / "r"))
