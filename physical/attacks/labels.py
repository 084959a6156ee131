"""The name of an attack's images in paths and tables, formatted and parsed in this one place.

    [control-][eot-][np-][tvW-]FAMILY[-tN][-fF]_epsE

``eot-``: with EOT; ``np-``: with the non-printability penalty; ``tvW-``: total-variation weight W;
``-tN``: targeted at class N (``-tll``: at each image's least-likely class);
``-fF``: a patch's fraction F of the image; ``_epsE``: the L-inf
budget. A fitted attack's control images carry its control prefix (``rand-uap_eps10``,
``ctl-patch-t859-f0.1_eps255``). An entry's own ``label:`` replaces everything before ``_eps``; one
outside this grammar parses with ``family`` None (whether a family is one of `attacks.ATTACKS` is
the caller's question: `attacks.names_attack`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

CONTROLS = ("rand", "ctl", "control")  # the fitted families' control prefixes (`Attack.control_name`)
LEAST_LIKELY = "least_likely"  # a target: each image's least-likely class (Kurakin's ILL), written -tll
LEAST_LIKELY_NAMES = ("least_likely", "least-likely", "ll")  # how a config may write it


def is_least_likely(target) -> bool:
    return isinstance(target, str) and target.strip().lower() in LEAST_LIKELY_NAMES

_PATTERN = re.compile(
    r"^(?:(?P<control>" + "|".join(CONTROLS) + r")-)?(?P<eot>eot-)?(?P<np>np-)?(?:tv(?P<tv>[0-9.e+-]+?)-)?"
    r"(?P<family>[a-z]+)(?:-t(?P<target>\d+|ll))?(?:-f(?P<fraction>[0-9.e+-]+))?$")


@dataclass(frozen=True)
class AttackLabel:
    family: Optional[str]  # canonical attack name; None for a label outside the grammar (an entry's own)
    eps: Optional[float] = None  # None: a label without its _eps part (an attack entry's base)
    eot: bool = False
    printability: bool = False  # np-
    tv: float = 0.0
    target: Union[int, str, None] = None  # a class, or LEAST_LIKELY
    fraction: Optional[float] = None  # a patch's share of the image
    control: Optional[str] = None
    custom: Optional[str] = None  # an entry's own `label:` (then the fields above are unused)

    @property
    def name(self) -> str:
        """The label without its ``_eps`` part."""
        if self.custom is not None:
            return self.custom
        prefix = (f"{self.control}-" if self.control else "") + ("eot-" if self.eot else "")
        prefix += ("np-" if self.printability else "") + (f"tv{self.tv:g}-" if self.tv > 0 else "")
        tgt = "" if self.target is None else "-tll" if self.target == LEAST_LIKELY else f"-t{self.target}"
        frac = f"-f{self.fraction:g}" if self.fraction is not None else ""
        return f"{prefix}{self.family}{tgt}{frac}"

    def __str__(self) -> str:
        return self.name if self.eps is None else f"{self.name}_eps{self.eps:g}"

    @classmethod
    def parse(cls, text: str) -> "AttackLabel":
        """The parts of a label this tool wrote (or a name the user gave, as `custom`)."""
        name, sep, eps = text.rpartition("_eps")
        value = None
        if sep:
            try:
                value = float(eps)
            except ValueError:
                name, value = text, None
        else:
            name = text
        m = _PATTERN.match(name)
        if m is None:
            return cls(family=None, eps=value, custom=name)
        g = m.groupdict()
        return cls(family=g["family"], eps=value, eot=bool(g["eot"]), printability=bool(g["np"]),
                   tv=float(g["tv"]) if g["tv"] else 0.0, target=_target(g["target"]),
                   fraction=float(g["fraction"]) if g["fraction"] else None, control=g["control"])


def _target(text: Optional[str]) -> Union[int, str, None]:
    return None if not text else LEAST_LIKELY if text == "ll" else int(text)
