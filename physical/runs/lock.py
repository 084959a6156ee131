"""One writer per run directory: ``run.lock`` names the process that holds it."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from physical.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


class RunLocked(UserError):
    """Another process holds the run directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class RunLock:
    """``run.lock`` in a run directory: holder pid, host and start time. A second writer is refused,
    naming the holder; a lock whose process is gone (same host) is taken over and `taken_over` says
    whose it was. Use as a context manager."""

    def __init__(self, root: Path, command: str = ""):
        self.path = Path(root) / "run.lock"
        self.command = command
        self.taken_over: dict | None = None

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> "RunLock":
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "command": self.command}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
            except FileExistsError:
                h = self._holder()
                same_host = h.get("host") == me["host"]
                if isinstance(h.get("pid"), int) and (not same_host or _alive(h["pid"])):
                    raise RunLocked(f"{self.path.parent}: in use by pid {h['pid']} on {h.get('host')} since "
                                    f"{h.get('started')} ({h.get('command') or 'physical'}); wait for it to finish, "
                                    f"or remove {self.path} if that process is gone") from None
                if not h and time.time() - self.path.stat().st_mtime < 5:
                    time.sleep(0.2)  # a lock being written this moment
                    continue
                self.taken_over = h or {"pid": None}
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            return self
        raise RunLocked(f"{self.path}: could not take the run's lock; remove it if no physical command is running")

    def release(self) -> None:
        if self._holder().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
