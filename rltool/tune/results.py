"""What a study leaves in its results folder: trials.csv, best.yaml, plots and the best-trials table."""

from __future__ import annotations

import contextlib
import csv
import io
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from rltool.config import ExperimentConfig, config_to_yaml
from rltool.fileio import atomic_path, write_text
from rltool.tune.options import TuneOptions, trial_budget
from rltool.tune.trial import config_of_params
from rltool.tune.worker import format_params
from rltool.type_aliases import Report


def _trial_rows(study: optuna.Study) -> tuple[list[str], list[list[Any]]]:
    trials = study.get_trials(deepcopy=False)
    param_names = sorted({name for trial in trials for name in trial.params})
    header = ["number", "state", "value", "duration_s", "worker", "fail_reason"] + [
        f"params_{n}" for n in param_names
    ]
    rows = []
    for trial in trials:
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        reason = trial.user_attrs.get("fail_reason", "")
        if trial.state.name == "FAIL" and not reason:
            reason = "no result: the worker stopped without reporting"
        rows.append(
            [
                trial.number,
                trial.state.name,
                trial.value,
                None if duration is None else round(duration, 3),
                trial.user_attrs.get("worker", ""),
                reason,
                *[trial.params.get(name) for name in param_names],
            ]
        )
    return header, rows


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    """Write every trial of the study: number, state, value, duration, worker, fail reason, params.

    :param study: the study.
    :param path: the CSV file.
    """
    header, rows = _trial_rows(study)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if value is None else value for value in row] for row in rows])
    write_text(path, buffer.getvalue())


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    complete = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None
    ]
    return max(complete, key=lambda t: t.value) if complete else None


def write_best_yaml(
    study: optuna.Study, config: ExperimentConfig, options: TuneOptions, path: Path
) -> optuna.trial.FrozenTrial | None:
    """Write the best trial as a complete single-experiment config with the config's full budget.

    :param study: the study.
    :param config: the config being tuned (its ``n_timesteps`` is the budget written).
    :param options: see :class:`TuneOptions`.
    :param path: the YAML file.
    :return: the best trial, or None (nothing written) when no trial completed.
    """
    best = _best_trial(study)
    if best is None:
        return None
    best_config = config_of_params(config, best.params)
    header = (
        f"# Best trial {best.number} of study '{study.study_name}': mean reward {best.value:.2f} after "
        f"{trial_budget(config, options)} steps ({options.eval_episodes} episodes).\n"
        f"# Train it with: rltool train {path}\n"
    )
    write_text(path, config_to_yaml(best_config, header=header))
    return best


@contextlib.contextmanager
def quiet_optuna_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # an enqueued value outside the search space is what the user asked for
        warnings.filterwarnings("ignore", message="Fixed parameter .* out of range", category=UserWarning)
        yield


def write_plots(study: optuna.Study, folder: Path, report: Report) -> list[Path]:
    """Write ``history.png`` and ``importance.png`` (the latter needs 2 completed trials that differ).

    :param study: the study.
    :param folder: the results folder.
    :param report: where notes go.
    :return: the files written.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        report("note: no completed trial yet, so no history.png or importance.png")
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    written = []
    plots: list[tuple[str, Callable[[], Any]]] = [
        ("history.png", lambda: optuna_plots.plot_optimization_history(study))
    ]
    varying = {name for name in complete[0].params if len({repr(t.params.get(name)) for t in complete}) > 1}
    if len(complete) >= 2 and varying:
        plots.append(("importance.png", lambda: optuna_plots.plot_param_importances(study)))
    else:
        report("note: importance.png needs 2 completed trials with different parameters; skipped")
    for name, plot in plots:
        try:
            with quiet_optuna_warnings():
                axes = plot()
            figure = axes.get_figure()
            figure.set_size_inches(9, 5)
            figure.tight_layout()
            with atomic_path(folder / name) as temporary:
                figure.savefig(temporary, format="png", dpi=100)
            written.append(folder / name)
        except Exception as error:  # noqa: BLE001 - a plot must not cost the other results
            report(f"note: {name} skipped: {type(error).__name__}: {error}")
        finally:
            plt.close("all")
    return written


def best_table(study: optuna.Study, top: int = 5) -> str:
    """:return: the best completed trials as a text table, best first."""
    complete = sorted(
        (t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None),
        key=lambda t: t.value,
        reverse=True,
    )[:top]
    if not complete:
        return "no completed trial yet"
    lines = [f"{'trial':>5}  {'value':>10}  params"]
    lines += [f"{t.number:>5}  {t.value:>10.2f}  {format_params(t.params)}" for t in complete]
    return "\n".join(lines)


def write_results(
    study: optuna.Study, config: ExperimentConfig, options: TuneOptions, folder: Path, report: Report
) -> tuple[list[Path], float | None]:
    """Print the best trials and write best.yaml, trials.csv and the plots (they reflect the whole study).

    :param study: the study.
    :param config: the config being tuned.
    :param options: see :class:`TuneOptions`.
    :param folder: the results folder.
    :param report: where the table and notes go.
    :return: the files written and the best value (None when no trial completed).
    """
    counts = {s.name: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    summary = ", ".join(f"{n} {name.lower()}" for name, n in counts.items() if n)
    report(f"study '{study.study_name}': {summary or 'no trials'}")
    report(best_table(study))
    files = []
    write_trials_csv(study, folder / "trials.csv")
    files.append(folder / "trials.csv")
    best = write_best_yaml(study, config, options, folder / "best.yaml")
    if best is not None:
        files.append(folder / "best.yaml")
    files += write_plots(study, folder, report)
    return files, None if best is None else best.value
