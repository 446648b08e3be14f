"""``rltool train --track wandb|mlflow``: offline W&B, a real local MLflow server, and one that dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """env: CartPole-v1
algo: ppo
seed: 0
n_timesteps: {steps}
policy: MlpPolicy
n_steps: 64
batch_size: 32
n_epochs: 1
policy_kwargs: dict(net_arch=[16, 16])
"""


def rltool_command(tmp_path: Path, steps: int, *track: str) -> list[str]:
    config = tmp_path / "cartpole.yaml"
    config.write_text(CONFIG.format(steps=steps))
    return [sys.executable, "-m", "rltool", "train", str(config), "-f", str(tmp_path / "models"),
            "--eval-freq", "256", "--eval-episodes", "2", "--no-progress", *track]  # fmt: skip


def run_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def test_wandb_offline_run_holds_config_and_scalars(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    command = rltool_command(
        tmp_path, 512, "--track", "wandb", "--track-project", "p", "--track-tag", "smoke"
    )
    env = run_env(
        WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(tmp_path), WANDB_CACHE_DIR=str(tmp_path)
    )
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "tracking stopped" not in result.stderr
    run_dir = tmp_path / "models" / "ppo-CartPole-v1" / "run-1"
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    config = (offline / "files" / "config.yaml").read_text()
    assert "n_steps" in config and "CartPole-v1" in config  # the hyperparameters
    (events,) = offline.glob("run-*.wandb")
    data = events.read_bytes()
    for scalar in (b"rollout/ep_rew_mean", b"train/value_loss", b"eval/mean_reward", b"global_step"):
        assert scalar in data, scalar
    # the summary (train.json fields, final evaluation) and the run's files are in the offline run too
    for field in (b"final_eval/mean_reward", b"steps_per_s", b"wall_time_s"):
        assert field in data, field
    assert (offline / "files" / "train.json").read_bytes() == (run_dir / "train.json").read_bytes()


def test_each_seed_of_seeds_is_its_own_wandb_run(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    command = rltool_command(
        tmp_path, 256, "--seeds", "0,1", "--jobs", "1", "--track", "wandb", "--track-run-name", "sweep"
    )
    env = run_env(
        WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(tmp_path), WANDB_CACHE_DIR=str(tmp_path)
    )
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "tracking stopped" not in result.stderr + result.stdout
    for seed in (0, 1):
        run_dir = tmp_path / "models" / "ppo-CartPole-v1" / f"run-{seed + 1}"
        assert json.loads((run_dir / "train.json").read_text())["seed"] == seed
        (offline,) = (run_dir / "wandb").glob("offline-run-*")
        data = next(offline.glob("run-*.wandb")).read_bytes()
        assert f"sweep-seed{seed}".encode() in data and f"seed={seed}".encode() in data
        assert (offline / "files" / "train.json").read_bytes() == (run_dir / "train.json").read_bytes()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite backend; killed at the end (or by a test)."""
    pytest.importorskip("mlflow")
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    process = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--default-artifact-root", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # first start migrates the database: slow on a busy machine
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:  # noqa: S310 - local
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("mlflow server did not start")
        time.sleep(1)
    yield url, process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def only_run(url: str, experiment: str):
    from mlflow import MlflowClient

    client = MlflowClient(url)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id]) if found else []
    return client, runs


@pytest.mark.slow  # the server's first start migrates its database (~1 min here)
def test_mlflow_params_and_metrics_reach_the_server(mlflow_server, tmp_path: Path) -> None:
    url, _ = mlflow_server
    command = rltool_command(
        tmp_path, 512, "--track", "mlflow", "--tracking-uri", url, "--track-project", "cartpole",
        "--track-run-name", "first", "--track-tag", "team=rl",
    )  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=run_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "tracking stopped" not in result.stderr
    client, runs = only_run(url, "cartpole")
    (run,) = runs
    assert run.info.run_name == "first" and run.info.status == "FINISHED"
    assert run.data.tags["team"] == "rl"
    assert run.data.params["n_steps"] == "64" and run.data.params["env"] == "CartPole-v1"
    train_json = json.loads((tmp_path / "models" / "ppo-CartPole-v1" / "run-1" / "train.json").read_text())
    assert run.data.metrics["num_timesteps"] == 512
    assert run.data.metrics["final_eval/mean_reward"] == pytest.approx(
        train_json["final_eval"]["mean_reward"]
    )
    history = client.get_metric_history(run.info.run_id, "train/value_loss")
    assert len(history) >= 3 and sorted(m.step for m in history) == [m.step for m in history]
    assert client.get_metric_history(run.info.run_id, "eval/mean_reward")
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"train.json", "config.yaml"}


@pytest.mark.slow  # the server's first start migrates its database (~1 min here)
def test_mlflow_server_dying_mid_run_does_not_stop_training(mlflow_server, tmp_path: Path) -> None:
    """Runs last in this module: it kills the shared server."""
    url, server = mlflow_server
    command = rltool_command(
        tmp_path, 6000, "--track", "mlflow", "--tracking-uri", url, "--track-project", "dies"
    )
    training = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env()
    )
    try:
        deadline = time.monotonic() + 180
        while True:  # wait until the run has logged a metric, then kill the server under it
            _, runs = only_run(url, "dies")
            if runs and runs[0].data.metrics:
                break
            assert training.poll() is None, "training ended before the server could be killed"
            assert time.monotonic() < deadline, "no metric reached the server"
            time.sleep(0.5)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        stdout, stderr = training.communicate(timeout=300)
    finally:
        if training.poll() is None:
            training.kill()
    assert training.returncode == 0, stderr
    assert stderr.count("tracking stopped") == 1
    (line,) = [line for line in stderr.splitlines() if "tracking stopped" in line]
    assert line.startswith("rltool: warning: mlflow tracking stopped") and line.endswith("training goes on")
    run_dir = tmp_path / "models" / "ppo-CartPole-v1" / "run-1"
    train_json = json.loads((run_dir / "train.json").read_text())
    assert train_json["status"] == "finished" and train_json["num_timesteps"] == 6016  # whole rollouts of 64
    from stable_baselines3 import PPO

    assert PPO.load(run_dir / "model.zip", device="cpu").num_timesteps == 6016
