"""Resuming a stopped or killed run from its newest complete checkpoint.

What continues where it was: weights, optimizer state, VecNormalize statistics, the
replay buffer (off-policy), ``num_timesteps`` and with it every schedule's progress
(learning rate, clip range, DQN exploration), TensorBoard and the run folder. Training
stops at the config's total ``n_timesteps``, not that many more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rltool.config import ExperimentConfig, config_to_yaml, load_config
from rltool.errors import ModelLoadError, RltoolError
from rltool.fileio import write_text
from rltool.train import Report, TrainOptions, TrainResult, build_env, run_learning, set_threads


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


def resume_points(run_dir: Path) -> list[ResumePoint]:
    """:return: checkpoints of ``run_dir``, newest first, then the run's last saved model."""
    from rltool.callbacks import checkpoint_dirs

    points = [
        ResumePoint(
            folder / "model.zip",
            _existing(folder / "vecnormalize.pkl"),
            _existing(folder / "replay_buffer.pkl"),
            f"checkpoint {folder.name}",
        )
        for folder in reversed(checkpoint_dirs(run_dir))
    ]
    if (run_dir / "model.zip").exists():
        points.append(
            ResumePoint(run_dir / "model.zip", _existing(run_dir / "vecnormalize.pkl"), None, "model.zip")
        )
    return points


def _schedules_from_config(config: ExperimentConfig) -> dict[str, Any]:
    """Schedules rebuilt from the config: the safe loader never unpickles the saved ones."""
    from rltool.algos import model_kwargs
    from rltool.algos.registry import SCHEDULE_KEYS

    kwargs = model_kwargs(config)
    objects = {key: kwargs[key] for key in SCHEDULE_KEYS if key in kwargs}
    if "policy_kwargs" in kwargs:
        objects["policy_kwargs"] = kwargs["policy_kwargs"]
    return objects


def _load_point(point: ResumePoint, config: ExperimentConfig, env: Any, options: TrainOptions) -> Any:
    from rltool.algos import algo_class
    from rltool.safe_load import load_model, load_replay_buffer

    model = load_model(
        point.model_path,
        algo_class(config.algo),
        observation_space=env.observation_space,
        action_space=env.action_space,
        trust_pickles=options.trust_pickles,
        extra_custom_objects=_schedules_from_config(config),
        env_name=config.env,
        env=env,
    )
    model.set_env(env)
    if point.replay_buffer_path is not None:
        load_replay_buffer(model, point.replay_buffer_path, trust_pickles=options.trust_pickles)
    return model


def resume(
    run_dir: Path,
    options: TrainOptions = TrainOptions(),
    *,
    n_timesteps: int | None = None,
    report: Report = print,
) -> TrainResult | None:
    """Continue ``run_dir`` until its config's total ``n_timesteps`` (or a larger ``n_timesteps``).

    :param run_dir: a run folder written by ``rltool train``.
    :param options: how to train (eval/save frequencies, threads, ...).
    :param n_timesteps: a new, larger total budget.
    :param report: where to print.
    :return: the result, or None when the run had already finished (nothing to do).
    """
    if not run_dir.is_dir():
        raise ModelLoadError(f"{run_dir}: no such run folder")
    if not (run_dir / "config.yaml").exists():
        raise ModelLoadError(f"{run_dir}: no config.yaml (not a run folder written by rltool train)")
    config = load_config(run_dir / "config.yaml")
    info = _read_train_json(run_dir)
    if n_timesteps is not None:
        if n_timesteps <= config.n_timesteps and info.get("status") == "finished":
            raise RltoolError(
                f"--n-timesteps {n_timesteps}: must exceed the finished run's {config.n_timesteps}"
            )
        config = replace(config, n_timesteps=n_timesteps)
    done = int(info.get("num_timesteps", 0))
    if info.get("status") == "finished" and done >= config.n_timesteps:
        report(f"{run_dir}: already finished at {done} steps; pass a larger --n-timesteps to continue")
        return None
    points = resume_points(run_dir)
    if not points:
        raise ModelLoadError(
            f"{run_dir}: holds no checkpoint or model to resume from (train with --save-freq N)"
        )
    if config.normalize_kwargs is not None:
        points = [point for point in points if point.vecnormalize_path is not None] or points

    threads = set_threads(options.threads)
    segment = len(info.get("segments", [])) + 1
    model = env = None
    for point in points:
        env = build_env(
            config,
            run_dir,
            options,
            vecnormalize_path=point.vecnormalize_path,
            monitor_prefix=f"train-seg{segment}",
        )
        try:
            model = _load_point(point, config, env, options)
            break
        except RltoolError as error:
            env.close()
            report(f"skipping {point.label}: {error}")
    if model is None:
        raise ModelLoadError(f"{run_dir}: no checkpoint could be loaded (see the lines above)")
    if model.num_timesteps >= config.n_timesteps:
        env.close()
        report(
            f"{run_dir}: {point.label} is at {model.num_timesteps} steps, the budget is {config.n_timesteps}"
        )
        return None
    report(f"resuming {run_dir} from {point.label} at step {model.num_timesteps} of {config.n_timesteps}")
    if point.replay_buffer_path is None and getattr(model, "replay_buffer", None) is not None:
        report("note: no replay buffer saved with this point; continuing with an empty buffer")
    write_text(
        run_dir / "config.yaml", config_to_yaml(config, header=f"# Resolved from {config.source} (resumed)\n")
    )
    try:
        if options.tensorboard:
            model.tensorboard_log = str(run_dir / "tb")
        return run_learning(
            model, config, run_dir, options, report, threads=threads, reset_num_timesteps=False
        )
    finally:
        env.close()


def _read_train_json(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "train.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}
