"""PPO on CartPole at 1 and 2 torch threads: why rltool defaults to 1 on CPU.

python benchmarks/threads.py [--steps 40000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import ROOT, rltool_train_steps_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "cartpole.yaml"))
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    best = {1: 0.0, 2: 0.0}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            for threads in (1, 2):
                steps_per_s = rltool_train_steps_per_s(
                    Path(args.config), Path(folder), "-n", str(args.steps), "--threads", str(threads),
                    "--eval-freq", "0", "--no-progress",
                )  # fmt: skip
                best[threads] = max(best[threads], steps_per_s)
                print(f"{threads} thread(s): {steps_per_s:.0f} steps/s", flush=True)
    print(f"best: 1 thread {best[1]:.0f} steps/s, 2 threads {best[2]:.0f} steps/s")
    print(f"speed-up of 1 thread over 2: {best[1] / best[2]:.2f}x")


if __name__ == "__main__":
    main()
