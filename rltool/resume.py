"""Resuming a stopped or killed run from its newest complete checkpoint.

What continues where it was: weights, optimizer state, VecNormalize statistics, the
replay buffer (off-policy), ``num_timesteps`` and with it every schedule's progress
(learning rate, clip range, DQN exploration), TensorBoard and the run folder. Training
stops at the config's total ``n_timesteps``, not that many more.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rltool.config import ExperimentConfig, config_to_yaml, load_config
from rltool.errors import ConfigError, ModelLoadError, RltoolError, UnsafeFileError
from rltool.failures import StartupError, startup_error
from rltool.fileio import write_text
from rltool.rundir import CONFIG_YAML, RunStatus, read_train_json
from rltool.runlock import hold_run_lock
from rltool.runtime import prepare_device, set_threads
from rltool.train import (
    TrainOptions,
    TrainResult,
    build_env,
    free_monitor_prefix,
    run_learning,
)
from rltool.type_aliases import Report


@dataclass(frozen=True)
class ResumePoint:
    """Where a run can continue from.

    :param model_path: the model zip.
    :param vecnormalize_path: its VecNormalize statistics, if any.
    :param replay_buffer_path: its replay buffer, if any.
    :param label: how to name it to the user.
    """

    model_path: Path
    vecnormalize_path: Path | None
    replay_buffer_path: Path | None
    label: str


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


def _saved_step(model_path: Path) -> int:
    """:return: ``num_timesteps`` of a model zip, read from its JSON without unpickling (-1 if unreadable)."""
    from rltool.safe_load import read_model_metadata

    try:
        return int(read_model_metadata(model_path)["data"].get("num_timesteps", -1))
    except (RltoolError, TypeError, ValueError):
        return -1


def resume_points(run_dir: Path) -> list[ResumePoint]:
    """:return: checkpoints of ``run_dir`` and its last saved model, newest first.

    model.zip goes before the checkpoints it is newer than (a segment resumed without
    ``--save-freq`` ends with a model.zip past the last checkpoint), after those of its step.
    """
    from rltool.checkpoints import checkpoint_dirs

    steps_and_points = [
        (
            int(folder.name[5:]),
            ResumePoint(
                folder / "model.zip",
                _existing(folder / "vecnormalize.pkl"),
                _existing(folder / "replay_buffer.pkl"),
                f"checkpoint {folder.name}",
            ),
        )
        for folder in reversed(checkpoint_dirs(run_dir))
    ]
    if (run_dir / "model.zip").exists():
        final = ResumePoint(run_dir / "model.zip", _existing(run_dir / "vecnormalize.pkl"), None, "model.zip")
        steps_and_points.append((_saved_step(final.model_path), final))
    steps_and_points.sort(key=lambda pair: -pair[0])  # stable: a checkpoint wins a tie
    return [point for _, point in steps_and_points]


def _schedules_from_config(config: ExperimentConfig) -> dict[str, Any]:
    """Schedules rebuilt from the config: the safe loader never unpickles the saved ones."""
    from rltool.algos import load_policy_kwargs, model_kwargs
    from rltool.algos.hyperparams import SCHEDULE_KEYS

    kwargs = model_kwargs(config)
    objects = {key: kwargs[key] for key in SCHEDULE_KEYS if key in kwargs}
    if "policy_kwargs" in kwargs:
        objects["policy_kwargs"] = load_policy_kwargs(config)
    return objects


def _load_point(
    point: ResumePoint, config: ExperimentConfig, env: Any, options: TrainOptions, device: str = "cpu"
) -> Any:
    from rltool.algos import algo_class
    from rltool.algos.registry import algo_spec
    from rltool.safe_load import load_model, load_replay_buffer

    if algo_spec(config.algo, config.backend).model_format == "sbx":
        from rltool.sbx_io import load_sbx_model

        model = load_sbx_model(
            point.model_path, config, env, trust_pickles=options.trust_pickles, env_name=config.env
        )
        model.set_env(env)
        if point.replay_buffer_path is not None:
            load_replay_buffer(model, point.replay_buffer_path, trust_pickles=options.trust_pickles)
            from stable_baselines3.common.utils import get_device

            model.replay_buffer.device = get_device("cpu")  # SBX samples numpy batches on the CPU
        return model
    model = load_model(
        point.model_path,
        algo_class(config.algo),
        observation_space=env.observation_space,
        action_space=env.action_space,
        trust_pickles=options.trust_pickles,
        extra_custom_objects=_schedules_from_config(config),
        env_name=config.env,
        env=env,
        device=device,
    )
    model.set_env(env)
    if point.replay_buffer_path is not None:
        load_replay_buffer(model, point.replay_buffer_path, trust_pickles=options.trust_pickles)
    return model


# the temporary files of rltool.fileio.atomic_path: ".<name>.<8 random chars>.tmp<suffix>"
_ATOMIC_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\.\w+)?")


def _remove_leftovers(run_dir: Path) -> None:
    """Delete what a killed writer leaves: staging folders of checkpoints and temporary files.

    They are hidden (``.staging-*``, ``.old-*``, ``.<name>.<random>.tmp<suffix>``) and never read.
    """
    for folder in (run_dir, run_dir / "checkpoints"):
        if not folder.is_dir():
            continue
        for path in folder.glob(".*"):
            if path.is_dir() and path.name.startswith((".staging-", ".old-")):
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file() and _ATOMIC_TEMPORARY.fullmatch(path.name):
                path.unlink(missing_ok=True)


def resume(
    run_dir: Path,
    options: TrainOptions = TrainOptions(),
    *,
    n_timesteps: int | None = None,
    report: Report = print,
    extra_callbacks: list[Any] | None = None,
) -> TrainResult | None:
    """Continue ``run_dir``, holding its writer's lock: see :func:`_resume_locked` for the parameters.

    :raises RunLockedError: another process (a training or another resume) writes ``run_dir``.
    """
    if n_timesteps is not None and n_timesteps < 1:
        raise ConfigError(f"--n-timesteps: must be >= 1, got {n_timesteps}")
    if not run_dir.is_dir():
        raise ModelLoadError(f"{run_dir}: no such run folder")
    with hold_run_lock(run_dir):
        return _resume_locked(
            run_dir, options, n_timesteps=n_timesteps, report=report, extra_callbacks=extra_callbacks
        )


def _resume_locked(
    run_dir: Path,
    options: TrainOptions = TrainOptions(),
    *,
    n_timesteps: int | None = None,
    report: Report = print,
    extra_callbacks: list[Any] | None = None,
) -> TrainResult | None:
    """Continue ``run_dir`` until its config's total ``n_timesteps`` (or a larger ``n_timesteps``).

    Checkpoints are tried newest first; one that fails to load is skipped (and reported), but
    a file refused as unsafe stops the resume: it is an error to look at, not a broken file.

    :param run_dir: a run folder written by ``rltool train``.
    :param options: how to train (eval/save frequencies, threads, ...).
    :param n_timesteps: a new, larger total budget.
    :param report: where to print.
    :param extra_callbacks: more SB3 callbacks, as for :func:`rltool.train.train`.
    :return: the result, or None when the run had already finished (nothing to do).
    """
    if n_timesteps is not None and n_timesteps < 1:
        raise ConfigError(f"--n-timesteps: must be >= 1, got {n_timesteps}")
    if not run_dir.is_dir():
        raise ModelLoadError(f"{run_dir}: no such run folder")
    if not (run_dir / CONFIG_YAML).exists():
        raise ModelLoadError(f"{run_dir}: no config.yaml (not a run folder written by rltool train)")
    config = load_config(run_dir / CONFIG_YAML)
    info = read_train_json(run_dir)
    if n_timesteps is not None:
        if n_timesteps <= config.n_timesteps and info.get("status") == RunStatus.FINISHED:
            raise RltoolError(
                f"--n-timesteps {n_timesteps}: must exceed the finished run's {config.n_timesteps}"
            )
        config = replace(config, n_timesteps=n_timesteps)
    done = int(info.get("num_timesteps", 0))
    if info.get("status") == RunStatus.FINISHED and done >= config.n_timesteps:
        report(f"{run_dir}: already finished at {done} steps; pass a larger --n-timesteps to continue")
        return None
    points = resume_points(run_dir)
    if not points:
        raise ModelLoadError(
            f"{run_dir}: holds no checkpoint or model to resume from (train with --save-freq N)"
        )
    if config.normalize_kwargs is not None:
        points = [point for point in points if point.vecnormalize_path is not None] or points

    threads = set_threads(options.threads, config.backend)
    device = prepare_device(options.device or config.algo_kwargs.get("device"), config.backend)
    # new Monitor files for this segment: the old ones are logs and stay as they are
    prefix = free_monitor_prefix(run_dir / "monitor", "train")
    model = env = None
    last_error: RltoolError | None = None
    for point in points:
        try:
            env = build_env(
                config, run_dir, options, vecnormalize_path=point.vecnormalize_path, monitor_prefix=prefix
            )
            try:
                model = _load_point(point, config, env, options, device)
                break
            except BaseException:
                env.close()
                raise
        except (UnsafeFileError, KeyboardInterrupt):
            _remove_monitor_files(run_dir, prefix, config.n_envs)
            raise
        except RltoolError as error:
            last_error = error
            report(f"skipping {point.label}: {error}")
        except Exception as error:  # the env's own code or a wrapper: the config, not the checkpoint
            _remove_monitor_files(run_dir, prefix, config.n_envs)
            raise startup_error(config, error, "env", "building the env") from None
    if model is None:
        _remove_monitor_files(run_dir, prefix, config.n_envs)
        raise ModelLoadError(
            f"{run_dir}: no checkpoint or model could be loaded; the last one tried: {last_error}"
        )
    if model.num_timesteps >= config.n_timesteps:
        env.close()
        _remove_monitor_files(run_dir, prefix, config.n_envs)
        if n_timesteps is not None:  # the user asked for a budget the run has already passed
            raise ConfigError(
                f"--n-timesteps {n_timesteps}: {run_dir} is already at {model.num_timesteps} steps "
                f"({point.label}); pass a larger budget"
            )
        report(
            f"{run_dir}: {point.label} is at {model.num_timesteps} steps, the budget is {config.n_timesteps}"
        )
        return None
    report(f"resuming {run_dir} from {point.label} at step {model.num_timesteps} of {config.n_timesteps}")
    if point.replay_buffer_path is not None:
        buffer = model.replay_buffer
        report(f"replay buffer: {buffer.size() * buffer.n_envs} transitions")
    elif getattr(model, "replay_buffer", None) is not None:
        report("note: no replay buffer saved with this point; continuing with an empty buffer")
    _remove_leftovers(run_dir)
    if n_timesteps is not None:  # the new budget is the run's budget from now on
        write_text(
            run_dir / "config.yaml",
            config_to_yaml(
                config, header=f"# Resolved from {config.source} (resumed with -n {n_timesteps})\n"
            ),
        )
    try:
        # the loaded model still holds the folder it was trained with, possibly relative to another cwd
        model.tensorboard_log = str(run_dir / "tb") if options.tensorboard else None
        model.verbose = options.verbose  # a foreign zip (e.g. the zoo's) may carry its own
        return run_learning(
            model,
            config,
            run_dir,
            options,
            report,
            threads=threads,
            device=device,
            reset_num_timesteps=False,
            extra_callbacks=extra_callbacks,
        )
    except StartupError:
        env.close()
        _remove_monitor_files(run_dir, prefix, config.n_envs)
        raise
    finally:
        env.close()


def _remove_monitor_files(run_dir: Path, prefix: str, n_envs: int) -> None:
    """Delete the (empty) Monitor files of a resume that did not start."""
    for rank in range(n_envs):
        (run_dir / "monitor" / f"{prefix}-{rank}.monitor.csv").unlink(missing_ok=True)
