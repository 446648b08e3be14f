"""Fused SBX PPO on EnvPool against plain SB3, alternated in pairs (issue 14's PPO LunarLander job).

Each pair runs benchmarks/plain_sb3.py on configs/lunarlander.yaml and ``rltool train
configs/lunarlander-fast.yaml`` (``--eval-freq 0 --no-progress``, default threads; steps/s from the run's
train.json, the learn phase only), in alternating order, and prints the pair's ratio with the
1-minute load average before and after. On a shared machine the per-pair ratios are the numbers
to read: two runs of one pair saw about the same load.

    python benchmarks/fast_ppo.py [--pairs 3] [--steps 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT


def plain_sb3(steps: int) -> float:
    """:return: steps/s of the plain SB3 script on configs/lunarlander.yaml."""
    script = str(Path(__file__).parent / "plain_sb3.py")
    command = [sys.executable, script, str(ROOT / "configs/lunarlander.yaml"), str(steps), "1"]
    output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return float(output.split()[-1])


def fast_rltool(steps: int) -> float:
    """:return: steps/s of ``rltool train configs/lunarlander-fast.yaml`` (SBX fused PPO on EnvPool)."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "rltool", "train", "configs/lunarlander-fast.yaml", "-n", str(steps)]
        command += ["--eval-freq", "0", "--no-progress", "--no-tensorboard", "-f", folder]
        subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
        info = json.loads(next(Path(folder).glob("*/run-1/train.json")).read_text())
        return float(info["steps_per_s"])


def main() -> None:
    """Run the pairs and print one line per pair."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    ratios = []
    for pair in range(args.pairs):
        load_before = os.getloadavg()[0]
        if pair % 2 == 0:
            plain, fast = plain_sb3(args.steps), fast_rltool(args.steps)
        else:
            fast, plain = fast_rltool(args.steps), plain_sb3(args.steps)
        ratios.append(fast / plain)
        print(
            f"pair {pair + 1}: plain SB3 {plain:,.0f} steps/s, rltool sbx+envpool {fast:,.0f} steps/s, "
            f"ratio {fast / plain:.2f}x (load {load_before:.1f} -> {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    print(
        f"ratio over {len(ratios)} pairs: median {statistics.median(ratios):.2f}x, lowest {min(ratios):.2f}x "
        "(target 3.0x)"
    )


if __name__ == "__main__":
    main()
