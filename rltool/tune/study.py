"""One ``rltool tune`` worker: open or join the study, run the worker loop, write the results.

The modules of this package, in the order a worker uses them: :mod:`.options`, :mod:`.storage`,
:mod:`.search`, :mod:`.trial`, :mod:`.worker`, :mod:`.results`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from rltool.config import ExperimentConfig
from rltool.errors import RltoolError, did_you_mean, first_line
from rltool.fileio import check_writable_folder
from rltool.runlock import hold_run_lock
from rltool.tune.options import (
    TuneError,
    TuneOptions,
    TuneResult,
    check_options,
    default_study_name,
    results_dir,
    trial_budget,
)
from rltool.tune.results import quiet_optuna_warnings, write_results
from rltool.tune.search import make_pruner, make_sampler, search_space_names
from rltool.tune.storage import StorageSpec, claim_results_dir, open_storage, parse_storage
from rltool.tune.worker import fail_dead_local_trials, run_worker
from rltool.type_aliases import Report


def open_study(config: ExperimentConfig, options: TuneOptions) -> tuple[optuna.Study, Path, StorageSpec]:
    """Create or join the study; refuse to mix trials of another algorithm, env or budget.

    :param config: the config to tune.
    :param options: see :class:`TuneOptions`.
    :return: the study, its results folder and its storage.
    """
    study_name = options.study_name or default_study_name(config)
    folder = results_dir(options.log_folder, study_name)
    check_writable_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = parse_storage(options.storage, folder / "study.log")
    storage = open_storage(spec)
    seed = options.seed if options.seed is not None else config.seed
    try:
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            sampler=make_sampler(options.sampler, seed),
            pruner=make_pruner(options.pruner, options.n_evaluations),
            direction="maximize",
            load_if_exists=True,
        )
    except Exception as error:  # noqa: BLE001 - storage errors come from SQLAlchemy or the file system
        if isinstance(error, RltoolError):
            raise
        raise TuneError(
            f"--storage {spec.display}: cannot create or load study '{study_name}': {first_line(error)}"
        ) from None
    claim_results_dir(folder, study_name, spec)  # after the storage answered: a mistyped URL claims nothing
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise TuneError(f"study '{study_name}' in {spec.display} minimizes; choose another --study-name")
    expected = {
        "algo": config.algo,
        "env": config.env,
        "n_timesteps_per_trial": trial_budget(config, options),
        "n_evaluations": options.n_evaluations,
    }
    existing = study.user_attrs
    for key, value in expected.items():
        if key in existing and existing[key] != value:
            flag = {"n_timesteps_per_trial": " (--n-timesteps)", "n_evaluations": " (--n-evaluations)"}.get(
                key, ""
            )
            raise TuneError(
                f"study '{study_name}' in {spec.display} was started with {key}{flag} = {existing[key]}, "
                f"not {value}; use the same settings or another --study-name"
            )
        if key not in existing:
            study.set_user_attr(key, value)
    _check_same_config(study, config, spec)
    return study, folder, spec


def _check_same_config(study: optuna.Study, config: ExperimentConfig, spec: StorageSpec) -> None:
    """Refuse a worker whose resolved config differs from the one the study was started with.

    Otherwise best.yaml would graft one config's trial parameters onto another, a combination never tried.
    """
    import json

    from rltool.config import config_to_dict

    mine = json.loads(json.dumps(config_to_dict(config), default=str))  # the form the storage keeps
    started = study.user_attrs.get("config")
    if started is None:
        study.set_user_attr("config", mine)
        return
    for key in [*started, *[key for key in mine if key not in started]]:
        if started.get(key) != mine.get(key):
            raise TuneError(
                f"study '{study.study_name}' in {spec.display} was started with another config: "
                f"{key} = {started.get(key)!r} there, {mine.get(key)!r} in {config.source}; "
                "use the same config or another --study-name"
            )


def tune(config: ExperimentConfig, options: TuneOptions, report: Report = print) -> TuneResult:
    """Run one tuning worker on ``config`` and write the study's results.

    :param config: the validated config to tune.
    :param options: see :class:`TuneOptions`.
    :param report: where to print progress lines.
    :return: what this worker did; ``interrupted`` is True after Ctrl-C.
    """
    from rltool.runtime import prepare_device, set_threads

    check_options(config, options)
    if options.enqueue:
        names = search_space_names(config)
        for params in options.enqueue:
            for key in params:
                if key not in names:
                    raise TuneError(
                        f"--enqueue: '{key}' is not a parameter of the {config.algo} search space"
                        f"{did_you_mean(key, names, cutoff=0.5)} (parameters: {', '.join(sorted(names))})"
                    )
    set_threads(1, config.backend)  # one core per worker: N workers use N cores
    prepare_device(config.algo_kwargs.get("device"), config.backend)  # SBX: starts XLA with that 1 thread
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, folder, spec = open_study(config, options)
    for number in fail_dead_local_trials(study):
        report(f"trial {number}: marked FAIL (its worker on this machine is gone)")
    for params in options.enqueue:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study.enqueue_trial(params, skip_if_exists=True)
    existing = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    report(
        f"study '{study.study_name}' in {spec.display} ({existing} finished so far), "
        f"{trial_budget(config, options)} steps per trial; results in {folder}"
    )
    report(f"watch it with: {spec.dashboard_command()}")
    with quiet_optuna_warnings():
        state = run_worker(study, config, options, report)
    if state.stop_reason:
        report(f"stopped: {state.stop_reason}")
    try:
        with hold_run_lock(folder, blocking=True):  # workers of one study write their results in turn
            files, best_value = write_results(study, config, options, folder, report)
    except KeyboardInterrupt:
        files, best_value, state.interrupted = [], None, True
    for path in files:
        report(f"wrote {path}")
    return TuneResult(study.study_name, folder, state.trials_run, state.interrupted, best_value, files)
