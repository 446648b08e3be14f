"""Shared test set-up, and the helpers of the learning tests (which train shipped configs via the CLI)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# A shell that starts a job in the background (``nohup make test &``, a CI runner's script) makes
# it ignore SIGINT, and the rltool processes the tests start would inherit that and ignore the
# Ctrl-C that the interrupt tests send. A Python handler here is reset to the default at exec, so
# every child starts with Ctrl-C working, as in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny networks on 2 shared cores: extra torch threads only contend (10x slower under load)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FRESH_SEED = 424_242  # not the config's seed + 10000 of training's own final evaluation
FRESH_EPISODES = 20


def _rltool_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def train_shipped_config(name: str, seeds: str, folder: Path) -> list[Path]:
    """Train ``configs/NAME`` as a user does: ``rltool train CONFIG --seeds S --jobs 2`` in a subprocess.

    :return: the run folders, one per seed, each with a finished train.json.
    """
    command = [sys.executable, "-m", "rltool", "train", str(CONFIGS / name), "--seeds", seeds, "--jobs", "2"]
    command += ["--eval-freq", "0", "--no-tensorboard", "--no-progress", "-f", str(folder / "models")]
    result = subprocess.run(
        command, cwd=folder, env=_rltool_env(), capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runs = sorted((folder / "models").glob("*/run-*"))
    assert len(runs) == len(seeds.split(",")), runs
    for run in runs:
        assert json.loads((run / "train.json").read_text())["status"] == "finished", run
    return runs


def final_eval(run: Path) -> dict[str, Any]:
    """:return: training's own final evaluation of a run (train.json ``final_eval``)."""
    return json.loads((run / "train.json").read_text())["final_eval"]


def eval_fresh_episodes(run: Path, min_reward: float) -> dict[str, Any]:
    """``rltool eval RUN --seed FRESH_SEED --episodes 20 --min-reward R --json`` (the CI gate).

    :return: the evaluation; the gate's exit code must agree with the reward it reports.
    """
    command = [sys.executable, "-m", "rltool", "eval", str(run), "--seed", str(FRESH_SEED)]
    command += ["--episodes", str(FRESH_EPISODES), "--min-reward", str(min_reward), "--json"]
    result = subprocess.run(command, cwd=run, env=_rltool_env(), capture_output=True, text=True, timeout=600)
    evaluation = json.loads(result.stdout)
    assert len(evaluation["episode_rewards"]) == FRESH_EPISODES
    assert result.returncode == (0 if evaluation["mean_reward"] >= min_reward else 1), result.stderr
    return evaluation
