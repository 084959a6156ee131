"""Every ```python block of docs/api.md runs, in order, in one namespace (as a reader would paste
them), in a fresh working directory holding the `colour.json` the page's channel example reads."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from physical.channel.files import colour_document
from physical.rundir import write_json

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
README = DOC.parent.parent / "README.md"


def blocks(text: str) -> list[tuple[int, str]]:
    """(line, code) of every ```python block."""
    return [(text[: m.start()].count("\n") + 2, m.group(1)) for m in re.finditer(r"```python\n(.*?)```", text, re.DOTALL)]


def test_the_page_has_a_quick_example_of_at_most_ten_lines():
    text = DOC.read_text()
    quick = text.split("## Quick example", 1)[1]
    first = blocks(quick)[0][1]
    assert len(first.strip().splitlines()) <= 10 and "import physical" in first


def test_every_python_example_of_docs_api_runs(tmp_path, monkeypatch, capsys):  # a whole tiny run included: ~6 s
    monkeypatch.chdir(tmp_path)
    g = np.linspace(0, 1, 65)
    write_json(tmp_path / "colour.json", colour_document(np.stack([g ** 1.1] * 3), np.eye(3) * 0.9, [0.02] * 3,
                                                         [0.4, 0.9], [0.004, 0.008]))
    found = blocks(DOC.read_text())
    assert len(found) >= 8, "docs/api.md lost its examples"
    ns: dict = {"__name__": "docs_api"}
    for line, code in found:
        try:
            exec(compile(code, f"{DOC}:{line}", "exec"), ns)  # noqa: S102 (the page's own examples)
        except Exception as e:  # name the block, keep the cause
            raise AssertionError(f"docs/api.md line {line}: {type(e).__name__}: {e}") from e
    out = capsys.readouterr().out
    assert "eps: 8 is outside [0, 1]" in out and "attacks[0].eps[0]: 0.0313725 is below 1" in out
    assert ns["result"].success.all(), "the quick example's BIM of 8/255 fools Lite0 on the three samples"
    assert ns["run"].report_html is not None and ns["photos"].shape == (12, 3, 224, 224)


def test_the_readme_example_runs():
    (line, code), = blocks(README.read_text())
    ns: dict = {"__name__": "readme"}
    exec(compile(code, f"{README}:{line}", "exec"), ns)  # noqa: S102 (the front page's own example)
    assert ns["result"].success.all() and ns["adv_uint8"].shape == (3, 224, 224, 3)


def test_the_printed_recipe_of_docs_attacks_passes_the_config_check(tmp_path):
    """The settings docs/attacks.md gives for printed artifacts are a config the tool accepts, with
    the files it names present (checked here for the CPU)."""
    import yaml
    from physical.config import Config
    from physical.runs.checks import from_dict

    text = (DOC.parent / "attacks.md").read_text()
    (recipe,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL) if "name: printed" in b]
    data = yaml.safe_load(recipe)
    g = np.linspace(0, 1, 65)
    write_json(tmp_path / "colour.json", colour_document(np.stack([g ** 1.1] * 3), np.eye(3) * 0.9, [0.02] * 3,
                                                         [0.4, 0.9], [0.004, 0.008]))
    for folder in ("my_images", "fit_images"):
        (tmp_path / folder).mkdir()
    data["run"]["device"] = "cpu"
    cfg = from_dict(data, tmp_path)
    assert isinstance(cfg, Config)
    by_name = {a.name: a for a in cfg.attacks}
    assert by_name["patch"].eot.samples == 4 and by_name["uap"].eps == [10.0] and by_name["ill"].eot.samples == 2
