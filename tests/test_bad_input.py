"""Bad input, one table: each case is one line on stderr ("rltool: error: ..."), exit 2 (or 0 where
stated), no traceback, and nothing on disk changed (files, mtimes and sizes compared)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rltool.cli.main import app

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

runner = CliRunner()
RUN = "models/ppo-CartPole-v1/run-1"
PLAIN_ENV = """\
import gymnasium as gym
import numpy as np


class PlainEnv(gym.Env):
    metadata = {"render_modes": []}
    observation_space = gym.spaces.Box(-1, 1, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        return np.zeros(4, np.float32), 1.0, True, False, {}


class ScaledEnv(PlainEnv):
    # accepts any scale when built, but multiplies by it at the first step

    def __init__(self, scale=1.0, render_mode=None):
        super().__init__(render_mode)
        self.scale = scale

    def step(self, action):
        return np.zeros(4, np.float32) * self.scale, 1.0, False, False, {}


class LateCrashEnv(PlainEnv):
    # crashes at its 100th step: a failure of training, not of the config

    steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps >= 100:
            raise RuntimeError("sensor unplugged")
        return np.zeros(4, np.float32), 1.0, False, False, {}


class PositiveRewardOnly(gym.Wrapper):
    def reset(self, **kwargs):
        assert False, "this wrapper refuses to reset"
"""

# (id, command line, exit code, text expected on the error line, or on stdout for exit 0)
CASES: list[tuple[str, list[str], int, str]] = [
    ("truncated-model", ["eval", "truncated"], 2, "truncated/model.zip: not a valid model zip"),
    (
        "not-a-zip",
        ["eval", "notzip.zip", "--env", "CartPole-v1", "--algo", "ppo"],
        2,
        "not a valid model zip",
    ),
    (
        "model-for-another-env",
        ["eval", "bare.zip", "--env", "Pendulum-v1", "--algo", "ppo"],
        2,
        "model expects observation space Box(4,) but env Pendulum-v1 has Box(3,)",
    ),
    ("normalize-without-statistics", ["eval", "no-stats"], 2, "no vecnormalize.pkl lies beside the model"),
    ("video-normalize-without-statistics", ["record-video", "no-stats"], 2, "no vecnormalize.pkl"),
    (
        "run-folder-with-another-env",
        ["eval", RUN, "--env", "Acrobot-v1"],
        2,
        "run-1: trained with --env CartPole-v1, not Acrobot-v1",
    ),
    (
        "run-folder-with-another-algo",
        ["record-video", RUN, "--algo", "a2c"],
        2,
        "trained with --algo ppo, not a2c",
    ),
    ("no-such-run", ["eval", "models/ppo-CartPole-v1/run-9"], 2, "run-9: no such file or folder"),
    ("resume-no-such-run", ["train", "--resume", "run-9"], 2, "run-9: no such run folder"),
    ("folder-without-model", ["eval", "empty-dir"], 2, "empty-dir: holds no model"),
    ("run-without-model", ["eval", "config-only"], 2, "config-only: holds no model.zip"),
    ("resume-run-without-model", ["train", "--resume", "config-only"], 2, "holds no checkpoint or model"),
    ("resume-not-a-run", ["train", "--resume", "empty-dir"], 2, "empty-dir: no config.yaml"),
    ("resume-finished", ["train", "--resume", RUN], 0, "already finished at 256 steps"),
    (
        "resume-smaller-budget",
        ["train", "--resume", RUN, "-n", "128"],
        2,
        "must exceed the finished run's 256",
    ),
    ("resume-zero-budget", ["train", "--resume", RUN, "-n", "0"], 2, "--n-timesteps: must be >= 1, got 0"),
    (
        "net-arch-negative",
        ["train", "netarch.yaml", "--no-progress"],
        2,
        "netarch.yaml: policy_kwargs: building the model failed: RuntimeError",
    ),
    (
        "env-kwargs-crash-at-first-step",
        ["train", "scaled.yaml", "--no-progress"],
        2,
        "scaled.yaml: env_kwargs: the first training step failed",
    ),
    (
        "wrapper-assertion-at-first-reset",
        ["train", "wrapped.yaml", "--no-progress", "--allow-module", "plain_env"],
        2,
        "wrapped.yaml: env_wrapper: the first training step failed: AssertionError: this wrapper refuses",
    ),
    (
        "gamma-above-one-in-file",
        ["train", "gamma.yaml"],
        2,
        "gamma.yaml:4: gamma: must be 0 < gamma <= 1, got 5",
    ),
    ("gamma-zero-by-p", ["train", "ppo.yaml", "-p", "gamma=0"], 2, "-p gamma: must be 0 < gamma <= 1, got 0"),
    (
        "negative-learning-rate",
        ["train", "ppo.yaml", "-p", "learning_rate=-1e-3"],
        2,
        "must be 0 < learning_rate",
    ),
    (
        "eval-episodes-zero",
        ["train", "ppo.yaml", "--eval-episodes", "0"],
        2,
        "--eval-episodes: must be >= 1, got 0",
    ),
    ("threads-zero", ["train", "ppo.yaml", "--threads", "0"], 2, "--threads: must be >= 1, got 0"),
    (
        "keep-checkpoints-negative",
        ["train", "ppo.yaml", "--keep-checkpoints", "-1"],
        2,
        "must be >= 0, got -1",
    ),
    ("video-fps-zero", ["record-video", RUN, "--fps", "0"], 2, "--fps: must be >= 1, got 0"),
    ("duplicate-key", ["train", "dup.yaml"], 2, "dup.yaml:5: n_steps: given twice (lines 4 and 5); keep one"),
    (
        "p-env",
        ["train", "ppo.yaml", "-p", "env=Pendulum-v1"],
        2,
        "env is not a hyperparameter; pass --env Pendulum-v1",
    ),
    ("p-algo", ["train", "ppo.yaml", "-p", "algo=a2c"], 2, "algo is not a hyperparameter; pass --algo a2c"),
    (
        "unknown-algo-line-and-suggestion",
        ["train", "ppo2.yaml"],
        2,
        "ppo2.yaml:2: algo: unknown algorithm 'ppo2'; did you mean 'ppo'?",
    ),
    (
        "algo-does-not-fit-action-space",
        ["train", "sac.yaml"],
        2,
        "sac.yaml:2: algo: sac does not fit the action space Discrete(2) of CartPole-v1",
    ),
    (
        "unknown-policy-kwargs-keyword",
        ["train", "policykw.yaml"],
        2,
        "policykw.yaml:4: policy_kwargs: unknown keyword 'foo' for the MlpPolicy policy of ppo",
    ),
    ("empty-yaml", ["train", "empty.yaml"], 2, "empty.yaml: the file is empty"),
    ("yaml-list", ["train", "list.yaml"], 2, "list.yaml: the top level is a list"),
    ("zero-timesteps-in-file", ["train", "zero.yaml"], 2, "n_timesteps: must be >= 1, got 0"),
    ("negative-timesteps", ["train", "ppo.yaml", "-n", "-5"], 2, "must be >= 1, got -5"),
    ("zero-envs", ["train", "ppo.yaml", "--n-envs", "0"], 2, "must be >= 1, got 0"),
    (
        "video-without-rgb-array",
        ["record-video", "bare.zip", "--env", "plain_env:PlainEnv", "--algo", "ppo"],
        2,
        "cannot render rgb_array frames",
    ),
    (
        "video-under-a-file",
        ["record-video", RUN, "--output", "file.txt/out.mp4"],
        2,
        "is a file, not a folder",
    ),
    (
        "video-into-proc",
        ["record-video", RUN, "--length", "2", "--output", "/proc/x.mp4"],
        2,
        "/proc: not writable",
    ),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a finished normalized PPO run and broken copies of it; cases run inside it."""
    folder = tmp_path_factory.mktemp("world")
    (folder / "ppo.yaml").write_text(
        "env: CartPole-v1\nalgo: ppo\nseed: 2\nn_timesteps: 256\nn_envs: 2\nnormalize: true\n"
        "n_steps: 64\nbatch_size: 64\nn_epochs: 1\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        result = runner.invoke(app, ["train", "ppo.yaml", "--eval-freq", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    run = folder / RUN
    shutil.copytree(run, folder / "truncated")
    model = folder / "truncated" / "model.zip"
    model.write_bytes(model.read_bytes()[:300])
    shutil.copytree(run, folder / "no-stats")
    (folder / "no-stats" / "vecnormalize.pkl").unlink()
    shutil.copy(run / "model.zip", folder / "bare.zip")
    (folder / "notzip.zip").write_text("not a zip\n")
    (folder / "empty-dir").mkdir()
    (folder / "config-only").mkdir()
    shutil.copy(run / "config.yaml", folder / "config-only" / "config.yaml")
    (folder / "empty.yaml").write_text("")
    (folder / "list.yaml").write_text("- env: CartPole-v1\n- algo: ppo\n")
    (folder / "zero.yaml").write_text("env: CartPole-v1\nalgo: ppo\nn_timesteps: 0\n")
    (folder / "file.txt").write_text("a file, not a folder\n")
    tiny = "algo: ppo\nn_timesteps: 128\nn_steps: 64\nbatch_size: 64\n"
    (folder / "gamma.yaml").write_text("env: CartPole-v1\nalgo: ppo\nn_timesteps: 128\ngamma: 5\n")
    (folder / "dup.yaml").write_text(
        "env: CartPole-v1\nalgo: ppo\nn_timesteps: 128\nn_steps: 64\nn_steps: 32\n"
    )
    (folder / "sac.yaml").write_text("env: CartPole-v1\nalgo: sac\nn_timesteps: 128\n")
    (folder / "policykw.yaml").write_text(
        'env: CartPole-v1\nalgo: ppo\nn_timesteps: 128\npolicy_kwargs: "dict(foo=1)"\n'
    )
    (folder / "ppo2.yaml").write_text("env: CartPole-v1\nalgo: ppo2\nn_timesteps: 128\n")
    (folder / "netarch.yaml").write_text(f'env: CartPole-v1\n{tiny}policy_kwargs: "dict(net_arch=[-1, 0])"\n')
    (folder / "scaled.yaml").write_text(f"env: plain_env:ScaledEnv\n{tiny}env_kwargs:\n  scale: abc\n")
    (folder / "wrapped.yaml").write_text(
        f"env: CartPole-v1\n{tiny}env_wrapper: plain_env.PositiveRewardOnly\n"
    )
    return folder


@pytest.fixture(scope="module")
def env_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the world (its __pycache__ must not count) with an env that cannot render."""
    folder = tmp_path_factory.mktemp("envs")
    (folder / "plain_env.py").write_text(PLAIN_ENV)
    return folder


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """:return: every file under ``folder`` with its mtime and size, and every folder (as (0, 0))."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else (0, 0)
        for p in folder.rglob("*")
    }


@pytest.mark.parametrize(
    "args, code, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_bad_input(
    world: Path, env_module: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, expected: str
) -> None:
    if args[-1].startswith("/proc/") and not sys.platform.startswith("linux"):
        pytest.skip("needs /proc")
    monkeypatch.chdir(world)
    monkeypatch.syspath_prepend(str(env_module))
    before = snapshot(world)

    result: Any = runner.invoke(app, args)

    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    if code == 0:
        assert result.stderr == "" and expected in result.stdout, result.output
    else:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("rltool: error: "), result.output
        assert expected in lines[0], lines[0]
    assert snapshot(world) == before


def test_numbers_read_the_same_in_files_and_p(tmp_path: Path) -> None:
    """The zoo writes ``n_timesteps: 1e3`` and ``learning_rate: 3e-4``; YAML alone reads them as text."""
    from rltool.config import load_config

    (tmp_path / "zoo.yaml").write_text(
        "env: CartPole-v1\nalgo: ppo\nn_timesteps: 1e3\nlearning_rate: 3e-4\nbatch_size: 6.4e1\n"
    )
    from_file = load_config(tmp_path / "zoo.yaml")
    (tmp_path / "plain.yaml").write_text("env: CartPole-v1\nalgo: ppo\nn_timesteps: 5\n")
    from_p = load_config(
        tmp_path / "plain.yaml", overrides=["n_timesteps=1e3", "learning_rate=3e-4", "batch_size=6.4e1"]
    )
    assert from_file.n_timesteps == from_p.n_timesteps == 1000 and isinstance(from_file.n_timesteps, int)
    assert from_file.algo_kwargs == from_p.algo_kwargs == {"learning_rate": 3e-4, "batch_size": 64}
