"""What a run says on the terminal and keeps in <run>/run.log (issue 26.5): --version, readable stage
summaries (no raw JSON), the last line naming report.html, --quiet (nothing on stdout, the same lines
in run.log), a one-line error for a bad option."""
from __future__ import annotations

import re

import pytest

from physical.cli.main import main
from tests.runs.test_pipeline import write_config


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert re.fullmatch(r"physical \S+\n", capsys.readouterr().out)


@pytest.fixture(scope="module")
def quiet_and_loud(tmp_path_factory):
    """One tiny run (generate .. report) quiet, then again with --force, loud."""
    tmp = tmp_path_factory.mktemp("terminal")
    cfg = write_config(tmp)
    return tmp, cfg


def test_run_tells_the_truth_and_keeps_a_log(quiet_and_loud, capsys):
    tmp, cfg = quiet_and_loud
    run = tmp / "runs" / "tiny"
    assert main(["--quiet", "run", str(cfg)]) == 0
    quiet = capsys.readouterr()
    assert quiet.out == ""  # --quiet: no progress lines
    log = (run / "run.log").read_text()
    assert "[generate] done in" in log and "[report] done in" in log and "report.html" in log
    assert main(["run", str(cfg), "--force"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    done = [ln for ln in lines if re.match(r"\[\w+\] done in", ln)]
    assert len(done) == 7  # generate, print, capture, align, classify, experiments, report
    assert not any("{" in ln for ln in done)  # readable summaries, not JSON
    assert "[generate] ... (asked for)" in out
    assert lines[-1].startswith("report: ") and str(run / "report" / "report.html") in lines[-1]
    assert (run / "report" / "report.html").is_file()
    # run.log holds both runs' lines, with their times
    log = (run / "run.log").read_text()
    assert log.count("[report] done in") == 2
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", ln) for ln in log.splitlines())


def test_first_run_of_a_stage_says_so(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert main(["run", str(cfg), "--until", "generate"]) == 0
    out = capsys.readouterr().out
    assert "[generate] ... (first time)" in out and "never run" not in out


@pytest.mark.parametrize("argv", [["calibrate", "targets", "--help"], ["live", "--help"], ["run", "--help"]])
def test_help_prints_plain_percent_signs(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    out = capsys.readouterr().out
    assert "%%" not in out and "usage: physical" in out
    if argv[0] == "calibrate":
        assert "100 %" in out


def test_generate_progress_moves_step_by_step(tmp_path, capsys):
    """One batch of BIM in 3 steps: the progress hears of every step (the estimate comes after the
    first step, 2 of 6 image-steps done), not once at the end of the batch."""
    cfg = write_config(tmp_path, attacks=[{"name": "bim", "eps": [4], "steps": 3, "alpha": 1}])
    assert main(["run", str(cfg), "--until", "generate"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\[generate\] first batch in .*: about .* left at most.*\(2 of 6 units of work done\)", out), out
    # the estimate without the warm-up, at the rate since the first step
    assert re.search(r"\[generate\] 67 % done in \d+ s: about \d+ s left\n", out), out
