"""Running whole episodes of a trained model: evaluation, with action masks where the algorithm has them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stable_baselines3.common.vec_env import VecEnv


def evaluate_episodes(
    model: Any,
    env: VecEnv,
    n_episodes: int,
    deterministic: bool = True,
    successes: list[float] | None = None,
) -> tuple[list[float], list[int]]:
    """Run ``n_episodes`` full episodes; uses action masks when the algorithm supports them.

    Rewards and lengths are read from the Monitor inside the env, so they are the raw
    episode returns even under VecNormalize or reward-changing wrappers.

    :param model: a trained SB3 model.
    :param env: an env from the shared builder (frozen normalization).
    :param n_episodes: number of episodes.
    :param deterministic: greedy actions.
    :param successes: when given, receives each episode's ``is_success`` (goal envs, whose Monitor
        logs it); stays empty for envs that do not report success.
    :return: episode rewards and lengths.
    """
    if supports_masks(model):
        from sb3_contrib.common.maskable.evaluation import evaluate_policy
    else:
        from stable_baselines3.common.evaluation import evaluate_policy
    rewards, lengths = evaluate_policy(
        model,
        env,
        n_eval_episodes=n_episodes,
        deterministic=deterministic,
        return_episode_rewards=True,
        warn=False,
        callback=None if successes is None else _success_collector(successes),
    )
    return [float(r) for r in rewards], [int(n) for n in lengths]


def _success_collector(successes: list[float]) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """:return: an ``evaluate_policy`` callback that appends ``is_success`` of each finished episode."""

    def collect(local_vars: dict[str, Any], _globals: dict[str, Any]) -> None:
        info = local_vars.get("info") or {}
        episode = info.get("episode")
        if local_vars.get("done") and episode is not None and "is_success" in episode:
            successes.append(float(episode["is_success"]))

    return collect


def supports_masks(model: Any) -> bool:
    """:return: whether the model's algorithm takes action masks (sb3-contrib's MaskablePPO)."""
    from sb3_contrib import MaskablePPO

    return isinstance(model, MaskablePPO)
