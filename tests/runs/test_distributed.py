"""torchrun: generate, classify and experiments sharded by image over 2 ranks on the CPU (gloo) give
the single process's report; a rank that dies stops the job with a message naming it, and a rerun
resumes, redoing only what is missing."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def _config(tmp_path, name, attack):
    cfg = {"run": {"name": name, "output": str(tmp_path / "runs"), "batch_size": 2},
           "images": {"limit": 3}, "attacks": [attack],
           "experiments": {"transformations": {"sweeps": {"brightness": [0.2]}},
                           "defences": {"enabled": False}, "transfer": {"enabled": False}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(cfg))
    return path


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def _torchrun(args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "physical", "run", *args]


def _tables(report: dict) -> dict:
    return {"kurakin": report["kurakin"], "transformations": report["transformations"]["rows"]}


ATTACK = {"name": "bim", "eps": [4], "steps": 2}


def test_two_ranks_give_the_single_process_report(tmp_path):
    one = subprocess.run([sys.executable, "-m", "physical", "run", str(_config(tmp_path, "one", ATTACK))],
                         capture_output=True, text=True, env=_env(), timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    # `physical run --procs 2` is torchrun's launcher with 2 ranks (the SIGKILL test below calls torchrun itself)
    two = subprocess.run([sys.executable, "-m", "physical", "run", str(_config(tmp_path, "two", ATTACK)), "--procs", "2"],
                         capture_output=True, text=True, env=_env(), timeout=900)
    assert two.returncode == 0, two.stderr[-3000:] + two.stdout[-3000:]
    assert "sharded over 2 ranks" in two.stdout and "rank 1 of 2" in two.stdout
    for stage in ("generate", "classify", "experiments"):  # the time estimate after the first batch
        assert re.search(rf"\[{stage}\] first batch in .*: about .* left", one.stdout), one.stdout[-2000:]
    r1 = json.loads((tmp_path / "runs/one/report/report.json").read_text())
    r2 = json.loads((tmp_path / "runs/two/report/report.json").read_text())
    assert _tables(r1) == _tables(r2)
    assert r2["kurakin"][0]["average"]["n"] == 3
    # both ranks made images: the generate records are the single run's, item for item
    done = lambda run: sorted(p.name for p in (tmp_path / "runs" / run / "generate/done").iterdir())  # noqa: E731
    assert done("one") == done("two") and len(done("two")) == 6
    m = json.loads((tmp_path / "runs/two/manifest.json").read_text())
    assert m["stages"]["generate"]["summary"]["made"] == 3


def test_a_rank_that_dies_is_named_and_a_rerun_resumes(tmp_path):
    cfg = _config(tmp_path, "die", {"name": "bim", "eps": [8], "steps": 40})
    p = subprocess.Popen(_torchrun([str(cfg)]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=_env(), start_new_session=True)
    out, pid, t0 = [], None, time.time()
    for line in p.stdout:
        out.append(line)
        if line.startswith("rank 1 of 2 (pid "):
            pid = int(line.split("pid ")[1].split(")")[0])
        if pid and "[generate] ..." in line:
            time.sleep(3)  # inside the attack
            os.kill(pid, signal.SIGKILL)
            break
        assert time.time() - t0 < 600
    rest, _ = p.communicate(timeout=300)
    text = "".join(out) + rest
    assert p.returncode != 0
    assert re.search(r"rank\s*:\s*1 \(local_rank", text), text[-3000:]  # torchrun names the rank that died
    adv = tmp_path / "runs/die/generate/efficientnet_lite0/bim_eps8"
    kept = len(list(adv.glob("*.png"))) if adv.is_dir() else 0
    again = subprocess.run([sys.executable, "-m", "physical", "run", str(cfg), "--until", "generate"],
                           capture_output=True, text=True, env=_env(), timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    m = json.loads((tmp_path / "runs/die/manifest.json").read_text())
    made = m["stages"]["generate"]["summary"]["made"]
    assert made == 3 - kept and len(list(adv.glob("*.png"))) == 3  # only what was missing is made again


def test_torchrun_asking_for_gpus_the_machine_lacks_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA devices")
    cfg = _config(tmp_path, "gpu", ATTACK)
    r = subprocess.run(_torchrun([str(cfg), "--set", "run.device=cuda"]), capture_output=True, text=True,
                       env=_env(), timeout=300)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("physical: error:")]
    assert lines and lines[0] == ("physical: error: run.device: 'cuda' with 2 processes per node needs 2 CUDA "
                                  "device(s); this machine has 0: use --nproc_per_node=1 or run.device: cpu")
    assert "exitcode  : 2" in r.stderr  # each rank stopped with 2 before any work
    assert not (tmp_path / "runs" / "gpu").exists()


def test_procs_asking_for_gpus_the_machine_lacks_is_one_line_before_any_rank(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA devices")
    cfg = _config(tmp_path, "gpu2", ATTACK)
    r = subprocess.run([sys.executable, "-m", "physical", "run", str(cfg), "--procs", "2", "--set", "run.device=cuda"],
                       capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("physical: error: run.device: 'cuda' with 2 processes per node needs 2 CUDA "
                                "device(s); this machine has 0: use --procs=1 or run.device: cpu")
    assert not (tmp_path / "runs" / "gpu2").exists()


@pytest.mark.parametrize("codes, rc, line", [
    ({0: 2, 1: 2}, 2, None),  # every rank named the bad value itself
    ({1: -9}, 1, "physical: error: rank 1 of 2 stopped (signal SIGKILL); finished images are kept: run the same "
                 "command again to resume"),
    ({0: 1}, 1, "physical: error: rank 0 of 2 stopped (exit code 1); finished images are kept: run the same "
                "command again to resume"),
])
def test_procs_reports_a_failed_rank_in_one_line(monkeypatch, capsys, tmp_path, codes, rc, line):
    """`--procs`: torchrun's launcher raises ChildFailedError (with its own traceback when run as
    torchrun); `physical run --procs` turns it into one line (or none: the ranks said it)."""
    import torch.distributed.run as trun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    import physical.cli.main as cli
    seen = []

    def fail(args):
        seen.append(args)
        raise ChildFailedError("physical", {r: ProcessFailure(r, 100 + r, c, "/nonexistent") for r, c in codes.items()})

    monkeypatch.setattr(trun, "run", fail)
    cfg = _config(tmp_path, "p", ATTACK)
    assert cli.main(["run", str(cfg), "--procs", "2", "--until", "generate"]) == rc
    assert seen[0].nproc_per_node == "2" and seen[0].training_script_args == ["run", str(cfg), "--until", "generate"]
    err = capsys.readouterr().err.strip()
    assert err == (line or "")
