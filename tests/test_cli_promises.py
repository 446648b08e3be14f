"""README promises checked through the real command line: every command is registered, NaN actions
stop a run, and ``train --seeds/--jobs`` stops on Ctrl-C with exit 130.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rltool.cli.main import app

HERE = Path(__file__).parent
ROOT = HERE.parent
runner = CliRunner()


def readme_commands() -> set[str]:
    """:return: every ``rltool NAME`` the README's command table shows."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`rltool ([a-z-]+)", table))


def test_every_readme_command_is_registered_on_the_real_app() -> None:
    commands = readme_commands()
    assert commands >= {
        *("train", "eval", "record-video", "tune", "plot", "report", "smoke"),
        *("export", "package", "push", "pull"),
    }, commands
    listing = runner.invoke(app, ["--help"])
    assert listing.exit_code == 0, listing.output
    for name in sorted(commands):
        assert re.search(rf"^\W*{re.escape(name)}\b", listing.output, flags=re.MULTILINE), (
            f"{name} not in --help"
        )
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, f"rltool {name} --help: {result.output}"


def test_nan_actions_stop_training_naming_actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the weights stay finite: the observations, then the actions, become NaN before any update
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(HERE))
    config = tmp_path / "nan.yaml"
    config.write_text(
        "env: envpkg.nanenv:NanAfterEnv\nalgo: ppo\nseed: 0\nn_timesteps: 512\nn_envs: 1\nn_steps: 64\n"
        "batch_size: 64\n"
    )
    result = runner.invoke(
        app, ["train", str(config), "--eval-freq", "0", "--no-progress", "--no-tensorboard"]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.output
    # observations turn NaN at step 40 (nan_after), so the first NaN action is taken at step 41
    assert lines[0].startswith("rltool: error: training diverged at step 41: "), lines[0]
    assert "NaN" in lines[0], lines[0]
    run_dir = tmp_path / "models" / "ppo-envpkg.nanenv_NanAfterEnv" / "run-1"
    assert json.loads((run_dir / "train.json").read_text())["status"] == "diverged"
    assert not (run_dir / "model.zip").exists()


def test_seeds_jobs_ctrl_c_stops_every_seed_and_exits_130(tmp_path: Path) -> None:
    config = tmp_path / "cartpole.yaml"
    config.write_text("env: CartPole-v1\nalgo: ppo\nseed: 0\nn_timesteps: 200000\nn_envs: 2\nn_steps: 64\n")
    command = [sys.executable, "-m", "rltool", "train", str(config), "--seeds", "0,1,2", "--jobs", "2"]
    command += ["--eval-freq", "0", "--save-freq", "256", "--no-tensorboard"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # its own process group, as a terminal's foreground job: Ctrl-C sends SIGINT to the whole group
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    runs = [tmp_path / "models" / "ppo-CartPole-v1" / f"run-{n}" for n in (1, 2)]
    deadline = time.monotonic() + 120
    try:
        while not all(list(run.glob("checkpoints/step-*")) for run in runs):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("the two first seeds never wrote a checkpoint: the test cannot interrupt them")
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, out + err
    for run in runs:
        info = json.loads((run / "train.json").read_text())
        assert info["status"] == "interrupted" and info["num_timesteps"] < 200000, info
        assert (run / "model.zip").exists()
    assert not (tmp_path / "models" / "ppo-CartPole-v1" / "run-3" / "model.zip").exists()  # never started
