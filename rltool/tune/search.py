"""How a study draws parameters: the per-trial seeded Optuna sampler, the pruner, and throwaway
draws from an algorithm's search space (:mod:`rltool.tune.samplers`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

from rltool.config import ExperimentConfig
from rltool.tune.samplers import SAMPLERS


def _seed_for(seed: int, number: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class PerTrialSeedSampler(optuna.samplers.BaseSampler):
    """Delegates trial number k to a fresh sampler seeded with (seed, k).

    Workers of one study get different trial numbers, so they never draw the same parameters,
    and one worker run again with the same seed draws the same trials.

    :param factory: builds a sampler from a seed.
    :param seed: the base seed.
    """

    def __init__(self, factory: Callable[[int], optuna.samplers.BaseSampler], seed: int):
        self._factory = factory
        self._seed = seed
        self._samplers: dict[int, optuna.samplers.BaseSampler] = {}

    def _for(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.BaseSampler:
        sampler = self._samplers.get(trial.number)
        if sampler is None:
            sampler = self._samplers[trial.number] = self._factory(_seed_for(self._seed, trial.number))
        return sampler

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, Any]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: TrialState, values: Any
    ) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        self._samplers.pop(trial.number, None)

    def reseed_rng(self) -> None:
        """Nothing to do: seeds come from trial numbers."""


def make_sampler(name: str, seed: int | None, n_startup_trials: int = 10) -> optuna.samplers.BaseSampler:
    """The parameter sampler; with a seed, see :class:`PerTrialSeedSampler`.

    :param name: "tpe" or "random".
    :param seed: base seed, or None for fresh randomness in every worker.
    :param n_startup_trials: random trials before TPE starts modelling.
    :return: the sampler.
    """

    def factory(trial_seed: int | None) -> optuna.samplers.BaseSampler:
        if name == "random":
            return optuna.samplers.RandomSampler(seed=trial_seed)
        return optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=n_startup_trials)

    return factory(None) if seed is None else PerTrialSeedSampler(factory, seed)


def make_pruner(name: str, n_evaluations: int) -> optuna.pruners.BasePruner:
    """The pruner: steps are evaluation indices 0 .. n_evaluations - 1.

    :param name: "median", "halving" or "none".
    :param n_evaluations: evaluations per trial.
    :return: the pruner.
    """
    if name == "median":
        # no pruning before 5 trials have finished nor during the first third of a trial
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=n_evaluations // 3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def draw_params(
    config: ExperimentConfig, sampler: optuna.samplers.BaseSampler, draws: int
) -> list[dict[str, Any]]:
    """Draw parameters from the config's search space in a throwaway in-memory study.

    :param config: the config to tune.
    :param sampler: how to draw.
    :param draws: number of trials to draw.
    :return: each trial's parameters.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    params = []
    for _ in range(draws):
        trial = study.ask()
        SAMPLERS[config.algo](trial, config)
        params.append(trial.params)
        study.tell(trial, 0.0)
    return params


def search_space_names(config: ExperimentConfig, samples: int = 16) -> set[str]:
    """Names of the Optuna parameters of the config's search space (conditional ones included).

    :param config: the config to tune.
    :param samples: random draws used to reach conditional parameters.
    :return: parameter names.
    """
    drawn = draw_params(config, optuna.samplers.RandomSampler(seed=0), samples)
    return {name for params in drawn for name in params}
