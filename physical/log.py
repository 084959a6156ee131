"""How the tool talks to the user: one line at a time, progress and notes to stdout (`say`),
warnings about the user's input or the source (deprecated keys, files skipped, a stream that
dropped) to stderr (`warn`). Stages and commands speak through these two only; a stage or a loop
that takes a `log`/`say` callback defaults it to `say`, so a caller can silence or collect its
lines. The exceptions: the command line's final one-line error (physical/cli.py) and tqdm's
progress bars."""
from __future__ import annotations

import sys


def say(line: str) -> None:
    """A line of progress or a note about the run (stdout)."""
    print(line, flush=True)


def warn(line: str) -> None:
    """A line about something the user gave that still works but should change (stderr)."""
    print(line, file=sys.stderr, flush=True)
