"""SBX's PPO with a fused update and a leaner rollout loop (``backend: sbx``, ``algo: ppo``).

sbx 0.28's ``PPO.train()`` calls its jitted one-minibatch update from Python once per minibatch:
with 16 envs x 1024 steps, batches of 64 and 4 epochs that is 1024 dispatches (and as many
device-to-host reads of the logged ratio) per rollout. :class:`FusedPPO` runs every minibatch of
every epoch inside one jitted ``jax.lax.scan`` whose body is SBX's own ``PPO._one_update``: the same
losses, clipping, advantage normalization and optax chain (grad-norm clipping, Adam), applied to the
same minibatches in the same order. The shuffling is SB3's: one ``np.random.permutation`` of the
buffer per epoch, drawn from numpy's global generator exactly as ``RolloutBuffer.get`` draws it.

Its rollout loop does per step what SBX's does, with one jitted call (split the PRNG key, sample
the action, its log-probability and the value) and one device-to-host read instead of a key split,
a policy call and three reads.

Where a case is not covered, SBX's own code runs unchanged: its update loop when ``target_kl`` is
set (the learning rate then changes between minibatches) or the buffer is not a whole number of
minibatches; its rollout loop with gSDE, or observations that are not a flat Box (dict, images).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch as th
from gymnasium import spaces
from sbx import PPO
from sbx.ppo.policies import CnnPolicy, PPOPolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.utils import explained_variance

# The arrays of SB3's RolloutBuffer that ``get()`` flattens to (n_steps * n_envs, ...) on first use.
_BUFFER_ARRAYS = ("observations", "actions", "values", "log_probs", "advantages", "returns")
# SBX's constant in its approximate KL (avoids log(0)).
_KL_EPS = 1e-7


@partial(jax.jit, static_argnames=("normalize_advantage", "share_features_extractor"))
def fused_updates(
    actor_state: Any,
    vf_state: Any,
    rollout: dict[str, jax.Array],
    minibatch_indices: jax.Array,
    clip_range: float,
    ent_coef: float,
    vf_coef: float,
    normalize_advantage: bool = True,
    share_features_extractor: bool = False,
) -> tuple[tuple[Any, Any], dict[str, jax.Array]]:
    """Run SBX's PPO update on each row of ``minibatch_indices`` in turn, in one compiled call.

    :param actor_state: the policy's actor TrainState.
    :param vf_state: the policy's value TrainState.
    :param rollout: the flattened buffer: observations, actions, advantages, returns, old_log_prob.
    :param minibatch_indices: (n_updates, batch_size) buffer rows of each minibatch, in order.
    :param clip_range: PPO's ratio clipping.
    :param ent_coef: entropy coefficient.
    :param vf_coef: value-loss coefficient.
    :param normalize_advantage: normalize advantages per minibatch (SBX's default).
    :param share_features_extractor: SBX's CNN sharing between actor and critic.
    :return: the new (actor_state, vf_state), and per update: pg_loss, policy_loss, entropy_loss,
        value_loss, approx_kl and clip_fraction (arrays of length n_updates).
    """

    def one_minibatch(states, indices):
        actor, critic = states
        (actor, critic), (pg_loss, policy_loss, entropy_loss, value_loss, ratio) = PPO._one_update(
            actor_state=actor,
            vf_state=critic,
            observations=rollout["observations"][indices],
            actions=rollout["actions"][indices],
            advantages=rollout["advantages"][indices],
            returns=rollout["returns"][indices],
            old_log_prob=rollout["old_log_prob"][indices],
            clip_range=clip_range,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            normalize_advantage=normalize_advantage,
            share_features_extractor=share_features_extractor,
        )
        stats = {
            "pg_loss": pg_loss,
            "policy_loss": policy_loss,
            "entropy_loss": entropy_loss,
            "value_loss": value_loss,
            "approx_kl": jnp.mean((ratio - 1.0 + _KL_EPS) - jnp.log(ratio + _KL_EPS)),
            "clip_fraction": jnp.mean(jnp.abs(ratio - 1) > clip_range),
        }
        return (actor, critic), stats

    return jax.lax.scan(one_minibatch, (actor_state, vf_state), minibatch_indices)


@jax.jit
def sample_step(
    actor_state: Any, vf_state: Any, observations: jax.Array, key: jax.Array
) -> tuple[jax.Array, ...]:
    """One rollout step's policy work: SBX's ``reset_noise`` key split, then its ``predict_all``.

    :return: (new key, new noise key, packed) where ``packed`` holds, per env, the action's
        components (as float32: exact for the small integers of discrete actions), then its
        log-probability, then the value; one array, so one device-to-host read per step.
    """
    key, noise_key = jax.random.split(key, 2)
    actions, log_probs, values = PPOPolicy._predict_all(actor_state, vf_state, observations, noise_key)
    flat_actions = actions.reshape(observations.shape[0], -1).astype(jnp.float32)
    return key, noise_key, jnp.concatenate([flat_actions, log_probs[:, None], values[:, None]], axis=1)


def _float_leaves(state: Any) -> Any:
    """:return: ``state`` with Python numbers (a learning rate set from Python) as strongly typed arrays.

    ``lax.scan`` needs its carry to keep one type; optax returns the learning rate it was given as a
    32-bit array, while a Python float enters as a weakly typed one.
    """
    return jax.tree.map(
        lambda leaf: jnp.asarray(leaf, dtype=jnp.float32) if isinstance(leaf, float) else leaf, state
    )


class FusedPPO(PPO):
    """SBX's PPO, with all minibatch updates of a ``train()`` in one jitted scan (see the module doc).

    Same constructor, hyperparameters, saved state and learning semantics as ``sbx.PPO``.
    """

    def _fusable(self) -> bool:
        """:return: whether ``train()`` can run fused (else SBX's per-minibatch loop runs)."""
        buffer = self.rollout_buffer
        return self.target_kl is None and (buffer.buffer_size * buffer.n_envs) % self.batch_size == 0

    def _flattened_rollout(self) -> dict[str, np.ndarray]:
        """Flatten the buffer as ``RolloutBuffer.get`` does, and return what one update reads.

        :return: observations, actions (int32 and flat for Discrete), advantages, returns, old_log_prob.
        """
        buffer = self.rollout_buffer
        if not buffer.generator_ready:
            for name in _BUFFER_ARRAYS:
                setattr(buffer, name, buffer.swap_and_flatten(getattr(buffer, name)))
            buffer.generator_ready = True
        actions = buffer.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.flatten().astype(np.int32)
        return {
            "observations": buffer.observations,
            "actions": actions,
            "advantages": buffer.advantages.flatten(),
            "returns": buffer.returns.flatten(),
            "old_log_prob": buffer.log_probs.flatten(),
        }

    def train(self) -> None:
        """Update the policy on the gathered rollout: SBX's PPO update, all minibatches in one call."""
        if not self._fusable():
            super().train()
            return
        policy = self.policy
        self._update_learning_rate(
            [policy.actor_state.opt_state[1], policy.vf_state.opt_state[1]],
            learning_rate=self.lr_schedule(self._current_progress_remaining),
        )
        clip_range = self.clip_range_schedule(self._current_progress_remaining)
        buffer = self.rollout_buffer
        size = buffer.buffer_size * buffer.n_envs
        # one permutation per epoch, drawn as RolloutBuffer.get draws it, cut into whole minibatches
        permutations = [np.random.permutation(size) for _ in range(self.n_epochs)]
        minibatch_indices = np.concatenate(permutations).astype(np.int32).reshape(-1, self.batch_size)
        rollout = self._flattened_rollout()
        (actor_state, vf_state), stats = fused_updates(
            _float_leaves(policy.actor_state),
            _float_leaves(policy.vf_state),
            rollout,
            minibatch_indices,
            clip_range=clip_range,
            ent_coef=self.ent_coef,
            vf_coef=self.vf_coef,
            normalize_advantage=self.normalize_advantage,
            share_features_extractor=isinstance(policy, CnnPolicy),
        )
        policy.actor_state, policy.vf_state = actor_state, vf_state
        stats = jax.device_get(stats)
        self._n_updates += self.n_epochs
        explained_var = explained_variance(buffer.values.flatten(), buffer.returns.flatten())
        # SBX logs the last minibatch's losses and the mean KL / clip fraction over all minibatches
        self.logger.record("train/entropy_loss", stats["entropy_loss"][-1].item())
        self.logger.record("train/policy_gradient_loss", stats["policy_loss"][-1].item())
        self.logger.record("train/value_loss", stats["value_loss"][-1].item())
        self.logger.record("train/approx_kl", float(np.mean(stats["approx_kl"], dtype=np.float64)))
        self.logger.record("train/clip_fraction", float(np.mean(stats["clip_fraction"], dtype=np.float64)))
        self.logger.record("train/pg_loss", stats["pg_loss"][-1].item())
        self.logger.record("train/explained_variance", explained_var)
        log_std = policy.actor_state.params["params"].get("log_std")
        if log_std is not None:
            self.logger.record("train/std", np.exp(log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)

    # -- rollouts ---------------------------------------------------------------------------------

    def _fast_rollouts(self) -> bool:
        """:return: whether the lean rollout loop applies (flat Box observations, no gSDE)."""
        space = self.observation_space
        return not self.use_sde and isinstance(space, spaces.Box) and not is_image_space(space)

    def collect_rollouts(self, env, callback, rollout_buffer, n_rollout_steps: int) -> bool:
        """Fill ``rollout_buffer`` with ``n_rollout_steps`` steps per env, as SBX's loop does.

        Per step, SBX splits the policy's PRNG key, runs ``predict_all`` with the new noise key and
        reads three arrays back; here one jitted :func:`sample_step` does the same and one
        ``device_get`` reads them. Everything else (clipping, callbacks, episode infos, the
        time-limit bootstrap, the buffer, GAE) is SBX's and SB3's.

        :return: False if a callback stopped training, else True.
        """
        if not self._fast_rollouts():
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)
        assert self._last_obs is not None, "No previous observation was provided"
        policy = self.policy
        observation_shape = (-1, *self.observation_space.shape)
        is_box_action = isinstance(self.action_space, spaces.Box)
        is_discrete_action = isinstance(self.action_space, spaces.Discrete)
        # what PPOPolicy.predict_all returns for this batch: the actions' dtype and shape
        observations = np.asarray(self._last_obs).reshape(observation_shape)
        shapes = jax.eval_shape(
            policy._predict_all, policy.actor_state, policy.vf_state, observations, policy.key
        )
        action_dtype, action_shape = shapes[0].dtype, shapes[0].shape
        buffer_observation_shape = (rollout_buffer.n_envs, *rollout_buffer.obs_shape)
        buffer_action_shape = (rollout_buffer.n_envs, rollout_buffer.action_dim)
        n_steps = 0
        rollout_buffer.reset()
        callback.on_rollout_start()
        while n_steps < n_rollout_steps:
            observations = np.asarray(self._last_obs).reshape(observation_shape)
            policy.key, policy.noise_key, packed = sample_step(
                policy.actor_state, policy.vf_state, observations, policy.key
            )
            packed = np.asarray(packed)
            actions = packed[:, :-2].astype(action_dtype).reshape(action_shape)
            log_probs, values = packed[:, -2].copy(), packed[:, -1].copy()
            clipped_actions = actions
            if is_box_action:
                clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)
            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if callback.on_step() is False:
                return False
            self._update_info_buffer(infos)
            n_steps += 1
            if is_discrete_action:
                actions = actions.reshape(-1, 1)
            # bootstrap from the value of the last observation when a time limit cut the episode
            for index in dones.nonzero()[0]:
                info = infos[index]
                if info.get("terminal_observation") is not None and info.get("TimeLimit.truncated", False):
                    terminal_obs = policy.prepare_obs(info["terminal_observation"])[0]
                    terminal_value = np.array(
                        self.vf.apply(policy.vf_state.params, terminal_obs).flatten()
                    ).item()
                    rewards[index] += self.gamma * terminal_value
            # what RolloutBuffer.add stores, written straight into its arrays (no torch round trip)
            position = rollout_buffer.pos
            rollout_buffer.observations[position] = np.asarray(self._last_obs).reshape(
                buffer_observation_shape
            )
            rollout_buffer.actions[position] = actions.reshape(buffer_action_shape)
            rollout_buffer.rewards[position] = rewards
            rollout_buffer.episode_starts[position] = self._last_episode_starts
            rollout_buffer.values[position] = values
            rollout_buffer.log_probs[position] = log_probs
            rollout_buffer.pos += 1
            rollout_buffer.full = rollout_buffer.pos == rollout_buffer.buffer_size
            self._last_obs = new_obs
            self._last_episode_starts = dones
        last_values = np.array(
            self.vf.apply(policy.vf_state.params, policy.prepare_obs(new_obs)[0]).flatten()  # type: ignore[arg-type]
        )
        rollout_buffer.compute_returns_and_advantage(last_values=th.as_tensor(last_values), dones=dones)
        callback.on_rollout_end()
        return True
