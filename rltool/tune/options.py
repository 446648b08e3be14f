"""What a tuning worker is asked to do: its options, their checks, and where results go."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltool.config import ExperimentConfig, parse_override
from rltool.errors import ConfigError, RltoolError, did_you_mean
from rltool.tune.samplers import SAMPLERS

SAMPLER_NAMES = ("tpe", "random")
PRUNER_NAMES = ("median", "halving", "none")
#: consecutive trials of one worker that may fail for reasons other than their parameters
MAX_CONSECUTIVE_ERRORS = 3


class TuneError(RltoolError):
    """Bad tuning options, an unreachable storage, or a study that does not match the config."""


@dataclass(frozen=True)
class TuneOptions:
    """How to search (what is not the config).

    :param trials: trials this worker runs (None: until the cap or the timeout).
    :param max_total_trials: exact cap on COMPLETE + PRUNED trials over all workers.
    :param n_timesteps: env steps per trial (None: the config's budget).
    :param n_evaluations: evaluations per trial, reported to the pruner.
    :param eval_episodes: episodes per evaluation.
    :param sampler: "tpe" or "random".
    :param pruner: "median", "halving" or "none".
    :param seed: seed of the parameter sampler (None: the config's seed).
    :param timeout: seconds after which this worker starts no new trial.
    :param study_name: the study (None: ``<algo>-<env>``).
    :param storage: a ``.log`` journal file or a database URL (None: the study folder's journal).
    :param log_folder: results go to ``<log_folder>/tune/<study_name>/``.
    :param enqueue: parameter sets to try first, e.g. ``{"learning_rate": 3e-4}``.
    :param allowed_modules: module prefixes allowed for wrappers and callbacks.
    """

    trials: int | None = None
    max_total_trials: int | None = None
    n_timesteps: int | None = None
    n_evaluations: int = 5
    eval_episodes: int = 5
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int | None = None
    timeout: float | None = None
    study_name: str | None = None
    storage: str | None = None
    log_folder: Path = Path("models")
    enqueue: tuple[dict[str, Any], ...] = ()
    allowed_modules: tuple[str, ...] = ()


@dataclass
class TuneResult:
    """What one worker did and where the study's results are."""

    study_name: str
    results_dir: Path
    trials_run: int
    interrupted: bool
    best_value: float | None = None
    files: list[Path] = field(default_factory=list)


def check_options(config: ExperimentConfig, options: TuneOptions) -> None:
    """Raise :class:`TuneError` for options that cannot work, before anything is created.

    :param config: the config to tune.
    :param options: see :class:`TuneOptions`.
    """
    if config.algo not in SAMPLERS:
        raise TuneError(
            f"no search space for algorithm '{config.algo}'; tunable: {', '.join(sorted(SAMPLERS))}"
        )
    if options.sampler not in SAMPLER_NAMES:
        raise TuneError(
            f"--sampler: unknown sampler '{options.sampler}'{did_you_mean(options.sampler, SAMPLER_NAMES, cutoff=0.5)} "
            f"(choose {' or '.join(SAMPLER_NAMES)})"
        )
    if options.pruner not in PRUNER_NAMES:
        raise TuneError(
            f"--pruner: unknown pruner '{options.pruner}'{did_you_mean(options.pruner, PRUNER_NAMES, cutoff=0.5)} "
            f"(choose {', '.join(PRUNER_NAMES)})"
        )
    for name, value in (
        ("--trials", options.trials),
        ("--max-total-trials", options.max_total_trials),
        ("--n-timesteps", options.n_timesteps),
        ("--n-evaluations", options.n_evaluations),
        ("--eval-episodes", options.eval_episodes),
    ):
        if value is not None and value < 1:
            raise TuneError(f"{name}: must be >= 1, got {value}")
    if options.timeout is not None and not options.timeout > 0:
        raise TuneError(f"--timeout: must be a number of seconds > 0, got {options.timeout}")
    budget = trial_budget(config, options)
    if options.n_evaluations > budget:
        raise TuneError(
            f"--n-evaluations {options.n_evaluations} is more than the {budget} steps per trial; "
            "lower it or raise --n-timesteps"
        )
    if options.study_name is not None and not options.study_name.strip():
        raise TuneError("--study-name: must not be empty")


def trial_budget(config: ExperimentConfig, options: TuneOptions) -> int:
    """:return: env steps per trial: ``--n-timesteps`` or the config's budget."""
    return options.n_timesteps or config.n_timesteps


def default_study_name(config: ExperimentConfig) -> str:
    """:return: ``<algo>-<env>``, e.g. ``ppo-CartPole-v1``."""
    return config.run_name


def results_dir(log_folder: Path, study_name: str) -> Path:
    """:return: ``<log_folder>/tune/<study_name>``, with characters unsafe in a file name replaced."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", study_name).strip(".") or "study"
    return log_folder / "tune" / safe


def parse_enqueue(text: str) -> dict[str, Any]:
    """Parse ``--enqueue key=value,key=value`` (values read like ``-p``: ``1e-3``, ``64``, ``small``).

    :param text: the argument as typed.
    :return: parameter name -> value.
    """
    params: dict[str, Any] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            key, value = parse_override(item.strip())
        except ConfigError:
            raise TuneError(
                f"--enqueue {text}: expected key=value[,key=value], e.g. learning_rate=3e-4"
            ) from None
        params[key] = value
    if not params:
        raise TuneError(f"--enqueue {text!r}: expected key=value[,key=value], e.g. learning_rate=3e-4")
    return params
