"""rltool's training overhead against a hand-written SB3 script (target ratio >= 0.98).

Both sides run the same config, budget and torch thread count in fresh processes, in
alternating order (plain first, then rltool first, ...) several times; the best steps/s of
each side is compared, which filters out the noise of a shared machine. The plain script logs
to TensorBoard as the seed notes' script does; rltool runs with its defaults (progress bar,
TensorBoard, Monitor files, NaN guard) except periodic evaluation, which the plain script does
not do.

    python benchmarks/overhead.py [--config configs/cartpole.yaml] [--steps 40000] [--repeats 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, rltool_train_steps_per_s


def plain_steps_per_s(config: str, steps: int, threads: int) -> float:
    """Run the hand-written script in a fresh process; return its learn-phase steps/s."""
    command = [sys.executable, str(Path(__file__).parent / "plain_sb3.py"), config, str(steps), str(threads)]
    return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "cartpole.yaml"))
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    plain, tool = [], []
    with tempfile.TemporaryDirectory() as folder:
        rltool_args = ("-n", str(args.steps), "--threads", str(args.threads), "--eval-freq", "0")
        for repeat in range(args.repeats):
            order = ("plain", "rltool") if repeat % 2 == 0 else ("rltool", "plain")
            for side in order:
                if side == "plain":
                    plain.append(plain_steps_per_s(args.config, args.steps, args.threads))
                else:
                    tool.append(rltool_train_steps_per_s(Path(args.config), Path(folder), *rltool_args))
            print(
                f"repeat {repeat + 1}: plain SB3 {plain[-1]:.0f} steps/s, rltool {tool[-1]:.0f} steps/s",
                flush=True,
            )
    ratio = max(tool) / max(plain)
    print(f"config {args.config}, {args.steps} steps, {args.threads} thread(s)")
    print(f"best plain SB3: {max(plain):.0f} steps/s; best rltool: {max(tool):.0f} steps/s")
    print(
        f"overhead ratio (rltool / plain SB3): {ratio:.3f}  target >= 0.98: {'PASS' if ratio >= 0.98 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
