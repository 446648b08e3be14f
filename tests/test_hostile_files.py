"""Hostile run folders through the CLI: files that would run code are refused, genuine ones load.

Each hostile file carries a payload that creates a marker file when unpickled (or evaluated);
``eval``, ``record-video`` and ``train --resume`` must refuse it with exit 2 and one line on
stderr, without the marker ever appearing and without touching the run folder.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv
from typer.testing import CliRunner

from rltool.cli.main import app
from rltool.safe_load import load_vecnormalize

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

runner = CliRunner()

CONFIG = """\
env: CartPole-v1
algo: ppo
seed: 3
n_timesteps: 256
n_envs: 2
normalize: true
n_steps: 32
batch_size: 32
n_epochs: 1
"""


class Payload:
    """Unpickles into ``open(marker, "w")``: the marker file appears if and only if code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, ...]]:
        return (open, (self.marker, "w"))


class SystemPayload(Payload):
    """Unpickles into ``os.system("touch marker")``: a shell command."""

    def __reduce__(self) -> tuple[Any, tuple[str, ...]]:
        return (os.system, (f"touch '{self.marker}'",))


class ExecPayload(Payload):
    """Unpickles into ``exec(...)`` of Python source that writes the marker."""

    def __reduce__(self) -> tuple[Any, tuple[str, ...]]:
        return (exec, (f"open({self.marker!r}, 'w').close()",))


PAYLOADS = {"open": Payload, "os.system": SystemPayload, "exec": ExecPayload}


def invoke(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """:return: every file under ``folder`` with its mtime and size."""
    files = (p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in files}


@pytest.fixture(scope="module")
def genuine_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A normalized PPO run trained by rltool, with two checkpoints (resumable with a larger -n)."""
    folder = tmp_path_factory.mktemp("genuine")
    config = folder / "ppo.yaml"
    config.write_text(CONFIG)
    args = ["train", config, "-f", folder / "models", "--save-freq", 128, "--no-progress"]
    args += ["--eval-freq", 128, "--eval-episodes", 1]  # so best_model.zip exists for eval --best
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return folder / "models" / "ppo-CartPole-v1" / "run-1"


def _rewrite_data(model_zip: Path, change: Callable[[dict[str, Any]], None]) -> None:
    with zipfile.ZipFile(model_zip) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    change(data)
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(model_zip, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def _pickled(marker: Path, kind: str = "open") -> dict[str, str]:
    return {
        ":type:": "<class 'dict'>",
        ":serialized:": base64.b64encode(pickle.dumps(PAYLOADS[kind](marker))).decode(),
    }


def plant_model_key(run_dir: Path, marker: Path, key: str, kind: str = "open") -> None:
    for model_zip in run_dir.rglob("*.zip"):
        _rewrite_data(model_zip, lambda data: data.__setitem__(key, _pickled(marker, kind)))


def plant_weights(run_dir: Path, marker: Path) -> None:
    """Replace every zip's ``policy.pth`` with a torch file whose tensors dict carries a payload."""
    import torch

    for model_zip in run_dir.rglob("*.zip"):
        with zipfile.ZipFile(model_zip) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        evil = io.BytesIO()
        torch.save({"weights": Payload(marker)}, evil)
        members["policy.pth"] = evil.getvalue()
        with zipfile.ZipFile(model_zip, "w") as archive:
            for name, content in members.items():
                archive.writestr(name, content)


def plant_vecnormalize(run_dir: Path, marker: Path) -> None:
    for path in run_dir.rglob("vecnormalize.pkl"):
        statistics = load_vecnormalize(path, DummyVecEnv([lambda: gym.make("CartPole-v1")]))
        statistics.obs_rms.mean = Payload(marker)  # hidden inside genuine statistics
        path.write_bytes(pickle.dumps(statistics))


def plant_config(run_dir: Path, marker: Path) -> None:
    path = run_dir / "config.yaml"
    text = path.read_text()
    assert "normalize: true" in text
    code = f"__import__('pathlib').Path('{marker}').touch()"
    path.write_text(text.replace("normalize: true", f'normalize: "{code}"'))


HOSTILE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "model-new-key": (lambda run, marker: plant_model_key(run, marker, "evil"), "--trust-pickles"),
    "model-policy-kwargs": (
        lambda run, marker: plant_model_key(run, marker, "policy_kwargs"),
        "--trust-pickles",
    ),
    "model-os-system": (
        lambda run, marker: plant_model_key(run, marker, "evil", "os.system"),
        "--trust-pickles",
    ),
    "model-exec": (lambda run, marker: plant_model_key(run, marker, "evil", "exec"), "--trust-pickles"),
    "model-weights-pth": (plant_weights, "cannot load PPO model"),
    "vecnormalize": (plant_vecnormalize, "--trust-pickles"),
    "config-normalize": (plant_config, "normalize: "),
}
COMMANDS: dict[str, Callable[[Path, Path], list[object]]] = {
    "eval": lambda run, tmp: ["eval", run, "--episodes", 1],
    "eval-best": lambda run, tmp: ["eval", run, "--best", "--episodes", 1],
    "record-video": lambda run, tmp: ["record-video", run, "--length", 3, "--output", tmp / "video.mp4"],
    "resume": lambda run, tmp: ["train", "--resume", run, "-n", 320, "--eval-freq", 0, "--no-progress"],
}


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_the_payloads_really_run_code(tmp_path: Path, kind: str) -> None:
    # guards the tests below against passing because the payload is inert
    marker = tmp_path / "marker"
    pickle.loads(base64.b64decode(_pickled(marker, kind)[":serialized:"]))
    assert marker.exists()


@pytest.mark.parametrize("hostile", ["model-new-key", "model-os-system", "model-exec", "vecnormalize"])
def test_trust_pickles_really_runs_the_payload(
    genuine_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile: str
) -> None:
    # the positive control through the CLI: the same file with --trust-pickles does run its code,
    # so the refusals below are the safe loader's doing, not inert payloads
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run-1"
    shutil.copytree(genuine_run, run_dir)
    marker = tmp_path / "marker"
    HOSTILE[hostile][0](run_dir, marker)
    invoke("eval", run_dir, "--episodes", 1, "--trust-pickles")
    assert marker.exists(), f"--trust-pickles did not unpickle the {hostile} file"


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("hostile", list(HOSTILE))
def test_hostile_file_is_refused(
    genuine_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile: str, command: str
) -> None:
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run-1"
    shutil.copytree(genuine_run, run_dir)
    marker = tmp_path / "marker"
    plant, expected = HOSTILE[hostile]
    plant(run_dir, marker)
    before = snapshot(tmp_path)

    result = invoke(*COMMANDS[command](run_dir, tmp_path))

    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rltool: error: "), result.output
    assert expected in lines[0]
    assert "Traceback" not in result.output
    assert not marker.exists()
    assert snapshot(tmp_path) == before  # nothing written, no video, no half-started resume


def test_genuine_models_load_under_the_safe_default(
    genuine_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("eval", genuine_run, "--episodes", 2, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_episodes"] == 2

    plain = tmp_path / "plain.zip"  # saved by SB3 itself: a bare zip, no run folder
    PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu").learn(
        64
    ).save(plain)
    result = invoke("eval", plain, "--env", "CartPole-v1", "--algo", "ppo", "--episodes", 2, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == str(plain)


@pytest.fixture(scope="module")
def off_policy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DQN run with checkpoints that carry replay_buffer.pkl."""
    folder = tmp_path_factory.mktemp("dqn")
    config = folder / "dqn.yaml"
    config.write_text(
        "env: CartPole-v1\nalgo: dqn\nseed: 3\nn_timesteps: 256\nn_envs: 1\nlearning_starts: 32\n"
        "buffer_size: 1000\n"
    )
    args = ["train", config, "-f", folder / "models", "--save-freq", 128, "--eval-freq", 0, "--no-progress"]
    result = invoke(*args, "--no-tensorboard")
    assert result.exit_code == 0, result.output
    run_dir = folder / "models" / "dqn-CartPole-v1" / "run-1"
    assert list(run_dir.glob("checkpoints/*/replay_buffer.pkl")), "no replay buffer was checkpointed"
    return run_dir


@pytest.mark.parametrize("trust", [False, True])
def test_hostile_replay_buffer_through_resume(
    off_policy_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trust: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run-1"
    shutil.copytree(off_policy_run, run_dir)
    marker = tmp_path / "marker"
    for path in run_dir.rglob("replay_buffer.pkl"):
        buffer = pickle.loads(path.read_bytes())  # genuine, written by rltool: plain pickle is fine here
        buffer.rewards = Payload(marker)  # hidden inside a genuine buffer
        path.write_bytes(pickle.dumps(buffer))
    before = snapshot(tmp_path)
    args = ["train", "--resume", run_dir, "-n", 384, "--eval-freq", 0, "--no-progress", "--no-tensorboard"]
    result = invoke(*args, *(["--trust-pickles"] if trust else []))
    if trust:  # positive control: the payload is live
        assert marker.exists()
        return
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "replay_buffer.pkl" in lines[0] and "--trust-pickles" in lines[0], (
        result.output
    )
    assert not marker.exists()
    assert snapshot(tmp_path) == before
