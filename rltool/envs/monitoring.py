"""Keeping Monitor's episodes whole when wrappers outside it cut episodes short."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor


class OuterCutsEndMonitorEpisodes(gym.Wrapper):
    """Close Monitor's episode when a wrapper outside Monitor truncates it (``TimeLimit`` in ``env_wrapper``).

    Monitor sits inside the config's wrappers, as in the zoo, so that it scores whole games under
    Atari's life-loss wrapper. A wrapper outside it that cuts the episode short would leave
    Monitor's episode open: no ``episode`` info, no Monitor CSV row, and an evaluation that counts
    episodes by that info would never finish. Terminations from outside (a lost life) are left
    alone: the game goes on, and Monitor's episode with it.

    :param env: the env with the config's wrappers.
    :param monitor: the Monitor inside it.
    """

    def __init__(self, env: gym.Env, monitor: Monitor):
        super().__init__(env)
        self.monitor = monitor

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        if truncated and not terminated and "episode" not in info and not self.monitor.needs_reset:
            info["episode"] = close_monitor_episode(self.monitor, info)
        return observation, reward, terminated, truncated, info


def close_monitor_episode(monitor: Monitor, info: dict[str, Any]) -> dict[str, Any]:
    """Record Monitor's open episode as ended now, as Monitor records an end it sees itself.

    :param monitor: the Monitor.
    :param info: the step's info (for Monitor's ``info_keywords``).
    :return: the episode's summary (``r``, ``l``, ``t``, ...), for the step's ``episode`` info.
    """
    monitor.needs_reset = True
    elapsed = time.time() - monitor.t_start
    episode_return = sum(monitor.rewards)
    episode: dict[str, Any] = {
        "r": round(episode_return, 6),
        "l": len(monitor.rewards),
        "t": round(elapsed, 6),
    }
    for key in monitor.info_keywords:
        episode[key] = info.get(key)
    monitor.episode_returns.append(episode_return)
    monitor.episode_lengths.append(len(monitor.rewards))
    monitor.episode_times.append(elapsed)
    episode.update(monitor.current_reset_info)
    if monitor.results_writer is not None:
        monitor.results_writer.write_row(episode)
    return episode
