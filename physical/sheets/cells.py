"""Cells: which sheet and slot each (clean, adversarial) pair of a run is printed in."""
from __future__ import annotations

from physical.errors import ConfigError
from physical.sheets.layout import Layout


def _label(item: dict, role: str, several_models: bool) -> str:
    eps = item.get("eps")
    parts = [item.get("model", "")] if several_models else []
    parts += [str(item.get("attack", "")), f"eps{eps:g}" if isinstance(eps, (int, float)) else "",
              str(item.get("image", "")), role]
    return " ".join(p for p in parts if p)


def assign_cells(items: list[dict], layout: Layout) -> list[dict]:
    """One pair of neighbouring slots per item (clean, adversarial; see `Layout.pair_slots`), on
    one sheet; a new sheet when full.

    Returns cells {sheet, slot, item, role, image (path relative to the run), label}; raises
    ConfigError (a ValueError) when the items need more sheets than the layout's marker ids allow.
    """
    pairs = layout.pair_slots()
    per_sheet = layout.cells_per_sheet
    n_sheets = layout.sheets_for(len(items))
    if n_sheets > layout.max_sheets:
        raise ConfigError(
            f"sheet: {len(items)} image pairs need {n_sheets} sheets of {per_sheet} cells, but the marker ids "
            f"allow at most {layout.max_sheets} sheets; use fewer images/attacks or a smaller sheet.cell_mm"
        )
    several = len({it.get("model") for it in items}) > 1
    cells = []
    for k, item in enumerate(items):
        sheet, pair = divmod(k, len(pairs))
        for slot, role in zip(pairs[pair], ("clean", "adv"), strict=False):
            cells.append({"sheet": sheet, "slot": slot, "item": item["key"], "role": role,
                          "image": item[role], "label": _label(item, role, several)})
    return cells
