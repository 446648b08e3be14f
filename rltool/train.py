"""Training: config -> env + model -> a run folder.

A run folder (``models/<algo>-<env>/run-<N>/``) holds model.zip, best_model.zip,
vecnormalize.pkl (when used), config.yaml (resolved, trainable as is), monitor/,
evaluations.npz, checkpoints/, tb/ and train.json.

Why one module of about 600 lines: it is one thing, a training run from its options to its
train.json. :func:`train` makes the run folder (lock, start-up errors, clean-up), and
:class:`_LearningRun` holds the steps of :func:`run_learning` in the order SB3's ``learn`` reads
(callbacks, learn guarded, save, final evaluation, record), which ``rltool.resume`` reuses.
Splitting it would put its options and env builders in a third module only to break the cycle.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltool.config import ExperimentConfig, config_to_yaml
from rltool.errors import OutputError, RltoolError, TrainingDivergedError
from rltool.failures import (
    StartupError,
    disk_failure,
    nan_policy_divergence,
    quiet_writer_threads,
    startup_error,
    training_failure,
)
from rltool.fileio import write_text
from rltool.rundir import RunStatus, create_run_dir, read_train_json, remove_run_dir, write_train_json
from rltool.runlock import hold_run_lock
from rltool.runtime import prepare_device, set_threads, xla_threads
from rltool.signals import caused_by_stop
from rltool.signals import disarm as disarm_stop_signals
from rltool.type_aliases import Report


@dataclass(frozen=True)
class TrainOptions:
    """How to run training (what is not a hyperparameter).

    :param log_folder: parent of the ``<algo>-<env>/run-N`` folders.
    :param eval_freq: env steps between periodic evaluations (0: none).
    :param eval_episodes: episodes per periodic evaluation.
    :param save_freq: env steps between checkpoints (0: none).
    :param final_eval_episodes: deterministic episodes evaluated at the end.
    :param progress: show a progress bar.
    :param tensorboard: write TensorBoard events.
    :param threads: torch threads (None: 1 on CPU, see :func:`default_threads`).
    :param vec_env: "dummy", "subproc" or "envpool" for the training envs (None: the config's choice).
    :param allowed_modules: module prefixes allowed for wrappers and callbacks.
    :param trust_pickles: load pickled files without the restricted unpickler (resume).
    :param verbose: SB3 verbosity.
    :param run_dir: use exactly this (new, empty) run folder instead of the next ``run-N``.
    :param device: "auto", "cpu" or "cuda" (None: the config's ``device``, else the CPU for SB3 and
        JAX's default platform for SBX).
    :param keep_checkpoints: checkpoints kept, the newest (0: all).
    :param keep_replay_buffers: keep the replay buffer of every kept checkpoint, not only the newest.
    """

    log_folder: Path = Path("models")
    eval_freq: int = 10_000
    eval_episodes: int = 5
    save_freq: int = 0
    final_eval_episodes: int = 10
    progress: bool = True
    tensorboard: bool = True
    threads: int | None = None
    vec_env: str | None = None
    allowed_modules: tuple[str, ...] = ()
    trust_pickles: bool = False
    verbose: int = 0
    run_dir: Path | None = None
    device: str | None = None
    keep_checkpoints: int = 3
    keep_replay_buffers: bool = False


@dataclass
class TrainResult:
    """What a finished (or interrupted) run reports."""

    run_dir: Path
    num_timesteps: int
    wall_time_s: float
    steps_per_s: float
    status: RunStatus
    final_eval: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def package_versions() -> dict[str, str]:
    """:return: versions of Python and the packages that decide a run's results."""
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in (
        "rltool",
        "stable-baselines3",
        "sb3-contrib",
        "torch",
        "gymnasium",
        "numpy",
        "sbx-rl",
        "jax",
        "flax",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def build_env(config: ExperimentConfig, run_dir: Path | None, options: TrainOptions, **env_options: Any):
    """Build the training env of ``config`` with Monitor files in ``run_dir/monitor``."""
    from rltool.envs.builder import EnvOptions, build_vec_env

    return build_vec_env(
        config,
        EnvOptions(
            monitor_dir=run_dir / "monitor" if run_dir else None,
            vec_env=options.vec_env,
            threads=options.threads,
            allowed_modules=options.allowed_modules,
            trust_pickles=options.trust_pickles,
            **env_options,
        ),
    )


def free_monitor_prefix(monitor_dir: Path, stem: str) -> str:
    """:return: ``stem``, or ``stem-seg2``, ``stem-seg3``, ... : the first whose Monitor files do not exist.

    A resumed run writes new Monitor CSVs beside the old ones instead of truncating them.
    """
    prefix, number = stem, 1
    while (monitor_dir / f"{prefix}-0.monitor.csv").exists():
        number += 1
        prefix = f"{stem}-seg{number}"
    return prefix


def build_eval_env(
    config: ExperimentConfig,
    run_dir: Path | None,
    options: TrainOptions,
    n_envs: int = 1,
    monitor_prefix: str = "eval",
):
    """Build an evaluation env: same builder, frozen normalization, its own seed range."""
    from rltool.envs.builder import EnvOptions, build_vec_env, eval_seed

    return build_vec_env(
        config,
        EnvOptions(
            n_envs=n_envs,
            seed=eval_seed(config.seed),
            monitor_dir=run_dir / "monitor" if run_dir else None,
            monitor_prefix=monitor_prefix,
            normalize="frozen",
            vec_env="dummy",  # gymnasium: the reference dynamics, also for runs trained on EnvPool
            allowed_modules=options.allowed_modules,
            trust_pickles=options.trust_pickles,
        ),
    )


def _config_callbacks(config: ExperimentConfig, options: TrainOptions) -> list[Any]:
    from rltool.imports import import_object

    callbacks = []
    for spec in config.callback:
        callback_class = import_object(
            spec.path, allowed_modules=options.allowed_modules, where=f"{config.source}: callback"
        )
        callbacks.append(callback_class(**spec.kwargs))
    return callbacks


def train(
    config: ExperimentConfig,
    options: TrainOptions = TrainOptions(),
    report: Report = print,
    extra_callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train a new run of ``config``.

    :param config: the validated experiment.
    :param options: see :class:`TrainOptions`.
    :param report: where to print progress lines.
    :param extra_callbacks: more SB3 callbacks (e.g. a progress reporter of a multi-seed parent).
    :return: the run's summary; the run folder holds everything.
    :raises RunLockedError: another process writes ``options.run_dir``.
    """
    from rltool.imports import import_object

    threads = set_threads(options.threads, config.backend)
    device = prepare_device(options.device or config.algo_kwargs.get("device"), config.backend)
    for spec in config.callback:  # refuse a callback outside the allowed modules before any folder exists
        import_object(spec.path, allowed_modules=options.allowed_modules, where=f"{config.source}: callback")
    created = options.run_dir is None
    new_parent = created and not (options.log_folder / config.run_name).exists()
    run_dir = options.run_dir or create_run_dir(options.log_folder, config.run_name)
    run_dir.mkdir(parents=True, exist_ok=True)
    with hold_run_lock(run_dir):  # one writer per run folder
        return _train_in(
            config, options, report, extra_callbacks, run_dir, created, new_parent, threads, device
        )


def _train_in(
    config: ExperimentConfig,
    options: TrainOptions,
    report: Report,
    extra_callbacks: list[Any] | None,
    run_dir: Path,
    created: bool,
    new_parent: bool,
    threads: int,
    device: str,
) -> TrainResult:
    """Build env and model, write config.yaml and learn: :func:`train` once its folder is locked."""
    from rltool.algos import build_model

    try:
        try:
            env = build_env(config, run_dir, options)
        except RltoolError:
            raise
        except Exception as error:  # the env's own code, a wrapper or gymnasium: a config mistake
            raise startup_error(config, error, "env", "building the env") from None
        try:
            tensorboard_log = str(run_dir / "tb") if options.tensorboard else None
            model = build_model(
                config, env, tensorboard_log=tensorboard_log, verbose=options.verbose, device=device
            )
        except BaseException as error:
            env.close()
            if isinstance(error, Exception) and not isinstance(error, RltoolError):
                raise startup_error(config, error, "model", "building the model") from None
            raise
    except (RltoolError, KeyboardInterrupt):
        if created:  # nothing was trained: leave no half-made run folder behind
            remove_run_dir(run_dir, new_parent)
        raise
    write_text(
        run_dir / "config.yaml",
        config_to_yaml(
            config,
            header=f"# Resolved from {config.source}; train again with: rltool train {run_dir}/config.yaml\n",
        ),
    )
    report(f"run folder: {run_dir}")
    try:
        return run_learning(
            model,
            config,
            run_dir,
            options,
            report,
            threads=threads,
            device=device,
            reset_num_timesteps=True,
            extra_callbacks=extra_callbacks,
        )
    except StartupError:
        env.close()
        if created:  # the first step failed: nothing was trained
            remove_run_dir(run_dir, new_parent)
        raise
    finally:
        env.close()


def run_learning(
    model: Any,
    config: ExperimentConfig,
    run_dir: Path,
    options: TrainOptions,
    report: Report,
    *,
    threads: int,
    reset_num_timesteps: bool,
    extra_callbacks: list[Any] | None = None,
    device: str = "cpu",
) -> TrainResult:
    """Learn until the config's total ``n_timesteps``, then save, evaluate and write train.json.

    Shared by new runs and resumed ones: the budget is the config's total, so a resumed run
    learns only what is left and its schedules continue where they stopped. train.json is
    written (atomically) at every checkpoint too, with status "running", so a killed run
    keeps its history; a run that diverges gets status "diverged". The steps read like SB3's
    ``learn``: build the callbacks, learn (guarded), save, evaluate, record.

    :param model: a new or resumed model whose env is the training env.
    :param config: the experiment.
    :param run_dir: the run folder.
    :param options: see :class:`TrainOptions`.
    :param report: where to print.
    :param threads: torch (and XLA) threads in use (recorded).
    :param reset_num_timesteps: True for new runs.
    :param extra_callbacks: more SB3 callbacks (e.g. tuning's).
    :param device: where the networks run ("cpu", "cuda"; recorded).
    :return: the summary.
    """
    run = _LearningRun(model, config, run_dir, options, report, threads, device, reset_num_timesteps)
    for callback in extra_callbacks or []:
        if hasattr(callback, "on_run_folder"):  # e.g. rltool.tracking starts its run here
            callback.on_run_folder(run_dir, config)
    callbacks = run.build_callbacks(extra_callbacks or [])
    try:
        status = run.learn_guarded(callbacks)
        run.check_weights()
        run.save(status)
        final_eval = run.final_evaluation() if status == RunStatus.FINISHED else None
    finally:
        run.close_eval_env()
    return run.record(status, final_eval)


@dataclass
class _LearningRun:
    """The state of one :func:`run_learning` call, and its steps as methods."""

    model: Any
    config: ExperimentConfig
    run_dir: Path
    options: TrainOptions
    report: Report
    threads: int
    device: str
    new_run: bool  # reset_num_timesteps: a new run, not a resumed one
    start_steps: int = 0
    previous: dict[str, Any] = field(default_factory=dict)  # train.json of the earlier segments
    started: float = field(default_factory=time.perf_counter)
    wall_time: float = 0.0
    eval_env: Any = None
    first_step: Any = None
    checkpoint: Path | None = None

    def __post_init__(self) -> None:
        if not self.new_run:
            self.start_steps = self.model.num_timesteps
            # read before this segment refreshes it: the wall time and segments of earlier segments
            self.previous = read_train_json(self.run_dir)

    # -- train.json ------------------------------------------------------------------------------

    def write_info(self, status: RunStatus, final_eval: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write train.json with the run's state now; :return: what was written."""
        from rltool.checkpoints import checkpoint_dirs, folder_bytes

        model, config = self.model, self.config
        wall_time = self.wall_time or (time.perf_counter() - self.started)
        steps_done = model.num_timesteps - self.start_steps
        info = {
            "algo": config.algo,
            "env": config.env,
            "seed": config.seed,
            "n_timesteps": config.n_timesteps,
            "num_timesteps": int(model.num_timesteps),
            "n_envs": config.n_envs,
            "threads": self.threads,
            "vec_env": self.options.vec_env or config.vec_env,
            "wall_time_s": round(wall_time + self.previous.get("wall_time_s", 0.0), 3),
            "steps_per_s": round(steps_done / wall_time, 2) if wall_time > 0 else None,
            "status": status,
            "config_file": config.source,
            "backend": config.backend,
            "engine": "jax" if config.backend == "sbx" else "torch",
            "device": self.device,
            "xla_threads": xla_threads() if config.backend == "sbx" else None,
            "versions": package_versions(),
            "pid": os.getpid(),
            "final_eval": final_eval,
            "checkpoints": [
                {"name": folder.name, "bytes": folder_bytes(folder)}
                for folder in checkpoint_dirs(self.run_dir)
            ],
            "segments": [
                *self.previous.get("segments", []),
                {
                    "start": self.start_steps,
                    "end": int(model.num_timesteps),
                    "wall_time_s": round(wall_time, 3),
                },
            ],
        }
        write_train_json(self.run_dir, info)
        return info

    def diverged(self, message: str) -> TrainingDivergedError:
        """Record the divergence in train.json; :return: the error to raise."""
        self.write_info(RunStatus.DIVERGED)
        return TrainingDivergedError(message)

    def unexpected(self, error: Exception) -> RltoolError:
        """:return: one line for an exception of torch, gymnasium or user code during learning."""
        if isinstance(error, (OSError, OutputError)):  # full disk, read-only or deleted folder
            return disk_failure(
                self.run_dir, error, int(self.model.num_timesteps), lambda status: self.write_info(status)
            )
        if not self.first_step.done:  # the env's first reset or step, or the first forward pass
            return startup_error(self.config, error, "learn", "the first training step")
        failure = training_failure(self.run_dir, error, int(self.model.num_timesteps))
        with contextlib.suppress(OSError, RltoolError):
            self.write_info(RunStatus.FAILED)
        return failure

    # -- the steps ---------------------------------------------------------------------------------

    def build_callbacks(self, extra_callbacks: list[Any]) -> list[Any]:
        """:return: the guards, periodic evaluation, checkpoints, the config's and the caller's callbacks
        and the progress bar, in the order SB3 calls them."""
        from rltool.callbacks import (
            CheckpointCallback,
            FirstStepCallback,
            NanGuardCallback,
            PeriodicEvalCallback,
            ProgressCallback,
            RunFolderGuardCallback,
        )

        options, run_dir = self.options, self.run_dir
        self.first_step = FirstStepCallback()
        callbacks: list[Any] = [self.first_step, NanGuardCallback(), RunFolderGuardCallback(run_dir)]
        if options.eval_freq > 0:
            self.eval_env = _eval_env(self.config, run_dir, options, self.new_run)
            callbacks.append(
                PeriodicEvalCallback(self.eval_env, run_dir, options.eval_freq, options.eval_episodes)
            )
        if options.save_freq > 0:
            callbacks.append(
                CheckpointCallback(
                    run_dir,
                    options.save_freq,
                    self.report,
                    on_checkpoint=lambda _: self.write_info(RunStatus.RUNNING),
                    keep=options.keep_checkpoints,
                    keep_replay_buffers=options.keep_replay_buffers,
                )
            )
        callbacks += _config_callbacks(self.config, options) + extra_callbacks
        if options.progress:
            callbacks.append(ProgressCallback(self.config.n_timesteps, description=self.config.run_name))
        return callbacks

    def learn_guarded(self, callbacks: list[Any]) -> RunStatus:
        """Learn what is left of the budget; every failure becomes one line.

        :return: FINISHED, or INTERRUPTED after Ctrl-C, SIGTERM or SIGHUP.
        """
        from stable_baselines3.common.callbacks import CallbackList

        from rltool.callbacks import ProgressCallback

        model = self.model
        status = RunStatus.FINISHED
        try:
            with quiet_writer_threads():  # TensorBoard's writer thread: its OSError surfaces here too
                model.learn(
                    total_timesteps=self.config.n_timesteps - self.start_steps,
                    callback=CallbackList(callbacks),
                    tb_log_name=self.config.algo,
                    reset_num_timesteps=self.new_run,
                )
        except KeyboardInterrupt:
            status = RunStatus.INTERRUPTED
        except Exception as error:
            if not caused_by_stop(error):
                raise self.classify(error) from None
            status = RunStatus.INTERRUPTED
        finally:
            disarm_stop_signals()  # a SIGTERM from now on must not break the final save
            for callback in callbacks:
                if isinstance(callback, ProgressCallback) and callback.bar is not None:
                    callback.bar.close()
        self.wall_time = time.perf_counter() - self.started
        return status

    def classify(self, error: Exception) -> Exception:
        """:return: the one-line error for an exception that ended learning (no stop signal behind it)."""
        if isinstance(error, TrainingDivergedError):
            return self.diverged(str(error))
        nan_policy = nan_policy_divergence(error, self.model.num_timesteps)
        if nan_policy is not None:
            return self.diverged(f"{nan_policy} (lower the learning rate); the last checkpoint is kept")
        if isinstance(error, RltoolError) and not isinstance(error, OutputError):
            return error
        return self.unexpected(error)

    def check_weights(self) -> None:
        """Refuse to save NaN or infinite weights over model.zip."""
        from rltool.checkpoints import weights_finite

        if not weights_finite(self.model):
            raise self.diverged(
                f"training diverged at step {self.model.num_timesteps}: network weights became NaN or infinite "
                "(lower the learning rate or clip gradients); the last checkpoint is kept"
            )

    def save(self, status: RunStatus) -> None:
        """Write model.zip, vecnormalize.pkl and, when checkpointing or interrupted, a last checkpoint."""
        from rltool.checkpoints import (
            check_run_folder,
            describe_checkpoint,
            prune_checkpoints,
            save_model,
            save_vecnormalize,
            write_checkpoint,
        )

        model, run_dir, options = self.model, self.run_dir, self.options
        try:
            check_run_folder(run_dir)
            save_model(model, run_dir / "model.zip")
            save_vecnormalize(model.get_env(), run_dir / "vecnormalize.pkl")
            if status == RunStatus.INTERRUPTED or options.save_freq > 0:
                # a finished run's last checkpoint is its final state (replay buffer included), so
                # ``--resume -n MORE`` continues from there
                self.checkpoint, _ = write_checkpoint(model, run_dir)
                self.report(describe_checkpoint(self.checkpoint))
                prune_checkpoints(run_dir, options.keep_checkpoints, options.keep_replay_buffers)
        except (OSError, OutputError) as error:
            raise self.unexpected(error) from None
        if status == RunStatus.INTERRUPTED:
            self.report(
                f"interrupted at step {model.num_timesteps}: saved {run_dir / 'model.zip'} and {self.checkpoint}"
            )
            self.report(f"resume with: rltool train --resume {run_dir}")

    def final_evaluation(self) -> dict[str, Any] | None:
        """Evaluate the final model on fresh evaluation episodes; :return: their summary (None: off)."""
        if self.options.final_eval_episodes <= 0:
            return None
        from stable_baselines3.common.vec_env import sync_envs_normalization

        from rltool.episodes import evaluate_episodes

        if self.eval_env is None:
            self.eval_env = _eval_env(self.config, self.run_dir, self.options, self.new_run)
        sync_envs_normalization(self.model.get_env(), self.eval_env)
        successes: list[float] = []
        rewards, lengths = evaluate_episodes(
            self.model,
            self.eval_env,
            self.options.final_eval_episodes,
            deterministic=True,
            successes=successes,
        )
        final_eval = _summary(rewards, lengths)
        success = ""
        if successes:  # goal envs: as `rltool eval --json` reports them
            final_eval.update(
                success_rate=float(sum(successes) / len(successes)), episode_successes=successes
            )
            success = f", success rate {final_eval['success_rate']:.0%}"
        self.report(
            f"mean_reward={final_eval['mean_reward']:.2f} +/- {final_eval['std_reward']:.2f} "
            f"over {len(rewards)} deterministic episodes{success}"
        )
        return final_eval

    def close_eval_env(self) -> None:
        """Close the evaluation env, if one was built."""
        if self.eval_env is not None:
            self.eval_env.close()

    def record(self, status: RunStatus, final_eval: dict[str, Any] | None) -> TrainResult:
        """Write the final train.json; :return: the run's summary."""
        info = self.write_info(status, final_eval)
        steps = self.model.num_timesteps - self.start_steps
        steps_per_s = steps / self.wall_time if self.wall_time > 0 else 0.0
        return TrainResult(
            self.run_dir,
            int(self.model.num_timesteps),
            info["wall_time_s"],
            steps_per_s,
            status,
            final_eval,
            info,
        )


def _eval_env(config: ExperimentConfig, run_dir: Path, options: TrainOptions, new_run: bool) -> Any:
    """The eval env of a run; a resumed run gets new Monitor files (``eval-seg2-0.monitor.csv``...)."""
    prefix = "eval" if new_run else free_monitor_prefix(run_dir / "monitor", "eval")
    return build_eval_env(config, run_dir, options, n_envs=config.n_eval_envs, monitor_prefix=prefix)


def _summary(rewards: list[float], lengths: list[int]) -> dict[str, Any]:
    import numpy as np

    return {
        "mean_reward": float(np.mean(rewards)),
        "std_reward": float(np.std(rewards)),
        "episode_rewards": rewards,
        "episode_lengths": lengths,
        "deterministic": True,
    }
