"""Hostile run folders through the CLI: files that would run code are refused, genuine ones load.

Each hostile file carries a payload that creates a marker file when unpickled (or evaluated);
``eval``, ``record-video`` and ``train --resume`` must refuse it with exit 2 and one line on
stderr, without the marker ever appearing and without touching the run folder.
"""

from __future__ import annotations

import base64
import json
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

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


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
    args = ["train", config, "-f", folder / "models", "--save-freq", 128, "--eval-freq", 0, "--no-progress"]
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


def _pickled(marker: Path) -> dict[str, str]:
    return {
        ":type:": "<class 'dict'>",
        ":serialized:": base64.b64encode(pickle.dumps(Payload(marker))).decode(),
    }


def plant_model_key(run_dir: Path, marker: Path, key: str) -> None:
    for model_zip in run_dir.rglob("*.zip"):
        _rewrite_data(model_zip, lambda data: data.__setitem__(key, _pickled(marker)))


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
    "vecnormalize": (plant_vecnormalize, "--trust-pickles"),
    "config-normalize": (plant_config, "normalize: "),
}
COMMANDS: dict[str, Callable[[Path, Path], list[object]]] = {
    "eval": lambda run, tmp: ["eval", run, "--episodes", 1],
    "record-video": lambda run, tmp: ["record-video", run, "--length", 3, "--output", tmp / "video.mp4"],
    "resume": lambda run, tmp: ["train", "--resume", run, "-n", 320, "--eval-freq", 0, "--no-progress"],
}


def test_the_payloads_really_run_code(tmp_path: Path) -> None:
    # guards the tests below against passing because the payload is inert
    marker = tmp_path / "marker"
    pickle.loads(base64.b64decode(_pickled(marker)[":serialized:"])).close()
    assert marker.exists()


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
