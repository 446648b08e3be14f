"""The run folder: its name, ``run-N`` numbering, what counts as a run, train.json and run status.

A run folder is ``<log_folder>/<algo>-<env>/run-<N>/``. Every other module asks this one, so the
layout is written down once. Only the standard library is imported here.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from enum import Enum
from pathlib import Path
from typing import Any

from rltool.errors import ModelLoadError, OutputError
from rltool.fileio import check_writable_folder, write_json

TRAIN_JSON = "train.json"
CONFIG_YAML = "config.yaml"
#: model files of a run, the final one first
MODEL_FILES = ("model.zip", "best_model.zip")
_RUN_NAME = re.compile(r"^run-(\d+)$")


class RunStatus(str, Enum):
    """A run's ``status`` in train.json. A ``str`` enum: it compares equal to, and is written as, its value."""

    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    DIVERGED = "diverged"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


def folder_name(algo: str, env: str) -> str:
    """:return: the folder of an algorithm's runs on an env, e.g. ``ppo-LunarLander-v3``
    ("/" and ":" in the env id become "_")."""
    return f"{algo}-{env.replace('/', '_').replace(':', '_')}"


def run_number(path: Path) -> int | None:
    """:return: N of a ``run-N`` folder name, or None for any other name."""
    match = _RUN_NAME.match(path.name)
    return int(match.group(1)) if match else None


def numbered_runs(parent: Path) -> list[Path]:
    """:return: the ``run-N`` folders directly under ``parent``, by increasing N."""
    if not parent.is_dir():
        return []
    runs = [p for p in parent.iterdir() if p.is_dir() and run_number(p) is not None]
    return sorted(runs, key=lambda p: run_number(p) or 0)


def has_model(path: Path) -> bool:
    """:return: True when the folder holds a final or best model."""
    return any((path / name).exists() for name in MODEL_FILES)


def is_run_dir(path: Path) -> bool:
    """:return: True when ``path`` is a run folder: it has a config, train.json, a model or Monitor files."""
    return path.is_dir() and (
        (path / CONFIG_YAML).is_file()
        or (path / TRAIN_JSON).is_file()
        or (path / "monitor").is_dir()
        or has_model(path)
    )


def newest_checkpoint_model(run_dir: Path) -> Path | None:
    """:return: ``model.zip`` of the newest complete checkpoint (``checkpoints/step-N/``) of a run, or None."""
    steps = [
        folder
        for folder in (run_dir / "checkpoints").glob("step-*")
        if folder.name[5:].isdigit() and (folder / "model.zip").is_file()
    ]
    newest = max(steps, key=lambda folder: int(folder.name[5:]), default=None)
    return None if newest is None else newest / "model.zip"


def latest_run_with_model(parent: Path) -> Path | None:
    """:return: the highest-numbered ``run-N`` under ``parent`` that holds a model, or at least a
    checkpoint (a run killed before its first save), or None."""
    runs = [p for p in numbered_runs(parent) if has_model(p) or newest_checkpoint_model(p) is not None]
    return runs[-1] if runs else None


def create_run_dir(log_folder: Path, name: str) -> Path:
    """Create the next free ``<log_folder>/<name>/run-<N>`` folder.

    ``mkdir`` without ``exist_ok`` is atomic, so parallel runs never share (or clobber) a folder.

    :param log_folder: e.g. ``models``.
    :param name: the runs' folder, :func:`folder_name` (``ExperimentConfig.run_name``).
    :return: the new, empty folder.
    """
    parent = log_folder / name
    check_writable_folder(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{parent}: cannot create ({error.strerror or error})") from None
    number = max((run_number(p) or 0 for p in numbered_runs(parent)), default=0) + 1
    while True:
        candidate = parent / f"run-{number}"
        try:
            candidate.mkdir(parents=True)  # parents: a failed first run may have removed an empty parent
            return candidate
        except FileExistsError:
            number += 1


def read_train_json(run_dir: Path, *, strict: bool = False) -> dict[str, Any]:
    """Read a run's train.json.

    :param run_dir: the run folder.
    :param strict: raise :class:`ModelLoadError` for a missing or unreadable file instead of returning {}.
    :return: its object ({} when missing or unreadable and not ``strict``).
    """
    path = run_dir / TRAIN_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        if strict:
            raise ModelLoadError(f"{path}: cannot read train.json ({error})") from None
        return {}
    if not isinstance(data, dict):
        if strict:
            raise ModelLoadError(f"{path}: train.json is not a JSON object")
        return {}
    return data


def write_train_json(run_dir: Path, info: dict[str, Any]) -> None:
    """Write a run's train.json atomically (a crash leaves the old file or the new one)."""
    write_json(run_dir / TRAIN_JSON, info)  # a RunStatus is a str: JSON writes its value


def remove_run_dir(run_dir: Path, with_parent: bool) -> None:
    """Delete a run folder in which nothing was trained, and its ``<algo>-<env>`` parent if it made it."""
    shutil.rmtree(run_dir, ignore_errors=True)
    if with_parent:
        with contextlib.suppress(OSError):  # not empty: another run lives there
            run_dir.parent.rmdir()
