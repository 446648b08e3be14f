"""Experiment tracking: ``rltool train --track wandb|mlflow``.

A :class:`TrackingCallback` rides along with training as an SB3 callback:

- when the run folder is known it starts the tracking run (W&B run or MLflow run) and logs
  the hyperparameters (the resolved config) as config/params;
- it adds an SB3 logger output, so every scalar SB3 writes to TensorBoard (``rollout/``,
  ``train/``, ``time/``, ``eval/``) goes to the tracker too, at the same step (num_timesteps);
- :meth:`TrackingCallback.finish` logs the train.json fields, the final evaluation, config.yaml,
  train.json and any video of the run, then closes the tracking run.

A tracker that fails (a server that is down, a network error, a bad URI) never stops
training: the first failure prints one line saying tracking stopped, and every later call
is skipped. MLflow's HTTP retries are bounded so a dead server costs seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rltool.errors import RltoolError, first_line
from rltool.type_aliases import Report

BACKENDS = ("wandb", "mlflow")


@dataclass(frozen=True)
class TrackingOptions:
    """Where and how to track a training run.

    :param backend: ``wandb`` or ``mlflow``.
    :param project: W&B project / MLflow experiment (default: ``rltool``).
    :param run_name: name of the tracking run (default: ``<algo>-<env>-run-N``).
    :param tags: tags; for MLflow ``key=value`` sets a tag's value (plain ``name`` sets it to "true").
    :param tracking_uri: MLflow tracking URI (default: MLflow's own, ``MLFLOW_TRACKING_URI`` or ./mlruns).
    :param entity: W&B entity (team or user).
    """

    backend: str
    project: str | None = None
    run_name: str | None = None
    tags: tuple[str, ...] = ()
    tracking_uri: str | None = None
    entity: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise RltoolError(f"--track: expected wandb or mlflow, got '{self.backend}'")
        if self.tracking_uri is not None and self.backend != "mlflow":
            raise RltoolError("--tracking-uri is for --track mlflow")


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """:return: nested dicts as one level of ``a/b`` keys (lists and other values kept as they are)."""
    if not isinstance(data, dict):
        return {prefix.rstrip("/"): data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(
            flatten(value, f"{prefix}{key}/") if isinstance(value, dict) else {f"{prefix}{key}": value}
        )
    return flat


def _numbers(data: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class _Backend:
    """What both trackers do; each method may raise, the callback guards every call."""

    def start(self, options: TrackingOptions, run_name: str, run_dir: Path, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def finish(self, summary: dict[str, Any], files: list[Path], status: str) -> None:
        raise NotImplementedError


class _WandbBackend(_Backend):
    def start(self, options: TrackingOptions, run_name: str, run_dir: Path, params: dict[str, Any]) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(
            project=options.project or "rltool",
            entity=options.entity,
            name=run_name,
            tags=list(options.tags) or None,
            config=params,
            dir=str(run_dir),
            reinit="finish_previous",
        )
        # SB3's scalars carry their own step (num_timesteps), as sync_tensorboard's global_step does
        self.run.define_metric("*", step_metric="global_step")

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log({**values, "global_step": step})

    def finish(self, summary: dict[str, Any], files: list[Path], status: str) -> None:
        self.run.summary.update(summary)
        for path in files:
            if path.suffix == ".mp4":
                self.run.log({"video": self.wandb.Video(str(path), format="mp4")})
            else:
                self.run.save(str(path), base_path=str(path.parent), policy="now")
        self.run.finish(exit_code=0 if status in ("finished", "interrupted") else 1)


class _MlflowBackend(_Backend):
    def start(self, options: TrackingOptions, run_name: str, run_dir: Path, params: dict[str, Any]) -> None:
        # a dead server must cost seconds: MLflow retries 7 times with backoff and waits 120 s by default
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=options.tracking_uri)
        name = options.project or "rltool"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        tags = {"rltool.run_dir": str(run_dir)}
        for tag in options.tags:
            key, sep, value = tag.partition("=")
            tags[key] = value if sep else "true"
        run = self.client.create_run(experiment_id, run_name=run_name, tags=tags)
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):  # the server takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(_mlflow_key(k), v, now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, summary: dict[str, Any], files: list[Path], status: str) -> None:
        import time

        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        numbers = _numbers(summary)
        step = int(summary.get("num_timesteps", 0) or 0)
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(_mlflow_key(k), v, now, step) for k, v in numbers.items()],
            tags=[RunTag(f"rltool.{k}", str(v)) for k, v in summary.items() if k not in numbers],
        )
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(
            self.run_id, "FINISHED" if status in ("finished", "interrupted") else "FAILED"
        )


def _mlflow_key(key: str) -> str:
    """:return: ``key`` with characters MLflow refuses replaced (it allows ``/``, ``.``, ``-``, ``_``, `` ``)."""
    return "".join(c if c.isalnum() or c in "/._- " else "_" for c in key)


def _make_backend(name: str) -> _Backend:
    return _WandbBackend() if name == "wandb" else _MlflowBackend()


def check_backend_installed(options: TrackingOptions) -> None:
    """Raise a one-line error when the tracking package is missing (before any training starts)."""
    import importlib.util

    if importlib.util.find_spec(options.backend) is None:
        raise RltoolError(
            f"--track {options.backend}: {options.backend} is not installed (pip install 'rltool[track]')"
        )


def _base_callback() -> type:
    from stable_baselines3.common.callbacks import BaseCallback

    return BaseCallback


def _output_format_class() -> type:
    from stable_baselines3.common.logger import KVWriter

    class TrackerOutput(KVWriter):
        """An SB3 logger output: what SB3 writes to TensorBoard goes to the tracker too."""

        def __init__(self, callback: Any) -> None:
            self.callback = callback

        def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
            scalars = {}
            for key, value in key_values.items():
                excluded = key_excluded.get(key) or ()
                if "tensorboard" in excluded or isinstance(value, (bool, str)):
                    continue
                with contextlib.suppress(TypeError, ValueError):
                    scalars[key] = float(value)
            if scalars:
                self.callback.guarded("log_scalars", scalars, int(step))

        def close(self) -> None:
            pass

    return TrackerOutput


def make_tracking_callback(options: TrackingOptions, report: Report) -> Any:
    """:return: an SB3 callback that tracks the run it is given to (see the module docstring).

    :param options: backend, project, run name, tags, tracking URI.
    :param report: where to print the one line when tracking stops.
    """
    base = _base_callback()

    class TrackingCallback(base):
        """Starts the tracking run, forwards SB3's scalars, and finishes with the run's summary."""

        def __init__(self) -> None:
            super().__init__()
            self.options = options
            self.backend = _make_backend(options.backend)
            self.active = True
            self.started = False
            self.run_dir: Path | None = None
            self.config: Any = None

        def guarded(self, method: str, *args: Any) -> None:
            """Call a backend method; on its first failure say once that tracking stopped, then skip."""
            if not self.active:
                return
            try:
                getattr(self.backend, method)(*args)
            except Exception as error:  # noqa: BLE001 - tracking never takes training down
                self.active = False
                report(
                    f"rltool: warning: {options.backend} tracking stopped ({type(error).__name__}: "
                    f"{first_line(error)[:200]}); training goes on"
                )

        def on_run_folder(self, run_dir: Path, config: Any) -> None:
            """Called by training once the run folder exists: start the tracking run there."""
            from rltool.config import config_to_dict

            self.run_dir, self.config = run_dir, config
            if self.started:
                return
            self.started = True
            run_name = options.run_name or f"{config.run_name}-{run_dir.name}"
            params = flatten(config_to_dict(config))
            params["run_dir"] = str(run_dir)
            self.guarded("start", options, run_name, run_dir, params)

        def _init_callback(self) -> None:
            if not any(type(f).__name__ == "TrackerOutput" for f in self.model.logger.output_formats):
                self.model.logger.output_formats.append(_output_format_class()(self))

        def _on_step(self) -> bool:
            return True

        def finish(self, info: dict[str, Any] | None, status: str) -> None:
            """Log the train.json fields, the final evaluation and the run's files; close the tracking run.

            :param info: train.json's content (None when training failed before writing it).
            :param status: finished, interrupted, diverged or failed.
            """
            if not self.started:
                return
            summary = {k: v for k, v in flatten(info or {}).items() if not isinstance(v, (list, dict))}
            final = (info or {}).get("final_eval") or {}
            for key in ("mean_reward", "std_reward"):
                if key in final:
                    summary[f"final_eval/{key}"] = final[key]
            summary["status"] = status
            files = []
            if self.run_dir is not None:
                files = [p for p in (self.run_dir / "config.yaml", self.run_dir / "train.json") if p.exists()]
                files += sorted(self.run_dir.rglob("*.mp4"))
            self.guarded("finish", summary, files, status)

    return TrackingCallback()


def read_train_json(run_dir: Path) -> dict[str, Any] | None:
    """:return: a run's train.json, or None when it cannot be read."""
    try:
        return json.loads((run_dir / "train.json").read_text())
    except (OSError, ValueError):
        return None


def tracking_options_from_cli(
    track: str | None,
    *,
    project: str | None,
    run_name: str | None,
    tags: list[str] | None,
    tracking_uri: str | None,
) -> TrackingOptions | None:
    """:return: the tracking the ``train`` options ask for (backend checked installed), or None without ``--track``."""
    if track is None:
        for option, value in (("--track-project", project), ("--track-run-name", run_name),
                              ("--track-tag", tags), ("--tracking-uri", tracking_uri)):  # fmt: skip
            if value:
                raise RltoolError(f"{option} needs --track wandb or --track mlflow")
        return None
    options = TrackingOptions(track, project, run_name, tuple(tags or ()), tracking_uri)
    check_backend_installed(options)
    return options


def for_seed(options: TrackingOptions, seed: int | None) -> TrackingOptions:
    """:return: the tracking of one seed of ``--seeds``: a given run name gets ``-seed<N>``, and a ``seed=<N>`` tag."""
    run_name = f"{options.run_name}-seed{seed}" if options.run_name else None
    return replace(options, run_name=run_name, tags=(*options.tags, f"seed={seed}"))


def run_tracked(callback: Any, train: Callable[[list[Any]], Any]) -> Any:
    """Run ``train(extra_callbacks)`` with the tracking callback (if any), then finish the tracking run.

    :param callback: from :func:`make_tracking_callback`, or None.
    :param train: starts training with the given extra callbacks; returns a TrainResult (or None).
    :return: what ``train`` returned.
    """
    if callback is None:
        return train([])
    try:
        result = train([callback])
    except BaseException:
        callback.finish(read_train_json(callback.run_dir) if callback.run_dir else None, "failed")
        raise
    if result is not None:
        callback.finish(result.info, result.status)
    return result
