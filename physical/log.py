"""How the tool talks to the user: one line at a time, progress and notes to stdout (`say`),
warnings about the user's input (deprecated keys, files skipped) to stderr (`warn`). Stages that
take a `log` callback default to `say`, so a caller can silence or collect a stage's lines."""
from __future__ import annotations

import sys


def say(line: str) -> None:
    """A line of progress or a note about the run (stdout)."""
    print(line, flush=True)


def warn(line: str) -> None:
    """A line about something the user gave that still works but should change (stderr)."""
    print(line, file=sys.stderr, flush=True)
