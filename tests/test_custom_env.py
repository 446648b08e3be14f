"""Custom environments without editing rltool: ``env: module:Class`` and ``env_packages``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rltool.cli.main import app

HERE = Path(__file__).parent
runner = CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(HERE))  # makes tests/envpkg importable
    return tmp_path


@pytest.mark.parametrize(
    "env_lines, folder",
    [
        ("env: envpkg.corridor:CorridorEnv\n", "ppo-envpkg.corridor_CorridorEnv"),
        ("env: envpkg.corridor:make_corridor\n", "ppo-envpkg.corridor_make_corridor"),
        ("env: envpkg/Corridor-v0\nenv_packages: [envpkg]\n", "ppo-envpkg_Corridor-v0"),
    ],
)
def test_custom_env_trains_evaluates_and_records(workdir, env_lines, folder):
    config = workdir / "corridor.yaml"
    config.write_text(
        env_lines + "algo: ppo\nseed: 0\nn_timesteps: 3000\nn_envs: 2\nn_steps: 64\nbatch_size: 64\n"
        "env_kwargs:\n  length: 5\n"
    )
    result = runner.invoke(app, ["train", str(config), "--eval-freq", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    info = json.loads((workdir / "models" / folder / "run-1" / "train.json").read_text())
    # walking right 4 cells gives reward 1 in 4 steps: the agent learnt the corridor. An agent that
    # did not is cut after 40 steps with reward 0 (CorridorEnv's max_steps), so this can fail.
    assert info["final_eval"]["episode_rewards"] == [1.0] * 10, info["final_eval"]
    assert max(info["final_eval"]["episode_lengths"]) <= 6

    evaluation = runner.invoke(app, ["eval", str(config), "--episodes", "3", "--json"])
    assert evaluation.exit_code == 0, evaluation.output
    assert json.loads(evaluation.output)["episode_rewards"] == [1.0] * 3
    video = workdir / "corridor.mp4"
    recorded = runner.invoke(app, ["record-video", str(config), "--length", "8", "--output", str(video)])
    assert recorded.exit_code == 0, recorded.output
    assert video.stat().st_size > 0


def test_an_agent_that_never_reaches_the_goal_fails_the_check(workdir):
    # the control for the test above: the goal is 29 steps away, every episode is cut at 20 with reward 0
    config = workdir / "corridor.yaml"
    config.write_text(
        "env: envpkg.corridor:CorridorEnv\nalgo: ppo\nseed: 0\nn_timesteps: 1\nn_envs: 1\nn_steps: 8\n"
        "batch_size: 8\nenv_kwargs:\n  length: 30\n  max_steps: 20\n"
    )
    result = runner.invoke(app, ["train", str(config), "--eval-freq", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    evaluation = runner.invoke(app, ["eval", str(config), "--episodes", "2", "--json"])
    assert evaluation.exit_code == 0, evaluation.output
    assert json.loads(evaluation.output)["episode_rewards"] == [0.0, 0.0]


@pytest.mark.parametrize(
    "env_lines, expected",
    [
        ("env: envpkg.nowhere:Env\n", "cannot import module 'envpkg.nowhere': ModuleNotFoundError"),
        ("env: envpkg.corridor:Missing\n", "module 'envpkg.corridor' has no env class or factory 'Missing'"),
        ("env: CartPole-v1\nenv_packages: [no_such_pkg_xyz]\n", "cannot import module 'no_such_pkg_xyz'"),
    ],
)
def test_failed_import_is_one_line(workdir, env_lines, expected):
    config = workdir / "bad.yaml"
    config.write_text(env_lines + "algo: ppo\nn_timesteps: 100\n")
    result = runner.invoke(app, ["train", str(config)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and expected in result.output, result.output
