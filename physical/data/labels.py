"""A folder's labels.csv, read strictly: every row either labels one image of the folder or says why not.

The file is UTF-8 (a byte-order mark is allowed; UTF-16 with its mark is read too); any other
encoding is refused with a line naming the byte, since guessing it would misread file names. The
header names a file column and a label column (case-insensitive, spaces trimmed):

- file: ``file``, ``filename``, ``file_name``, ``image``, ``path``
- label: ``class_index``, ``label``, ``class``, ``index`` (an ImageNet index 0 .. 999, or a class name)
  or ``name``, ``class_name`` (a class name)

A row's file is matched by its exact name, else by its name ignoring case when exactly one image
matches that way (``x.jpeg`` for ``x.JPEG``). What would make a wrong result is an error (a
ConfigError naming the file, the line and what to do): no usable header, the same image listed with
two classes, two images that only differ in case for one row, a labels.csv that labels no image of
the folder. What would not is a warning, one line each (`problems`): the same row twice, a row
for a file that is not there, a listed file of a kind the tool does not read, images not listed.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

from physical.data.imagesets import IMAGE_SUFFIXES
from physical.errors import ConfigError
from physical.models import class_index

FILE_COLUMNS = ("file", "filename", "file_name", "image", "path")
LABEL_COLUMNS = ("class_index", "label", "class", "index", "name", "class_name")
SHOWN = 10  # warnings of one kind shown before the rest are counted


def decode(path: Path) -> str:
    """The text of a labels file: UTF-8 (with or without a BOM) or UTF-16 with its BOM; else one line."""
    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not valid UTF-16 text ({e.reason} at byte {e.start}); "
                              "save it as UTF-8") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path} line {line}: byte 0x{raw[e.start]:02x} is not UTF-8 (a latin-1 or Windows "
                          "file?); save the file as UTF-8 (in a spreadsheet: CSV UTF-8) and run again") from None


def _columns(path: Path, header: Optional[list[str]]) -> tuple[str, str]:
    if not header or not any(h.strip() for h in header):
        raise ConfigError(f"{path}: empty; it needs a header line (file,class_index) and one line per image, "
                          "or remove it to run the images without labels")
    names = {h.strip().lower().lstrip("\ufeff"): h for h in header}
    file_col = next((names[c] for c in FILE_COLUMNS if c in names), None)
    label_col = next((names[c] for c in LABEL_COLUMNS if c in names), None)
    if file_col is None or label_col is None:
        raise ConfigError(f"{path}: header {','.join(header)!r} lacks a {'file' if file_col is None else 'label'} "
                          f"column; accepted: file columns {', '.join(FILE_COLUMNS)}; label columns "
                          f"{', '.join(LABEL_COLUMNS)}")
    return file_col, label_col


def _match(name: str, files: dict[str, Path], lower: dict[str, list[Path]], where: str) -> Optional[Path]:
    if name in files:
        return files[name]
    cands = lower.get(name.lower(), [])
    if len(cands) > 1:
        raise ConfigError(f"{where}: {name!r} matches {' and '.join(p.name for p in cands)} when case is ignored "
                          "and none exactly; write the exact file name")
    return cands[0] if cands else None


def _label(raw: str, where: str, file: str) -> int:
    try:
        return class_index(int(raw) if raw.lstrip("-").isdigit() else raw, where)
    except ConfigError as e:
        raise ConfigError(f"{where}: bad label for {file!r}: {e}; fix the line or remove it") from None


def read_labels(path: Path, images: list[Path]) -> tuple[dict[Path, int], list[str]]:
    """{image: class index} of the `images` (a folder's) that `path` labels, and the warnings to show."""
    reader = csv.reader(io.StringIO(decode(path), newline=""))
    header = next(reader, None) or []
    file_col, label_col = _columns(path, header)
    fi, li = header.index(file_col), header.index(label_col)
    files = {p.name: p for p in images}
    lower: dict[str, list[Path]] = {}
    for p in images:
        lower.setdefault(p.name.lower(), []).append(p)
    labels: dict[Path, int] = {}
    lines: dict[Path, int] = {}
    missing: list[str] = []
    unsupported: list[str] = []
    twice: list[str] = []
    rows = 0
    for n, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        rows += 1
        where = f"{path} line {n}"
        file = (row[fi] if fi < len(row) else "").strip()
        raw = (row[li] if li < len(row) else "").strip()
        if not file or not raw:
            raise ConfigError(f"{where}: {'no file name' if not file else f'no label for {file!r}'}; "
                              "fix the line or remove it")
        label = _label(raw, where, file)
        found = _match(file, files, lower, where)
        if found is None:
            other = path.parent / file
            if other.is_file():
                unsupported.append(f"{where}: {file!r} is not an image the tool reads "
                                   f"({', '.join(sorted(IMAGE_SUFFIXES))}): its line is ignored")
            else:
                missing.append(f"{where}: {file!r} not found in {path.parent}: its line is ignored")
            continue
        p = found
        if p in labels:
            if labels[p] != label:
                raise ConfigError(f"{where}: {file!r} is labelled {label} here and {labels[p]} on line {lines[p]}; "
                                  "keep the right line only")
            twice.append(f"{where}: {file!r} listed again (as on line {lines[p]}); the repeat is ignored")
            continue
        labels[p], lines[p] = label, n
    if not labels:
        why = (f"none of its {rows} line(s) names an image of the folder" if rows
               else "it has a header and no lines")
        raise ConfigError(f"{path}: labels no image: {why}; every image would run without a label (the clean "
                          "accuracy would be 100 % by construction): fix the file names or remove labels.csv")
    unlisted = [p.name for p in images if p not in labels]
    notes = _shown(missing) + _shown(unsupported) + _shown(twice)
    if unlisted:
        notes.append(f"{path}: {len(unlisted)} image(s) not listed ({', '.join(unlisted[:5])}"
                     f"{', ...' if len(unlisted) > 5 else ''}): they run without a label (their clean top-1 "
                     "prediction stands in for it)")
    return labels, notes


def _shown(lines: list[str]) -> list[str]:
    return lines[:SHOWN] + ([f"... and {len(lines) - SHOWN} more such line(s)"] if len(lines) > SHOWN else [])
