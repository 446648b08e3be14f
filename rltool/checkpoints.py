"""A run's saved state: model and statistics files, crash-safe checkpoints, pruning and sizes.

Every file is written to a temporary name and renamed, and a checkpoint folder appears under its
final name only once complete, so a ``kill -9`` at any instant leaves the old state or the new one.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from rltool.errors import OutputError, TrainingDivergedError
from rltool.fileio import atomic_path


def save_model(model: Any, path: Path) -> None:
    """Save a model to ``path`` atomically (an SBX model without JAX pickles, see :mod:`rltool.sbx_io`)."""
    from rltool.sbx_io import is_sbx_model, save_sbx_model

    with atomic_path(path) as temporary:
        if is_sbx_model(model):
            save_sbx_model(model, Path(temporary))
        else:
            model.save(temporary)


def save_vecnormalize(env: Any, path: Path) -> bool:
    """Save the VecNormalize statistics of ``env`` (if it has any) atomically.

    :return: whether a file was written.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    normalize = env if isinstance(env, VecNormalize) else None
    if normalize is None and env is not None:
        from stable_baselines3.common.vec_env import unwrap_vec_normalize

        normalize = unwrap_vec_normalize(env)
    if normalize is None:
        return False
    with atomic_path(path) as temporary:
        normalize.save(temporary)
    return True


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """:return: complete checkpoints of a run, oldest first (a folder exists only once complete)."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [path for path in folder.glob("step-*") if path.is_dir() and path.name[5:].isdigit()]
    return sorted(found, key=lambda path: int(path.name[5:]))


def weights_finite(model: Any) -> bool:
    """:return: whether every parameter of the model's policy is finite (no NaN, no inf)."""
    from rltool.sbx_io import is_sbx_model, sbx_weights_finite

    if is_sbx_model(model):
        return sbx_weights_finite(model)
    return all(bool(parameter.data.isfinite().all()) for parameter in model.policy.parameters())


def write_checkpoint(model: Any, run_dir: Path, *, keep_replay_buffer: bool = True) -> tuple[Path, int]:
    """Write model, VecNormalize statistics and (off-policy) replay buffer as one checkpoint.

    The files go into a temporary folder that is renamed to ``checkpoints/step-<N>`` at the
    end, so a checkpoint folder either holds everything resume needs or does not exist.
    Weights that are NaN or infinite are never written: the last checkpoint stays a good one.

    :param model: the model being trained.
    :param run_dir: the run folder.
    :param keep_replay_buffer: also save the replay buffer of off-policy algorithms.
    :return: the checkpoint folder and the size of its replay buffer file in bytes (0 if none).
    :raises TrainingDivergedError: the weights are NaN or infinite.
    """
    if not weights_finite(model):
        raise TrainingDivergedError(
            f"training diverged at step {model.num_timesteps}: network weights became NaN or infinite "
            "(lower the learning rate or clip gradients); the last checkpoint is kept"
        )
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{model.num_timesteps:012d}"
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
    try:
        save_model(model, staging / "model.zip")
        save_vecnormalize(model.get_env(), staging / "vecnormalize.pkl")
        buffer_bytes = 0
        if keep_replay_buffer and getattr(model, "replay_buffer", None) is not None:
            with atomic_path(staging / "replay_buffer.pkl") as temporary:
                model.save_replay_buffer(temporary)
            buffer_bytes = (staging / "replay_buffer.pkl").stat().st_size
        if final.exists():  # same step saved twice (e.g. Ctrl-C right after a checkpoint)
            # move the old one out of the way with a rename: step-<N> is never half deleted
            old = Path(tempfile.mkdtemp(dir=folder, prefix=".old-"))
            final.rename(old / final.name)
            staging.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final, buffer_bytes


def folder_bytes(folder: Path) -> int:
    """:return: the total size of the files in ``folder`` (recursively)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _remove_folder(folder: Path) -> None:
    """Delete ``folder``: first renamed to a hidden name, so no half-deleted ``step-N`` is ever seen."""
    hidden = folder.parent / f".old-{folder.name}"
    try:
        folder.rename(hidden)
    except OSError:
        return
    shutil.rmtree(hidden, ignore_errors=True)


def prune_checkpoints(run_dir: Path, keep: int, keep_replay_buffers: bool = False) -> list[Path]:
    """Keep the newest ``keep`` checkpoints of a run; only the newest keeps its replay buffer.

    The newest checkpoint is complete before this runs, so a run can always resume from it.

    :param run_dir: the run folder.
    :param keep: checkpoints to keep (0: all).
    :param keep_replay_buffers: keep the replay buffers of older checkpoints too.
    :return: the checkpoint folders deleted.
    """
    folders = checkpoint_dirs(run_dir)
    removed = folders[:-keep] if keep > 0 else []
    for folder in removed:
        _remove_folder(folder)
    if not keep_replay_buffers:
        for folder in folders[len(removed) : -1]:
            (folder / "replay_buffer.pkl").unlink(missing_ok=True)
    return removed


def describe_checkpoint(folder: Path) -> str:
    """:return: e.g. ``checkpoint step-000000002048: 1.4 MiB (replay buffer 1.2 MiB)``."""
    size = folder_bytes(folder)
    buffer = folder / "replay_buffer.pkl"
    extra = f" (replay buffer {buffer.stat().st_size / 2**20:.1f} MiB)" if buffer.exists() else ""
    return f"checkpoint {folder.name}: {size / 2**20:.1f} MiB{extra}"


def check_run_folder(run_dir: Path) -> None:
    """Raise :class:`OutputError` when ``run_dir`` no longer exists (deleted under a running training)."""
    if not run_dir.is_dir():
        raise OutputError(f"{run_dir}: the run folder was deleted while training")
