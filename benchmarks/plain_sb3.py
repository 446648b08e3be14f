"""A hand-written SB3 script for one single-experiment config, as the seed notes' script is written.

Like that script it logs to TensorBoard; it prints the learn-phase steps/s. Used by overhead.py
as the baseline; no rltool import.
"""

from __future__ import annotations

import ast
import sys
import tempfile
import time

import torch
import yaml
from stable_baselines3 import A2C, DQN, PPO, SAC
from stable_baselines3.common.env_util import make_vec_env

CLASSES = {"ppo": PPO, "a2c": A2C, "dqn": DQN, "sac": SAC}
# keys a config gives the script itself or rltool (evaluation), not the algorithm
NOT_ALGO_KEYS = {"env", "algo", "seed", "n_timesteps", "n_envs", "policy", "n_eval_envs"}


def keyword_dict(text: str) -> dict:
    """``"dict(net_arch=[256, 256])"`` -> ``{"net_arch": [256, 256]}`` (literal values only)."""
    call = ast.parse(text, mode="eval").body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "dict"):
        raise ValueError(f"expected dict(...), got {text!r}")
    return {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}


def linear(initial: float):
    return lambda progress_remaining: progress_remaining * initial


def main(config_path: str, n_timesteps: int, threads: int) -> None:
    torch.set_num_threads(threads)
    with open(config_path) as handle:
        config = yaml.safe_load(handle)
    kwargs = {key: value for key, value in config.items() if key not in NOT_ALGO_KEYS}
    for key, value in kwargs.items():
        if isinstance(value, str) and value.startswith("lin_"):
            kwargs[key] = linear(float(value[4:]))
        elif isinstance(value, str) and value.startswith("dict("):
            kwargs[key] = keyword_dict(value)
    # make_vec_env renders (render_mode="rgb_array") unless told otherwise, and LunarLander then
    # simulates its flame particles as Box2D bodies: 3.4x slower world steps than rltool's envs
    env = make_vec_env(
        config["env"],
        n_envs=config.get("n_envs", 1),
        seed=config.get("seed"),
        env_kwargs={"render_mode": None},
    )
    with tempfile.TemporaryDirectory() as logs:
        model = CLASSES[config["algo"]](
            config["policy"], env, seed=config.get("seed"), device="cpu", tensorboard_log=logs, **kwargs
        )
        started = time.perf_counter()
        model.learn(total_timesteps=n_timesteps)
        elapsed = time.perf_counter() - started
    print(model.num_timesteps / elapsed)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
