"""Hub sharing: ``rltool package``, ``push`` and ``pull`` against a local stand-in for the Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rltool.cli.main import app

pytest.importorskip("huggingface_hub")

from hubserver import HubServer  # noqa: E402 - tests/ helper

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hf_rltool_test_secret_0123456789"


def train_cartpole(folder: Path, extra: str = "", steps: int = 256) -> Path:
    """Train a tiny PPO CartPole run through the CLI. :return: its run folder."""
    config = folder / "cartpole.yaml"
    config.write_text(
        "env: CartPole-v1\nalgo: ppo\nseed: 0\nn_timesteps: "
        f"{steps}\npolicy: MlpPolicy\nn_steps: 64\nbatch_size: 32\nn_epochs: 1\n"
        f"policy_kwargs: dict(net_arch=[16, 16])\n{extra}"
    )
    result = runner.invoke(
        app,
        [
            "train",
            str(config),
            "-f",
            str(folder / "models"),
            "--eval-freq",
            "0",
            "--no-progress",
            "--no-tensorboard",
        ],
    )
    assert result.exit_code == 0, result.output
    return folder / "models" / "ppo-CartPole-v1" / "run-1"


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_cartpole(tmp_path_factory.mktemp("train"))


@pytest.fixture()
def hub(tmp_path: Path) -> Iterator[HubServer]:
    server = HubServer(tmp_path / "hub-server").start()
    yield server
    server.stop()


def rltool(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m rltool`` in a fresh process (huggingface_hub reads HF_ENDPOINT at import)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rltool", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )


def hub_env(server: HubServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "HF_ENDPOINT": server.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_TOKEN": TOKEN,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        **extra,
    }


def test_package_writes_the_hub_layout(cartpole_run: Path, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard
    from stable_baselines3 import PPO

    from rltool.safe_load import load_model

    output = tmp_path / "package"
    result = runner.invoke(
        app,
        ["package", str(cartpole_run), "-o", str(output), "--eval-episodes", "3", "--video-length", "20",
         "--repo-id", "me/ppo-CartPole-v1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    names = {p.name for p in output.iterdir()}
    assert names == {
        "ppo-CartPole-v1.zip", "config.yml", "args.yml", "env_kwargs.yml", "results.json", "replay.mp4", "README.md"
    }  # fmt: skip
    assert not list(tmp_path.glob(".package.partial-*"))

    results = json.loads((output / "results.json").read_text())
    assert results["n_eval_episodes"] == 3 and results["is_deterministic"] is True
    card = ModelCard.load(output / "README.md")
    (evaluation,) = card.data.eval_results
    assert evaluation.metric_type == "mean_reward"
    assert evaluation.metric_value == f"{results['mean_reward']:.2f} +/- {results['std_reward']:.2f}"
    assert evaluation.dataset_name == "CartPole-v1"
    assert card.data.library_name == "stable-baselines3"
    assert "rltool pull me/ppo-CartPole-v1" in card.text
    assert "n_steps" in card.text and "batch_size" in card.text  # the hyperparameters

    plain = PPO.load(output / "ppo-CartPole-v1.zip", device="cpu")
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    safe = load_model(
        output / "ppo-CartPole-v1.zip",
        PPO,
        observation_space=env.observation_space,
        action_space=env.action_space,
        extra_custom_objects={"policy_kwargs": {"net_arch": [16, 16]}},
    )
    observation, _ = env.reset(seed=1)
    assert (
        plain.predict(observation, deterministic=True)[0] == safe.predict(observation, deterministic=True)[0]
    )

    # the zoo reads config.yml with its own (unsafe) loader: the file is in the form it writes
    import yaml

    zoo_view = yaml.load((output / "config.yml").read_text(), Loader=yaml.UnsafeLoader)  # noqa: S506
    assert zoo_view["n_steps"] == 64 and zoo_view["policy"] == "MlpPolicy"


def test_package_refuses_a_non_empty_output(cartpole_run: Path, tmp_path: Path) -> None:
    output = tmp_path / "package"
    output.mkdir()
    (output / "mine.txt").write_text("keep")
    result = runner.invoke(app, ["package", str(cartpole_run), "-o", str(output), "--video-length", "0"])
    assert result.exit_code == 2
    assert "already exists and is not empty" in result.output
    assert [p.name for p in output.iterdir()] == ["mine.txt"]


def test_package_of_a_normalized_run_carries_its_statistics(tmp_path: Path) -> None:
    run_dir = train_cartpole(tmp_path, "normalize: true\n", steps=128)
    output = tmp_path / "package"
    result = runner.invoke(
        app, ["package", str(run_dir), "-o", str(output), "--eval-episodes", "1", "--video-length", "0"]
    )
    assert result.exit_code == 0, result.output
    assert (output / "vec_normalize.pkl").read_bytes() == (run_dir / "vecnormalize.pkl").read_bytes()
    assert not (output / "replay.mp4").exists()


def test_push_uploads_through_huggingface_hub_without_leaking_the_token(
    cartpole_run: Path, hub: HubServer, tmp_path: Path
) -> None:
    result = rltool(
        "push", str(cartpole_run), "--repo-id", "me/ppo-CartPole-v1", "--eval-episodes", "2", "--video-length", "10",
        env=hub_env(hub, tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "pushed:" in result.stdout
    (commit,) = hub.commits
    assert commit["repo"] == "me/ppo-CartPole-v1"
    assert set(commit["files"]) >= {
        "ppo-CartPole-v1.zip",
        "config.yml",
        "results.json",
        "README.md",
        "replay.mp4",
    }
    # the token came from huggingface_hub's usual place and went only into the Authorization header
    assert {auth for _, _, auth in hub.requests} == {f"Bearer {TOKEN}"}
    assert TOKEN not in result.stdout + result.stderr
    assert not any(TOKEN.encode() in content for content in commit["files"].values())
    assert not list(tmp_path.rglob("*rltool-push-*"))


def test_push_dry_run_uploads_nothing(cartpole_run: Path, hub: HubServer, tmp_path: Path) -> None:
    result = rltool(
        "push", str(cartpole_run), "--repo-id", "me/cartpole", "--dry-run", "--eval-episodes", "1",
        "--video-length", "0", env=hub_env(hub, tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert hub.requests == []
    assert (tmp_path / "hub" / "cartpole" / "README.md").exists()


def test_push_to_a_hub_that_is_down_is_one_line(cartpole_run: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": TOKEN}
    result = rltool(
        "push", str(cartpole_run), "--repo-id", "me/x", "--eval-episodes", "1", "--video-length", "0",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("rltool: error: me/x: cannot reach the Hub")
    assert len(result.stderr.strip().splitlines()) == 1
    assert TOKEN not in result.stderr
