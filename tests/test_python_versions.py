"""The Python versions the package declares (issue 26.1): no upper cap, a classifier for each
version from 3.11 up to the one running the tests, and CI on each declared version."""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_declared_versions_cover_this_interpreter_and_ci():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    spec = project["requires-python"]
    assert "<" not in spec and spec.replace(" ", "") == ">=3.11", spec
    declared = {c.rsplit(" :: ", 1)[1] for c in project["classifiers"]
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    wanted = {f"3.{m}" for m in range(11, max(13, sys.version_info.minor) + 1)}
    assert declared == wanted, (declared, wanted)
    ci = (ROOT / ".github" / "workflows" / "tests.yml").read_text()
    matrix = set(re.findall(r'"(3\.\d+)"', re.search(r"python: \[(.*?)\]", ci).group(1)))
    assert matrix == declared, (matrix, declared)
    assert project["optional-dependencies"]["timm"], "the timm extra"
