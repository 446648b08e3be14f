"""Crash safety for real: kill -9 or Ctrl-C a training subprocess, then ``--resume`` it.

The bound on the budget: SB3 only checks the total between rollouts, so a finished run has
``0 <= num_timesteps - n_timesteps < R`` where R is one rollout: ``n_steps * n_envs``
(on-policy) or ``train_freq * n_envs`` (off-policy, train_freq in steps); as num_timesteps
moves in steps of n_envs, the overshoot is at most ``R - n_envs`` when n_envs divides
n_timesteps. Resumed runs keep the bound, although they restart from a checkpoint taken
mid-rollout (R counts from the resume point, not from 0).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, unwrap_vec_normalize
from typer.testing import CliRunner

from rltool.algos import algo_class
from rltool.checkpoints import checkpoint_dirs, write_checkpoint
from rltool.cli.main import app
from rltool.config import load_config
from rltool.errors import TrainingDivergedError
from rltool.resume import resume
from rltool.safe_load import load_model, load_replay_buffer, load_vecnormalize
from rltool.train import TrainOptions

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

ROOT = Path(__file__).parent.parent
DEADLINE_S = 180.0  # generous: the subprocess imports torch on a loaded machine
runner = CliRunner()

PPO_TOTAL = 4096


def ppo_config(n_timesteps: int, normalize: bool = True, learning_rate: str = "lin_0.001") -> str:
    return (
        f"env: CartPole-v1\nalgo: ppo\nseed: 1\nn_timesteps: {n_timesteps}\nn_envs: 2\n"
        f"normalize: {str(normalize).lower()}\nn_steps: 64\nbatch_size: 64\nn_epochs: 2\n"
        f"learning_rate: {learning_rate}\nclip_range: lin_0.2\n"
    )


PPO_ROLLOUT = 64 * 2  # n_steps * n_envs

DQN_TOTAL = 4000
DQN_CONFIG = f"""\
env: CartPole-v1
algo: dqn
seed: 1
n_timesteps: {DQN_TOTAL}
n_envs: 2
learning_starts: 200
buffer_size: 5000
batch_size: 32
train_freq: 4
target_update_interval: 100
exploration_fraction: 1.0
exploration_final_eps: 0.05
"""
DQN_ROLLOUT = 4 * 2  # train_freq * n_envs


def invoke(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def write_config(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


@contextlib.contextmanager
def training(cwd: Path, config: Path, *args: object) -> Iterator[subprocess.Popen]:
    """``rltool train CONFIG`` in a subprocess, killed on the way out if still running.

    Output goes to files (a full pipe would block the child).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "rltool", "train", str(config), "--eval-freq", "0", "--no-progress"]
    with open(cwd / "stdout.txt", "w") as stdout, open(cwd / "stderr.txt", "w") as stderr:
        process = subprocess.Popen(
            command + [str(a) for a in args], cwd=cwd, env=env, stdout=stdout, stderr=stderr
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_until(process: subprocess.Popen, condition: Callable[[], bool], what: str, cwd: Path) -> None:
    """Poll ``condition`` until it holds; fail if the process ends first or the deadline passes."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if process.poll() is not None:
            log = (cwd / "stderr.txt").read_text()[-2000:]
            pytest.fail(f"training ended (exit {process.returncode}) before {what}:\n{log}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {DEADLINE_S:.0f} s")
        time.sleep(0.05)


def run_folder(cwd: Path, algo: str) -> Path:
    return cwd / "models" / f"{algo}-CartPole-v1" / "run-1"


def kill_after_checkpoints(cwd: Path, config: Path, algo: str, count: int, save_freq: int) -> Path:
    run_dir = run_folder(cwd, algo)
    with training(cwd, config, "--save-freq", save_freq) as process:
        wait_until(process, lambda: len(checkpoint_dirs(run_dir)) >= count, f"{count} checkpoints", cwd)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=DEADLINE_S) == -signal.SIGKILL
    return run_dir


class Recorder(BaseCallback):
    """Records what the resumed model starts with: steps, schedules' values, weights, statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.start: dict[str, Any] = {}
        self.steps: list[tuple[int, float | None]] = []
        self.applied_lr: list[tuple[int, float]] = []

    def _on_training_start(self) -> None:
        model = self.model
        progress = 1.0 - model.num_timesteps / model._total_timesteps
        normalize = unwrap_vec_normalize(self.training_env)
        buffer = getattr(model, "replay_buffer", None)
        self.start = {
            "num_timesteps": model.num_timesteps,
            "total_timesteps": model._total_timesteps,
            "learning_rate": model.lr_schedule(progress),
            "clip_range": model.clip_range(progress) if hasattr(model, "clip_range") else None,
            "weights": {k: v.clone() for k, v in model.policy.state_dict().items()},
            "obs_count": None if normalize is None else float(normalize.obs_rms.count),
            "buffer_pos": None if buffer is None else int(buffer.pos),
        }

    def _on_rollout_start(self) -> None:
        self.applied_lr.append((self.model.num_timesteps, self.model.policy.optimizer.param_groups[0]["lr"]))

    def _on_step(self) -> bool:
        if len(self.steps) < 2:  # the value the step's action was chosen with
            self.steps.append((self.model.num_timesteps, getattr(self.model, "exploration_rate", None)))
        return True


def resume_in_process(run_dir: Path, save_freq: int) -> tuple[Any, Recorder, list[str]]:
    recorder, lines = Recorder(), []
    options = TrainOptions(eval_freq=0, save_freq=save_freq, progress=False, final_eval_episodes=2)
    result = resume(run_dir, options, report=lines.append, extra_callbacks=[recorder])
    assert result is not None and result.status == "finished", lines
    return result, recorder, lines


def assert_budget(run_dir: Path, algo: type, n_timesteps: int, rollout: int) -> int:
    """The run stopped at the total budget: train.json and model.zip agree, overshoot < one rollout."""
    info = json.loads((run_dir / "train.json").read_text())
    assert info["status"] == "finished"
    env = gym.make("CartPole-v1")
    model = load_model(
        run_dir / "model.zip", algo, observation_space=env.observation_space, action_space=env.action_space
    )
    assert model.num_timesteps == info["num_timesteps"]
    assert n_timesteps <= info["num_timesteps"] < n_timesteps + rollout
    return info["num_timesteps"]


def assert_every_file_loads(run_dir: Path) -> None:
    """Each file of the run folder loads with the safe loaders; no leftovers of a killed writer."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    config = load_config(run_dir / "config.yaml")
    probe = gym.make(config.env)
    spaces = {"observation_space": probe.observation_space, "action_space": probe.action_space}
    algo = algo_class(config.algo)
    seen: set[str] = set()
    for path in sorted(run_dir.rglob("*")):
        if path.is_dir():
            continue
        name = path.name
        assert not name.startswith("."), f"leftover {path}"
        if name.endswith(".zip"):
            load_model(path, algo, **spaces)
        elif name == "vecnormalize.pkl":
            load_vecnormalize(path, DummyVecEnv([lambda: gym.make(config.env)]))
        elif name == "replay_buffer.pkl":
            model = load_model(path.parent / "model.zip", algo, **spaces)
            assert load_replay_buffer(model, path).size() > 0
        elif name == "train.json":
            json.loads(path.read_text())
        elif name == "config.yaml":
            assert load_config(path) == config
        elif name.endswith(".monitor.csv"):
            assert json.loads(path.read_text().splitlines()[0][1:])  # the '#{...}' header
            assert list(pd.read_csv(path, skiprows=1).columns[:3]) == ["r", "l", "t"]
        elif name.startswith("events.out.tfevents"):
            list(EventFileLoader(str(path)).Load())
        elif name == "evaluations.npz":
            np.load(path)
        else:
            pytest.fail(f"unexpected file {path}")
        seen.add(name)
    assert {"model.zip", "config.yaml", "train.json"} <= seen


def assert_logs_continue(run_dir: Path, algo: str) -> None:
    """One TensorBoard folder for the whole run, one more Monitor file set per segment."""
    assert [p.name for p in (run_dir / "tb").iterdir()] == [f"{algo}_1"]
    assert len(list((run_dir / "tb" / f"{algo}_1").iterdir())) == 2
    monitors = sorted(p.name for p in (run_dir / "monitor").glob("train-*.monitor.csv"))
    assert monitors == [
        "train-0.monitor.csv",
        "train-1.monitor.csv",
        "train-seg2-0.monitor.csv",
        "train-seg2-1.monitor.csv",
    ]


def assert_history(run_dir: Path, resumed_at: int) -> None:
    """train.json of the killed run was refreshed at its checkpoints: both segments are recorded."""
    info = json.loads((run_dir / "train.json").read_text())
    first, second = info["segments"]
    assert 0 < first["end"] <= resumed_at == second["start"]
    assert info["wall_time_s"] == pytest.approx(first["wall_time_s"] + second["wall_time_s"], abs=0.01)


def test_killed_ppo_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    config = write_config(tmp_path, "ppo", ppo_config(PPO_TOTAL))
    run_dir = kill_after_checkpoints(tmp_path, config, "ppo", count=2, save_freq=256)
    info = json.loads((run_dir / "train.json").read_text())  # written at a checkpoint, atomically
    assert info["status"] == "running" and info["num_timesteps"] >= 256

    newest = checkpoint_dirs(run_dir)[-1]
    saved = PPO.load(newest / "model.zip", device="cpu")  # our own file: plain SB3, genuine schedules
    steps = saved.num_timesteps
    saved_stats = load_vecnormalize(
        newest / "vecnormalize.pkl", DummyVecEnv([lambda: gym.make("CartPole-v1")])
    )
    result, recorder, lines = resume_in_process(run_dir, save_freq=1024)

    assert f"from checkpoint {newest.name} at step {steps} of {PPO_TOTAL}" in lines[0]
    start = recorder.start
    assert start["num_timesteps"] == steps and start["total_timesteps"] == PPO_TOTAL
    for key, value in saved.policy.state_dict().items():
        assert torch.equal(start["weights"][key], value), key
    # the statistics continue: the env reset at the start of learn() adds its 2 observations
    assert start["obs_count"] == pytest.approx(saved_stats.obs_rms.count + 2) and steps < start["obs_count"]
    # the schedules take up where they were: same value at the checkpoint's progress ...
    progress = 1.0 - steps / PPO_TOTAL
    assert (
        start["learning_rate"]
        == pytest.approx(saved.lr_schedule(progress))
        == pytest.approx(0.001 * progress)
    )
    assert start["clip_range"] == pytest.approx(saved.clip_range(progress))
    # ... and the first update after resuming uses the next rollout's value, below the checkpoint's
    checkpoint_lr = saved.policy.optimizer.param_groups[0]["lr"]  # of the last update before it
    assert recorder.applied_lr[0] == (steps, checkpoint_lr)  # the optimizer state came back
    (_, first_lr) = recorder.applied_lr[1]
    assert first_lr == pytest.approx(0.001 * (1.0 - (steps + PPO_ROLLOUT) / PPO_TOTAL))
    assert 0 < checkpoint_lr - first_lr <= 0.001 * 2 * PPO_ROLLOUT / PPO_TOTAL + 1e-12

    assert result.num_timesteps == assert_budget(run_dir, PPO, PPO_TOTAL, PPO_ROLLOUT)
    assert_history(run_dir, steps)
    assert_logs_continue(run_dir, "ppo")
    assert_every_file_loads(run_dir)


def test_killed_dqn_run_resumes_with_its_replay_buffer_and_exploration(tmp_path: Path) -> None:
    config = write_config(tmp_path, "dqn", DQN_CONFIG)
    run_dir = kill_after_checkpoints(tmp_path, config, "dqn", count=2, save_freq=400)
    assert "replay buffer" in (tmp_path / "stdout.txt").read_text()  # its size is printed

    newest = checkpoint_dirs(run_dir)[-1]
    saved = DQN.load(newest / "model.zip", device="cpu")
    saved.load_replay_buffer(newest / "replay_buffer.pkl")
    steps, final_eps = saved.num_timesteps, 0.05
    assert final_eps < saved.exploration_rate < 1.0  # mid-decay: a restart would show
    result, recorder, lines = resume_in_process(run_dir, save_freq=1000)

    assert any(line.startswith("replay buffer:") for line in lines)
    assert recorder.start["num_timesteps"] == steps and recorder.start["total_timesteps"] == DQN_TOTAL
    assert recorder.start["buffer_pos"] == saved.replay_buffer.pos > 0
    for key, value in saved.policy.state_dict().items():
        assert torch.equal(recorder.start["weights"][key], value), key
    # the first action after resuming uses the checkpoint's exploration rate, the next one
    # the schedule one step further along the same horizon
    (first_step, first_eps), (_, second_eps) = recorder.steps
    assert first_step == steps + 2 and first_eps == saved.exploration_rate
    assert second_eps == pytest.approx(saved.exploration_schedule(1.0 - (steps + 2) / DQN_TOTAL))
    assert 0 < first_eps - second_eps <= (1.0 - final_eps) * 2 * 2 / DQN_TOTAL + 1e-12  # two steps of 2 envs

    assert result.num_timesteps == assert_budget(run_dir, DQN, DQN_TOTAL, DQN_ROLLOUT)
    assert_history(run_dir, steps)
    assert_logs_continue(run_dir, "dqn")
    assert_every_file_loads(run_dir)


def test_ctrl_c_saves_then_resume_finishes_and_extends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # a budget that outlasts the poller's reaction on a busy machine: the run must still be
    # learning when Ctrl-C arrives
    total, extended = 12288, 12800
    config = write_config(tmp_path, "ppo", ppo_config(total, normalize=False))
    run_dir = run_folder(tmp_path, "ppo")
    with training(tmp_path, config, "--save-freq", 256) as process:
        wait_until(process, lambda: len(checkpoint_dirs(run_dir)) >= 1, "a checkpoint", tmp_path)
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert process.wait(timeout=DEADLINE_S) == 130
    assert "interrupted at step" in (tmp_path / "stdout.txt").read_text()
    info = json.loads((run_dir / "train.json").read_text())
    assert info["status"] == "interrupted" and (run_dir / "model.zip").exists()
    assert checkpoint_dirs(run_dir)[-1].name == f"step-{info['num_timesteps']:012d}"

    args = ("train", "--resume", run_dir, "--save-freq", 1024, "--eval-freq", 0, "--no-progress")
    files_before = sorted(p for p in run_dir.rglob("*") if p.is_file())
    result = invoke(*args, "-n", 128)  # a budget the interrupted run has already passed
    assert result.exit_code == 2, result.output
    assert f"--n-timesteps 128: {run_dir} is already at {info['num_timesteps']} steps" in result.stderr
    assert sorted(p for p in run_dir.rglob("*") if p.is_file()) == files_before
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert f"at step {info['num_timesteps']} of {total}" in result.output
    assert_budget(run_dir, PPO, total, PPO_ROLLOUT)

    result = invoke(*args)  # finished: nothing to do
    assert result.exit_code == 0 and "already finished" in result.output, result.output
    result = invoke(*args, "-n", extended)  # a larger budget continues the run
    assert result.exit_code == 0, result.output
    assert_budget(run_dir, PPO, extended, PPO_ROLLOUT)
    assert len(json.loads((run_dir / "train.json").read_text())["segments"]) == 3
    assert load_config(run_dir / "config.yaml").n_timesteps == extended
    assert_every_file_loads(run_dir)


def test_resume_skips_a_checkpoint_that_fails_to_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, "ppo", ppo_config(1024))
    result = invoke("train", config, "--save-freq", 256, "--eval-freq", 0, "--no-progress")
    assert result.exit_code == 0, result.output
    run_dir = run_folder(tmp_path, "ppo")
    *_, previous, newest = checkpoint_dirs(run_dir)
    assert newest.name == f"step-{1024:012d}"  # a finished run's last checkpoint is its final state
    (run_dir / "model.zip").unlink()  # as after a kill -9: only checkpoints to resume from
    model_zip = newest / "model.zip"
    model_zip.write_bytes(model_zip.read_bytes()[: model_zip.stat().st_size // 2])
    # what a kill -9 leaves behind mid-write: never read, cleaned up by resume
    (run_dir / "checkpoints" / ".staging-x1y2").mkdir()
    (run_dir / "checkpoints" / ".staging-x1y2" / "model.zip").write_bytes(b"half")
    (run_dir / ".train.json.k3j4m5n6.tmp.json").write_text("{")

    result = invoke("train", "--resume", run_dir, "-n", 1536, "--eval-freq", 0, "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"skipping checkpoint {newest.name}: {model_zip}: not a valid model zip" in result.output
    assert f"resuming {run_dir} from checkpoint {previous.name} at step 768 of 1536" in result.output
    assert_budget(run_dir, PPO, 1536, PPO_ROLLOUT)
    model_zip.unlink()  # resume leaves the corrupt file alone; the rest must load
    assert_every_file_loads(run_dir)


def test_diverging_run_stops_at_the_step_and_keeps_a_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # learning rate 1e30: the first Adam update moves weights by ~1e30, float32 overflows to inf/NaN
    config = write_config(tmp_path, "ppo", ppo_config(4096, learning_rate="1.0e+30"))
    result = invoke("train", config, "--save-freq", 128, "--eval-freq", 0, "--no-progress")
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rltool: error: training diverged at step "), lines
    step = int(lines[0].split("at step ")[1].split(":")[0])
    assert "Traceback" not in result.output

    run_dir = run_folder(tmp_path, "ppo")
    info = json.loads((run_dir / "train.json").read_text())
    assert info["status"] == "diverged" and info["num_timesteps"] == step
    assert not (run_dir / "model.zip").exists()  # never overwritten with NaN weights
    last = checkpoint_dirs(run_dir)[-1]
    assert int(last.name[5:]) <= step
    env = gym.make("CartPole-v1")
    model = load_model(
        last / "model.zip", PPO, observation_space=env.observation_space, action_space=env.action_space
    )
    assert all(bool(p.isfinite().all()) for p in model.policy.parameters())
    load_vecnormalize(last / "vecnormalize.pkl", DummyVecEnv([lambda: gym.make("CartPole-v1")]))


def test_a_checkpoint_is_replaced_whole_and_never_written_with_nan_weights(tmp_path: Path) -> None:
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, device="cpu", seed=0)
    model.num_timesteps = 64
    first, _ = write_checkpoint(model, tmp_path)
    second, _ = write_checkpoint(model, tmp_path)  # the same step again (Ctrl-C right after a checkpoint)
    assert first == second and sorted(p.name for p in first.iterdir()) == ["model.zip"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [first.name]  # no leftovers

    model.num_timesteps = 96
    with torch.no_grad():
        next(model.policy.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="training diverged at step 96: network weights"):
        write_checkpoint(model, tmp_path)
    assert checkpoint_dirs(tmp_path) == [first]


def test_killed_sbx_run_on_envpool_resumes_to_its_budget(tmp_path: Path) -> None:
    """kill -9 on the fast engines: the newest checkpoint holds SBX's msgpack state and resumes."""
    total = 8192
    text = ppo_config(total) + "backend: sbx\nvec_env: envpool\n"
    config = write_config(tmp_path, "ppo", text)
    run_dir = kill_after_checkpoints(tmp_path, config, "ppo", count=2, save_freq=512)
    newest = checkpoint_dirs(run_dir)[-1]
    import zipfile

    with zipfile.ZipFile(newest / "model.zip") as archive:
        assert "sbx_state.msgpack" in archive.namelist()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    resumed = subprocess.run(
        [sys.executable, "-m", "rltool", "train", "--resume", str(run_dir), "--eval-freq", "0", "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=DEADLINE_S,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"from checkpoint {newest.name}" in resumed.stdout + resumed.stderr
    info = json.loads((run_dir / "train.json").read_text())
    assert info["status"] == "finished" and info["num_timesteps"] >= total
    assert (info["backend"], info["vec_env"]) == ("sbx", "envpool") and len(info["segments"]) == 2
