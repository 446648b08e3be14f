"""``rltool export --format onnx``: onnxruntime takes the same actions as the torch policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rltool.cli.main import app

pytest.importorskip("onnxruntime")

runner = CliRunner()

# (name, algo, env, extra YAML lines): tiny budgets, every supported algorithm, Box and
# Discrete observations, Box and Discrete actions, squashed and clipped continuous actions,
# and runs whose VecNormalize statistics must be baked into the graph.
CASES = [
    ("ppo-cartpole", "ppo", "CartPole-v1", "n_steps: 64\nbatch_size: 32\nn_epochs: 1\n"),
    ("ppo-pendulum-normalized", "ppo", "Pendulum-v1", "n_steps: 128\nbatch_size: 64\nn_epochs: 2\nnormalize: true\n"),
    ("a2c-pendulum", "a2c", "Pendulum-v1", "n_steps: 8\n"),
    ("dqn-frozenlake", "dqn", "FrozenLake-v1", "learning_starts: 50\nbatch_size: 16\nlearning_rate: 0.01\n"),
    ("dqn-cartpole-normalized", "dqn", "CartPole-v1", "learning_starts: 50\nbatch_size: 16\nlearning_rate: 0.01\nnormalize: true\n"),
    ("sac-pendulum-normalized", "sac", "Pendulum-v1", "learning_starts: 50\nbatch_size: 16\nlearning_rate: 0.01\nnormalize: true\n"),
    ("td3-mountaincar", "td3", "MountainCarContinuous-v0", "learning_starts: 50\nbatch_size: 16\nlearning_rate: 0.01\n"),
    ("ddpg-pendulum", "ddpg", "Pendulum-v1", "learning_starts: 50\nbatch_size: 16\nlearning_rate: 0.01\n"),
    ("reinforce-cartpole", "reinforce", "CartPole-v1", "n_steps: 64\n"),
    ("reinforce-frozenlake", "reinforce", "FrozenLake-v1", "n_steps: 64\n"),
]  # fmt: skip


def train_tiny(tmp_path: Path, algo: str, env: str, extra: str, steps: int = 256) -> Path:
    """Train ``algo`` on ``env`` for a few hundred steps through the CLI. :return: the run folder."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"env: {env}\nalgo: {algo}\nseed: 0\nn_timesteps: {steps}\npolicy: MlpPolicy\n"
        f"policy_kwargs: dict(net_arch=[16, 16])\n{extra}"
    )
    models = tmp_path / "models"
    result = runner.invoke(
        app,
        ["train", str(config), "-f", str(models), "--eval-freq", "0", "--no-progress", "--no-tensorboard"],
    )
    assert result.exit_code == 0, result.output
    return models / f"{algo}-{env}" / "run-1"


def raw_observations(env_id: str, count: int = 1000) -> np.ndarray:
    """:return: ``count`` observations of ``env_id`` as the env returns them, under random actions."""
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(0)
    observation, _ = env.reset(seed=0)
    observations = []
    for _ in range(count):
        observations.append(observation)
        observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            observation, _ = env.reset()
    return np.asarray(observations)


def torch_actions(run_dir: Path, observations: np.ndarray) -> np.ndarray:
    """:return: the actions ``rltool eval --deterministic`` takes: safe load, VecNormalize, ``predict``."""
    from stable_baselines3.common.vec_env import VecNormalize

    from rltool.evaluate import load_trained, resolve_target

    model, env = load_trained(resolve_target(run_dir))
    try:
        if isinstance(env, VecNormalize):
            observations = env.normalize_obs(observations)
        actions, _ = model.predict(observations, deterministic=True)
    finally:
        env.close()
    return actions


@pytest.mark.parametrize(("name", "algo", "env", "extra"), CASES, ids=[case[0] for case in CASES])
def test_onnx_actions_equal_torch_policy(tmp_path: Path, name: str, algo: str, env: str, extra: str) -> None:
    import onnxruntime as ort

    run_dir = train_tiny(tmp_path, algo, env, extra)
    output = tmp_path / "policy.onnx"
    result = runner.invoke(app, ["export", str(run_dir), "--format", "onnx", "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert ("VecNormalize statistics baked in" in result.output) == ("normalize" in extra)
    usage = result.output.split("run it with onnxruntime:\n", 1)[1].strip().splitlines()
    assert len(usage) == 5 and "ort.InferenceSession" in usage[1]

    observations = raw_observations(env)
    expected = torch_actions(run_dir, observations)
    session = ort.InferenceSession(str(output))
    feed = observations.astype(np.int64) if observations.ndim == 1 else observations.astype(np.float32)
    actual = session.run(None, {"obs": feed})[0]
    assert actual.shape == expected.shape
    if expected.dtype.kind in "iu":
        np.testing.assert_array_equal(actual, expected)
        assert len(np.unique(expected)) >= 2  # the policy is not constant: the comparison means something
    else:
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
        assert np.ptp(expected) > 0  # the policy is not constant: the comparison means something


def test_usage_example_runs(tmp_path: Path) -> None:
    """The printed five lines run as they are, on the env, without torch's policy."""
    run_dir = train_tiny(
        tmp_path, "ppo", "CartPole-v1", "n_steps: 64\nbatch_size: 32\nn_epochs: 1\n", steps=64
    )
    output = tmp_path / "policy.onnx"
    result = runner.invoke(app, ["export", str(run_dir), "-o", str(output)])
    assert result.exit_code == 0, result.output
    code = result.output.split("run it with onnxruntime:\n", 1)[1]
    scope: dict = {}
    exec(compile(code, "usage", "exec"), scope)  # noqa: S102 - our own printed example
    assert scope["env"].action_space.contains(scope["action"])


def test_unsupported_algorithm_is_one_line(tmp_path: Path) -> None:
    model = tmp_path / "model.zip"
    model.write_bytes(b"not read: refused before loading")
    output = tmp_path / "policy.onnx"
    result = runner.invoke(
        app, ["export", str(model), "--env", "CartPole-v1", "--algo", "qrdqn", "-o", str(output)]
    )
    assert result.exit_code == 2
    assert "cannot export qrdqn: ONNX export supports ppo, a2c, dqn" in result.output
    assert not output.exists()


def test_existing_output_is_kept(tmp_path: Path) -> None:
    output = tmp_path / "policy.onnx"
    output.write_bytes(b"mine")
    model = tmp_path / "model.zip"
    model.write_bytes(b"x")
    result = runner.invoke(
        app, ["export", str(model), "--env", "CartPole-v1", "--algo", "ppo", "-o", str(output)]
    )
    assert result.exit_code == 2 and "already exists" in result.output
    assert output.read_bytes() == b"mine"
