"""Training callbacks: progress bar, periodic evaluation, crash-safe checkpoints, NaN guard.

Each one does O(1) work on steps where it has nothing to do, so a training run
costs the same as a plain SB3 script (see ``benchmarks/overhead.py``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from rltool.errors import TrainingDivergedError
from rltool.fileio import atomic_path, write_bytes


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


class ProgressCallback(BaseCallback):
    """A tqdm bar over the run's total steps, with steps/s and ETA; starts where a resumed run stands."""

    def __init__(self, total_timesteps: int, description: str = "train"):
        super().__init__()
        self.total_timesteps = total_timesteps
        self.description = description
        self.bar = None

    def _on_training_start(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=self.total_timesteps,
            initial=self.model.num_timesteps,
            desc=self.description,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            mininterval=0.5,
            smoothing=0.05,
        )

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


def evaluate_episodes(
    model: Any, env: VecEnv, n_episodes: int, deterministic: bool = True
) -> tuple[list[float], list[int]]:
    """Run ``n_episodes`` full episodes; uses action masks when the algorithm supports them.

    Rewards and lengths are read from the Monitor inside the env, so they are the raw
    episode returns even under VecNormalize or reward-changing wrappers.

    :param model: a trained SB3 model.
    :param env: an env from the shared builder (frozen normalization).
    :param n_episodes: number of episodes.
    :param deterministic: greedy actions.
    :return: episode rewards and lengths.
    """
    if supports_masks(model):
        from sb3_contrib.common.maskable.evaluation import evaluate_policy
    else:
        from stable_baselines3.common.evaluation import evaluate_policy
    rewards, lengths = evaluate_policy(
        model,
        env,
        n_eval_episodes=n_episodes,
        deterministic=deterministic,
        return_episode_rewards=True,
        warn=False,
    )
    return [float(r) for r in rewards], [int(n) for n in lengths]


def supports_masks(model: Any) -> bool:
    from sb3_contrib import MaskablePPO

    return isinstance(model, MaskablePPO)


class PeriodicEvalCallback(BaseCallback):
    """Evaluate every ``eval_freq`` steps, keep ``best_model.zip`` and ``evaluations.npz`` (SB3's format).

    :param eval_env: env from the shared builder with frozen normalization.
    :param run_dir: where best_model.zip and evaluations.npz go (None: keep nothing on disk).
    :param eval_freq: total env steps between evaluations.
    :param n_episodes: episodes per evaluation.
    :param on_result: called with (num_timesteps, mean_reward) after each evaluation; returning
        False stops training (used by tuning to prune).
    """

    def __init__(
        self,
        eval_env: VecEnv,
        run_dir: Path | None,
        eval_freq: int,
        n_episodes: int = 5,
        on_result: Callable[[int, float], bool] | None = None,
        deterministic: bool = True,
    ):
        super().__init__()
        self.eval_env = eval_env
        self.run_dir = run_dir
        self.eval_freq = eval_freq
        self.n_episodes = n_episodes
        self.on_result = on_result
        self.deterministic = deterministic
        self.best_mean_reward = -np.inf
        self.next_eval = 0
        self.timesteps: list[int] = []
        self.results: list[list[float]] = []
        self.lengths: list[list[int]] = []
        self.last_mean_reward: float | None = None

    def _on_training_start(self) -> None:
        self.next_eval = self.model.num_timesteps + self.eval_freq
        if self.run_dir is not None and (self.run_dir / "evaluations.npz").exists():  # resumed run
            with np.load(self.run_dir / "evaluations.npz") as previous:
                self.timesteps = [int(t) for t in previous["timesteps"]]
                self.results = [list(map(float, r)) for r in previous["results"]]
                self.lengths = [list(map(int, n)) for n in previous["ep_lengths"]]
            self.best_mean_reward = max((float(np.mean(r)) for r in self.results), default=-np.inf)

    def _on_step(self) -> bool:
        if self.model.num_timesteps < self.next_eval:
            return True
        self.next_eval += self.eval_freq
        return self.evaluate()

    def evaluate(self) -> bool:
        """Run one evaluation now. :return: whether training should go on."""
        sync_envs_normalization(self.training_env, self.eval_env)
        rewards, lengths = evaluate_episodes(self.model, self.eval_env, self.n_episodes, self.deterministic)
        mean_reward = float(np.mean(rewards))
        self.last_mean_reward = mean_reward
        self.logger.record("eval/mean_reward", mean_reward)
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        self.timesteps.append(self.model.num_timesteps)
        self.results.append(rewards)
        self.lengths.append(lengths)
        if self.run_dir is not None:
            self._write_npz()
            if mean_reward > self.best_mean_reward:
                save_model(self.model, self.run_dir / "best_model.zip")
        self.best_mean_reward = max(self.best_mean_reward, mean_reward)
        if self.on_result is not None:
            return bool(self.on_result(self.model.num_timesteps, mean_reward))
        return True

    def _write_npz(self) -> None:
        import io

        buffer = io.BytesIO()
        np.savez(
            buffer,
            timesteps=np.asarray(self.timesteps),
            results=np.asarray(self.results),
            ep_lengths=np.asarray(self.lengths),
        )
        write_bytes(self.run_dir / "evaluations.npz", buffer.getvalue())


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


class CheckpointCallback(BaseCallback):
    """Write a complete checkpoint every ``save_freq`` total env steps.

    :param run_dir: the run folder.
    :param save_freq: total env steps between checkpoints.
    :param report: where to print the replay buffer's size.
    :param on_checkpoint: called with each new checkpoint folder (e.g. to refresh train.json).
    """

    def __init__(
        self,
        run_dir: Path,
        save_freq: int,
        report: Callable[[str], None] | None = None,
        on_checkpoint: Callable[[Path], None] | None = None,
    ):
        super().__init__()
        self.run_dir = run_dir
        self.save_freq = save_freq
        self.report = report
        self.on_checkpoint = on_checkpoint
        self.next_save = 0

    def _on_training_start(self) -> None:
        self.next_save = (self.model.num_timesteps // self.save_freq + 1) * self.save_freq

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self.next_save:
            self.next_save += self.save_freq
            folder, buffer_bytes = write_checkpoint(self.model, self.run_dir)
            if self.report is not None and buffer_bytes:
                self.report(f"checkpoint {folder.name}: replay buffer {buffer_bytes / 2**20:.1f} MiB")
            if self.on_checkpoint is not None:
                self.on_checkpoint(folder)
        return True


class NanGuardCallback(BaseCallback):
    """Stop with a clear error when actions, the last losses or the weights become NaN or infinite.

    Weights are checked at most every ``weight_check_steps`` env steps, to stay cheap for
    off-policy algorithms whose rollouts are a few steps long.
    """

    def __init__(self, weight_check_steps: int = 2048):
        super().__init__()
        self.weight_check_steps = weight_check_steps
        self.next_weight_check = 0

    _LOSS_KEYS = (
        "train/loss",
        "train/policy_loss",
        "train/value_loss",
        "train/actor_loss",
        "train/critic_loss",
    )

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        # checked once per rollout, not per step, to keep the guard free
        rollout_buffer = getattr(self.model, "rollout_buffer", None)
        if rollout_buffer is not None and not np.all(np.isfinite(rollout_buffer.actions)):
            raise TrainingDivergedError(self._message("actions"))
        values = getattr(self.model.logger, "name_to_value", {})
        for key in self._LOSS_KEYS:
            value = values.get(key)
            if value is not None and not np.isfinite(value):
                raise TrainingDivergedError(self._message(key))
        if self.model.num_timesteps < self.next_weight_check:
            return
        self.next_weight_check = self.model.num_timesteps + self.weight_check_steps
        if not weights_finite(self.model):
            raise TrainingDivergedError(self._message("network weights"))

    def _message(self, what: str) -> str:
        return (
            f"training diverged at step {self.model.num_timesteps}: {what} became NaN or infinite "
            "(lower the learning rate or clip gradients); the last checkpoint is kept"
        )
