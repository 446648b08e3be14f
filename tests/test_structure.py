"""Package structure: every module imports on its own (no import cycle hidden by import order), and
``python -m rltool.cli.main`` works as the module suggests."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import rltool

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(rltool.__path__, prefix="rltool.")
    if info.name != "rltool.__main__"
)


def test_modules_are_found() -> None:
    assert {"rltool.cli.main", "rltool.cli.options", "rltool.config", "rltool.train"} <= set(MODULES)


@pytest.mark.parametrize("chunk", [MODULES[i::4] for i in range(4)], ids=[f"part{i}" for i in range(4)])
def test_each_module_imports_on_its_own(chunk: list[str]) -> None:
    # one fresh interpreter per module: a cycle that only works in one import order fails here
    script = (
        "import importlib, subprocess, sys\n"
        "for name in sys.argv[1:]:\n"
        "    result = subprocess.run([sys.executable, '-c', f'import {name}'], capture_output=True, text=True)\n"
        "    if result.returncode:\n"
        "        sys.exit(f'{name}: ' + result.stderr.strip().splitlines()[-1])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *chunk], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr


def test_python_m_cli_main_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rltool.cli.main", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for command in ("train", "eval", "record-video", "tune", "plot", "report", "smoke"):
        assert command in result.stdout
