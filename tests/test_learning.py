"""Learning tests: shipped configs reach the rewards they promise."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rltool.cli.main import app

CONFIGS = Path(__file__).parent.parent / "configs"


def test_ppo_cartpole_reaches_475(tmp_path, monkeypatch):
    """configs/cartpole.yaml (1e5 steps, seed 0) must reach a deterministic mean reward >= 475."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        app, ["train", str(CONFIGS / "cartpole.yaml"), "--eval-freq", "0", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "models" / "ppo-CartPole-v1" / "run-1" / "train.json").read_text())
    assert info["final_eval"]["mean_reward"] >= 475, info["final_eval"]
    # the CI gate agrees, on fresh episodes
    gate = runner.invoke(
        app, ["eval", str(CONFIGS / "cartpole.yaml"), "--episodes", "10", "--min-reward", "475"]
    )
    assert gate.exit_code == 0, gate.output
