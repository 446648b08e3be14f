"""Turning unexpected exceptions of a training run into one line.

Before the first learning step has completed, any exception (from torch, gymnasium, a
wrapper or the env's own code) comes from the config: it becomes a :class:`ConfigError`
naming the key that most likely caused it, and the caller removes the half-made run folder.
After that, an exception is a failure of the run: the full traceback goes to
``<run>/error.log`` and the user gets one line pointing at it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rltool.errors import ConfigError, OutputError, RltoolError, TrainingDivergedError, first_line

#: file names of the libraries' modules that build networks from ``policy_kwargs``
_POLICY_MODULES = ("policies.py", "torch_layers.py", "/torch/nn/", "distributions.py")


def nan_policy_divergence(error: BaseException, step: int) -> TrainingDivergedError | None:
    """:return: ``error`` as a divergence at ``step`` if it is torch rejecting NaN policy outputs, else None.

    torch.distributions raises a ValueError on NaN logits before rltool's NaN guard sees them.
    """
    if isinstance(error, ValueError) and "nan" in str(error).lower():
        return TrainingDivergedError(f"training diverged at step {step}: the policy produced NaN values")
    return None


class StartupError(ConfigError):
    """An exception before the first learning step, turned into a config error."""


class TrainingFailedError(RltoolError):
    """Training failed after it had started; the traceback is in the run's error.log."""

    exit_code = 1


def _frames(error: BaseException) -> list[traceback.FrameSummary]:
    return list(traceback.extract_tb(error.__traceback__))


def guess_key(config: Any, error: BaseException, phase: str) -> str | None:
    """Name the config key most likely behind ``error``, raised while ``phase`` ran.

    :param config: the :class:`rltool.config.ExperimentConfig` being trained.
    :param error: the exception.
    :param phase: ``"env"`` (building the env), ``"model"`` (building the model) or ``"learn"``
        (the first reset and step, where the innermost frame tells env from network).
    :return: a key such as ``env_kwargs``, ``env_wrapper`` or ``policy_kwargs``, or None.
    """
    files = [frame.filename.replace("\\", "/") for frame in _frames(error)]
    wrapper_modules = [spec.path.rsplit(".", 1)[0].replace(".", "/") for spec in config.env_wrapper]
    for module in wrapper_modules:
        if any(module in name for name in files):
            return "env_wrapper"
    in_policy = "policy_kwargs" in config.algo_kwargs and any(
        marker in name for name in files for marker in _POLICY_MODULES
    )
    if phase == "learn" and files:
        innermost = files[-1]
        phase = "model" if any(marker in innermost for marker in _POLICY_MODULES) else "env"
    if phase == "model":
        if in_policy:
            return "policy_kwargs"
        return None
    if config.env_kwargs:
        return "env_kwargs"
    if config.env_wrapper:
        return "env_wrapper"
    return "env"


def startup_error(config: Any, error: BaseException, phase: str, what: str) -> StartupError:
    """:return: the one-line :class:`ConfigError` for ``error`` raised before the first learning step.

    :param config: the experiment.
    :param error: the exception.
    :param phase: ``"env"`` or ``"model"`` (see :func:`guess_key`).
    :param what: what was being done, e.g. ``"building the model"``.
    """
    key = guess_key(config, error, phase)
    where = f"{config.source}: {key}" if key else config.source
    return StartupError(f"{where}: {what} failed: {type(error).__name__}: {first_line(error)}")


def save_traceback(run_dir: Path, error: BaseException) -> Path | None:
    """Write the full traceback of ``error`` to ``run_dir/error.log``.

    :return: the file, or None when it could not be written (full disk, folder gone).
    """
    from rltool.fileio import write_text

    log = run_dir / "error.log"
    try:
        write_text(log, "".join(traceback.format_exception(type(error), error, error.__traceback__)))
    except (OSError, RltoolError):
        return None
    return log


def training_failure(run_dir: Path, error: BaseException, step: int) -> TrainingFailedError:
    """:return: the one-line error for ``error`` raised at ``step`` of a started run (traceback saved)."""
    log = save_traceback(run_dir, error)
    pointer = f" (full traceback in {log})" if log else ""
    return TrainingFailedError(
        f"training failed at step {step}: {type(error).__name__}: {first_line(error)}{pointer}"
    )


class DiskFaultError(OutputError):
    """The run folder could not be written (full disk, read-only, deleted) while training."""

    exit_code = 1


def disk_failure(run_dir: Path, error: BaseException, step: int, write_status: Any) -> DiskFaultError:
    """:return: the one-line error for a write that failed at ``step``, saying what was kept.

    :param run_dir: the run folder.
    :param error: an :class:`OSError` or :class:`OutputError`.
    :param step: the step training stopped at.
    :param write_status: called with ``"failed"`` to update train.json (its own errors are ignored).
    """
    from rltool.checkpoints import checkpoint_dirs

    if isinstance(error, OSError):
        path = os.fsdecode(error.filename) if error.filename else run_dir
        what = f"{path}: {error.strerror or first_line(error)}"
    else:
        what = first_line(error)
    if isinstance(error, OSError) and error.errno == errno.ENOENT:
        deadline = time.monotonic() + 2.0
        while run_dir.is_dir() and time.monotonic() < deadline:  # a deletion may be under way
            time.sleep(0.05)
    if not run_dir.is_dir():
        kept = f"the run folder {run_dir} was deleted, so nothing was kept"
    else:
        with contextlib.suppress(OSError, RltoolError):
            write_status("failed")
        checkpoints = checkpoint_dirs(run_dir)
        kept = (
            f"the last complete checkpoint is {checkpoints[-1].name} (rltool train --resume {run_dir})"
            if checkpoints
            else "no checkpoint was complete (train with --save-freq N to keep some)"
        )
    return DiskFaultError(f"{what}; training stopped at step {step}; {kept}")


@contextlib.contextmanager
def quiet_writer_threads() -> Iterator[None]:
    """Within the block, an OSError in a background writer thread (TensorBoard's) prints nothing.

    The same error reaches the main thread at the writer's next call, where it becomes one line.
    """
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not isinstance(args.exc_value, OSError):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous
