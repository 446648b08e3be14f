"""The worker loop: ask, run and tell trials until this worker's share of the study is done.

One ``rltool tune`` process is one worker. Workers that name the same study in the same
storage share it: a journal file (default, one machine), SQLite (one machine, one worker
at a time is safest) or PostgreSQL (any number of machines).

The global cap (``--max-total-trials N``) is exact across racing workers. Trial numbers are
given out by the storage in creation order (the journal is one ordered log; the database
locks the study row while numbering), so a worker that sees a trial also sees every trial
numbered before it. A worker

1. stops before asking when COMPLETE + PRUNED + RUNNING trials already number N;
2. after ``study.ask()`` counts the COMPLETE, PRUNED, RUNNING and WAITING trials numbered
   below its own; if there are N, another worker won the race: the trial is told FAIL
   (``fail_reason`` says so, it never ran) and the worker stops.

So exactly the N lowest-numbered trials that are not FAIL run, and each ends COMPLETE or
PRUNED: divergence and invalid combinations prune, only unexpected errors and Ctrl-C fail,
and the worker that saw its trial fail takes the freed place with its next trial.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from rltool.config import ExperimentConfig
from rltool.errors import ConfigError, RltoolError, TrainingDivergedError
from rltool.signals import caused_by_stop
from rltool.tune.options import MAX_CONSECUTIVE_ERRORS, TuneError, TuneOptions
from rltool.tune.trial import run_trial
from rltool.type_aliases import Report


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker ran on this machine and no longer exists.

    A worker killed with ``kill -9`` cannot report; its trial would otherwise stay RUNNING and
    hold a place under the cap forever.

    :param study: the study.
    :return: numbers of the trials marked FAIL.
    """
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get("worker", ""))
        worker_host, _, pid = worker.rpartition(":")
        if worker_host != host or not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        with contextlib.suppress(Exception):  # another worker may clean it up at the same moment
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            failed.append(trial.number)
    return failed


def _count_towards_cap(study: optuna.Study) -> int:
    """Trials that ran or run now (WAITING ones are left out: an enqueued trial is not a worker)."""
    return len(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    )


def _lost_race(study: optuna.Study, number: int, cap: int) -> bool:
    """Whether ``cap`` trials that will run (or ran) are numbered below trial ``number``."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    return sum(1 for trial in study.get_trials(deepcopy=False, states=states) if trial.number < number) >= cap


def _run_trial_or_stop(trial: optuna.Trial, config: ExperimentConfig, options: TuneOptions) -> Any:
    """:func:`run_trial`, where a stop that a library turned into its own error stops the worker."""
    try:
        return run_trial(trial, config, options)
    except Exception as error:
        if caused_by_stop(error):
            raise KeyboardInterrupt from error
        raise


def format_params(params: dict[str, Any]) -> str:
    def short(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    return " ".join(f"{key}={short(value)}" for key, value in params.items())


@dataclass
class _LoopState:
    trials_run: int = 0
    interrupted: bool = False
    stop_reason: str = ""


def run_worker(
    study: optuna.Study, config: ExperimentConfig, options: TuneOptions, report: Report
) -> _LoopState:
    """Run trials until ``--trials``, ``--timeout`` or the global cap; Ctrl-C stops after marking the trial.

    :param study: the loaded study.
    :param config: the config being tuned.
    :param options: see :class:`TuneOptions`.
    :param report: where to print one line per trial.
    :return: how many trials ran and why the loop stopped.
    """
    state = _LoopState()
    started = time.monotonic()
    cap = options.max_total_trials
    consecutive_errors = 0
    last_reason = ""
    trial: optuna.Trial | None = None
    try:
        while True:
            if options.trials is not None and state.trials_run >= options.trials:
                state.stop_reason = f"ran --trials {options.trials}"
                break
            if options.timeout is not None and time.monotonic() - started >= options.timeout:
                state.stop_reason = f"--timeout {options.timeout:g} s reached"
                break
            if cap is not None and _count_towards_cap(study) >= cap:
                state.stop_reason = f"the study has its --max-total-trials {cap} trials"
                break
            trial = study.ask()
            trial.set_user_attr("worker", _worker_id())
            if cap is not None and _lost_race(study, trial.number, cap):
                trial.set_user_attr("fail_reason", f"not run: another worker filled --max-total-trials {cap}")
                study.tell(trial, state=TrialState.FAIL)
                trial = None
                state.stop_reason = f"the study has its --max-total-trials {cap} trials"
                break

            trial_started = time.monotonic()
            state.trials_run += 1
            try:
                value, _ = _run_trial_or_stop(trial, config, options)
            except optuna.TrialPruned as pruned:
                study.tell(trial, state=TrialState.PRUNED)
                report(f"trial {trial.number}: {pruned} | {format_params(trial.params)}")
                consecutive_errors = 0
            except (TrainingDivergedError, ConfigError) as error:
                # the parameters' fault: pruned, so TPE learns to avoid them, and the study goes on
                last_reason = str(error)
                trial.set_user_attr("fail_reason", last_reason)
                study.tell(trial, state=TrialState.PRUNED)
                report(f"trial {trial.number}: pruned: {error} | {format_params(trial.params)}")
                consecutive_errors = consecutive_errors + 1 if isinstance(error, ConfigError) else 0
            except RltoolError as error:  # env, file or wrapper problems: every trial would fail
                trial.set_user_attr("fail_reason", str(error))
                study.tell(trial, state=TrialState.FAIL)
                trial = None
                raise
            except Exception as error:  # noqa: BLE001 - one broken trial must not end the study
                last_reason = f"{type(error).__name__}: {error}".strip().splitlines()[0]
                trial.set_user_attr("fail_reason", last_reason)
                study.tell(trial, state=TrialState.FAIL)
                report(f"trial {trial.number}: failed: {last_reason}")
                consecutive_errors += 1
            else:
                study.tell(trial, value)
                seconds = time.monotonic() - trial_started
                report(
                    f"trial {trial.number}: {value:.2f} in {seconds:.1f} s | {format_params(trial.params)}"
                )
                consecutive_errors = 0
            trial = None
            if consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
                raise TuneError(
                    f"{MAX_CONSECUTIVE_ERRORS} trials in a row failed (last: {last_reason}); "
                    "fix the config or the search space"
                )
    except KeyboardInterrupt:
        state.interrupted = True
        state.stop_reason = "interrupted"
        if trial is not None:
            with contextlib.suppress(Exception):
                trial.set_user_attr("fail_reason", "interrupted (Ctrl-C or kill)")
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    return state
