"""Training: config -> env + model -> a run folder.

A run folder (``models/<algo>-<env>/run-<N>/``) holds model.zip, best_model.zip,
vecnormalize.pkl (when used), config.yaml (resolved, trainable as is), monitor/,
evaluations.npz, checkpoints/, tb/ and train.json.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltool.config import ExperimentConfig, config_to_yaml
from rltool.errors import OutputError, RltoolError, TrainingDivergedError
from rltool.fileio import check_writable_folder, write_json, write_text

Report = Callable[[str], None]


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


@dataclass
class TrainResult:
    """What a finished (or interrupted) run reports."""

    run_dir: Path
    num_timesteps: int
    wall_time_s: float
    steps_per_s: float
    status: str
    final_eval: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def default_threads() -> int:
    """:return: torch threads to use: 1 on CPU (small RL networks run faster without intra-op threads)."""
    return 1


DEVICES = ("auto", "cpu", "cuda")


def set_threads(threads: int | None, backend: str = "sb3") -> int:
    """Set the thread counts of the engines: torch's intra-op threads, and XLA's for the SBX backend.

    XLA reads its flags once, when JAX starts, so for SBX this must run before ``jax`` is imported
    (rltool imports it only when it builds an SBX model); see :func:`xla_thread_flags`.

    :param threads: the count (None: :func:`default_threads`).
    :param backend: "sb3" or "sbx".
    :return: the count set.
    """
    import torch

    count = threads or default_threads()
    torch.set_num_threads(count)
    if backend == "sbx":
        flags = os.environ.get("XLA_FLAGS", "").split()
        wanted = xla_thread_flags(count)
        names = {flag.split("=")[0] for flag in wanted}
        os.environ["XLA_FLAGS"] = " ".join([f for f in flags if f.split("=")[0] not in names] + wanted)
    return count


def xla_thread_flags(threads: int) -> list[str]:
    """:return: the XLA_FLAGS that ask XLA's CPU backend for ``threads`` threads (jax/jaxlib 0.10).

    ``--xla_cpu_multi_thread_eigen=false`` makes XLA's Eigen kernels (matrix products, convolutions)
    single-threaded; ``intra_op_parallelism_threads`` sizes the intra-op pool where the runtime
    honours it. docs/fast-engines.md has the measurement.
    """
    multi = "true" if threads > 1 else "false"
    return [f"--xla_cpu_multi_thread_eigen={multi}", f"intra_op_parallelism_threads={threads}"]


def prepare_device(device: str | None, backend: str) -> str:
    """Check that ``device`` exists on this machine for ``backend`` and say what will run where.

    For SBX this selects JAX's platform (``JAX_PLATFORMS``) before JAX is imported.

    :param device: "auto", "cpu", "cuda" or None (cpu for SB3; JAX's default platform for SBX).
    :param backend: "sb3" or "sbx".
    :return: the device name recorded in train.json ("cpu", "cuda").
    :raises RltoolError: an unknown device, or cuda on a machine without it.
    """
    if device is not None and device not in DEVICES:
        raise RltoolError(f"--device: expected one of {', '.join(DEVICES)}, got '{device}'")
    if backend == "sbx":
        if device == "cpu":
            os.environ["JAX_PLATFORMS"] = "cpu"
        import jax

        if device == "cuda":
            try:
                gpus = jax.devices("gpu")
            except Exception as error:  # RuntimeError "Unknown backend", failed plugin start, ...
                raise RltoolError(
                    f"--device cuda: JAX sees no CUDA device on this machine ({_first_line(error)}); "
                    "use --device cpu or auto"
                ) from None
            jax.config.update("jax_default_device", gpus[0])
            return "cuda"
        platform = jax.devices()[0].platform
        return "cuda" if platform == "gpu" else platform
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RltoolError(
            "--device cuda: torch sees no CUDA device on this machine (use --device cpu or auto)"
        )
    if device in ("cuda", "auto") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def _first_line(error: BaseException) -> str:
    from rltool.errors import first_line

    return first_line(error)


def create_run_dir(log_folder: Path, run_name: str) -> Path:
    """Create the next free ``<log_folder>/<run_name>/run-<N>`` folder.

    ``mkdir`` without ``exist_ok`` is atomic, so parallel runs never share (or clobber) a folder.

    :param log_folder: e.g. ``models``.
    :param run_name: e.g. ``ppo-CartPole-v1``.
    :return: the new, empty folder.
    """
    parent = log_folder / run_name
    check_writable_folder(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{parent}: cannot create ({error.strerror or error})") from None
    numbers = [int(p.name[4:]) for p in parent.glob("run-*") if p.name[4:].isdigit()]
    number = max(numbers, default=0) + 1
    while True:
        candidate = parent / f"run-{number}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1


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
    from rltool.envs.builder import EnvOptions, build_vec_env

    seed = None if config.seed is None else config.seed + 10_000
    return build_vec_env(
        config,
        EnvOptions(
            n_envs=n_envs,
            seed=seed,
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
    """
    from rltool.algos import build_model

    threads = set_threads(options.threads, config.backend)
    device = prepare_device(options.device or config.algo_kwargs.get("device"), config.backend)
    created = options.run_dir is None
    run_dir = options.run_dir or create_run_dir(options.log_folder, config.run_name)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        env = build_env(config, run_dir, options)
        try:
            tensorboard_log = str(run_dir / "tb") if options.tensorboard else None
            model = build_model(
                config, env, tensorboard_log=tensorboard_log, verbose=options.verbose, device=device
            )
        except BaseException:
            env.close()
            raise
    except RltoolError:
        if created:  # nothing was trained: leave no half-made run folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
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
    keeps its history; a run that diverges gets status "diverged".

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
    from stable_baselines3.common.callbacks import CallbackList

    from rltool.callbacks import (
        CheckpointCallback,
        NanGuardCallback,
        PeriodicEvalCallback,
        ProgressCallback,
        save_model,
        save_vecnormalize,
        weights_finite,
        write_checkpoint,
    )

    start_steps = 0 if reset_num_timesteps else model.num_timesteps
    remaining = config.n_timesteps - start_steps
    # read before this segment refreshes it: the wall time and segments of earlier segments
    previous = {} if reset_num_timesteps else _read_json(run_dir / "train.json")
    started = time.perf_counter()

    def write_info(status: str, wall_time: float, final_eval: dict[str, Any] | None = None) -> dict[str, Any]:
        steps_done = model.num_timesteps - start_steps
        info = {
            "algo": config.algo,
            "env": config.env,
            "seed": config.seed,
            "n_timesteps": config.n_timesteps,
            "num_timesteps": int(model.num_timesteps),
            "n_envs": config.n_envs,
            "threads": threads,
            "vec_env": options.vec_env or config.vec_env,
            "wall_time_s": round(wall_time + previous.get("wall_time_s", 0.0), 3),
            "steps_per_s": round(steps_done / wall_time, 2) if wall_time > 0 else None,
            "status": status,
            "config_file": config.source,
            "backend": config.backend,
            "engine": "jax" if config.backend == "sbx" else "torch",
            "device": device,
            "xla_flags": os.environ.get("XLA_FLAGS") if config.backend == "sbx" else None,
            "versions": package_versions(),
            "pid": os.getpid(),
            "final_eval": final_eval,
            "segments": [
                *previous.get("segments", []),
                {"start": start_steps, "end": int(model.num_timesteps), "wall_time_s": round(wall_time, 3)},
            ],
        }
        write_json(run_dir / "train.json", info)
        return info

    def diverged(message: str) -> TrainingDivergedError:
        write_info("diverged", time.perf_counter() - started)
        return TrainingDivergedError(message)

    callbacks: list[Any] = [NanGuardCallback()]
    eval_env = None
    if options.eval_freq > 0:
        eval_env = _eval_env(config, run_dir, options, reset_num_timesteps)
        callbacks.append(PeriodicEvalCallback(eval_env, run_dir, options.eval_freq, options.eval_episodes))
    if options.save_freq > 0:
        callbacks.append(
            CheckpointCallback(
                run_dir,
                options.save_freq,
                report,
                on_checkpoint=lambda _: write_info("running", time.perf_counter() - started),
            )
        )
    callbacks += _config_callbacks(config, options) + list(extra_callbacks or [])
    if options.progress:
        callbacks.append(ProgressCallback(config.n_timesteps, description=config.run_name))

    status = "finished"
    try:
        try:
            model.learn(
                total_timesteps=remaining,
                callback=CallbackList(callbacks),
                tb_log_name=config.algo,
                reset_num_timesteps=reset_num_timesteps,
            )
        except KeyboardInterrupt:
            status = "interrupted"
        except TrainingDivergedError as error:
            raise diverged(str(error)) from None
        except ValueError as error:
            # torch.distributions rejects NaN logits before our guard sees them
            if "nan" not in str(error).lower():
                raise
            raise diverged(
                f"training diverged at step {model.num_timesteps}: the policy produced NaN values "
                "(lower the learning rate); the last checkpoint is kept"
            ) from None
        finally:
            for callback in callbacks:
                if isinstance(callback, ProgressCallback) and callback.bar is not None:
                    callback.bar.close()
        wall_time = time.perf_counter() - started
        if not weights_finite(model):  # never overwrite model.zip with NaN weights
            raise diverged(
                f"training diverged at step {model.num_timesteps}: network weights became NaN or infinite "
                "(lower the learning rate or clip gradients); the last checkpoint is kept"
            )

        save_model(model, run_dir / "model.zip")
        save_vecnormalize(model.get_env(), run_dir / "vecnormalize.pkl")
        if status == "interrupted" or options.save_freq > 0:
            # a finished run's last checkpoint is its final state (replay buffer included), so
            # ``--resume -n MORE`` continues from there
            folder, _ = write_checkpoint(model, run_dir)
        if status == "interrupted":
            report(f"interrupted at step {model.num_timesteps}: saved {run_dir / 'model.zip'} and {folder}")
            report(f"resume with: rltool train --resume {run_dir}")

        final_eval = None
        if status == "finished" and options.final_eval_episodes > 0:
            from stable_baselines3.common.vec_env import sync_envs_normalization

            from rltool.callbacks import evaluate_episodes

            if eval_env is None:
                eval_env = _eval_env(config, run_dir, options, reset_num_timesteps)
            sync_envs_normalization(model.get_env(), eval_env)
            rewards, lengths = evaluate_episodes(
                model, eval_env, options.final_eval_episodes, deterministic=True
            )
            final_eval = _summary(rewards, lengths)
            report(
                f"mean_reward={final_eval['mean_reward']:.2f} +/- {final_eval['std_reward']:.2f} "
                f"over {len(rewards)} deterministic episodes"
            )
    finally:
        if eval_env is not None:
            eval_env.close()

    info = write_info(status, wall_time, final_eval)
    steps_per_s = (model.num_timesteps - start_steps) / wall_time if wall_time > 0 else 0.0
    return TrainResult(
        run_dir, int(model.num_timesteps), info["wall_time_s"], steps_per_s, status, final_eval, info
    )


def _eval_env(config: ExperimentConfig, run_dir: Path, options: TrainOptions, new_run: bool) -> Any:
    """The eval env of a run; a resumed run gets new Monitor files (``eval-seg2-0.monitor.csv``...)."""
    prefix = "eval" if new_run else free_monitor_prefix(run_dir / "monitor", "eval")
    return build_eval_env(config, run_dir, options, monitor_prefix=prefix)


def _summary(rewards: list[float], lengths: list[int]) -> dict[str, Any]:
    import numpy as np

    return {
        "mean_reward": float(np.mean(rewards)),
        "std_reward": float(np.std(rewards)),
        "episode_rewards": rewards,
        "episode_lengths": lengths,
        "deterministic": True,
    }


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
