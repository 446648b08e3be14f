"""One trial: the config of a parameter set, and training it with evaluations reported to the pruner."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Any

import optuna

from rltool.config import ExperimentConfig
from rltool.errors import TrainingDivergedError
from rltool.failures import nan_policy_divergence
from rltool.tune.options import TuneOptions, trial_budget
from rltool.tune.samplers import CONFIG_FIELDS, SAMPLERS


def apply_params(
    config: ExperimentConfig, sampled: dict[str, Any], n_timesteps: int | None = None
) -> ExperimentConfig:
    """Derive the config of a trial: sampled algorithm keywords over the config's.

    :param config: the config being tuned.
    :param sampled: what a function of :data:`SAMPLERS` returned.
    :param n_timesteps: the budget of the derived config (None: keep the config's).
    :return: the derived config.
    """
    fields = {key: value for key, value in sampled.items() if key in CONFIG_FIELDS}
    algo_kwargs = {key: value for key, value in sampled.items() if key not in CONFIG_FIELDS}
    changes: dict[str, Any] = {"algo_kwargs": {**config.algo_kwargs, **algo_kwargs}, **fields}
    if n_timesteps is not None:
        changes["n_timesteps"] = n_timesteps
    return replace(config, **changes)


def config_of_params(
    config: ExperimentConfig, params: dict[str, Any], n_timesteps: int | None = None
) -> ExperimentConfig:
    """Rebuild the config of stored trial parameters (e.g. the best trial's).

    :param config: the config being tuned.
    :param params: ``trial.params`` of a finished trial.
    :param n_timesteps: the budget of the result (None: the config's).
    :return: the derived config.
    """
    with warnings.catch_warnings():
        # enqueued parameters may lie outside the search space; that was asked for
        warnings.filterwarnings("ignore", message=".*out of the range", category=UserWarning)
        sampled = SAMPLERS[config.algo](optuna.trial.FixedTrial(params), config)
    return apply_params(config, sampled, n_timesteps)


def run_trial(
    trial: optuna.trial.BaseTrial, config: ExperimentConfig, options: TuneOptions
) -> tuple[float, ExperimentConfig]:
    """Sample a config, train it for the per-trial budget and return its last evaluation.

    Intermediate evaluations are reported to the trial; when the pruner says so, training
    stops and :class:`optuna.TrialPruned` is raised.

    :param trial: the Optuna trial.
    :param config: the config being tuned.
    :param options: see :class:`TuneOptions`.
    :return: the mean reward of the last evaluation and the trial's config.
    """
    import numpy as np
    from stable_baselines3.common.callbacks import CallbackList

    from rltool.algos import build_model
    from rltool.callbacks import NanGuardCallback, PeriodicEvalCallback
    from rltool.episodes import evaluate_episodes
    from rltool.train import TrainOptions, build_env, build_eval_env

    budget = trial_budget(config, options)
    sampled = SAMPLERS[config.algo](trial, config)
    trial_config = apply_params(config, sampled, n_timesteps=budget)

    train_options = TrainOptions(allowed_modules=options.allowed_modules, progress=False)
    env = build_env(trial_config, None, train_options)
    eval_env = None
    try:
        model = build_model(trial_config, env)
        eval_env = build_eval_env(trial_config, None, train_options, n_envs=trial_config.n_eval_envs)
        evaluations: list[float] = []
        pruned = False

        def on_result(num_timesteps: int, mean_reward: float) -> bool:
            nonlocal pruned
            if not math.isfinite(mean_reward):
                raise TrainingDivergedError(
                    f"training diverged at step {num_timesteps}: the evaluation reward is {mean_reward}"
                )
            trial.report(mean_reward, len(evaluations))  # steps are evaluation indices, equal for all trials
            evaluations.append(mean_reward)
            pruned = trial.should_prune()
            return not pruned  # False stops learning

        eval_freq = max(budget // options.n_evaluations, 1)
        callback = PeriodicEvalCallback(eval_env, None, eval_freq, options.eval_episodes, on_result=on_result)
        try:
            model.learn(total_timesteps=budget, callback=CallbackList([NanGuardCallback(), callback]))
        except ValueError as error:
            nan_policy = nan_policy_divergence(error, model.num_timesteps)
            if nan_policy is None:
                raise
            raise nan_policy from None
        if pruned:
            raise optuna.TrialPruned(f"pruned after evaluation {len(evaluations)} ({evaluations[-1]:.2f})")
        if not evaluations:  # budget too small for the periodic evaluation to trigger
            rewards, _ = evaluate_episodes(model, eval_env, options.eval_episodes, deterministic=True)
            evaluations.append(float(np.mean(rewards)))
        return evaluations[-1], trial_config
    finally:
        env.close()
        if eval_env is not None:
            eval_env.close()
