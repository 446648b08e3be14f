"""The fused SBX PPO (rltool.algos.sbx_ppo.FusedPPO): same learning as sbx's PPO, through the CLI too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from rltool.cli.main import app

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

runner = CliRunner()
_BUFFER_ARRAYS = ("observations", "actions", "rewards", "episode_starts", "values", "log_probs", "advantages")


@pytest.fixture(autouse=True)
def _restore_jax_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training sets XLA_FLAGS and JAX_PLATFORMS in this process; put them back afterwards."""
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")


def invoke(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def _model(cls: type, env_id: str, **hyperparameters: Any) -> Any:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure

    model = cls("MlpPolicy", make_vec_env(env_id, n_envs=4, seed=0), seed=1, **hyperparameters)
    model.set_logger(configure(None, [""]))
    model._setup_learn(10_000, None)
    return model


def _collect(model: Any, steps: int) -> None:
    from stable_baselines3.common.callbacks import BaseCallback

    class Nothing(BaseCallback):
        def _on_step(self) -> bool:
            return True

    callback = Nothing()
    callback.init_callback(model)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, steps)


def _state_leaves(model: Any) -> list[np.ndarray]:
    import jax

    policy = model.policy
    states = (
        policy.actor_state.params,
        policy.vf_state.params,
        policy.actor_state.opt_state,
        policy.vf_state.opt_state,
    )
    return [np.asarray(leaf, dtype=np.float64) for leaf in jax.tree_util.tree_leaves(states)]


# ---------------------------------------------------------------------------
# Equivalence with sbx.PPO


@pytest.mark.parametrize(
    ("env_id", "hyperparameters"),
    [
        ("CartPole-v1", {"n_steps": 64, "batch_size": 32, "n_epochs": 3}),  # Discrete actions
        ("Pendulum-v1", {"n_steps": 64, "batch_size": 16, "n_epochs": 2, "clip_range": 0.1}),  # Box actions
        ("CartPole-v1", {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "target_kl": 0.01}),  # SBX's loop
    ],
)
def test_fused_ppo_rollout_and_update_match_sbx_ppo(env_id: str, hyperparameters: dict[str, Any]) -> None:
    from sbx import PPO

    from rltool.algos.sbx_ppo import FusedPPO

    reference, fused = _model(PPO, env_id, **hyperparameters), _model(FusedPPO, env_id, **hyperparameters)
    for model in (reference, fused):
        _collect(model, hyperparameters["n_steps"])
    # the lean rollout loop fills the buffer exactly as SBX's (same PRNG keys, same actions)
    for name in _BUFFER_ARRAYS:
        np.testing.assert_array_equal(
            getattr(fused.rollout_buffer, name), getattr(reference.rollout_buffer, name)
        )
    np.testing.assert_array_equal(np.asarray(fused.policy.key), np.asarray(reference.policy.key))
    before = _state_leaves(reference)
    # same permutations: both draw one np.random.permutation per epoch from numpy's global generator
    for model in (reference, fused):
        np.random.seed(7)
        model.train()
    after_reference, after_fused = _state_leaves(reference), _state_leaves(fused)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after_reference, strict=True))  # it learned
    # XLA compiles the scanned update as one program; on CPU the results came out bit-equal,
    # 1e-5 leaves room for a different fusion order of float32 sums
    for a, b in zip(after_reference, after_fused, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    logged_reference, logged_fused = reference.logger.name_to_value, fused.logger.name_to_value
    assert set(logged_fused) == set(logged_reference)
    for key, value in logged_reference.items():
        assert logged_fused[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert fused._n_updates == reference._n_updates == hyperparameters["n_epochs"]


def test_backend_sbx_ppo_is_the_fused_subclass() -> None:
    from sbx import PPO

    from rltool.algos import algo_class
    from rltool.algos.sbx_ppo import FusedPPO
    from rltool.sbx_io import is_sbx_model

    assert algo_class("ppo", "sbx") is FusedPPO and issubclass(FusedPPO, PPO)
    assert is_sbx_model(_model(FusedPPO, "CartPole-v1", n_steps=32, batch_size=32))


# ---------------------------------------------------------------------------
# The CLI: sbx + envpool, eval, resume

SMOKE_CONFIG = """\
env: CartPole-v1
algo: ppo
backend: sbx
vec_env: envpool
seed: 3
n_timesteps: 2048
n_envs: 4
n_steps: 128
batch_size: 64
n_epochs: 2
"""


def test_sbx_envpool_train_eval_and_resume(tmp_path: Path) -> None:
    config = tmp_path / "ppo.yaml"
    config.write_text(SMOKE_CONFIG)
    models = tmp_path / "models"
    result = invoke("train", config, "-f", models, "--eval-freq", 0, "--no-progress", "--threads", 1)
    assert result.exit_code == 0, result.output
    run = next(models.glob("*/run-1"))
    info = json.loads((run / "train.json").read_text())
    assert (info["status"], info["num_timesteps"], info["backend"], info["vec_env"]) == (
        "finished",
        2048,
        "sbx",
        "envpool",
    )
    result = invoke("eval", run, "--episodes", 3, "--json")
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.output)
    # same seeds, deterministic policy: the restored weights play the final evaluation's first episodes
    assert evaluated["episode_rewards"] == info["final_eval"]["episode_rewards"][:3]
    resumed = tmp_path / "run-copy"
    shutil.copytree(run, resumed)
    result = invoke("train", "--resume", resumed, "-n", 3072, "--eval-freq", 0, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "at step 2048 of 3072" in result.output
    info = json.loads((resumed / "train.json").read_text())
    assert info["status"] == "finished" and info["num_timesteps"] == 3072 and len(info["segments"]) == 2


# ---------------------------------------------------------------------------
# Learning

LEARNING_CONFIG = """\
env: CartPole-v1
algo: ppo
backend: sbx
vec_env: envpool
seed: 0
n_timesteps: 40000
n_envs: 8
n_steps: 256
batch_size: 256
n_epochs: 10
gae_lambda: 0.8
gamma: 0.98
learning_rate: lin_0.001
clip_range: lin_0.2
ent_coef: 0.0
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fused_sbx_ppo_balances_cartpole_on_gymnasium(tmp_path: Path) -> None:
    config = tmp_path / "ppo.yaml"
    config.write_text(LEARNING_CONFIG)
    models = tmp_path / "models"
    result = invoke(
        "train",
        config,
        "-f",
        models,
        "--eval-freq",
        0,
        "--no-progress",
        "--threads",
        1,
        "--eval-episodes",
        10,
    )
    assert result.exit_code == 0, result.output
    info = json.loads((next(models.glob("*/run-1")) / "train.json").read_text())
    # the final evaluation runs on gymnasium's CartPole (deterministic policy, 10 episodes)
    assert info["final_eval"]["mean_reward"] >= 400, info["final_eval"]
