"""docs/config.md documents every key of the schema: every field of every section (the sections of
higher layers too) and every attack family's parameters; a key added to the code without a row in
the reference fails here, and so does a row for a key the schema no longer has."""
from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

from physical.attacks import ATTACKS
from physical.config import Config
from physical.runs.checks import HIGHER_SECTIONS

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"
HIDDEN = {"base_dir", "extra_sections", "family_params", "from_preset"}


def _dataclass_of(tp) -> tuple[type | None, bool]:
    """The dataclass a field holds (directly, optionally, or as a list's items) and whether in a list."""
    if dataclasses.is_dataclass(tp):
        return tp, False
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is list and args:
        inner, _ = _dataclass_of(args[0])
        return inner, True
    for a in args:
        inner, listed = _dataclass_of(a)
        if inner is not None:
            return inner, listed
    return None, False


def schema_keys(cls: type, prefix: str, sections: bool = False) -> set[str]:
    """The dotted keys of `cls`'s values (and, with `sections`, of the mappings holding them)."""
    keys = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.name in HIDDEN:
            continue
        path = f"{prefix}.{f.name}" if prefix else f.name
        inner, listed = _dataclass_of(hints[f.name])
        if inner is None or sections:  # a value; a section's own fields are its rows
            keys.add(path)
        if inner is not None:
            keys |= schema_keys(inner, path + ("[]" if listed else ""), sections)
    return keys


def all_schema_keys(sections: bool = False) -> set[str]:
    keys = schema_keys(Config, "", sections)
    for name, cls in HIGHER_SECTIONS.items():
        keys |= schema_keys(cls, name, sections)
    for family in ATTACKS.values():
        keys |= {f"attacks[].{k}" for k in getattr(family, "params", {})}
    return keys


def documented() -> set[str]:
    """The dotted keys in the first cell of the reference's table rows ([i] written as [])."""
    keys = set()
    for line in DOC.read_text().splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            keys |= {re.sub(r"\[i\]", "[]", k) for k in re.findall(r"`([^`]+)`", first)}
    return keys


def _section(key: str) -> str:
    return key.split(".")[0].split("[")[0]


def test_every_schema_key_has_a_row_in_docs_config_md():
    missing = sorted(all_schema_keys() - documented())
    assert not missing, f"docs/config.md documents no row for: {', '.join(missing)}"


def test_every_row_of_docs_config_md_is_a_key_of_the_schema():
    sections = {_section(k) for k in all_schema_keys()}
    rows = {k for k in documented() if _section(k) in sections and re.fullmatch(r"[\w.\[\]]+", k)}
    stale = sorted(rows - all_schema_keys(sections=True))
    assert not stale, f"docs/config.md documents keys the schema does not have: {', '.join(stale)}"
