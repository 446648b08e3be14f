"""Overhead of ``rltool tune``'s loop against training the same trials one by one.

Tuning side: the worker loop on a journal study (cap checks, ask, sampling, training with evaluations
reported to Optuna, tell, storage writes with fsync, one log line per trial), opening the study
included. Baseline: the same trials' configs (same parameters, budget, seed and evaluations) trained
with the same env builder, model builder and callbacks, without Optuna. The pruner is off so both
sides train every step; the two sides reach identical rewards.

Both sides run in this process after a warm-up trial: no interpreter or import start-up is counted
on either side. Trials are paired and interleaved (tune k, baseline k, baseline k+1, tune k+1, ...)
so load changes on a shared machine hit both sides alike, and garbage is collected outside the
timers. The ratio uses this process's CPU time, which other jobs do not inflate; wall time is
printed too. Results (trials.csv, best.yaml, plots) are written once per worker, not per trial,
and are reported on their own line.

    .venv/bin/python benchmarks/tune_overhead.py [--trials 8] [--n-timesteps 4096] [--rounds 2]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

CONFIG = """\
env: CartPole-v1
algo: ppo
seed: 11
n_timesteps: 100000
n_envs: 2
policy: MlpPolicy
"""


def silent(line: str) -> None:
    """Swallow progress lines."""


class Clock:
    """CPU and wall seconds spent inside ``with`` blocks (garbage is collected before each)."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.wall = 0.0

    def __enter__(self) -> Clock:
        gc.collect()
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu += time.process_time() - self._cpu
        self.wall += time.perf_counter() - self._wall


def train_one(config: Any, options: Any) -> float:
    """Train one trial's config the way ``run_trial`` does, without Optuna.

    :param config: the trial's config (budget included).
    :param options: the tuning options (evaluations and episodes).
    :return: the mean reward of the last evaluation.
    """
    from stable_baselines3.common.callbacks import CallbackList

    from rltool.algos import build_model
    from rltool.callbacks import NanGuardCallback, PeriodicEvalCallback
    from rltool.train import TrainOptions, build_env, build_eval_env

    env = build_env(config, None, TrainOptions(progress=False))
    eval_env = None
    try:
        model = build_model(config, env)
        eval_env = build_eval_env(config, None, TrainOptions(progress=False))
        eval_freq = max(config.n_timesteps // options.n_evaluations, 1)
        callback = PeriodicEvalCallback(eval_env, None, eval_freq, options.eval_episodes)
        model.learn(total_timesteps=config.n_timesteps, callback=CallbackList([NanGuardCallback(), callback]))
        return float(callback.last_mean_reward)
    finally:
        env.close()
        if eval_env is not None:
            eval_env.close()


def planned_params(config: Any, options: Any, trials: int) -> list[dict[str, Any]]:
    """The parameters trials 0 .. trials-1 draw: TPE's first 10 trials are random, seeded by (seed, number).

    :return: parameters by trial number.
    """

    from rltool.tune.search import draw_params, make_sampler

    assert trials <= 10, "beyond TPE's 10 random start-up trials the draws depend on the results"
    return draw_params(config, make_sampler(options.sampler, options.seed), trials)


def machinery_seconds(config: Any, options: Any, folder: Path, trials: int = 50) -> float:
    """Run the loop with training replaced by nothing: what Optuna and the storage cost per trial.

    :return: wall seconds per trial.
    """
    import rltool.tune.study as study_module
    from rltool.tune.samplers import SAMPLERS

    def no_training(trial: Any, config: Any, options: Any) -> tuple[float, Any]:
        derived = study_module.apply_params(config, SAMPLERS[config.algo](trial, config))
        for step in range(options.n_evaluations):
            trial.report(0.0, step)
            trial.should_prune()
        return 0.0, derived

    original, study_module.run_trial = study_module.run_trial, no_training
    clock = Clock()
    try:
        with clock:
            options = replace(options, trials=trials, log_folder=folder)
            study, _, _ = study_module.open_study(config, options)
            study_module.run_worker(study, config, options, silent)
    finally:
        study_module.run_trial = original
    return clock.wall / trials


def main() -> None:
    """Measure and print ``tune overhead ratio: X.XX``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="trials per round (at most 10)")
    parser.add_argument("--n-timesteps", type=int, default=4096, help="env steps per trial")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each on a fresh study")
    args = parser.parse_args()

    import optuna

    from rltool.config import load_config
    from rltool.runtime import set_threads
    from rltool.tune.options import TuneOptions
    from rltool.tune.results import write_results
    from rltool.tune.study import open_study
    from rltool.tune.trial import config_of_params
    from rltool.tune.worker import run_worker

    set_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "config.yaml").write_text(CONFIG)
        config = load_config(work / "config.yaml")
        options = TuneOptions(
            n_timesteps=args.n_timesteps, n_evaluations=2, eval_episodes=3, pruner="none", seed=11
        )
        plan = planned_params(config, options, args.trials)
        configs = [config_of_params(config, params, n_timesteps=args.n_timesteps) for params in plan]
        # warm-up: first-use costs of torch, SB3 and Optuna, paid once for both sides
        warm = replace(options, trials=1, n_timesteps=256, log_folder=work / "warmup")
        run_worker(open_study(config, warm)[0], config, warm, silent)

        tuning, baseline = Clock(), Clock()
        one_trial = replace(options, trials=1)
        for index in range(args.rounds):
            one_trial = replace(one_trial, log_folder=work / f"round-{index}")
            with tuning:
                study, folder, _ = open_study(config, one_trial)
            for number, trial_config in enumerate(configs):
                sides = ("tune", "baseline") if number % 2 == 0 else ("baseline", "tune")
                for side in sides:
                    if side == "tune":
                        with tuning:
                            run_worker(study, config, one_trial, silent)
                    else:
                        with baseline:
                            train_one(trial_config, options)
            assert [trial.params for trial in study.trials] == plan, "the tuning loop ran other trials"

        machinery = machinery_seconds(config, options, work / "machinery")
        results = Clock()
        with results:
            write_results(study, config, options, folder, silent)

    trials = args.trials * args.rounds
    per_baseline_trial = baseline.wall / trials
    print(f"{trials} PPO CartPole-v1 trials of {args.n_timesteps} steps (2 evaluations of 3 episodes each)")
    print(f"baseline (same trials, one by one): cpu {baseline.cpu:.2f} s, wall {baseline.wall:.2f} s")
    print(f"tuning loop:                        cpu {tuning.cpu:.2f} s, wall {tuning.wall:.2f} s")
    print(f"per trial added: cpu {(tuning.cpu - baseline.cpu) / trials * 1000:.0f} ms")
    print(f"wall-clock ratio: {tuning.wall / baseline.wall:.2f}")
    print(
        f"Optuna and storage alone (training stubbed out, 50 trials): {machinery * 1000:.1f} ms per trial "
        f"= {machinery / per_baseline_trial:.1%} of a mean baseline trial ({per_baseline_trial:.2f} s)"
    )
    print(f"results writing (once per worker): cpu {results.cpu:.2f} s, wall {results.wall:.2f} s")
    print(f"tune overhead ratio: {tuning.cpu / baseline.cpu:.2f}")


if __name__ == "__main__":
    main()
