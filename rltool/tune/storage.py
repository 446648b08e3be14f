"""Where a study lives (journal file, SQLite, PostgreSQL): parsing ``--storage``, opening it safely
when many workers start together, and claiming the results folder."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from rltool.errors import RltoolError, first_line
from rltool.fileio import check_writable_folder, write_json
from rltool.tune.options import TuneError


@dataclass(frozen=True)
class StorageSpec:
    """Where a study lives: a journal file or a database URL."""

    kind: str  # "journal" or "rdb"
    location: str  # file path or URL
    display: str  # for messages: the path, or the URL without its password

    def dashboard_command(self) -> str:
        """:return: the command that watches this storage in optuna-dashboard."""
        return f"optuna-dashboard {self.display}"


def _mask_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def parse_storage(text: str | None, default_journal: Path) -> StorageSpec:
    """Read ``--storage``: a ``.log`` path, ``sqlite:///...`` or ``postgresql://...``.

    :param text: the option's value, or None for the default journal file.
    :param default_journal: the journal file used without ``--storage``.
    :return: the storage description.
    """
    if text is None:
        return StorageSpec("journal", str(default_journal), str(default_journal))
    text = text.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if not scheme:
        if text.endswith(".log"):
            return StorageSpec("journal", text, text)
        raise TuneError(
            f"--storage {text}: expected a journal file ending in .log, sqlite:///file.db or "
            "postgresql://user:password@host/db"
        )
    if scheme == "sqlite":
        return StorageSpec("rdb", text, text)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; rltool[postgres] installs psycopg 3
        url = re.sub(r"^(postgresql|postgres)://", "postgresql+psycopg://", text, flags=re.IGNORECASE)
        return StorageSpec("rdb", url, _mask_password(url))
    raise TuneError(
        f"--storage: unsupported scheme '{scheme}://'; use a .log journal file, sqlite:///file.db or "
        "postgresql://user:password@host/db"
    )


_SQLITE_HEADER = b"SQLite format 3\x00"


def _refuse_foreign_file(spec: StorageSpec) -> None:
    """Refuse an existing file that is not already this kind of storage, before anything writes to it."""
    if spec.kind == "journal":
        path = Path(spec.location)
        what = "an Optuna journal"
    elif spec.location.lower().startswith("sqlite:///"):
        path = Path(spec.location[len("sqlite:///") :])
        what = "an SQLite database"
    else:
        return
    if not path.is_file() or path.stat().st_size == 0:
        return
    import json

    with path.open("rb") as stream:
        head = stream.read(4096)
    if spec.kind == "journal":
        first = head.split(b"\n", 1)[0]
        try:
            record = json.loads(first)
        except ValueError:
            record = None
        ok = isinstance(record, dict) and "op_code" in record
    else:
        ok = head.startswith(_SQLITE_HEADER) and _sqlite_is_optuna_or_empty(path)
    if not ok:
        raise TuneError(
            f"--storage {spec.display}: {path} exists and is not {what} of Optuna; "
            "name a new file or an existing study's storage"
        )


def _sqlite_is_optuna_or_empty(path: Path) -> bool:
    """:return: True when the SQLite file has no tables or Optuna's ``studies`` table (read-only look)."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return False
    return not tables or "studies" in tables


@contextlib.contextmanager
def _schema_creation_lock(spec: StorageSpec) -> Iterator[None]:
    """Serialize Optuna's first-use table creation between workers started at the same instant.

    Optuna creates its tables with CREATE TABLE statements that race: on a brand-new database the
    second worker fails with "duplicate key" (PostgreSQL) or "table already exists" (SQLite).
    PostgreSQL: a session advisory lock; SQLite: ``flock`` on the database file itself (SQLite's own
    locks are POSIX byte-range locks, independent of flock). Both die with their process.
    """
    url = spec.location
    if url.lower().startswith("sqlite:///"):
        import fcntl

        path = Path(url[len("sqlite:///") :])
        if str(path) in ("", ":memory:"):
            yield
            return
        with path.open("ab") as handle:  # creates the empty file SQLite would create anyway
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if url.lower().startswith("postgresql"):
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(7246110101)"))
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(7246110101)"))
        finally:
            engine.dispose()
        return
    yield


def open_storage(spec: StorageSpec) -> Any:
    """Create the Optuna storage object (connects to the database).

    Safe when several workers open a brand-new storage at the same instant, and never writes to an
    existing file that is not already that kind of storage.

    :param spec: see :func:`parse_storage`.
    :return: an Optuna storage.
    """
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    _refuse_foreign_file(spec)
    if spec.kind == "journal":
        path = Path(spec.location)
        check_writable_folder(path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as error:
            raise TuneError(f"--storage {path}: cannot open ({error.strerror or error})") from None
    from sqlalchemy.engine import make_url

    try:  # Optuna hides a missing driver behind a generic message; name it
        make_url(spec.location).get_dialect().import_dbapi()
    except ModuleNotFoundError as error:
        raise TuneError(
            f"--storage {spec.display}: the database driver '{error.name}' is not installed; "
            "install rltool[postgres] (psycopg 3) and use postgresql://..."
        ) from None
    except Exception:  # noqa: BLE001, S110 - a bad URL is reported by RDBStorage below
        pass
    try:
        with _schema_creation_lock(spec):
            return optuna.storages.RDBStorage(spec.location, engine_kwargs={"pool_pre_ping": True})
    except Exception as error:  # noqa: BLE001 - SQLAlchemy raises many kinds for a bad URL or server
        if isinstance(error, RltoolError):
            raise
        raise TuneError(f"--storage {spec.display}: cannot open the database: {first_line(error)}") from None


def claim_results_dir(folder: Path, study_name: str, storage: StorageSpec) -> None:
    """Record which study owns ``folder`` in ``study.json``; refuse to mix in results of another study."""
    import json

    marker = folder / "study.json"
    if storage.kind == "rdb":
        where = storage.display
    elif Path(storage.location).resolve() == (folder / "study.log").resolve():
        where = "study.log"  # relative, so the folder may move and be reached from any directory
    else:
        where = str(Path(storage.location).resolve())
    owner = {"study_name": study_name, "storage": where}
    try:
        existing = json.loads(marker.read_text())
    except (OSError, ValueError):
        existing = None
    if isinstance(existing, dict) and existing != owner:
        other = f"study '{existing.get('study_name')}' in {existing.get('storage')}"
        raise TuneError(f"{folder} holds results of {other}; choose another --study-name or --log-folder")
    if existing is None:
        write_json(marker, owner)
