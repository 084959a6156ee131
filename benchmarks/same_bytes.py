"""Does a change keep every byte a run writes? A config is run by a reference checkout and by this
one, each in a fresh output folder with the clock pinned (run ids and tags come from the time), and
the digests of every file of the two run directories are compared (manifest.json and run.log left
out: they record times, versions and process ids).

    git worktree add /tmp/before HEAD~1
    python benchmarks/same_bytes.py --reference /tmp/before --config my_small.yaml

Prints one line per differing file and exits 1 when any differs. The config's `run.output` is
replaced by a temporary folder (the same for both: the path enters the run id).
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
# runs `physical run CONFIG` with time.strftime pinned to 2026-01-01 00:00:00
PINNED = """
import sys, time
_strftime = time.strftime
time.strftime = lambda fmt, *a: _strftime(fmt, time.struct_time((2026, 1, 1, 0, 0, 0, 3, 1, 0)))
try:
    from physical.cli.main import main
except ModuleNotFoundError:  # a checkout from before physical/cli/ was a package
    from physical.cli import main
sys.exit(main(["run", sys.argv[1], "--set", "run.output=" + sys.argv[2]]))
"""


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in ("manifest.json", "run.log")}


def run(checkout: Path, config: Path, out: Path) -> dict[str, str]:
    env_path = str(checkout)
    r = subprocess.run([sys.executable, "-c", PINNED, str(config), str(out)], cwd=checkout,
                       env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{checkout}: the run failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return digests(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, type=Path, help="the checkout to compare with")
    ap.add_argument("--config", required=True, type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:  # one output path for both: it enters the run's id
        out = Path(tmp) / "runs"
        ref = run(args.reference.resolve(), args.config.resolve(), out)
        shutil.rmtree(out)
        now = run(HERE, args.config.resolve(), out)
    differ = sorted(k for k in ref.keys() | now.keys() if ref.get(k) != now.get(k))
    for k in differ:
        print(f"differs: {k} ({'missing here' if k not in now else 'missing in the reference' if k not in ref else 'content'})")
    print(f"{len(now)} files, {len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
