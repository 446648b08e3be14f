"""Wall time of `rltool train` against rl-baselines3-zoo's `train` on the same config, in one run.

Both train PPO on CartPole-v1 with the zoo's tuned hyperparameters (configs/cartpole.yaml holds
the same values) for the same budget, periodic evaluation off on both sides, each with its own
default runtime choices otherwise (rltool: 1 torch thread on CPU; the zoo: torch's default).
The commands alternate; the best wall time of each side is compared.

rl-baselines3-zoo is not a dependency of rltool: install it in a virtualenv of its own
(`python -m venv zoo && zoo/bin/pip install torch==2.13.0 rl_zoo3`) and pass its python.

    python benchmarks/vs_zoo.py --zoo-python zoo/bin/python [--steps 50000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from _common import ROOT, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo-python", required=True, help="Python of a virtualenv with rl_zoo3 installed.")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    zoo_times, tool_times = [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            zoo = [
                args.zoo_python, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", "CartPole-v1",
                "-n", str(args.steps), "--eval-freq", "-1", "--seed", "0", "-f", f"{folder}/zoo",
            ]  # fmt: skip
            tool = [
                sys.executable, "-m", "rltool", "train", str(ROOT / "configs" / "cartpole.yaml"),
                "-n", str(args.steps), "--eval-freq", "0", "--no-progress", "-f", f"{folder}/rltool",
            ]  # fmt: skip
            zoo_times.append(timed(zoo))
            tool_times.append(timed(tool))
            print(
                f"repeat {repeat + 1}: zoo train {zoo_times[-1]:.1f} s, rltool train {tool_times[-1]:.1f} s",
                flush=True,
            )
    best_zoo, best_tool = min(zoo_times), min(tool_times)
    print(
        f"PPO CartPole-v1, {args.steps} steps: rl-baselines3-zoo {best_zoo:.1f} s, rltool {best_tool:.1f} s"
    )
    print(f"speed-up of rltool over rl-baselines3-zoo (wall time): {best_zoo / best_tool:.2f}x")


if __name__ == "__main__":
    main()
