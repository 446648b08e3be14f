"""Helpers shared by the benchmarks: run a command in a fresh process and time it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rltool_train_steps_per_s(config: Path, log_folder: Path, *args: str) -> float:
    """Run ``rltool train`` in a fresh process; return the learn-phase steps/s from train.json."""
    command = [sys.executable, "-m", "rltool", "train", str(config), "-f", str(log_folder), *args]
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    runs = sorted(log_folder.glob("*/run-*"), key=lambda p: p.stat().st_mtime)
    return float(json.loads((runs[-1] / "train.json").read_text())["steps_per_s"])


def timed(command: list[str]) -> float:
    """:return: wall seconds of one run of ``command``."""
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, cwd=ROOT)
    return time.perf_counter() - started
