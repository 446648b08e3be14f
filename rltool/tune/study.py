"""Hyperparameter search with Optuna: storage, study, trials, the global trial cap, results.

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
import csv
import difflib
import io
import math
import os
import re
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from rltool.config import ExperimentConfig, config_to_yaml, parse_override
from rltool.errors import ConfigError, RltoolError, TrainingDivergedError, first_line
from rltool.fileio import atomic_path, check_writable_folder, write_json, write_text
from rltool.tune.samplers import CONFIG_FIELDS, SAMPLERS

Report = Callable[[str], None]

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


# ---------------------------------------------------------------------------
# Checking options


def _did_you_mean(word: str, options: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


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
            f"--sampler: unknown sampler '{options.sampler}'{_did_you_mean(options.sampler, SAMPLER_NAMES)} "
            f"(choose {' or '.join(SAMPLER_NAMES)})"
        )
    if options.pruner not in PRUNER_NAMES:
        raise TuneError(
            f"--pruner: unknown pruner '{options.pruner}'{_did_you_mean(options.pruner, PRUNER_NAMES)} "
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


# ---------------------------------------------------------------------------
# Storage


@dataclass(frozen=True)
class StorageSpec:
    """Where a study lives: a journal file or a database URL."""

    kind: str  # "journal" or "rdb"
    location: str  # file path or URL
    display: str  # for messages: the path, or the URL without its password

    def dashboard_command(self) -> str:
        """:return: the command that watches this storage in optuna-dashboard."""
        return f"optuna-dashboard {self.display}"


def _mask_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def parse_storage(text: str | None, default_journal: Path) -> StorageSpec:
    """Read ``--storage``: a ``.log`` path, ``sqlite:///...`` or ``postgresql://...``.

    :param text: the option's value, or None for the default journal file.
    :param default_journal: the journal file used without ``--storage``.
    :return: the storage description.
    """
    if text is None:
        return StorageSpec("journal", str(default_journal), str(default_journal))
    text = text.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if not scheme:
        if text.endswith(".log"):
            return StorageSpec("journal", text, text)
        raise TuneError(
            f"--storage {text}: expected a journal file ending in .log, sqlite:///file.db or "
            "postgresql://user:password@host/db"
        )
    if scheme == "sqlite":
        return StorageSpec("rdb", text, text)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; rltool[postgres] installs psycopg 3
        url = re.sub(r"^(postgresql|postgres)://", "postgresql+psycopg://", text, flags=re.IGNORECASE)
        return StorageSpec("rdb", url, _mask_password(url))
    raise TuneError(
        f"--storage: unsupported scheme '{scheme}://'; use a .log journal file, sqlite:///file.db or "
        "postgresql://user:password@host/db"
    )


_SQLITE_HEADER = b"SQLite format 3\x00"


def _refuse_foreign_file(spec: StorageSpec) -> None:
    """Refuse an existing file that is not already this kind of storage, before anything writes to it."""
    if spec.kind == "journal":
        path = Path(spec.location)
        what = "an Optuna journal"
    elif spec.location.lower().startswith("sqlite:///"):
        path = Path(spec.location[len("sqlite:///") :])
        what = "an SQLite database"
    else:
        return
    if not path.is_file() or path.stat().st_size == 0:
        return
    import json

    with path.open("rb") as stream:
        head = stream.read(4096)
    if spec.kind == "journal":
        first = head.split(b"\n", 1)[0]
        try:
            record = json.loads(first)
        except ValueError:
            record = None
        ok = isinstance(record, dict) and "op_code" in record
    else:
        ok = head.startswith(_SQLITE_HEADER) and _sqlite_is_optuna_or_empty(path)
    if not ok:
        raise TuneError(
            f"--storage {spec.display}: {path} exists and is not {what} of Optuna; "
            "name a new file or an existing study's storage"
        )


def _sqlite_is_optuna_or_empty(path: Path) -> bool:
    """:return: True when the SQLite file has no tables or Optuna's ``studies`` table (read-only look)."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return False
    return not tables or "studies" in tables


@contextlib.contextmanager
def _schema_creation_lock(spec: StorageSpec) -> Iterator[None]:
    """Serialize Optuna's first-use table creation between workers started at the same instant.

    Optuna creates its tables with CREATE TABLE statements that race: on a brand-new database the
    second worker fails with "duplicate key" (PostgreSQL) or "table already exists" (SQLite).
    PostgreSQL: a session advisory lock; SQLite: ``flock`` on the database file itself (SQLite's own
    locks are POSIX byte-range locks, independent of flock). Both die with their process.
    """
    url = spec.location
    if url.lower().startswith("sqlite:///"):
        import fcntl

        path = Path(url[len("sqlite:///") :])
        if str(path) in ("", ":memory:"):
            yield
            return
        with path.open("ab") as handle:  # creates the empty file SQLite would create anyway
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if url.lower().startswith("postgresql"):
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(7246110101)"))
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(7246110101)"))
        finally:
            engine.dispose()
        return
    yield


def open_storage(spec: StorageSpec) -> Any:
    """Create the Optuna storage object (connects to the database).

    Safe when several workers open a brand-new storage at the same instant, and never writes to an
    existing file that is not already that kind of storage.

    :param spec: see :func:`parse_storage`.
    :return: an Optuna storage.
    """
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    _refuse_foreign_file(spec)
    if spec.kind == "journal":
        path = Path(spec.location)
        check_writable_folder(path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as error:
            raise TuneError(f"--storage {path}: cannot open ({error.strerror or error})") from None
    from sqlalchemy.engine import make_url

    try:  # Optuna hides a missing driver behind a generic message; name it
        make_url(spec.location).get_dialect().import_dbapi()
    except ModuleNotFoundError as error:
        raise TuneError(
            f"--storage {spec.display}: the database driver '{error.name}' is not installed; "
            "install rltool[postgres] (psycopg 3) and use postgresql://..."
        ) from None
    except Exception:  # noqa: BLE001, S110 - a bad URL is reported by RDBStorage below
        pass
    try:
        with _schema_creation_lock(spec):
            return optuna.storages.RDBStorage(spec.location, engine_kwargs={"pool_pre_ping": True})
    except Exception as error:  # noqa: BLE001 - SQLAlchemy raises many kinds for a bad URL or server
        if isinstance(error, RltoolError):
            raise
        raise TuneError(f"--storage {spec.display}: cannot open the database: {first_line(error)}") from None


def _claim_results_dir(folder: Path, study_name: str, storage: StorageSpec) -> None:
    """Record which study owns ``folder`` in ``study.json``; refuse to mix in results of another study."""
    import json

    marker = folder / "study.json"
    if storage.kind == "rdb":
        where = storage.display
    elif Path(storage.location).resolve() == (folder / "study.log").resolve():
        where = "study.log"  # relative, so the folder may move and be reached from any directory
    else:
        where = str(Path(storage.location).resolve())
    owner = {"study_name": study_name, "storage": where}
    try:
        existing = json.loads(marker.read_text())
    except (OSError, ValueError):
        existing = None
    if isinstance(existing, dict) and existing != owner:
        other = f"study '{existing.get('study_name')}' in {existing.get('storage')}"
        raise TuneError(f"{folder} holds results of {other}; choose another --study-name or --log-folder")
    if existing is None:
        write_json(marker, owner)


# ---------------------------------------------------------------------------
# Sampler and pruner


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


# ---------------------------------------------------------------------------
# One trial


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


def trial_eval_env(config: ExperimentConfig, options: TuneOptions) -> Any:
    """The evaluation env of a trial: training's settings (one env, seed + 10000, frozen normalization).

    Normalization statistics are copied from the training env before each evaluation
    (``PeriodicEvalCallback``), so none are loaded from disk.

    :param config: the trial's config.
    :param options: see :class:`TuneOptions`.
    :return: the env.
    """
    from stable_baselines3.common.vec_env import unwrap_vec_normalize

    from rltool.envs.builder import EnvOptions, build_vec_env

    seed = None if config.seed is None else config.seed + 10_000
    env = build_vec_env(
        config,
        EnvOptions(
            n_envs=1,
            seed=seed,
            monitor_prefix="eval",
            vec_env="dummy",
            allowed_modules=options.allowed_modules,
        ),
    )
    normalize = unwrap_vec_normalize(env)
    if normalize is not None:
        normalize.training = False
        normalize.norm_reward = False
    return env


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
    from rltool.callbacks import NanGuardCallback, PeriodicEvalCallback, evaluate_episodes
    from rltool.train import TrainOptions, build_env

    budget = trial_budget(config, options)
    sampled = SAMPLERS[config.algo](trial, config)
    trial_config = apply_params(config, sampled, n_timesteps=budget)

    env = build_env(trial_config, None, TrainOptions(allowed_modules=options.allowed_modules, progress=False))
    eval_env = None
    try:
        model = build_model(trial_config, env)
        eval_env = trial_eval_env(trial_config, options)
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
            # torch.distributions rejects NaN logits before the NaN guard sees them
            if "nan" not in str(error).lower():
                raise
            raise TrainingDivergedError(
                f"training diverged at step {model.num_timesteps}: the policy produced NaN values"
            ) from None
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


# ---------------------------------------------------------------------------
# The worker loop


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


def _format_params(params: dict[str, Any]) -> str:
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
                value, _ = run_trial(trial, config, options)
            except optuna.TrialPruned as pruned:
                study.tell(trial, state=TrialState.PRUNED)
                report(f"trial {trial.number}: {pruned} | {_format_params(trial.params)}")
                consecutive_errors = 0
            except (TrainingDivergedError, ConfigError) as error:
                # the parameters' fault: pruned, so TPE learns to avoid them, and the study goes on
                last_reason = str(error)
                trial.set_user_attr("fail_reason", last_reason)
                study.tell(trial, state=TrialState.PRUNED)
                report(f"trial {trial.number}: pruned: {error} | {_format_params(trial.params)}")
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
                    f"trial {trial.number}: {value:.2f} in {seconds:.1f} s | {_format_params(trial.params)}"
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


# ---------------------------------------------------------------------------
# Results


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
def _quiet_optuna_warnings() -> Iterator[None]:
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
            with _quiet_optuna_warnings():
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
    lines += [f"{t.number:>5}  {t.value:>10.2f}  {_format_params(t.params)}" for t in complete]
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


# ---------------------------------------------------------------------------
# Entry point


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
    _claim_results_dir(folder, study_name, spec)  # after the storage answered: a mistyped URL claims nothing
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
    from rltool.train import set_threads

    check_options(config, options)
    if options.enqueue:
        names = search_space_names(config)
        for params in options.enqueue:
            for key in params:
                if key not in names:
                    raise TuneError(
                        f"--enqueue: '{key}' is not a parameter of the {config.algo} search space"
                        f"{_did_you_mean(key, sorted(names))} (parameters: {', '.join(sorted(names))})"
                    )
    set_threads(1, config.backend)  # one core per worker: N workers use N cores
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
    with _quiet_optuna_warnings():
        state = run_worker(study, config, options, report)
    if state.stop_reason:
        report(f"stopped: {state.stop_reason}")
    try:
        files, best_value = write_results(study, config, options, folder, report)
    except KeyboardInterrupt:
        files, best_value, state.interrupted = [], None, True
    for path in files:
        report(f"wrote {path}")
    return TuneResult(study.study_name, folder, state.trials_run, state.interrupted, best_value, files)
