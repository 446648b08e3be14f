"""Crash-safe file writing: temporary file in the same folder, flush, fsync, rename.

A ``kill -9`` at any instant leaves either the old complete file or the new
complete one, never a truncated file: ``os.replace`` within one folder is atomic.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rltool.errors import OutputError


@contextlib.contextmanager
def atomic_path(destination: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; on success it replaces ``destination``.

    The temporary name keeps the destination's suffix, so writers that add ``.zip`` when
    it is missing (SB3's ``save``) write exactly where told.

    :param destination: the final file.
    """
    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            dir=destination.parent, prefix=f".{destination.name}.", suffix=f".tmp{destination.suffix}"
        )
    except OSError as error:
        raise OutputError(f"{destination}: cannot write ({error.strerror or error})") from None
    os.close(handle)
    temporary = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, destination)
        _fsync_folder(destination.parent)
    finally:
        with contextlib.suppress(OSError):  # e.g. the folder became read-only or was deleted
            temporary.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def write_bytes(destination: Path, data: bytes) -> None:
    """Write ``data`` to ``destination`` atomically."""
    with atomic_path(destination) as temporary:
        temporary.write_bytes(data)


def write_text(destination: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``destination`` atomically."""
    write_bytes(destination, text.encode("utf-8"))


def write_json(destination: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``destination`` atomically."""
    write_text(destination, json.dumps(data, indent=2, default=str) + "\n")


def check_writable_folder(folder: Path) -> None:
    """Raise :class:`OutputError` unless ``folder`` can be created and written.

    :param folder: a folder that may not exist yet.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise OutputError(f"{folder}: '{existing}' is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: not writable (check permissions or choose another folder)")
    # os.access says yes to root everywhere, and to read-only mounts and /proc: try for real
    # (an unnamed temporary file; it disappears when closed, even after a kill)
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise OutputError(f"{folder}: not writable ({error.strerror or error})") from None


def numbered_path(folder: Path, stem: str, suffix: str) -> Path:
    """:return: ``folder/stem.suffix``, or ``stem-2``, ``stem-3``, ... so no existing file is overwritten."""
    candidate = folder / f"{stem}{suffix}"
    number = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{number}{suffix}"
        number += 1
    return candidate
