"""REINFORCE (Monte Carlo policy gradient) as a Stable-Baselines3 on-policy algorithm.

:class:`Reinforce` subclasses SB3's ``OnPolicyAlgorithm``, so rollout collection, ``save``/``load``,
``predict``, callbacks, ``progress_bar`` and ``evaluate_policy`` are SB3's own. Only the return
computation and the update differ from A2C:

* Returns are Monte Carlo reward-to-go ``G_t = sum_{k>=t} gamma^(k-t) r_k`` computed backwards inside
  each episode of the rollout buffer, separately per env, cutting at ``episode_starts``
  (see :func:`reward_to_go`).
* Advantage ``A_t = G_t - b_t`` with the baseline ``b`` chosen by ``baseline``:
  ``"none"`` (``b = 0``), ``"mean"`` (``b`` = mean of ``G`` over the whole rollout batch) or
  ``"value"`` (``b_t = V(s_t)`` from the critic, which is fitted to ``G_t`` by MSE weighted by
  ``vf_coef``). Optionally normalised to zero mean and unit std.
* Loss ``-mean(log pi(a_t|s_t) * A_t) - ent_coef * entropy (+ vf_coef * MSE(V, G))``, one gradient step
  on the whole rollout per iteration, gradients clipped to ``max_grad_norm``.

Episodes cut by the end of the rollout (the last steps of each env, unless the last step ended an
episode):

* ``baseline="value"``: the tail is bootstrapped with the critic's value of the observation that
  follows the last step, ``G_t = r_t + ... + gamma^(T-t) V(s_T)``, as in SB3's A2C with ``gae_lambda=1``.
* ``baseline="none"`` / ``"mean"``: no critic is trusted, so the partial episode is kept and its return
  is the reward-to-go up to the cut (as if the episode had ended there). This biases the returns of
  those last steps low; it shrinks as ``n_steps`` grows relative to the episode length.

Time-limit truncation (gymnasium ``truncated=True``): SB3's ``collect_rollouts`` adds
``gamma * V(terminal_obs)`` to the reward of a truncated step. That is kept as is: with
``baseline="value"`` it is the same bootstrap as for a rollout cut; with ``"none"``/``"mean"`` the
policy's value head is zeroed at construction and never trained, so ``V == 0`` and the addition is a
no-op, i.e. a truncated episode is treated like an ended one (return up to the truncation).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    BasePolicy,
    MultiInputActorCriticPolicy,
)
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from rltool.errors import TrainingDivergedError

SelfReinforce = TypeVar("SelfReinforce", bound="Reinforce")

BASELINES: tuple[str, ...] = ("none", "mean", "value")


def _check_baseline(baseline: str) -> None:
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {', '.join(map(repr, BASELINES))}, got {baseline!r}")


def reward_to_go(
    rewards: np.ndarray,
    episode_starts: np.ndarray,
    gamma: float,
    last_values: np.ndarray | None = None,
    last_dones: np.ndarray | None = None,
) -> np.ndarray:
    """Discounted Monte Carlo reward-to-go inside each episode of a rollout buffer.

    ``G_t = r_t + gamma * G_{t+1}``, restarted at every episode boundary: ``episode_starts[t] == 1``
    means step ``t`` opened a new episode, so step ``t - 1`` was the last one of the previous episode
    and its return does not include anything from step ``t`` on.

    Cut-episode rule: an episode still running after the last step (``last_dones`` false) is cut by the
    end of the rollout. If ``last_values`` is given, its tail is bootstrapped with it
    (``G_{T-1} = r_{T-1} + gamma * last_values``); otherwise the return is the reward-to-go up to the
    cut, i.e. the partial episode is treated as truncated without bootstrap. ``last_values`` is
    ignored for envs whose last step ended the episode.

    :param rewards: rewards, shape ``(n_steps,)`` or ``(n_steps, n_envs)``
    :param episode_starts: 1 where a step is the first of an episode, same shape as ``rewards``
    :param gamma: discount factor in [0, 1]
    :param last_values: value estimate of the observation after the last step, shape ``(n_envs,)``
        (or a scalar for 1-D input); ``None`` means no bootstrap
    :param last_dones: whether the last step ended its episode, shape ``(n_envs,)``; ``None`` means
        it did not (the last episode of each env is cut)
    :return: the returns, float64, same shape as ``rewards``
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    rewards = np.asarray(rewards, dtype=np.float64)
    starts = np.asarray(episode_starts, dtype=np.float64)
    if rewards.shape != starts.shape:
        raise ValueError(f"rewards {rewards.shape} and episode_starts {starts.shape} differ in shape")
    if rewards.ndim not in (1, 2):
        raise ValueError(f"rewards must be (n_steps,) or (n_steps, n_envs), got shape {rewards.shape}")
    one_dim = rewards.ndim == 1
    if one_dim:
        rewards, starts = rewards[:, None], starts[:, None]
    n_steps, n_envs = rewards.shape

    tail = np.zeros(n_envs)
    if last_values is not None:
        tail = np.broadcast_to(np.asarray(last_values, dtype=np.float64).reshape(-1), (n_envs,)).copy()
    if last_dones is not None:
        ended = np.broadcast_to(np.asarray(last_dones, dtype=bool).reshape(-1), (n_envs,))
        tail[ended] = 0.0

    returns = np.empty_like(rewards)
    running = tail
    for t in reversed(range(n_steps)):
        running = rewards[t] + gamma * running
        returns[t] = running
        # Step t opened an episode: the step before it is the end of another one.
        running = running * (1.0 - starts[t])
    return returns[:, 0] if one_dim else returns


def compute_advantages(returns: np.ndarray, baseline: str, values: np.ndarray | None = None) -> np.ndarray:
    """Advantages ``G - b`` for one of the baselines of :class:`Reinforce`.

    :param returns: Monte Carlo returns ``G`` (any shape)
    :param baseline: ``"none"`` (b = 0), ``"mean"`` (b = mean of ``returns`` over all entries) or
        ``"value"`` (b = ``values``)
    :param values: critic estimates ``V(s_t)``, same shape as ``returns``; required for ``"value"``
    :return: the advantages, same shape and dtype as ``returns``
    """
    _check_baseline(baseline)
    returns = np.asarray(returns)
    if baseline == "none":
        return returns.copy()
    if baseline == "mean":
        return returns - returns.mean()
    if values is None:
        raise ValueError('baseline="value" needs the value estimates')
    values = np.asarray(values, dtype=returns.dtype)
    if values.shape != returns.shape:
        raise ValueError(f"values {values.shape} and returns {returns.shape} differ in shape")
    return returns - values


def policy_gradient_loss(log_prob: th.Tensor, advantages: th.Tensor) -> th.Tensor:
    """REINFORCE surrogate loss ``-mean_i(log pi(a_i|s_i) * A_i)``.

    Each sample's log-probability is weighted by its own advantage. (Not
    ``F.cross_entropy(logits, actions, weight=advantages)``: that weight is indexed by class, not by
    sample, and the mean is divided by the sum of the weights.)

    :param log_prob: log-probabilities of the taken actions, shape ``(batch,)``
    :param advantages: advantages, shape ``(batch,)``, treated as constants
    :return: the scalar loss
    """
    if log_prob.shape != advantages.shape:
        # (batch,) * (batch, 1) would silently broadcast to (batch, batch).
        raise ValueError(f"log_prob {tuple(log_prob.shape)} and advantages {tuple(advantages.shape)} differ")
    return -(log_prob * advantages.detach()).mean()


class _MonteCarloReturns:
    """Mixin for SB3 rollout buffers: Monte Carlo returns and REINFORCE advantages instead of GAE."""

    rewards: np.ndarray
    episode_starts: np.ndarray
    values: np.ndarray
    returns: np.ndarray
    advantages: np.ndarray
    gamma: float

    def __init__(self, *args: Any, baseline: str = "value", **kwargs: Any) -> None:
        _check_baseline(baseline)
        self.baseline = baseline
        super().__init__(*args, **kwargs)

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        """Fill ``returns`` with :func:`reward_to_go` and ``advantages`` with :func:`compute_advantages`.

        :param last_values: value of the observation after the last step, one per env; used to
            bootstrap cut episodes only when the baseline is ``"value"``
        :param dones: whether the last step ended an episode, one per env
        """
        bootstrap = last_values.detach().cpu().numpy().flatten() if self.baseline == "value" else None
        returns = reward_to_go(self.rewards, self.episode_starts, self.gamma, bootstrap, dones)
        self.returns = returns.astype(np.float32)
        self.advantages = compute_advantages(self.returns, self.baseline, self.values)


class MonteCarloRolloutBuffer(_MonteCarloReturns, RolloutBuffer):
    """SB3 ``RolloutBuffer`` whose returns are Monte Carlo reward-to-go (keyword ``baseline``)."""


class MonteCarloDictRolloutBuffer(_MonteCarloReturns, DictRolloutBuffer):
    """SB3 ``DictRolloutBuffer`` whose returns are Monte Carlo reward-to-go (keyword ``baseline``)."""


class Reinforce(OnPolicyAlgorithm):
    """REINFORCE: Monte Carlo policy gradient with an optional baseline (see the module docstring).

    :param policy: the policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy or an
        ``ActorCriticPolicy`` subclass); its value head is only trained and used with ``baseline="value"``
    :param env: the environment to learn from (if registered in Gymnasium, can be str)
    :param learning_rate: learning rate, or a function of the remaining progress (from 1 to 0)
    :param n_steps: number of steps per env per update; the batch is ``n_steps * n_envs``. Should be
        several episode lengths, since returns of episodes cut by the rollout end are approximations
    :param gamma: discount factor
    :param ent_coef: entropy coefficient
    :param vf_coef: value loss coefficient, used only with ``baseline="value"``
    :param max_grad_norm: maximum norm for gradient clipping, over actor and critic together: with
        ``baseline="value"`` the critic's gradient (returns are not normalised) can dominate the norm,
        so a small value also shrinks the policy step
    :param baseline: ``"none"``, ``"mean"`` (mean return of the batch) or ``"value"`` (learned critic)
    :param normalize_advantage: whether to normalise the advantages to zero mean and unit std per batch
    :param use_sde: whether to use generalized State Dependent Exploration (continuous actions)
    :param sde_sample_freq: sample a new gSDE noise matrix every n steps (-1: once per rollout)
    :param stats_window_size: number of episodes averaged for the rollout logs
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments passed to the policy on creation
    :param verbose: verbosity level: 0 none, 1 info, 2 debug
    :param seed: seed for the pseudo random generators
    :param device: device (cpu, cuda, ...) on which the code should be run
    :param _init_setup_model: whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": ActorCriticPolicy,
        "CnnPolicy": ActorCriticCnnPolicy,
        "MultiInputPolicy": MultiInputActorCriticPolicy,
    }

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        n_steps: int = 512,
        gamma: float = 0.99,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        baseline: str = "value",
        normalize_advantage: bool = True,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        _check_baseline(baseline)
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=1.0,  # unused: returns come from the Monte Carlo buffer
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            device=device,
            seed=seed,
            _init_setup_model=False,
            supported_action_spaces=(spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
        )
        self.baseline = baseline
        self.normalize_advantage = normalize_advantage
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        _check_baseline(self.baseline)
        # Chosen here rather than stored, so loading a model never unpickles a buffer class.
        if isinstance(self.observation_space, spaces.Dict):
            self.rollout_buffer_class = MonteCarloDictRolloutBuffer
        else:
            self.rollout_buffer_class = MonteCarloRolloutBuffer
        self.rollout_buffer_kwargs = {"baseline": self.baseline}
        super()._setup_model()
        if self.baseline != "value":
            # V == 0 makes SB3's time-limit bootstrap (r += gamma * V(terminal_obs)) a no-op; the head
            # gets no gradient (it is not in the loss), so it stays zero.
            with th.no_grad():
                for param in self.policy.value_net.parameters():
                    param.zero_()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "rollout_buffer_class", "rollout_buffer_kwargs"]

    def train(self) -> None:
        """Take one gradient step on the whole rollout buffer."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)

        data = next(self.rollout_buffer.get(batch_size=None))
        actions = data.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.long().flatten()
        values, log_prob, entropy = self.policy.evaluate_actions(data.observations, actions)
        values = values.flatten()

        advantages = data.advantages
        baseline_mean = (data.returns - advantages).mean()
        if self.normalize_advantage and advantages.numel() > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        policy_loss = policy_gradient_loss(log_prob, advantages)
        # Without an analytic entropy (e.g. squashed Gaussian) use the sample estimate -log pi.
        entropy_loss = -th.mean(-log_prob) if entropy is None else -th.mean(entropy)
        loss = policy_loss + self.ent_coef * entropy_loss
        value_loss = None
        if self.baseline == "value":
            value_loss = F.mse_loss(values, data.returns)
            loss = loss + self.vf_coef * value_loss
        if not th.isfinite(loss):
            raise TrainingDivergedError(
                f"Reinforce: loss is {loss.item()} at update {self._n_updates + 1} "
                f"(policy loss {policy_loss.item()}, mean return {data.returns.mean().item()})"
            )

        self.policy.optimizer.zero_grad()
        loss.backward()
        grad_norm = th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()

        self._n_updates += 1
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/policy_loss", policy_loss.item())
        self.logger.record("train/entropy_loss", entropy_loss.item())
        self.logger.record("train/baseline", baseline_mean.item())
        self.logger.record("train/grad_norm", grad_norm.item())
        if value_loss is not None:
            self.logger.record("train/value_loss", value_loss.item())
            self.logger.record(
                "train/explained_variance",
                explained_variance(
                    self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
                ),
            )
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())

    def learn(
        self: SelfReinforce,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "Reinforce",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfReinforce:
        """Train for ``total_timesteps`` env steps (rounded up to whole rollouts).

        :param total_timesteps: number of env steps to train for
        :param callback: callback(s) called at every step
        :param log_interval: number of updates between two log dumps
        :param tb_log_name: name of the tensorboard run
        :param reset_num_timesteps: whether to reset the timestep counter (and start a new tb run)
        :param progress_bar: whether to show a progress bar (tqdm and rich)
        :return: the trained model
        """
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
