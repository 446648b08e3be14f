"""Tests of rltool.algos.reinforce: returns, loss, baseline variance, save/load and a CartPole learning run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from conftest import eval_fresh_episodes, final_eval, train_shipped_config
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import KVWriter, Logger
from torch.distributions import Categorical
from torch.nn import functional as F

from rltool.algos.reinforce import (
    MonteCarloRolloutBuffer,
    Reinforce,
    compute_advantages,
    policy_gradient_loss,
    reward_to_go,
)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(previous)


class _Capture(KVWriter):
    """Logger output that keeps every dump in memory."""

    def __init__(self) -> None:
        self.dumps: list[dict[str, Any]] = []

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        self.dumps.append(dict(key_values))

    def close(self) -> None:
        pass


def _capture_logger(model: Reinforce) -> _Capture:
    capture = _Capture()
    model.set_logger(Logger(folder=None, output_formats=[capture]))
    return capture


def _collect_one_rollout(model: Reinforce) -> None:
    """Fill the model's rollout buffer once, as ``learn`` does before ``train``."""
    _, callback = model._setup_learn(model.n_steps * model.n_envs, callback=None)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)


# --- 1. reward-to-go ------------------------------------------------------------------------------


def test_reward_to_go_three_steps_by_hand():
    # G2 = 3, G1 = 2 + 0.9 * 3 = 4.7, G0 = 1 + 0.9 * 4.7 = 5.23
    returns = reward_to_go(np.array([1.0, 2.0, 3.0]), np.array([1, 0, 0]), 0.9, last_dones=np.array([True]))
    np.testing.assert_allclose(returns, [5.23, 4.7, 3.0])


def test_reward_to_go_stops_at_episode_boundary_per_env():
    rewards = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    # env 0: episodes [0, 1] and [2, 3]; env 1: one episode [0..3] (its start is before the buffer)
    starts = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    returns = reward_to_go(rewards, starts, 0.5, last_dones=np.array([True, True]))
    np.testing.assert_allclose(returns[:, 0], [1.5, 1.0, 1.5, 1.0])
    np.testing.assert_allclose(returns[:, 1], [1.875, 1.75, 1.5, 1.0])


def test_reward_to_go_cut_episode_rule():
    rewards, starts = np.array([1.0, 2.0, 3.0]), np.array([1, 0, 0])
    # Cut by the end of the rollout, no value: reward-to-go up to the cut, as if the episode had ended.
    np.testing.assert_allclose(reward_to_go(rewards, starts, 0.9), [5.23, 4.7, 3.0])
    # With a value of the next observation: the tail is bootstrapped.
    # G2 = 3 + 0.9 * 10 = 12, G1 = 2 + 0.9 * 12 = 12.8, G0 = 1 + 0.9 * 12.8 = 12.52
    cut = reward_to_go(rewards, starts, 0.9, last_values=np.array([10.0]), last_dones=np.array([False]))
    np.testing.assert_allclose(cut, [12.52, 12.8, 12.0])
    # An episode that ended on the last step is never bootstrapped.
    ended = reward_to_go(rewards, starts, 0.9, last_values=np.array([10.0]), last_dones=np.array([True]))
    np.testing.assert_allclose(ended, [5.23, 4.7, 3.0])
    # Only the last episode of the buffer is cut; the one before it keeps its own return.
    two = reward_to_go(np.ones(4), np.array([1, 0, 1, 0]), 0.5, last_values=np.array([4.0]))
    # G3 = 1 + 0.5 * 4 = 3, G2 = 1 + 0.5 * 3 = 2.5
    np.testing.assert_allclose(two, [1.5, 1.0, 2.5, 3.0])


@pytest.mark.parametrize(("baseline", "expected_last"), [("value", 12.0), ("mean", 3.0), ("none", 3.0)])
def test_buffer_bootstraps_cut_episodes_only_with_value_baseline(baseline: str, expected_last: float):
    space = gym.spaces.Box(-1.0, 1.0, (2,))
    buffer = MonteCarloRolloutBuffer(3, space, gym.spaces.Discrete(2), gamma=0.9, baseline=baseline)
    for step, reward in enumerate([1.0, 2.0, 3.0]):
        buffer.add(
            np.zeros((1, 2), dtype=np.float32),
            np.zeros((1, 1)),
            np.array([reward]),
            np.array([step == 0]),
            th.tensor([0.5]),
            th.tensor([0.0]),
        )
    buffer.compute_returns_and_advantage(last_values=th.tensor([[10.0]]), dones=np.array([False]))
    assert buffer.returns[-1, 0] == pytest.approx(expected_last)
    expected_adv = compute_advantages(buffer.returns, baseline, buffer.values)
    np.testing.assert_allclose(buffer.advantages, expected_adv)


def test_compute_advantages():
    returns = np.array([3.0, 1.0, 2.0])
    np.testing.assert_allclose(compute_advantages(returns, "none"), [3.0, 1.0, 2.0])
    np.testing.assert_allclose(compute_advantages(returns, "mean"), [1.0, -1.0, 0.0])
    np.testing.assert_allclose(
        compute_advantages(returns, "value", np.array([1.0, 1.0, 4.0])), [2.0, 0.0, -2.0]
    )
    with pytest.raises(ValueError, match="value estimates"):
        compute_advantages(returns, "value")


def test_rollout_returns_follow_the_rule():
    """In a real rollout, the buffer's returns are reward_to_go with the documented bootstrap."""
    for baseline in ("none", "value"):
        env = make_vec_env("CartPole-v1", n_envs=2, seed=1)
        model = Reinforce("MlpPolicy", env, n_steps=40, baseline=baseline, seed=1, device="cpu")
        _collect_one_rollout(model)
        buffer = model.rollout_buffer
        assert buffer.episode_starts[1:].any(), "the rollout should contain an episode boundary"
        last_values = None
        if baseline == "value":
            with th.no_grad():
                obs = model.policy.obs_to_tensor(model._last_obs)[0]
                last_values = model.policy.predict_values(obs).numpy().flatten()
        expected = reward_to_go(
            buffer.rewards, buffer.episode_starts, model.gamma, last_values, model._last_episode_starts
        )
        np.testing.assert_allclose(buffer.returns, expected, rtol=1e-5)


def test_without_value_baseline_the_value_head_is_zero_and_stays_zero():
    """V == 0 is what makes SB3's time-limit bootstrap a no-op for baseline none/mean."""
    model = Reinforce("MlpPolicy", "CartPole-v1", n_steps=64, baseline="mean", seed=0, device="cpu")
    model.learn(256)
    obs = th.as_tensor(np.random.default_rng(0).normal(size=(16, 4)), dtype=th.float32)
    with th.no_grad():
        assert th.count_nonzero(model.policy.predict_values(obs)) == 0


def test_bad_baseline_is_a_value_error():
    with pytest.raises(ValueError, match="baseline must be one of 'none', 'mean', 'value'"):
        Reinforce("MlpPolicy", "CartPole-v1", baseline="critic")


# --- 2. loss --------------------------------------------------------------------------------------


def test_policy_gradient_loss_by_hand_and_not_class_weighted_cross_entropy():
    logits = th.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [0.0, 2.0, 0.0]])
    actions = th.tensor([0, 1, 1])
    advantages = th.tensor([1.0, -2.0, 0.5])

    def log_softmax(row: list[float], index: int) -> float:
        return row[index] - math.log(sum(math.exp(x) for x in row))

    lp = [log_softmax(logits[i].tolist(), int(actions[i])) for i in range(3)]
    expected = -(lp[0] * 1.0 + lp[1] * -2.0 + lp[2] * 0.5) / 3
    loss = policy_gradient_loss(Categorical(logits=logits).log_prob(actions), advantages)
    assert loss.item() == pytest.approx(expected, abs=1e-6)

    # The class-weighted formulation weights sample i by advantages[actions[i]] (and divides by their
    # sum): samples 1 and 2 both get -2, sample 0 gets 1. It must not agree with the per-sample loss.
    class_weighted = F.cross_entropy(logits, actions, weight=advantages)
    class_weighted_mean = F.cross_entropy(logits, actions, weight=advantages, reduction="none").mean()
    assert abs(class_weighted.item() - expected) > 0.1
    assert abs(class_weighted_mean.item() - expected) > 0.1


def test_policy_gradient_loss_rejects_broadcasting_shapes():
    with pytest.raises(ValueError, match="differ"):
        policy_gradient_loss(th.zeros(3), th.zeros(3, 1))


def test_train_step_uses_the_per_sample_loss_and_logs():
    env = make_vec_env("CartPole-v1", n_envs=2, seed=3)
    model = Reinforce(
        "MlpPolicy", env, n_steps=50, baseline="none", normalize_advantage=False, seed=3, device="cpu"
    )
    capture = _capture_logger(model)
    _collect_one_rollout(model)
    buffer = model.rollout_buffer
    obs = th.as_tensor(buffer.observations.reshape(-1, 4))
    actions = th.as_tensor(buffer.actions.reshape(-1)).long()
    returns = th.as_tensor(buffer.returns.reshape(-1))
    with th.no_grad():
        _, log_prob, _ = model.policy.evaluate_actions(obs, actions)
    expected = -(log_prob * returns).mean().item()
    model.train()
    model.logger.dump()
    logged = capture.dumps[-1]
    assert logged["train/policy_loss"] == pytest.approx(expected, rel=1e-5)
    assert logged["train/baseline"] == 0.0
    assert "train/entropy_loss" in logged
    assert "train/value_loss" not in logged


def test_logged_keys_with_value_baseline():
    model = Reinforce("MlpPolicy", "Pendulum-v1", n_steps=32, baseline="value", seed=0, device="cpu")
    capture = _capture_logger(model)
    model.learn(64)
    keys = set().union(*capture.dumps)
    assert {"train/policy_loss", "train/value_loss", "train/entropy_loss", "train/baseline"} <= keys


# --- 3. variance reduction of the value baseline --------------------------------------------------


def test_value_baseline_lowers_gradient_variance():
    model = Reinforce("MlpPolicy", "CartPole-v1", baseline="value", seed=0, device="cpu")
    policy = model.policy

    # A fixed batch of complete episodes of the initial (random) policy.
    env = gym.make("CartPole-v1")
    obs_list, act_list, rew_list, start_list = [], [], [], []
    obs, _ = env.reset(seed=0)
    start = True
    while len(obs_list) < 1500 or not start:
        with th.no_grad():
            action = int(policy.get_distribution(th.as_tensor(obs[None])).sample())
        obs_list.append(obs)
        act_list.append(action)
        start_list.append(start)
        obs, reward, terminated, truncated, _ = env.step(action)
        rew_list.append(reward)
        start = terminated or truncated
        if start:
            obs, _ = env.reset()
    env.close()
    observations = th.as_tensor(np.array(obs_list), dtype=th.float32)
    actions = th.as_tensor(act_list)
    returns = reward_to_go(np.array(rew_list), np.array(start_list), model.gamma, last_dones=np.array([True]))
    returns_t = th.as_tensor(returns, dtype=th.float32)

    # Fit the critic (value branch only) to the Monte Carlo returns.
    critic_params = [*policy.mlp_extractor.value_net.parameters(), *policy.value_net.parameters()]
    optimizer = th.optim.Adam(critic_params, lr=3e-3)
    for _ in range(400):
        optimizer.zero_grad()
        loss = F.mse_loss(policy.predict_values(observations).flatten(), returns_t)
        loss.backward()
        optimizer.step()
    with th.no_grad():
        values = policy.predict_values(observations).flatten()
    explained = 1 - th.var(returns_t - values) / th.var(returns_t)
    assert explained > 0.25, f"critic fit too poor to test anything (explained variance {explained:.2f})"

    # Per-sample gradients of log pi(a|s) with respect to the actor's parameters.
    actor = th.nn.Sequential(policy.mlp_extractor.policy_net, policy.action_net)
    with th.no_grad():
        reference = policy.get_distribution(observations).distribution.logits
        assert th.allclose(th.log_softmax(actor(observations), -1), reference, atol=1e-6)
    params = {name: p.detach() for name, p in actor.named_parameters()}

    def log_prob(p: dict[str, th.Tensor], ob: th.Tensor, one_hot: th.Tensor) -> th.Tensor:
        logits = th.func.functional_call(actor, p, (ob,))
        return (th.log_softmax(logits, -1) * one_hot).sum()  # indexing by a tensor does not vmap

    one_hots = F.one_hot(actions, 2).float()
    per_sample = th.func.vmap(th.func.grad(log_prob), in_dims=(None, 0, 0))(params, observations, one_hots)
    scores = th.cat([g.reshape(len(observations), -1) for g in per_sample.values()], dim=1)

    # Variance of the minibatch policy-gradient estimate over many resamplings, the same minibatches for
    # both baselines. A minibatch mean is weights @ contributions, weights[k, i] = (times i in batch k) / 64.
    n_batches, batch_size = 1000, 64
    generator = th.Generator().manual_seed(0)
    batches = th.randint(len(observations), (n_batches, batch_size), generator=generator)
    weights = th.zeros(n_batches, len(observations))
    weights.scatter_add_(1, batches, th.full(batches.shape, 1.0 / batch_size))

    def estimate_variance(advantages: th.Tensor) -> float:
        estimates = weights @ (scores * advantages[:, None])  # (n_batches, n_params)
        return estimates.var(dim=0).sum().item()

    with_value = th.as_tensor(compute_advantages(returns_t.numpy(), "value", values.numpy()))
    without = th.as_tensor(compute_advantages(returns_t.numpy(), "none"))
    ratio = estimate_variance(with_value) / estimate_variance(without)
    print(f"gradient variance ratio value/none: {ratio:.3f} (critic explained variance {explained:.2f})")
    assert ratio < 0.5


# --- 4. save / load -------------------------------------------------------------------------------


@pytest.mark.parametrize(("env_id", "baseline"), [("Pendulum-v1", "value"), ("CartPole-v1", "none")])
def test_save_load_predict(tmp_path: Path, env_id: str, baseline: str):
    model = Reinforce("MlpPolicy", env_id, n_steps=32, baseline=baseline, seed=0, device="cpu")
    model.learn(64, progress_bar=False)
    model.save(tmp_path / "model.zip")

    loaded = Reinforce.load(tmp_path / "model.zip", device="cpu")
    assert isinstance(loaded, Reinforce)
    assert (loaded.baseline, loaded.n_steps, loaded.gamma) == (baseline, 32, model.gamma)
    for name, tensor in model.policy.state_dict().items():
        assert th.equal(tensor, loaded.policy.state_dict()[name]), name

    model.observation_space.seed(0)
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    actions, _ = model.predict(obs, deterministic=True)
    loaded_actions, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actions, loaded_actions)
    assert model.action_space.contains(loaded_actions[0])

    # The loaded model trains further with its own Monte Carlo buffer and evaluates.
    loaded.set_env(make_vec_env(env_id, n_envs=1, seed=1))
    loaded.learn(64, reset_num_timesteps=False)
    assert isinstance(loaded.rollout_buffer, MonteCarloRolloutBuffer)
    mean_reward, _ = evaluate_policy(loaded, loaded.get_env(), n_eval_episodes=1)
    assert np.isfinite(mean_reward)


# --- 5. learning ----------------------------------------------------------------------------------


REQUIRED = 475.0


@pytest.mark.slow
@pytest.mark.timeout(1200)  # minutes when 2 cores are shared; a hang still fails
def test_cartpole_reaches_475_on_two_seeds(tmp_path: Path):
    """configs/reinforce-cartpole.yaml through ``rltool train --seeds 0,1``: both seeds reach >= 475."""
    for run in train_shipped_config("reinforce-cartpole.yaml", "0,1", tmp_path):
        assert final_eval(run)["mean_reward"] >= REQUIRED, (run, final_eval(run))
        fresh = eval_fresh_episodes(run, REQUIRED)
        assert fresh["mean_reward"] >= REQUIRED, (run, fresh)
