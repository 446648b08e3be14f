"""Training callbacks: progress bar, periodic evaluation, checkpoints, and the run-folder, first-step and
NaN guards. What they save lives in :mod:`rltool.checkpoints`; how they evaluate in :mod:`rltool.episodes`.

Each one does O(1) work on steps where it has nothing to do, so a training run
costs the same as a plain SB3 script (see ``benchmarks/overhead.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from rltool.checkpoints import (
    check_run_folder,
    describe_checkpoint,
    prune_checkpoints,
    save_model,
    weights_finite,
    write_checkpoint,
)
from rltool.episodes import evaluate_episodes
from rltool.errors import TrainingDivergedError
from rltool.fileio import write_bytes


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
        self.successes: list[list[float]] = []  # goal envs only, as SB3's EvalCallback stores them
        self.last_mean_reward: float | None = None

    def _on_training_start(self) -> None:
        self.next_eval = self.model.num_timesteps + self.eval_freq
        if self.run_dir is not None and (self.run_dir / "evaluations.npz").exists():  # resumed run
            with np.load(self.run_dir / "evaluations.npz") as previous:
                self.timesteps = [int(t) for t in previous["timesteps"]]
                self.results = [list(map(float, r)) for r in previous["results"]]
                self.lengths = [list(map(int, n)) for n in previous["ep_lengths"]]
                if "successes" in previous:
                    self.successes = [list(map(float, n)) for n in previous["successes"]]
            self.best_mean_reward = max((float(np.mean(r)) for r in self.results), default=-np.inf)

    def _on_step(self) -> bool:
        if self.model.num_timesteps < self.next_eval:
            return True
        self.next_eval += self.eval_freq
        return self.evaluate()

    def evaluate(self) -> bool:
        """Run one evaluation now. :return: whether training should go on."""
        sync_envs_normalization(self.training_env, self.eval_env)
        successes: list[float] = []
        rewards, lengths = evaluate_episodes(
            self.model, self.eval_env, self.n_episodes, self.deterministic, successes=successes
        )
        if successes:
            self.successes.append(successes)
            self.logger.record("eval/success_rate", float(np.mean(successes)))
        mean_reward = float(np.mean(rewards))
        self.last_mean_reward = mean_reward
        self.logger.record("eval/mean_reward", mean_reward)
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        self.timesteps.append(self.model.num_timesteps)
        self.results.append(rewards)
        self.lengths.append(lengths)
        if self.run_dir is not None:
            check_run_folder(self.run_dir)  # never recreate a deleted run folder
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
        extra = {}
        if self.successes and len(self.successes) == len(self.timesteps):
            extra["successes"] = np.asarray(self.successes)
        np.savez(
            buffer,
            timesteps=np.asarray(self.timesteps),
            results=np.asarray(self.results),
            ep_lengths=np.asarray(self.lengths),
            **extra,
        )
        write_bytes(self.run_dir / "evaluations.npz", buffer.getvalue())


class CheckpointCallback(BaseCallback):
    """Write a complete checkpoint every ``save_freq`` total env steps, keeping the newest ``keep``.

    :param run_dir: the run folder.
    :param save_freq: total env steps between checkpoints.
    :param report: where to print each checkpoint's size.
    :param on_checkpoint: called with each new checkpoint folder (e.g. to refresh train.json).
    :param keep: checkpoints to keep (0: all); see :func:`prune_checkpoints`.
    :param keep_replay_buffers: keep the replay buffers of older checkpoints too.
    """

    def __init__(
        self,
        run_dir: Path,
        save_freq: int,
        report: Callable[[str], None] | None = None,
        on_checkpoint: Callable[[Path], None] | None = None,
        keep: int = 0,
        keep_replay_buffers: bool = False,
    ):
        super().__init__()
        self.run_dir = run_dir
        self.save_freq = save_freq
        self.report = report
        self.on_checkpoint = on_checkpoint
        self.keep = keep
        self.keep_replay_buffers = keep_replay_buffers
        self.next_save = 0

    def _on_training_start(self) -> None:
        self.next_save = (self.model.num_timesteps // self.save_freq + 1) * self.save_freq

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self.next_save:
            self.next_save += self.save_freq
            check_run_folder(self.run_dir)
            folder, _ = write_checkpoint(self.model, self.run_dir)
            if self.report is not None:
                self.report(describe_checkpoint(folder))
            prune_checkpoints(self.run_dir, self.keep, self.keep_replay_buffers)
            if self.on_checkpoint is not None:
                self.on_checkpoint(folder)
        return True


class RunFolderGuardCallback(BaseCallback):
    """Stop training when its run folder is deleted, instead of recreating parts of it.

    Checked at most once per ``interval_s`` seconds, at the end of a rollout.
    """

    def __init__(self, run_dir: Path, interval_s: float = 1.0):
        super().__init__()
        self.run_dir = run_dir
        self.interval_s = interval_s
        self.next_check = 0.0

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        now = time.monotonic()
        if now >= self.next_check:
            self.next_check = now + self.interval_s
            check_run_folder(self.run_dir)


class FirstStepCallback(BaseCallback):
    """Records whether the first env step of this learning segment has completed.

    Until it has, an exception comes from the config (env, wrapper, network), not from training.
    """

    def __init__(self) -> None:
        super().__init__()
        self.done = False

    def _on_step(self) -> bool:
        self.done = True
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
