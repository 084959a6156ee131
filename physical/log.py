"""How the tool talks to the user: one line at a time, progress and notes to stdout (`say`),
warnings about the user's input or the source (deprecated keys, files skipped, a stream that
dropped) to stderr (`warn`). Stages and commands speak through these two only; a stage or a loop
that takes a `log`/`say` callback defaults it to `say`, so a caller can silence or collect its
lines. The exceptions: the command line's final one-line error (physical/cli.py) and tqdm's
progress bars.

`physical --quiet` silences `say` (warnings and errors still print); inside `logging_to(path)` (a
run: `<run>/run.log`) every say and warn line is also appended to the file, with the time, quiet or
not."""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, TextIO

QUIET = False  # set by `physical --quiet`: no progress lines, no progress bars
_LOG: list[TextIO] = []  # the open run logs (innermost last)


def set_quiet(quiet: bool) -> None:
    global QUIET
    QUIET = bool(quiet)


def is_quiet() -> bool:
    return QUIET


def _to_log(line: str, kind: str = "") -> None:
    if _LOG:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        for text in str(line).splitlines() or [""]:
            _LOG[-1].write(f"{stamp} {kind}{text}\n")
        _LOG[-1].flush()


def note(line: str) -> None:
    """A line for the run's log only (what ran, when): not printed."""
    _to_log(line)


def write_line(line: str, stream: TextIO | None = None) -> None:
    """One line in one write (stderr by default): the processes of a torchrun job share the pipe, and print's
    separate write of the newline lets their lines interleave."""
    out = sys.stderr if stream is None else stream
    out.write(line + "\n")
    out.flush()


def say(line: str) -> None:
    """A line of progress or a note about the run (stdout; not with --quiet)."""
    _to_log(line)
    if not QUIET:
        write_line(line, sys.stdout)


def warn(line: str) -> None:
    """A line about something the user gave that still works but should change (stderr)."""
    _to_log(line, "warning: ")
    write_line(line)


@contextlib.contextmanager
def logging_to(path: Optional[Path]) -> Iterator[None]:
    """Append every say/warn line to `path` while inside (nested: the innermost file only)."""
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        _LOG.append(f)
        try:
            yield
        finally:
            _LOG.remove(f)
