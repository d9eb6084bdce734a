"""One latprof process per folder: a run, validation or search folder is locked while a command
writes to it.

Two processes measuring into one run folder would both time everything, pinned to the same core,
and record each other's contention as valid timings; two resumed searches would train the same
candidate under one id.  The lock is the operating system's (``filelock``): it is released when
its holder exits, however it exits, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from latprof.errors import LatprofError

LOCK_FILE = ".latprof.lock"


@contextmanager
def folder_lock(folder: str | Path, command: str) -> Iterator[None]:
    """Hold ``folder``'s lock while ``command`` writes to it; refuse at once, naming the holder,
    when another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LatprofError(f"{folder} is in use by another latprof process ({_holder(path)}); wait for it to "
                           "finish, or use another folder") from None
    try:
        _record_holder(path, command)
        yield
    finally:
        lock.release()


def _record_holder(path: Path, command: str) -> None:
    """Write who holds the lock into the lock file itself (the lock is on the file, not its text)."""
    with open(path, "w") as handle:
        handle.write(f"pid {os.getpid()}, latprof {command}\n")


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "pid unknown"
    except OSError:
        return "pid unknown"
