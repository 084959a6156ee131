"""The `physical` command line: run, models, doctor, and the lab's other verbs.

Every verb is in PLUGINS (verb -> (module, help)); its module, imported only when the verb runs,
registers (help, add_arguments, handler), and a handler returns an exit code. Errors the user can
fix (bad config, missing file, unavailable model or device) print one line naming the bad value and
exit with 2.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import importlib.metadata
import os
import signal
import sys
import threading

from physical.errors import UserError
from physical.log import set_quiet, write_line

# verb -> (module, help). A deliberate lazy plug-in registry: a verb's module is imported only when
# that verb runs, since most of them load torch (about 2 s) and `physical --help` or a mistyped verb
# should not wait for it. The module's `register_cli(commands)`
# adds (help, add_arguments, handler); tests/runs/test_cli.py checks that the help lines agree.
PLUGINS = {
    "run": ("physical.cli.commands", "run a pipeline (generate, print, capture, align, classify, report)"),
    "models": ("physical.cli.commands", "list models and whether each is available here"),
    "doctor": ("physical.cli.commands", "show versions, devices and models of this machine"),
    "print": ("physical.cli.sheets", "write a run's sheets (PDF) and say how many there are and where"),
    "capture": ("physical.cli.capture", "take the photos of a printed run: guided capture from a webcam, phone "
                "stream or video (or copy a folder)"),
    "replay": ("physical.capture.replay", "serve a video or a folder of photos as a phone camera app does (MJPEG "
               "over HTTP), to rehearse live mode and guided capture"),
    "live": ("physical.cli.live", "classify a camera, phone stream or video live; draw the top-5 and, on a run's "
             "sheets, whether each adversarial cell still fools the model"),
    "calibrate": ("physical.cli.calibrate", "calibration targets, camera and printer-to-camera colour (calibration/)"),
    "experiment": ("physical.cli.experiments", "run a stand-alone experiment (digits: training-side mitigations)"),
    "compare": ("physical.cli.experiments", "print the differences between two runs' tables"),
    "predict": ("physical.cli.predict", "before printing: each adversarial image's predicted survival of the channel"),
    "scene": ("physical.cli.scene", "measure a printed patch in a scene: every frame of a camera, phone stream or "
              "video (--video FILE) classified; how often the top-1 is the patch's target, per second and overall, "
              "with an interval"),
}


def plugin_commands(verb: str) -> dict:
    """What the module of a plug-in verb registers: {verb: (help, add_arguments, handler)}."""
    commands: dict = {}
    importlib.import_module(PLUGINS[verb][0]).register_cli(commands)
    return commands


def _verb(argv: list[str]) -> str | None:
    """The verb on a command line: its first word that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def version() -> str:
    """The installed package's version (pyproject.toml), or 'unknown' when run from an uninstalled tree."""
    try:
        return importlib.metadata.version("physical")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser; the arguments of a plug-in verb are known only for `verb` (its module is imported)."""
    parser = argparse.ArgumentParser(prog="physical", description="Physical-world adversarial examples.")
    parser.add_argument("--version", action="version", version=f"physical {version()}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines or bars (warnings and errors "
                                                                    "still print; a run's run.log gets every line)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help) in PLUGINS.items():
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="no progress lines or bars (as `physical --quiet VERB`)")
        if name == verb:
            _, add, fn = plugin_commands(name)[name]
            add(p)
            p.set_defaults(handler=fn)
    return parser


def os_error_line(e: OSError) -> str:
    """A write that failed, as one line: the file written (a copy's destination, not its source) and
    what to do."""
    where = e.filename2 or e.filename or "a file of the run"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        folder = os.path.dirname(str(where)) or "."
        return (f"{where}: {e.strerror}; free space on the disk that holds {folder} (df -h {folder}: old runs, "
                "photos, caches) and run again: nothing finished was lost")
    return f"{where}: {e.strerror}; nothing finished was lost"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_verb(argv)).parse_args(argv)
    args.argv = argv
    set_quiet(getattr(args, "quiet", False))
    before = _stop_on_signals()
    try:
        return args.handler(args) or 0
    except (UserError, FileNotFoundError) as e:  # models.ModelUnavailable is a UserError
        write_line(f"physical: error: {e}")
        return 2
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            raise
        # a folder that cannot be written (read-only run directory, full disk): finished files are kept
        write_line(f"physical: error: {os_error_line(e)}")
        return 2
    except KeyboardInterrupt as e:
        why = f" by {e.args[0]}" if e.args and str(e.args[0]).startswith("SIG") else ""
        write_line(f"physical: interrupted{why}; finished stages and files are kept, run again to resume")
        return 130
    finally:
        set_quiet(False)
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _stop_on_signals() -> dict:
    """SIGTERM (a scheduler, `docker stop`, `kill`) and SIGHUP (a closed terminal) stop a command the
    way Ctrl-C does: the running stage is marked interrupted, the lock released, one line. Returns the
    handlers to put back (none outside the main thread, where Python cannot set them)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    sigs = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    return {s: signal.signal(s, _interrupt) for s in sigs}


if __name__ == "__main__":
    sys.exit(main())
