"""How fast `rltool --help` and a config error answer, and that neither imports torch or SB3.

python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import timed

HEAVY = {"torch", "stable_baselines3", "sb3_contrib"}


def heavy_imports(args: list[str]) -> set[str]:
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    stderr = subprocess.run(
        [sys.executable, "-m", "rltool", *args], capture_output=True, text=True, env=env
    ).stderr
    return {
        line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")
    } & HEAVY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bad = Path(folder) / "bad.yaml"
        bad.write_text("env: CartPole-v1\nalgo: ppo\nn_timesteps: 1000\nn_step: 8\n")
        for label, command in (("rltool --help", ["--help"]), ("config error", ["train", str(bad)])):
            times = sorted(timed([sys.executable, "-m", "rltool", *command]) for _ in range(args.repeats))
            median = times[len(times) // 2]
            heavy = heavy_imports(command)
            print(
                f"{label}: median {median:.3f} s over {args.repeats} runs (target < 0.5 s: "
                f"{'PASS' if median < 0.5 else 'FAIL'}); heavy imports: {', '.join(sorted(heavy)) or 'none'}"
            )


if __name__ == "__main__":
    main()
