"""EnvPool training envs behind SB3's ``VecEnv`` interface (``vec_env: envpool``).

EnvPool steps a batch of C++ envs in its own threads. Its gymnasium API differs from SB3's
``DummyVecEnv`` in three ways that :class:`EnvPoolVecEnv` hides, so an algorithm, VecNormalize,
VecFrameStack, the progress bar, ``rltool plot`` and ``rltool report`` see the same thing as with
gymnasium envs:

* EnvPool resets a finished env on the *next* step (which then returns the reset observation, a
  zero reward and ignores the action); the adapter resets it at once instead, returns the reset
  observation and puts the last one in ``infos[i]["terminal_observation"]``, as DummyVecEnv does;
* ``infos[i]["TimeLimit.truncated"]`` is ``truncated and not terminated``;
* episode statistics (``infos[i]["episode"] = {"r", "l", "t"}``) and one Monitor CSV per env
  (``<prefix>-<i>.monitor.csv``) are written with SB3's own ``ResultsWriter``, as ``Monitor`` does.

Only training uses EnvPool: evaluation, videos and tuning's evaluations build the gymnasium env,
the reference dynamics. So an env qualifies only when EnvPool has the same id as gymnasium, with
the same spaces (:func:`rltool.envs.registry.check_envpool_env`); it runs with gymnasium's time limit.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from rltool.envs.registry import quiet_envpool
from rltool.errors import EnvError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import gymnasium as gym
    from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn


class EnvPoolVecEnv(VecEnv):
    """A batch of EnvPool envs with DummyVecEnv's auto-reset, infos and Monitor files.

    EnvPool seeds its envs only when it creates them (env ``i`` gets ``seed + i``), so the pool is
    (re)created by the first :meth:`reset` after :meth:`seed`, as DummyVecEnv reseeds its envs then.

    :param env_id: an id EnvPool and gymnasium both have (see :func:`rltool.envs.registry.check_envpool_env`).
    :param num_envs: number of envs.
    :param seed: base seed; None draws one.
    :param num_threads: EnvPool's worker threads (at most ``num_envs``).
    :param monitor_dir: folder for ``<monitor_prefix>-<i>.monitor.csv``; None writes no files.
    :param monitor_prefix: file name prefix (``train``, ``train-seg2``, ...).
    :param append_monitor: append to existing Monitor files instead of replacing them.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        *,
        seed: int | None = None,
        num_threads: int = 1,
        monitor_dir: Path | None = None,
        monitor_prefix: str = "train",
        append_monitor: bool = False,
    ):
        import gymnasium as gym

        self.env_id = env_id
        self.num_threads = max(1, min(num_threads, num_envs))
        # gymnasium's spaces, not EnvPool's (equal but for how bounds write "unbounded"): the model
        # must match the gymnasium env it is evaluated and loaded on
        reference = gym.make(env_id)
        self.max_episode_steps = reference.spec.max_episode_steps if reference.spec else None
        observation_space, action_space = reference.observation_space, reference.action_space
        reference.close()
        self._pool: Any = None
        self._pool_seed: int | None = None
        self._actions: np.ndarray | None = None
        super().__init__(num_envs, observation_space, action_space)
        self.seed(seed)
        self._episode_returns = np.zeros(num_envs, dtype=np.float64)
        self._episode_lengths = np.zeros(num_envs, dtype=np.int64)
        self.t_start = time.time()
        self._writers = []
        if monitor_dir is not None:
            from stable_baselines3.common.monitor import ResultsWriter

            self._writers = [
                ResultsWriter(
                    str(Path(monitor_dir) / f"{monitor_prefix}-{rank}"),
                    header={"t_start": self.t_start, "env_id": env_id},
                    override_existing=not append_monitor,
                )
                for rank in range(num_envs)
            ]

    # -- the pool -------------------------------------------------------------------------------

    def _make_pool(self, seed: int) -> Any:
        import envpool

        kwargs: dict[str, Any] = {}
        if self.max_episode_steps is not None:
            kwargs["max_episode_steps"] = self.max_episode_steps  # gymnasium's TimeLimit, exactly
        with quiet_envpool():
            pool = envpool.make(
                self.env_id,
                env_type="gymnasium",
                num_envs=self.num_envs,
                seed=seed,
                num_threads=self.num_threads,
                **kwargs,
            )
            _ = pool.observation_space, pool.action_space  # built on first read, with the warnings
        return pool

    def reset(self) -> np.ndarray:
        """Reset every env (recreating the pool when :meth:`seed` was called) and start new episodes.

        :return: the first observations.
        """
        base = self._seeds[0]  # set by seed(): like gymnasium's reset(seed=...), it restarts the RNGs
        if self._pool is None or base is not None:
            if self._pool is not None:
                self._pool.close()
            self._pool_seed = base if base is not None else int(np.random.randint(0, 2**31 - 1))
            self._pool = self._make_pool(self._pool_seed)
        observations, _ = self._pool.reset()
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._episode_returns[:] = 0.0
        self._episode_lengths[:] = 0
        return np.array(observations)

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions for :meth:`step_wait`."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every env; reset finished ones at once, as DummyVecEnv does.

        :return: observations, rewards, dones and one info dict per env.
        """
        if self._pool is None:
            raise EnvError("EnvPool envs: step() before reset()")
        observations, rewards, terminated, truncated, _ = self._pool.step(self._actions)
        observations = np.array(observations)  # a copy: the reset below may reuse EnvPool's buffer
        rewards = np.asarray(rewards, dtype=np.float32)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        dones = terminated | truncated
        self._episode_returns += rewards
        self._episode_lengths += 1
        # one dict per env, as SB3's buffers and callbacks read them (built from one list, not per index)
        infos: list[dict[str, Any]] = [
            {"TimeLimit.truncated": cut} for cut in (truncated & ~terminated).tolist()
        ]
        finished = np.flatnonzero(dones)
        if finished.size:
            now = time.time()
            for i in finished:
                episode = {
                    "r": round(float(self._episode_returns[i]), 6),
                    "l": int(self._episode_lengths[i]),
                    "t": round(now - self.t_start, 6),
                }
                if self._writers:
                    self._writers[i].write_row(episode)
                infos[i]["episode"] = episode
                infos[i]["terminal_observation"] = observations[i].copy()
            self._episode_returns[finished] = 0.0
            self._episode_lengths[finished] = 0
            reset_observations, reset_info = self._pool.reset(finished.astype(np.int32))
            order = np.asarray(reset_info["env_id"])  # EnvPool returns them in its own order
            observations[order] = reset_observations
        return observations, rewards, dones, infos

    def close(self) -> None:
        """Close the pool and the Monitor files."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        for writer in self._writers:
            writer.close()
        self._writers = []

    # -- what DummyVecEnv offers per env ----------------------------------------------------------

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Per-env attributes: ``render_mode`` (None) and ``spec`` (gymnasium's); others do not exist.

        :raises AttributeError: for any other name (``has_attr`` then answers False).
        """
        count = len(list(self._get_indices(indices)))
        if attr_name == "render_mode":
            return [None] * count
        if attr_name == "spec":
            import gymnasium as gym

            return [gym.spec(self.env_id)] * count
        raise AttributeError(
            f"EnvPool envs have no per-env attribute '{attr_name}' (vec_env: envpool builds them in C++)"
        )

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Not possible: EnvPool's envs are not Python objects."""
        raise EnvError(f"EnvPool envs cannot set '{attr_name}'; use vec_env: dummy for that")

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Not possible: EnvPool's envs are not Python objects."""
        raise EnvError(f"EnvPool envs cannot call '{method_name}'; use vec_env: dummy for that")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """:return: False for every env: EnvPool envs carry no gymnasium wrappers."""
        return [False] * len(list(self._get_indices(indices)))

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Not possible: EnvPool does not render; videos are recorded on the gymnasium env."""
        raise EnvError("EnvPool envs do not render; rltool record-video renders the gymnasium env")
