"""Faults a running training meets, tried for real through the CLI: crashes after the start,
signals, a second writer, bounded checkpoint disk, full and read-only disks.

Each case checks what the user sees (one line, the exit code, no traceback) and what is left
on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

REPO = Path(__file__).resolve().parents[1]

ENVS = """\
import time

import gymnasium as gym
import numpy as np


class PlainEnv(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode=None, delay=0.0):
        self.render_mode = render_mode
        self.delay = delay
        self.steps = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        self.steps += 1
        time.sleep(self.delay)
        return np.zeros(4, np.float32), 1.0, self.steps % 20 == 0, False, {}


class LateCrashEnv(PlainEnv):
    def step(self, action):
        if self.steps >= 99:
            raise RuntimeError("sensor unplugged")
        return super().step(action)
"""


def rltool(*args: object, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m rltool ARGS`` in ``cwd`` and wait for it."""
    return subprocess.run(
        [sys.executable, "-m", "rltool", *map(str, args)],
        cwd=cwd,
        env=child_env(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*args: object, cwd: Path) -> subprocess.Popen[str]:
    """Start ``python -m rltool ARGS`` in ``cwd`` without waiting."""
    return subprocess.Popen(
        [sys.executable, "-m", "rltool", *map(str, args)],
        cwd=cwd,
        env=child_env(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def child_env(cwd: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{cwd}", "OMP_NUM_THREADS": "1"}


def error_line(result: subprocess.CompletedProcess[str] | tuple[str, str], code: int, returncode: int) -> str:
    """Assert one ``rltool: error:`` line on stderr, no traceback, exit ``code``; :return: the line."""
    stderr = result.stderr if hasattr(result, "stderr") else result[1]
    assert returncode == code, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rltool: error: "), stderr
    return lines[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "fault_envs.py").write_text(ENVS)
    return tmp_path


def test_crash_after_training_started_gives_one_line_and_error_log(folder: Path) -> None:
    (folder / "late.yaml").write_text(
        "env: fault_envs:LateCrashEnv\nalgo: ppo\nn_timesteps: 512\nn_steps: 32\nbatch_size: 32\n"
    )
    result = rltool("train", "late.yaml", "--no-progress", "--eval-freq", "0", cwd=folder)
    line = error_line(result, 1, result.returncode)
    run = folder / "models" / "ppo-fault_envs_LateCrashEnv" / "run-1"
    assert "training failed at step" in line and "RuntimeError: sensor unplugged" in line, line
    assert f"full traceback in {Path('models/ppo-fault_envs_LateCrashEnv/run-1/error.log')}" in line, line
    log = (run / "error.log").read_text()
    assert log.startswith("Traceback") and "sensor unplugged" in log
    assert json.loads((run / "train.json").read_text())["status"] == "failed"


def wait_for(predicate, process: subprocess.Popen[str], timeout: float = 120) -> None:
    """Poll ``predicate`` until it holds; fail if ``process`` ends first or time runs out."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            pytest.fail(f"process ended early: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("timed out")
        time.sleep(0.1)


SLOW_CONFIG = (
    "env: fault_envs:PlainEnv\nalgo: ppo\nn_timesteps: 100000\nn_steps: 32\nbatch_size: 32\n"
    "env_kwargs:\n  delay: 0.002\n"
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_stop_signal_saves_like_ctrl_c(folder: Path, signum: int) -> None:
    (folder / "slow.yaml").write_text(SLOW_CONFIG)
    run = folder / "models" / "ppo-fault_envs_PlainEnv" / "run-1"
    process = start(
        "train", "slow.yaml", "--no-progress", "--eval-freq", "0", "--save-freq", "64", cwd=folder
    )
    wait_for(lambda: (run / "checkpoints").is_dir() and any((run / "checkpoints").glob("step-*")), process)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr, stderr
    assert "resume with: rltool train --resume" in stdout
    info = json.loads((run / "train.json").read_text())
    assert info["status"] == "interrupted"
    assert (run / "model.zip").is_file()
    steps = sorted(int(p.name[5:]) for p in (run / "checkpoints").glob("step-*"))
    assert steps[-1] == info["num_timesteps"]


def test_stop_signal_to_seeds_parent_saves_every_seed(folder: Path) -> None:
    (folder / "slow.yaml").write_text(SLOW_CONFIG)
    runs = folder / "models" / "ppo-fault_envs_PlainEnv"
    process = start(
        "train", "slow.yaml", "--seeds", "0,1", "--jobs", "2", "--no-progress", "--eval-freq", "0", cwd=folder
    )
    wait_for(lambda: len(list(runs.glob("run-*/monitor/*.csv"))) >= 2, process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    for seed_run in (runs / "run-1", runs / "run-2"):
        assert json.loads((seed_run / "train.json").read_text())["status"] == "interrupted", stdout
        assert (seed_run / "model.zip").is_file()


def interrupted_run(folder: Path) -> Path:
    """:return: a run of the slow config stopped by SIGTERM after its first checkpoint (much budget left)."""
    (folder / "slow.yaml").write_text(SLOW_CONFIG)
    run = folder / "models" / "ppo-fault_envs_PlainEnv" / "run-1"
    process = start(
        "train", "slow.yaml", "--no-progress", "--eval-freq", "0", "--save-freq", "64", cwd=folder
    )
    wait_for(lambda: any((run / "checkpoints").glob("step-*")), process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stdout + stderr
    return run


def test_resume_while_the_original_trains_is_refused_naming_it(folder: Path) -> None:
    (folder / "slow.yaml").write_text(SLOW_CONFIG)
    run = folder / "models" / "ppo-fault_envs_PlainEnv" / "run-1"
    original = start(
        "train", "slow.yaml", "--no-progress", "--eval-freq", "0", "--save-freq", "64", cwd=folder
    )
    try:
        wait_for(lambda: any((run / "checkpoints").glob("step-*")), original)
        before = sorted(p.name for p in (run / "monitor").iterdir())
        second = rltool("train", "--resume", run, "--no-progress", cwd=folder)
        line = error_line(second, 2, second.returncode)
        assert f"another writer holds it: pid {original.pid} (rltool train slow.yaml" in line, line
        assert sorted(p.name for p in (run / "monitor").iterdir()) == before  # no second Monitor segment
    finally:
        original.send_signal(signal.SIGTERM)
        out, err = original.communicate(timeout=120)
    assert original.returncode == 128 + signal.SIGTERM, out + err
    assert json.loads((run / "train.json").read_text())["pid"] == original.pid


def test_two_concurrent_resumes_one_refused_and_no_stale_lock_after_kill_9(folder: Path) -> None:
    run = interrupted_run(folder)
    resumes = [
        start("train", "--resume", run, "--no-progress", "--eval-freq", "0", cwd=folder) for _ in range(2)
    ]
    try:
        wait_for(lambda: any(p.poll() is not None for p in resumes), resumes[0], timeout=120)
    except BaseException:
        for process in resumes:
            process.kill()
        raise
    refused = next(p for p in resumes if p.poll() is not None)
    winner = next(p for p in resumes if p is not refused)
    line = error_line(refused.communicate(timeout=60), 2, refused.returncode)
    assert f"another writer holds it: pid {winner.pid} (rltool train --resume" in line, line
    winner.kill()  # kill -9: the lock dies with its process
    winner.communicate(timeout=60)
    segments = set((run / "monitor").glob("train-seg*-0.monitor.csv"))
    third = start("train", "--resume", run, "--no-progress", "--eval-freq", "0", cwd=folder)

    def third_learns() -> bool:  # its Monitor file has a finished episode (2 header lines + 1)
        new = set((run / "monitor").glob("train-seg*-0.monitor.csv")) - segments
        return any(len(path.read_text().splitlines()) > 2 for path in new)

    wait_for(third_learns, third)
    third.send_signal(signal.SIGTERM)
    stdout, stderr = third.communicate(timeout=120)
    assert third.returncode == 128 + signal.SIGTERM, stderr
    assert "resuming" in stdout


def test_checkpoints_are_pruned_to_the_newest_k_with_one_replay_buffer_and_resume(folder: Path) -> None:
    (folder / "dqn.yaml").write_text(
        "env: CartPole-v1\nalgo: dqn\nseed: 0\nn_timesteps: 600\nbuffer_size: 2000\nlearning_starts: 100\n"
    )
    common = ["--no-progress", "--eval-freq", "0", "--no-tensorboard", "--save-freq", "100"]
    first = rltool("train", "dqn.yaml", *common, "--keep-checkpoints", "2", cwd=folder)
    assert first.returncode == 0, first.stderr
    run = folder / "models" / "dqn-CartPole-v1" / "run-1"
    checkpoints = sorted((run / "checkpoints").iterdir())
    assert [p.name for p in checkpoints] == ["step-000000000500", "step-000000000600"]
    assert [p.name for p in (run / "checkpoints").glob("*/replay_buffer.pkl")] == ["replay_buffer.pkl"]
    assert (checkpoints[-1] / "replay_buffer.pkl").is_file()
    assert first.stdout.count("checkpoint step-") >= 6 and " MiB (replay buffer " in first.stdout
    recorded = json.loads((run / "train.json").read_text())["checkpoints"]
    assert [entry["name"] for entry in recorded] == [p.name for p in checkpoints]
    assert all(entry["bytes"] > 1000 for entry in recorded)

    resumed = rltool("train", "--resume", run, "-n", "800", *common[:-2], "--save-freq", "100", cwd=folder)
    assert resumed.returncode == 0, resumed.stderr
    assert "from checkpoint step-000000000600" in resumed.stdout and "replay buffer: " in resumed.stdout
    assert json.loads((run / "train.json").read_text())["num_timesteps"] == 800
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert len(names) == 3 and names[-1] == "step-000000000800"  # the default keeps 3
    assert len(list((run / "checkpoints").glob("*/replay_buffer.pkl"))) == 1


def leftovers(run: Path) -> list[Path]:
    """:return: temporary files and staging folders of interrupted writes under ``run``."""
    return [path for path in run.rglob(".*") if path.name != ".rltool.lock"]


@pytest.fixture
def tmpfs(folder: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs mounted inside ``folder`` (root only), unmounted afterwards."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = folder / "mnt"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        (mount / "fault_envs.py").write_text(ENVS)
        yield mount
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], capture_output=True)
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(disk: Path) -> None:
    """Write a file on ``disk`` until it is full."""
    with open(disk / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 2**20)
                filler.flush()
        except OSError:
            pass


def test_full_disk_ends_with_one_line_naming_the_last_complete_checkpoint(tmpfs: Path) -> None:
    (tmpfs / "slow.yaml").write_text(SLOW_CONFIG)
    run = tmpfs / "models" / "ppo-fault_envs_PlainEnv" / "run-1"
    process = start("train", "slow.yaml", "--no-progress", "--eval-freq", "0", "--save-freq", "64", cwd=tmpfs)
    wait_for(lambda: any((run / "checkpoints").glob("step-*")), process)
    fill(tmpfs)
    stdout, stderr = process.communicate(timeout=120)
    line = error_line((stdout, stderr), 1, process.returncode)
    assert "No space left on device; training stopped at step" in line, line
    kept = line.split("the last complete checkpoint is ")[1].split()[0]
    assert (run / "checkpoints" / kept / "model.zip").is_file()
    assert leftovers(run) == []
    (tmpfs / "filler").unlink()  # with room again, the run resumes from what was kept
    resumed = start("train", "--resume", run, "--no-progress", "--eval-freq", "0", cwd=tmpfs)
    segment = run / "monitor" / "train-seg2-0.monitor.csv"
    wait_for(lambda: segment.exists() and len(segment.read_text().splitlines()) > 2, resumed)
    resumed.send_signal(signal.SIGTERM)
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 128 + signal.SIGTERM and f"from checkpoint {kept}" in stdout, stderr


def test_read_only_disk_refuses_resume_and_train_in_one_line(tmpfs: Path) -> None:
    (tmpfs / "tiny.yaml").write_text(
        "env: fault_envs:PlainEnv\nalgo: ppo\nn_timesteps: 64\nn_steps: 32\nbatch_size: 32\n"
    )
    done = rltool("train", "tiny.yaml", "--no-progress", "--eval-freq", "0", cwd=tmpfs)
    assert done.returncode == 0, done.stderr
    run = tmpfs / "models" / "ppo-fault_envs_PlainEnv" / "run-1"
    remount = subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], capture_output=True, text=True)
    if remount.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
    before = snapshot(tmpfs)
    resumed = rltool("train", "--resume", run, "-n", "128", "--no-progress", cwd=tmpfs)
    line = error_line(resumed, 2, resumed.returncode)
    assert f"{Path('models/ppo-fault_envs_PlainEnv/run-1')}: cannot write (Read-only file system)" in line
    again = rltool("train", "tiny.yaml", "--no-progress", cwd=tmpfs)
    assert "models/ppo-fault_envs_PlainEnv: not writable" in error_line(again, 2, again.returncode)
    assert snapshot(tmpfs) == before


def test_run_folder_deleted_while_training_ends_with_one_line(folder: Path) -> None:
    import shutil

    (folder / "slow.yaml").write_text(SLOW_CONFIG)
    run = folder / "models" / "ppo-fault_envs_PlainEnv" / "run-1"
    process = start(
        "train", "slow.yaml", "--no-progress", "--eval-freq", "0", "--save-freq", "64", cwd=folder
    )
    wait_for(lambda: any((run / "checkpoints").glob("step-*")), process)
    shutil.rmtree(run)
    stdout, stderr = process.communicate(timeout=120)
    line = error_line((stdout, stderr), 1, process.returncode)
    assert f"the run folder {Path('models/ppo-fault_envs_PlainEnv/run-1')} was deleted" in line, line
    assert not run.exists()  # not recreated


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """:return: every file under ``folder`` with its mtime and size."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def cli_trained_cartpole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra_config: str, *options: str
) -> tuple[Any, Any]:
    """Train a 256-step CartPole PPO in-process from ``tmp_path`` (the working folder).

    :return: the CliRunner and the app, for the test's further commands.
    """
    from typer.testing import CliRunner

    from rltool.cli.main import app

    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(
        "env: CartPole-v1\nalgo: ppo\nseed: 1\nn_timesteps: 256\nn_steps: 64\nbatch_size: 64\n" + extra_config
    )
    trained = runner.invoke(app, ["train", "c.yaml", "--no-progress", "--no-tensorboard", *options])
    assert trained.exit_code == 0, trained.output
    return runner, app


def test_every_path_to_a_model_gives_the_same_evaluation_and_checkpoints_stand_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    runner, app = cli_trained_cartpole(
        tmp_path, monkeypatch, "normalize: true\n", "--eval-freq", "128", "--save-freq", "128"
    )
    run = "models/ppo-CartPole-v1/run-1"

    def rewards(*target: str) -> list[float]:
        result = runner.invoke(app, ["eval", *target, "--episodes", "2", "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["episode_rewards"]

    final = rewards(run)
    assert rewards(f"{run}/model.zip") == final
    assert rewards(f"{run}/model.zip", "--env", "CartPole-v1") == final  # same env: the run's config
    assert rewards("c.yaml") == final
    assert rewards(f"{run}/best_model.zip") == rewards(run, "--best")

    # a run killed before its first save: only its checkpoints remain
    shutil.copytree(run, "models/ppo-CartPole-v1/run-2")
    killed = Path("models/ppo-CartPole-v1/run-2")
    for name in ("model.zip", "best_model.zip", "vecnormalize.pkl", "train.json"):
        (killed / name).unlink()
    newest = sorted((killed / "checkpoints").iterdir())[-1]
    result = runner.invoke(app, ["eval", str(killed), "--episodes", "2"])
    assert result.exit_code == 0 and f"model: {newest / 'model.zip'}" in result.stdout, result.output
    video = runner.invoke(app, ["record-video", str(killed), "--length", "20", "-o", "killed.mp4"])
    assert video.exit_code == 0 and Path("killed.mp4").stat().st_size > 0, video.output


def test_plot_and_report_skip_runs_without_episodes_and_list_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    runner, app = cli_trained_cartpole(tmp_path, monkeypatch, "", "--eval-freq", "0", "--seed", "1")
    runs = Path("models/ppo-CartPole-v1")
    shutil.copytree(runs / "run-1", runs / "run-2")  # a crashed run: no finished episode, no final eval
    for monitor in (runs / "run-2" / "monitor").glob("*.csv"):
        monitor.write_text(monitor.read_text().splitlines()[0] + "\nr,l,t\n")
    info = json.loads((runs / "run-2" / "train.json").read_text())
    (runs / "run-2" / "train.json").write_text(json.dumps({**info, "final_eval": None, "seed": 2}))
    shutil.copytree(runs / "run-2", runs / "run-3")  # a broken monitor file
    (runs / "run-3" / "monitor" / "train-0.monitor.csv").write_bytes(b"\x00\xff garbage")
    (runs / "run-3" / "train.json").write_text(json.dumps({**info, "final_eval": None, "seed": 3}))

    plotted = runner.invoke(app, ["plot", str(runs), "-o", "p.png"])
    assert plotted.exit_code == 0, plotted.output
    assert Path("p.png").stat().st_size > 0 and "1 run(s)" in plotted.stdout
    assert "note: skipped models/ppo-CartPole-v1/run-2" in plotted.stdout, plotted.stdout
    assert "note: skipped models/ppo-CartPole-v1/run-3" in plotted.stdout, plotted.stdout

    reported = runner.invoke(app, ["report", str(runs), "--json"])
    assert reported.exit_code == 0, reported.output
    rows = json.loads(reported.stdout)
    assert [row["n_seeds"] for row in rows] == [1]
    assert "note: skipped models/ppo-CartPole-v1/run-2" in reported.stderr
    assert "note: skipped models/ppo-CartPole-v1/run-3" in reported.stderr


def test_a_refused_writer_names_a_holder_that_has_not_yet_written_its_pid(tmp_path: Path) -> None:
    """The holder writes its pid just after it takes the lock; a writer refused in that gap
    waits for the pid instead of saying "another process" (a CI failure once showed the gap)."""
    import fcntl
    import threading

    from rltool.runlock import LOCK_NAME, RunLockedError, hold_run_lock

    lock_file = (tmp_path / LOCK_NAME).open("w")
    fcntl.flock(lock_file, fcntl.LOCK_EX)  # locked, still empty

    def write_holder() -> None:
        lock_file.write("4242\nrltool train --resume run-1\n")
        lock_file.flush()

    late = threading.Timer(0.3, write_holder)
    late.start()
    try:
        with (
            pytest.raises(RunLockedError, match=r"pid 4242 \(rltool train --resume run-1\)"),
            hold_run_lock(tmp_path),
        ):
            pass
    finally:
        late.join()
        lock_file.close()
    with hold_run_lock(tmp_path):  # the lock went with its holder
        assert (tmp_path / LOCK_NAME).read_text().startswith(f"{os.getpid()}\n")


STOP_INSIDE_A_WRITE = """
import os
import signal
import time

from stable_baselines3.common.callbacks import BaseCallback


class StopInsideAWrite(BaseCallback):
    \"\"\"At step 64, a stop signal lands while a library writes, and the library's clean-up
    turns the KeyboardInterrupt into its own error (as zipfile does for a half-written entry).\"\"\"

    def __init__(self, signum):
        super().__init__()
        self.signum = signum

    def _on_step(self):
        if self.num_timesteps >= 64:
            try:
                os.kill(os.getpid(), self.signum)
                time.sleep(5)
            except KeyboardInterrupt:
                raise ValueError("Can't close the ZIP file while there is an open writing handle on it")
        return True
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "ctrl-c"])
def test_a_stop_that_a_library_turns_into_its_own_error_still_saves_as_a_stop(
    folder: Path, signum: int
) -> None:
    (folder / "stop_bits.py").write_text(STOP_INSIDE_A_WRITE)
    (folder / "stop.yaml").write_text(
        SLOW_CONFIG + f"callback:\n  - stop_bits.StopInsideAWrite: {{signum: {int(signum)}}}\n"
    )
    result = rltool(
        "train", "stop.yaml", "--no-progress", "--eval-freq", "0", "--allow-module", "stop_bits", cwd=folder
    )
    assert result.returncode == 128 + signum, result.stdout + result.stderr
    assert "interrupted at step" in result.stdout and "Traceback" not in result.stderr, result.stderr
    run = folder / "models" / "ppo-fault_envs_PlainEnv" / "run-1"
    assert json.loads((run / "train.json").read_text())["status"] == "interrupted"
    assert (run / "model.zip").is_file() and list((run / "checkpoints").glob("step-*"))
