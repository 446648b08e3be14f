"""One writer per run folder: an OS-level lock held while a process writes a run.

``rltool train`` (each seed of ``--seeds`` too) and ``rltool train --resume`` hold an
exclusive ``flock`` on ``<run>/.rltool.lock`` for as long as they write the run; a second
writer is refused in one line that names the holder's pid and command. The kernel drops the
lock when its process ends, however it ends, so ``kill -9`` leaves nothing stale: the file
may stay behind, but an unlocked file blocks nobody. Readers (eval, video, plot, report)
take no lock: every file is written atomically, so they never see half a file.

Tuning workers share a results folder; they take the same lock, waiting their turn, only
while they write trials.csv, best.yaml and the plots.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rltool.errors import OutputError, RltoolError

#: the lock file inside a run folder
LOCK_NAME = ".rltool.lock"


class RunLockedError(RltoolError):
    """Another process is writing this run folder."""


def this_command() -> str:
    """:return: this process's command line, as the user typed it (``rltool train ...``)."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program in ("__main__.py", "rltool", "-c"):
        program = "rltool"
    return " ".join([program, *sys.argv[1:]])


def _holder(path: Path, patience: float = 2.0) -> str:
    """:return: the holder's pid and command, as it wrote them into the lock file.

    A holder writes them just after it takes the lock, so a refused writer that reads an
    empty file waits up to ``patience`` seconds for them before it says "another process".
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            pid, _, command = path.read_text().partition("\n")
        except OSError:
            pid, command = "", ""
        pid, command = pid.strip(), command.strip()
        if pid and command:
            return f"pid {pid} ({command})"
        if time.monotonic() >= deadline:
            return f"pid {pid}" if pid else "another process"
        time.sleep(0.02)


def _open_locked(path: Path, blocking: bool) -> int:
    """Open and lock ``path``; retry when the file was replaced meanwhile (a holder removed it)."""
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise OutputError(f"{path.parent}: cannot write ({error.strerror or error})") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(descriptor)
            raise RunLockedError(
                f"{path.parent}: another writer holds it: {_holder(path)}; wait for it to end or stop it "
                "(eval, record-video, plot and report may read it meanwhile)"
            ) from None
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(descriptor).st_ino:
            return descriptor
        os.close(descriptor)  # locked a file its holder had just removed: lock the new one


@contextlib.contextmanager
def hold_run_lock(folder: Path, *, blocking: bool = False) -> Iterator[None]:
    """Hold the writer's lock of ``folder`` (an existing folder) within the block.

    :param folder: a run folder, or a tuning results folder.
    :param blocking: wait for the current holder instead of refusing.
    :raises RunLockedError: another process holds it (when not ``blocking``).
    :raises OutputError: the lock file cannot be created (read-only or missing folder).
    """
    path = folder / LOCK_NAME
    descriptor = _open_locked(path, blocking)
    try:
        with contextlib.suppress(OSError):
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n{this_command()}\n".encode())
        yield
    finally:
        # removed while still held, so nobody else can lock this file after it is gone
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(descriptor)
