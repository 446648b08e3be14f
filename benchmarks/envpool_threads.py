"""Random-action stepping of 16 LunarLander-v3 envs: EnvPool at 1 and 2 threads, against gymnasium.

Measures env steps/s of EnvPool alone, of rltool's adapter (EnvPoolVecEnv: auto-reset, infos,
episode statistics) and of gymnasium's DummyVecEnv with Monitor, in alternating order.

python benchmarks/envpool_threads.py [--env LunarLander-v3] [--n-envs 16] [--steps 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np


def steps_per_s(step: Callable[[np.ndarray], object], actions: np.ndarray) -> float:
    """:return: env steps/s of calling ``step`` on each row of ``actions`` (one row per vector step)."""
    started = time.perf_counter()
    for row in actions:
        step(row)
    return actions.size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="LunarLander-v3")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2000, help="vector steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import envpool
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rltool.envs.envpool_vec import EnvPoolVecEnv

    actions = np.random.default_rng(0).integers(0, 4, size=(args.steps, args.n_envs))

    def raw(threads: int) -> Callable[[np.ndarray], object]:
        pool = envpool.make(args.env, env_type="gymnasium", num_envs=args.n_envs, seed=0, num_threads=threads)
        pool.reset()
        return pool.step

    def adapter(threads: int) -> Callable[[np.ndarray], object]:
        venv = EnvPoolVecEnv(args.env, args.n_envs, seed=0, num_threads=threads)
        venv.reset()
        return venv.step

    def gymnasium() -> Callable[[np.ndarray], object]:
        venv = DummyVecEnv([lambda: Monitor(gym.make(args.env)) for _ in range(args.n_envs)])
        venv.reset()
        return venv.step

    makers: dict[str, Callable[[], Callable[[np.ndarray], object]]] = {
        "envpool, 1 thread": lambda: raw(1),
        "envpool, 2 threads": lambda: raw(2),
        "rltool adapter, 1 thread": lambda: adapter(1),
        "rltool adapter, 2 threads": lambda: adapter(2),
        "gymnasium DummyVecEnv": gymnasium,
    }
    results: dict[str, list[float]] = {name: [] for name in makers}
    for repeat in range(args.repeats):
        names = list(makers) if repeat % 2 == 0 else list(reversed(makers))
        for name in names:
            results[name].append(steps_per_s(makers[name](), actions))
            print(f"{name}: {results[name][-1]:,.0f} steps/s", flush=True)
    print(f"\n{args.n_envs} x {args.env}, random actions, {args.steps} vector steps, best of {args.repeats}:")
    for name, values in results.items():
        print(f"  {name:28s} {max(values):>9,.0f} steps/s  (all: {', '.join(f'{v:,.0f}' for v in values)})")


if __name__ == "__main__":
    main()
