"""SIGTERM and SIGHUP stop a run the way Ctrl-C does.

Slurm, Kubernetes and systemd send SIGTERM before they kill a job; a closed terminal or
SSH session sends SIGHUP. While :func:`stop_signals_interrupt` is active, the first of
them raises :class:`KeyboardInterrupt` in the main thread, so training saves its model, a
checkpoint and train.json (status "interrupted") exactly as after Ctrl-C. Later ones are
ignored, so they cannot break the save. :func:`exit_code` then gives ``128 + signum``, the
shell's convention for a process ended by a signal.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: the signals handled like Ctrl-C
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

_received: list[int] = []
_armed = [True]


def received() -> int | None:
    """:return: the first stop signal this process received, or None."""
    return _received[0] if _received else None


def exit_code(default: int = signal.SIGINT) -> int:
    """:return: ``128 + signum`` of the signal that stopped this process (SIGINT when none was received)."""
    return 128 + (received() or default)


def caused_by_stop(error: BaseException) -> bool:
    """:return: whether ``error`` comes from a stop: a Ctrl-C, SIGTERM or SIGHUP.

    The KeyboardInterrupt of a stop can land inside a library's own clean-up (a zip entry being
    written, a callback called from C code), which then raises another exception with the
    KeyboardInterrupt as its context: that is still the user's stop, not a failure.
    """
    if received() is not None:
        return True
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def disarm() -> None:
    """From now on a stop signal is only recorded: learning is over and the final save must finish."""
    _armed[0] = False


def _interrupt(signum: int, frame: Any) -> None:
    if _received:  # a repeated signal: the save after the first one must finish
        return
    _received.append(signum)
    if _armed[0]:
        raise KeyboardInterrupt


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`KeyboardInterrupt` once (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    _armed[0] = True
    with _stop_signals_handled_by(_interrupt):
        yield


@contextmanager
def stop_signals_counted(counter: list[int]) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP add one to ``counter[0]`` (as Ctrl-C does for ``--seeds``).

    :param counter: a one-element list shared with the loop that acts on the count.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def count(signum: int, frame: Any) -> None:
        if not _received:
            _received.append(signum)
        counter[0] += 1

    with _stop_signals_handled_by(count):
        yield


@contextmanager
def _stop_signals_handled_by(handler: Any) -> Iterator[None]:
    """Install ``handler`` for SIGTERM and SIGHUP within the block, then restore the previous handlers."""
    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
