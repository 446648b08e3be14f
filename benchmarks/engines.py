"""Fast engines against plain SB3: steps/s of each engine on the same hyperparameters (issue 14).

For each job it runs, in fresh processes of this one process tree, in alternating order and at
least twice each:

* ``plain SB3``: benchmarks/plain_sb3.py, a hand-written SB3 script (gymnasium DummyVecEnv,
  1 torch thread);
* ``rltool sb3``: ``rltool train`` on the SB3 (torch) backend;
* ``rltool sbx``: ``rltool train --backend sbx`` (JAX);
* ``rltool sbx+envpool``: SBX on EnvPool's envs (for the PPO job: configs/lunarlander-fast.yaml,
  checked to hold the same hyperparameters as configs/lunarlander.yaml).

All rltool runs use ``--eval-freq 0`` and otherwise their defaults (1 torch thread, XLA one
thread per core, EnvPool 1 thread); steps/s is the learn phase's, from train.json (the plain script times ``learn()`` the same way). Each variant's
best steps/s is divided by plain SB3's best; the target variant of each job must reach the
issue's ratio (PPO LunarLander on SBX + EnvPool >= 3.0x, SAC Pendulum on SBX >= 2.0x, DQN
CartPole on SBX >= 1.8x). Variants this checkout cannot run (no ``--backend``, no envpool) are
shown as skipped, never as passed.

    python benchmarks/engines.py [--jobs ppo-lunarlander,sac-pendulum,dqn-cartpole] [--repeats 2]
        [--ppo-steps 100000] [--sac-steps 5000] [--dqn-steps 20000]
    python benchmarks/engines.py --quick    # tiny budgets: checks that everything runs, not speed
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from _common import ROOT

PLAIN, SB3, SBX, SBX_ENVPOOL = "plain SB3", "rltool sb3", "rltool sbx", "rltool sbx+envpool"
VARIANTS = (PLAIN, SB3, SBX, SBX_ENVPOOL)
ENGINE_KEYS = ("backend", "vec_env")  # what a fast config may change; nothing else


@dataclass(frozen=True)
class Job:
    """One benchmark job: a shipped SB3 config, its budget and its target."""

    config: str
    steps: int
    target: float
    target_variant: str
    fast_config: str | None = None
    #: tiny settings for --quick (with n_timesteps = quick_steps)
    quick_steps: int = 256
    quick: dict[str, Any] = field(default_factory=dict)


JOBS = {
    "ppo-lunarlander": Job(
        "configs/lunarlander.yaml", 100_000, 3.0, SBX_ENVPOOL, fast_config="configs/lunarlander-fast.yaml",
        quick_steps=512, quick={"n_envs": 4, "n_steps": 64},
    ),
    "sac-pendulum": Job("configs/pendulum.yaml", 5_000, 2.0, SBX, quick_steps=300, quick={"learning_starts": 100}),
    "dqn-cartpole": Job(
        "configs/dqn-cartpole.yaml", 20_000, 1.8, SBX, quick_steps=600,
        quick={"learning_starts": 100, "train_freq": 16, "gradient_steps": 4, "buffer_size": 1000},
    ),
}  # fmt: skip


class Skipped(Exception):
    """A variant this checkout cannot run; the message says why."""


def read_yaml(path: Path) -> dict[str, Any]:
    """:return: the mapping of a config file."""
    return yaml.safe_load(path.read_text())


def prepare_configs(name: str, job: Job, steps: int, quick: bool, folder: Path) -> tuple[Path, Path]:
    """Write the job's SB3 config and its fast twin (backend sbx, vec_env envpool) with the budget.

    :return: the two config paths.
    :raises SystemExit: when the shipped fast config's hyperparameters differ from the SB3 one's.
    """
    base = read_yaml(ROOT / job.config)
    fast = dict(base, backend="sbx", vec_env="envpool")
    if job.fast_config is not None:
        fast = read_yaml(ROOT / job.fast_config)
        differ = sorted(
            key for key in set(base) | set(fast) if key not in ENGINE_KEYS and base.get(key) != fast.get(key)
        )
        if differ:
            sys.exit(f"{job.fast_config}: hyperparameters differ from {job.config}: {', '.join(differ)}")
    paths = []
    for suffix, data in (("sb3", base), ("fast", fast)):
        data = dict(data, n_timesteps=steps, **(job.quick if quick else {}))
        path = folder / f"{name}-{suffix}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        paths.append(path)
    return paths[0], paths[1]


def has_sbx_backend() -> bool:
    """:return: whether this checkout's ``rltool train`` has ``--backend`` (the SBX branch)."""
    result = subprocess.run(
        [sys.executable, "-m", "rltool", "train", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    return "--backend" in result.stdout


def envpool_has(env_id: str) -> bool:
    """:return: whether envpool is installed and has ``env_id``."""
    if importlib.util.find_spec("envpool") is None:
        return False
    command = [sys.executable, "-c", f"import envpool; print({env_id!r} in envpool.list_all_envs())"]
    result = subprocess.run(command, capture_output=True, text=True)
    return result.stdout.strip().endswith("True")


def run(command: list[str]) -> subprocess.CompletedProcess:
    """Run ``command`` in a fresh process from the repository root; exit with its last error line."""
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}\n  {lines[-1]}")
    return result


def plain_steps_per_s(config: Path, steps: int) -> float:
    """The hand-written SB3 script, 1 torch thread: its learn-phase steps/s."""
    script = str(Path(__file__).parent / "plain_sb3.py")
    return float(run([sys.executable, script, str(config), str(steps), "1"]).stdout.split()[-1])


def rltool_steps_per_s(config: Path, log_folder: Path, *args: str) -> float:
    """``rltool train`` in a fresh process: its learn-phase steps/s from train.json."""
    before = set(log_folder.glob("*/run-*"))
    command = [sys.executable, "-m", "rltool", "train", str(config), "-f", str(log_folder)]
    run([*command, "--eval-freq", "0", "--no-progress", *args])
    (run_dir,) = set(log_folder.glob("*/run-*")) - before
    return float(json.loads((run_dir / "train.json").read_text())["steps_per_s"])


def measure_job(name: str, job: Job, steps: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Run every variant of one job ``args.repeats`` times in alternating order.

    :return: steps/s lists per variant, or the reason a variant was skipped.
    """
    sb3_config, fast_config = prepare_configs(name, job, steps, args.quick, folder)
    env_id = read_yaml(sb3_config)["env"]
    skipped: dict[str, str] = {}
    if not args.sbx:
        reason = "this checkout's rltool has no --backend (needs the sbx branch)"
        skipped[SBX] = skipped[SBX_ENVPOOL] = reason
    elif not envpool_has(env_id):
        skipped[SBX_ENVPOOL] = f"envpool has no {env_id}"
    runners = {
        PLAIN: lambda: plain_steps_per_s(sb3_config, steps),
        SB3: lambda: rltool_steps_per_s(sb3_config, folder / "runs"),
        SBX: lambda: rltool_steps_per_s(sb3_config, folder / "runs", "--backend", "sbx"),
        SBX_ENVPOOL: lambda: rltool_steps_per_s(fast_config, folder / "runs"),
    }
    results: dict[str, list[float]] = {variant: [] for variant in VARIANTS if variant not in skipped}
    for repeat in range(args.repeats):
        order = list(results) if repeat % 2 == 0 else list(reversed(results))
        for variant in order:
            results[variant].append(runners[variant]())
            print(
                f"  {name}, repeat {repeat + 1}: {variant}: {results[variant][-1]:,.0f} steps/s", flush=True
            )
    return {"results": results, "skipped": skipped, "steps": steps, "env": env_id}


def report(name: str, job: Job, measured: dict[str, Any]) -> list[str]:
    """:return: the lines of one job's table, with each ratio to plain SB3 and the target's verdict."""
    results, skipped = measured["results"], measured["skipped"]
    plain = max(results[PLAIN])
    lines = [f"{name} ({measured['env']}, {measured['steps']:,} steps, best of {len(results[PLAIN])}):"]
    for variant in VARIANTS:
        if variant in skipped:
            lines.append(f"  {variant:20s} skipped: {skipped[variant]}")
            continue
        best = max(results[variant])
        values = ", ".join(f"{value:,.0f}" for value in results[variant])
        lines.append(
            f"  {variant:20s} {best:>9,.0f} steps/s  {best / plain:5.2f}x plain SB3  (all: {values})"
        )
    if job.target_variant in skipped:
        verdict = "SKIPPED"
        ratio_text = "not measured"
    else:
        ratio = max(results[job.target_variant]) / plain
        verdict = "PASS" if ratio >= job.target else "MISS"
        ratio_text = f"{ratio:.2f}x"
    lines.append(f"  target: {job.target_variant} >= {job.target:.1f}x plain SB3: {ratio_text}  {verdict}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated, of: {', '.join(JOBS)}")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant (at least 2)")
    parser.add_argument("--ppo-steps", type=int, default=JOBS["ppo-lunarlander"].steps)
    parser.add_argument("--sac-steps", type=int, default=JOBS["sac-pendulum"].steps)
    parser.add_argument("--dqn-steps", type=int, default=JOBS["dqn-cartpole"].steps)
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the script, not speed")
    args = parser.parse_args()
    names = [name.strip() for name in args.jobs.split(",") if name.strip()]
    unknown = [name for name in names if name not in JOBS]
    if unknown or not names:
        parser.error(f"--jobs: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(JOBS)}")
    if args.repeats < 2:
        parser.error("--repeats: at least 2 (the order alternates between repetitions)")
    budgets = {
        "ppo-lunarlander": args.ppo_steps,
        "sac-pendulum": args.sac_steps,
        "dqn-cartpole": args.dqn_steps,
    }
    args.sbx = has_sbx_backend()

    tables = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            job = JOBS[name]
            steps = job.quick_steps if args.quick else budgets[name]
            print(f"{name}: {steps:,} steps per run", flush=True)
            measured = measure_job(name, job, steps, args, Path(folder))
            tables.append(report(name, job, measured))
    print()
    if args.quick:
        print("(--quick: tiny budgets dominated by start-up; these ratios say nothing about speed)")
    for lines in tables:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
