"""Wrappers and callbacks a config names are imported only from allowed modules.

``env_wrapper``, ``vec_env_wrapper`` and ``callback`` may name gymnasium's, SB3's, sb3-contrib's
and rltool's classes; any other module needs ``--allow-module`` on the command line, and nothing a
config says (an ``allow_module`` key, ``env_packages``) can allow it. The user's module below leaves
a marker file when it is imported and another when one of its classes is used, so the tests see
whether its code ran.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rltool.cli.main import app

runner = CliRunner()

USER_MODULE = '''
"""A user's own wrappers and callback; leaves markers so the tests see what ran."""
from pathlib import Path

import gymnasium as gym
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnvWrapper

HERE = Path(__file__).parent
(HERE / "imported.marker").touch()


class MarkingWrapper(gym.Wrapper):
    def __init__(self, env, tag="env"):
        super().__init__(env)
        (HERE / f"{tag}.marker").touch()


class MarkingVecWrapper(VecEnvWrapper):
    def __init__(self, venv):
        super().__init__(venv)
        (HERE / "vec.marker").touch()

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        return self.venv.step_wait()


class MarkingCallback(BaseCallback):
    def _on_training_start(self):
        (HERE / "callback.marker").touch()

    def _on_step(self):
        return True
'''

BASE = "env: CartPole-v1\nalgo: ppo\nseed: 0\nn_timesteps: 64\nn_envs: 1\nn_steps: 32\nbatch_size: 32\nn_epochs: 1\n"
KEYS = {
    "env_wrapper": ("env_wrapper: my_bits.MarkingWrapper\n", "env.marker"),
    "vec_env_wrapper": ("vec_env_wrapper: my_bits.MarkingVecWrapper\n", "vec.marker"),
    "callback": ("callback: my_bits.MarkingCallback\n", "callback.marker"),
}
TRAIN = ("--eval-freq", "0", "--no-progress", "--no-tensorboard")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_bits.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_bits", None)  # each test imports its own copy, with its own marker folder
    yield tmp_path
    sys.modules.pop("my_bits", None)


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def markers(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.marker")}


def assert_refused(result, folder: Path, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rltool: error:"), result.output
    for text in expected:
        assert text in lines[0], lines[0]
    assert markers(folder) == set(), "the user's module ran although it was not allowed"
    assert not list(folder.glob("models/*/run-*")), "a refused run left a half-made run folder"


@pytest.mark.parametrize("key", list(KEYS))
def test_unlisted_module_is_refused_until_allowed_on_the_command_line(workdir: Path, key: str) -> None:
    line, marker = KEYS[key]
    config = workdir / "run.yaml"
    config.write_text(BASE + line)
    refused = invoke("train", config, *TRAIN)
    assert_refused(refused, workdir, key, "my_bits", "--allow-module my_bits")

    allowed = invoke("train", config, *TRAIN, "--allow-module", "my_bits")
    assert allowed.exit_code == 0, allowed.output
    assert {"imported.marker", marker} <= markers(workdir), "the allowed class was really used"


@pytest.mark.parametrize(
    "extra",
    [
        "allow_module: [my_bits]\n",
        "allowed_modules: [my_bits]\n",
        "env_packages: [my_bits]\n",  # imports the module, yet allows none of its classes
    ],
    ids=["allow_module-key", "allowed_modules-key", "env_packages"],
)
def test_a_config_cannot_allow_itself(workdir: Path, extra: str) -> None:
    config = workdir / "run.yaml"
    config.write_text(BASE + KEYS["env_wrapper"][0] + extra)
    result = invoke("train", config, *TRAIN)
    assert result.exit_code == 2, result.output
    assert "env.marker" not in markers(workdir), "the wrapper ran on the config's own say-so"
    assert not list(workdir.glob("models/*/run-*"))


def test_eval_and_video_of_a_run_with_a_user_wrapper_need_the_same_permission(workdir: Path) -> None:
    config = workdir / "run.yaml"
    config.write_text(BASE + "env_wrapper:\n  - my_bits.MarkingWrapper: {tag: evalrun}\n")
    assert invoke("train", config, *TRAIN, "--allow-module", "my_bits").exit_code == 0
    for marker in workdir.glob("*.marker"):
        marker.unlink()
    before = sorted(p.name for p in (workdir / "models").rglob("*"))
    for command in (["eval", config, "--episodes", 1], ["record-video", config, "--length", 2]):
        result = invoke(*command)
        assert result.exit_code == 2 and "--allow-module my_bits" in result.output, result.output
        assert "evalrun.marker" not in markers(workdir)
    assert not (workdir / "videos").exists()
    assert sorted(p.name for p in (workdir / "models").rglob("*")) == before
    result = invoke("eval", config, "--episodes", 1, "--json", "--allow-module", "my_bits")
    assert result.exit_code == 0, result.output
    assert "evalrun.marker" in markers(workdir)


def test_default_modules_need_no_permission(workdir: Path) -> None:
    # SB3's StopTrainingOnMaxEpisodes ends training after the first episode, long before the budget;
    # SB3's VecFrameStack, a vec_env_wrapper, stacks 3 observations, so the model's input is 3 x 4
    config = workdir / "run.yaml"
    config.write_text(
        BASE.replace("n_timesteps: 64", "n_timesteps: 2000")
        + "vec_env_wrapper:\n  - stable_baselines3.common.vec_env.VecFrameStack: {n_stack: 3}\n"
        + "callback:\n  - stable_baselines3.common.callbacks.StopTrainingOnMaxEpisodes: {max_episodes: 1}\n"
    )
    result = invoke("train", config, *TRAIN)
    assert result.exit_code == 0, result.output
    run_dir = workdir / "models" / "ppo-CartPole-v1" / "run-1"
    info = json.loads((run_dir / "train.json").read_text())
    assert info["num_timesteps"] <= 500, info["num_timesteps"]
    from rltool.safe_load import read_model_metadata

    assert read_model_metadata(run_dir / "model.zip")["data"]["observation_space"]["_shape"] == [12]
