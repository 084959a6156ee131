"""ARCHITECTURE.md is true to the code: its registries, its layers (import-linter), its limits."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from physical.attacks import ATTACKS
from physical.capture.sources import SOURCES
from physical.cli.main import PLUGINS
from physical.config import Config
from physical.rundir import PIPELINE
from physical.runs.checks import HIGHER_SECTIONS
from physical.transforms.defences import DEFENCES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "physical"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def listed(title: str) -> list[str]:
    """The names ARCHITECTURE.md lists after `- **<title>** (...): `."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    m = re.search(rf"^- \*\*{re.escape(title)}\*\* \([^\n]*?\): (.+)$", text, re.M)
    assert m, f"ARCHITECTURE.md has no registry line for {title}"
    return re.findall(r"`([^`]+)`", m.group(1))


def config_sections() -> list[str]:
    own = [f.name for f in dataclasses.fields(Config) if f.init and f.name not in ("extra_sections", "base_dir")]
    return own + list(HIGHER_SECTIONS)


@pytest.mark.parametrize("title, registered", [
    ("Stages", lambda: [s.name for s in PIPELINE]),
    ("Config sections", config_sections),
    ("Attacks", lambda: list(ATTACKS)),
    ("Defences", lambda: list(DEFENCES)),
    ("Frame sources", lambda: list(SOURCES)),
    ("Verbs", lambda: list(PLUGINS)),
])
def test_every_registry_is_listed_in_architecture_md_and_the_other_way_round(title, registered):
    assert listed(title) == registered()


def test_every_stage_function_is_where_its_declaration_says():
    for s in PIPELINE:
        fn = getattr(importlib.import_module(s.module), s.function)
        assert callable(fn), s
        assert s.module.startswith("physical.stages."), f"{s.name}: stage functions live in physical/stages/"


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_over_500_lines_and_no_function_over_60():
    long_modules = [f"{p.relative_to(ROOT)}: {n}" for p in _sources()
                    if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    long_functions = []
    for p in _sources():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long_modules, long_modules
    assert not long_functions, long_functions


def _tool(name: str) -> str:
    exe = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(exe).exists():
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return exe


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_the_layers_hold():
    r = _run([_tool("lint-imports")])
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


@pytest.mark.slow
def test_ruff_finds_nothing():
    r = _run([_tool("ruff"), "check", "physical"])
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


@pytest.mark.slow
def test_mypy_finds_nothing():
    r = _run([_tool("mypy"), "physical"])
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
