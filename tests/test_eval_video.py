"""``rltool eval`` and ``record-video`` as a user sees them: action masks, the frames of the video,
the default video path, ``--best``, ``--stochastic``, and ``train --vec-env subproc``.

The masked env (tests/envpkg/masked.py) allows one action of 8 per step and shows the allowed one
as a green cell, with a red band after an illegal action. An agent that uses the masks scores
exactly the episode length whatever its weights, so a tiny training budget is enough.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from typer.testing import CliRunner

from rltool.cli.main import app

HERE = Path(__file__).parent
EPISODE = 12  # OneLegalActionEnv's default length: the score of an agent that obeys the masks
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(HERE))  # tests/envpkg
    return tmp_path


def train_masked(workdir: Path, algo: str, extra: tuple[object, ...] = ()) -> Path:
    config = workdir / f"{algo}.yaml"
    config.write_text(
        f"env: envpkg.masked:OneLegalActionEnv\nalgo: {algo}\nseed: 0\nn_timesteps: 64\nn_envs: 1\n"
        "n_steps: 32\nbatch_size: 32\nn_epochs: 1\n"
    )
    result = invoke("train", config, "--eval-freq", 0, "--no-progress", "--no-tensorboard", *extra)
    assert result.exit_code == 0, result.output
    return config


def read_frames(video: Path) -> tuple[tuple[int, int], list[np.ndarray]]:
    """:return: the (width, height) the mp4 declares and its decoded RGB frames."""
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = reader.__next__()
    width, height = meta["size"]
    frames = [np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader]
    return (width, height), frames


def red_band(frame: np.ndarray) -> bool:
    """:return: whether the frame shows the env's "illegal action" band (allowing for H.264 colours)."""
    top = frame[:32].astype(int)
    return top[..., 0].mean() > 150 and top[..., 1].mean() < 80


def green_cell(frame: np.ndarray) -> int:
    """:return: which of the 8 cells of the lower half is lit green (the legal action)."""
    bottom = frame[32:].astype(int)
    greens = [bottom[:, 32 * i : 32 * (i + 1), 1].mean() for i in range(8)]
    return int(np.argmax(greens))


@pytest.mark.parametrize("algo", ["ppo_mask", "ppo"])
def test_eval_and_video_use_action_masks(workdir: Path, algo: str) -> None:
    # ppo cannot use masks: the positive control that shows the checks below can see illegal actions
    config = train_masked(workdir, algo)
    result = invoke("eval", config, "--episodes", 3, "--json")
    assert result.exit_code == 0, result.output
    rewards = json.loads(result.stdout)["episode_rewards"]

    video = workdir / "agent.mp4"
    result = invoke("record-video", config, "--length", 2 * EPISODE, "--output", video)
    assert result.exit_code == 0, result.output
    size, frames = read_frames(video)
    assert size == (256, 64), "the video has the env's frame size"
    assert len(frames) == 2 * EPISODE + 1, "one frame per step plus the first"
    cells = [green_cell(frame) for frame in frames]
    assert cells[:4] == [5, 0, 3, 6], "the frames show the env: the legal cell moves on by 3 a step"
    illegal = [i for i, frame in enumerate(frames) if red_band(frame)]

    if algo == "ppo_mask":
        assert rewards == [EPISODE] * 3, "with masks every action is legal"
        assert illegal == [], f"the video shows illegal actions at frames {illegal}: masks not used"
    else:
        assert max(rewards) < EPISODE / 2
        assert len(illegal) > EPISODE / 2


def test_default_video_path_is_numbered_per_run(workdir: Path) -> None:
    config = train_masked(workdir, "ppo_mask")
    folder = workdir / "videos" / "ppo_mask-envpkg.masked_OneLegalActionEnv"
    first = invoke("record-video", config, "--length", 3)
    second = invoke("record-video", config, "--length", 3)
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert sorted(p.name for p in folder.iterdir()) == ["run-1-2.mp4", "run-1.mp4"]
    assert f"video: {Path('videos') / folder.name / 'run-1.mp4'}" in first.output
    size, frames = read_frames(folder / "run-1.mp4")
    assert size == (256, 64) and len(frames) == 4


def test_eval_best_uses_best_model(workdir: Path) -> None:
    config = train_masked(workdir, "ppo_mask", ("--eval-freq", 32, "--eval-episodes", 1))
    run_dir = workdir / "models" / "ppo_mask-envpkg.masked_OneLegalActionEnv" / "run-1"
    (run_dir / "model.zip").write_bytes(b"not a zip")  # --best must not need the final model
    result = invoke("eval", config, "--best", "--episodes", 1, "--json")
    assert result.exit_code == 0, result.output
    assert (workdir / json.loads(result.stdout)["model"]).resolve() == run_dir / "best_model.zip"
    assert invoke("eval", config, "--episodes", 1).exit_code == 2  # without --best: the broken model.zip


def test_stochastic_eval_samples_actions(workdir: Path) -> None:
    # the corridor has no randomness of its own, so only the policy can make episodes differ
    config = workdir / "corridor.yaml"
    config.write_text(
        "env: envpkg/Corridor-v0\nenv_packages: [envpkg]\nalgo: ppo\nseed: 0\nn_timesteps: 64\n"
        "n_envs: 1\nn_steps: 32\nbatch_size: 32\nn_epochs: 1\nenv_kwargs: {length: 4}\n"
    )
    assert invoke("train", config, "--eval-freq", 0, "--no-progress", "--no-tensorboard").exit_code == 0
    greedy = json.loads(invoke("eval", config, "--episodes", 8, "--json").stdout)
    sampled = json.loads(invoke("eval", config, "--episodes", 8, "--stochastic", "--json").stdout)
    assert greedy["deterministic"] is True and sampled["deterministic"] is False
    assert len(set(greedy["episode_lengths"])) == 1, greedy
    assert len(set(sampled["episode_lengths"])) > 1, sampled


@pytest.mark.parametrize("vec_env, in_trainer", [("subproc", False), ("dummy", True)])
def test_train_vec_env_subproc_runs_envs_in_other_processes(
    workdir: Path, vec_env: str, in_trainer: bool
) -> None:
    pids = workdir / "pids"
    pids.mkdir()
    config = workdir / "pid.yaml"
    config.write_text(
        "env: envpkg.pidenv:PidCorridorEnv\nalgo: ppo\nseed: 0\nn_timesteps: 64\nn_envs: 2\n"
        f"n_steps: 32\nbatch_size: 32\nn_epochs: 1\nenv_kwargs: {{pid_dir: '{pids}'}}\n"
    )
    args = [
        "train",
        str(config),
        "--eval-freq",
        "0",
        "--no-progress",
        "--no-tensorboard",
        "--vec-env",
        vec_env,
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "rltool", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(
        (workdir / "models" / "ppo-envpkg.pidenv_PidCorridorEnv" / "run-1" / "train.json").read_text()
    )
    builders = {int(p.name) for p in pids.iterdir()}
    others = builders - {info["pid"]}
    if in_trainer:
        assert others == set(), "dummy builds every env in the training process"
    else:
        assert len(others) == 2, f"subproc builds each training env in its own process: {builders}"
