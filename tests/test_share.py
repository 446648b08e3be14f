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


# ---------------------------------------------------------------------------
# pull: zoo layout, huggingface_sb3 layout, local zoo runs, hostile repos


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real rl-baselines3-zoo run (normalized PPO on Pendulum), written by rl_zoo3.train itself."""
    pytest.importorskip("rl_zoo3")
    folder = tmp_path_factory.mktemp("zoo")
    result = subprocess.run(
        [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", "Pendulum-v1", "-n", "256", "-f", "logs",
         "--eval-freq", "-1", "--seed", "0", "-params", "n_steps:64", "n_envs:2", "normalize:True"],
        cwd=folder, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    run = folder / "logs" / "ppo" / "Pendulum-v1_1"
    assert (run / "Pendulum-v1" / "vecnormalize.pkl").exists()
    return run


def make_repo(server: HubServer, repo_id: str, files: dict[str, bytes | Path]) -> None:
    """Put ``files`` (name -> bytes or a file to copy) in the server's repo folder."""
    folder = server.root / repo_id
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content.read_bytes() if isinstance(content, Path) else content)


@pytest.mark.slow
def test_local_zoo_run_evaluates_with_its_normalization(zoo_run: Path) -> None:
    from rltool.evaluate import resolve_target

    for given in (zoo_run, zoo_run / "Pendulum-v1.zip"):
        target = resolve_target(given)
        assert target.vecnormalize_path == zoo_run / "Pendulum-v1" / "vecnormalize.pkl"
        assert target.config.normalize and target.config.algo == "ppo" and target.config.env == "Pendulum-v1"
        assert target.config.algo_kwargs["use_sde"] is True  # the zoo's hyperparameters came along
    result = runner.invoke(app, ["eval", str(zoo_run), "--episodes", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["episode_lengths"] == [200]


@pytest.mark.slow
def test_pull_zoo_layout_then_eval_video_resume_and_offline(
    zoo_run: Path, hub: HubServer, tmp_path: Path
) -> None:
    meta = zoo_run / "Pendulum-v1"
    make_repo(
        hub,
        "me/ppo-Pendulum-v1",
        {
            "ppo-Pendulum-v1.zip": zoo_run / "Pendulum-v1.zip",
            "config.yml": meta / "config.yml",
            "args.yml": meta / "args.yml",
            "env_kwargs.yml": b"{}\n",
            "vec_normalize.pkl": meta / "vecnormalize.pkl",
        },
    )
    env = hub_env(hub, tmp_path)
    result = rltool("eval", "hf://me/ppo-Pendulum-v1", "--episodes", "1", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["env"] == "Pendulum-v1"
    run_dir = tmp_path / "models" / "hub" / "me" / "ppo-Pendulum-v1"
    assert (run_dir / "vecnormalize.pkl").read_bytes() == (meta / "vecnormalize.pkl").read_bytes()
    assert any(path.endswith("/resolve/" + "0" + "123456789abcdef0123456789abcdef01234567/ppo-Pendulum-v1.zip")
               for _, path, _ in hub.requests)  # fmt: skip

    video = tmp_path / "replay.mp4"
    result = rltool("record-video", str(run_dir), "--length", "10", "-o", str(video), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert video.stat().st_size > 0

    result = rltool(
        "train", "--resume", str(run_dir), "-n", "512", "--eval-freq", "0", "--no-progress", env=env
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((run_dir / "train.json").read_text())["num_timesteps"] >= 512

    # offline: a second log folder is filled from huggingface_hub's cache, with the server gone
    hub.stop()
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    result = rltool("pull", "me/ppo-Pendulum-v1", "-f", "cached", env=offline, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cached" / "hub" / "me" / "ppo-Pendulum-v1" / "model.zip").exists()
    result = rltool("pull", "me/never-downloaded", "-f", "cached", env=offline, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("rltool: error: me/never-downloaded: not in the local cache")


def test_pull_huggingface_sb3_layout_reads_env_from_the_card(
    cartpole_run: Path, hub: HubServer, tmp_path: Path
) -> None:
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard import metadata_eval_result

    from rltool.safe_load import read_model_metadata

    evaluation = metadata_eval_result(
        model_pretty_name="PPO", task_pretty_name="reinforcement-learning", task_id="reinforcement-learning",
        metrics_pretty_name="mean_reward", metrics_id="mean_reward", metrics_value="20.00 +/- 1.00",
        dataset_pretty_name="CartPole-v1", dataset_id="CartPole-v1",
    )  # fmt: skip
    card = ModelCard(
        f"---\n{ModelCardData(library_name='stable-baselines3', **evaluation).to_yaml()}\n---\n# agent\n"
    )
    data = read_model_metadata(cartpole_run / "model.zip")["data"]
    make_repo(
        hub,
        "me/cartpole-agent",
        {
            "agent.zip": cartpole_run / "model.zip",  # huggingface_sb3 lets the user name the zip
            "config.json": json.dumps(data).encode(),
            "results.json": b'{"mean_reward": 20.0, "std_reward": 1.0}',
            "README.md": str(card).encode(),
        },
    )
    result = rltool(
        "eval",
        "hf://me/cartpole-agent",
        "--episodes",
        "2",
        "--json",
        env=hub_env(hub, tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(result.stdout.splitlines()[-1])
    assert (evaluated["algo"], evaluated["env"], evaluated["n_episodes"]) == ("ppo", "CartPole-v1", 2)


def test_pull_without_env_info_asks_for_env(cartpole_run: Path, hub: HubServer, tmp_path: Path) -> None:
    make_repo(hub, "me/mystery", {"agent.zip": cartpole_run / "model.zip"})
    env = hub_env(hub, tmp_path)
    result = rltool("pull", "me/mystery", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("rltool: error: me/mystery: does not say which env")
    assert "--env" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "models" / "hub" / "me" / "mystery").exists()
    result = rltool(
        "eval",
        "hf://me/mystery",
        "--env",
        "CartPole-v1",
        "--algo",
        "ppo",
        "--episodes",
        "1",
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


def _payload(marker: Path) -> str:
    """:return: base64 of a pickle that creates ``marker`` when unpickled (what a hostile zip carries)."""
    import base64
    import pickle

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return base64.b64encode(pickle.dumps(Hostile())).decode()


def _hostile_zip(model: Path, output: Path, marker: Path) -> None:
    import zipfile

    with zipfile.ZipFile(model) as source, zipfile.ZipFile(output, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "data":
                data = json.loads(content)
                for key in ("policy_class", "learning_rate"):
                    data[key] = {":type:": "<class 'function'>", ":serialized:": _payload(marker)}
                data["hostile"] = {":type:": "<class 'object'>", ":serialized:": _payload(marker)}
                content = json.dumps(data).encode()
            target.writestr(item, content)


def test_a_repo_carrying_pickled_code_runs_none_of_it(
    cartpole_run: Path, hub: HubServer, tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    hostile = tmp_path / "hostile.zip"
    _hostile_zip(cartpole_run / "model.zip", hostile, marker)
    hostile_yaml = f"!!python/object/apply:os.system ['touch {marker}']\n".encode()
    make_repo(hub, "me/ppo-CartPole-v1", {"ppo-CartPole-v1.zip": hostile})
    make_repo(
        hub, "me/yaml-trap", {"ppo-CartPole-v1.zip": cartpole_run / "model.zip", "config.yml": hostile_yaml}
    )
    env = hub_env(hub, tmp_path)
    for repo in ("me/ppo-CartPole-v1", "me/yaml-trap"):
        result = rltool("eval", f"hf://{repo}", "--episodes", "1", env=env, cwd=tmp_path)
        assert result.returncode in (0, 2), result.stderr
        if result.returncode == 2:  # refused: one line, no traceback
            assert result.stderr.startswith("rltool: error:") and len(result.stderr.strip().splitlines()) == 1
        assert not marker.exists(), f"{repo}: unpickling ran the payload"
    # the payload is live: a loader that unpickles (what --trust-pickles allows) runs it
    rltool(
        "eval",
        str(tmp_path / "models" / "hub" / "me" / "ppo-CartPole-v1"),
        "--episodes",
        "1",
        "--trust-pickles",
    )
    assert marker.exists()
