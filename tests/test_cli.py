"""The command line: train -> eval -> record-video for every algorithm, bad input, help speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rltool.cli.main import app

ROOT = Path(__file__).parent.parent
runner = CliRunner()

# (algo, env, extra overrides) with budgets of a couple of updates each.
ROUND_TRIPS = [
    ("ppo", "CartPole-v1", ["n_steps=32", "batch_size=32"]),
    ("a2c", "CartPole-v1", ["n_steps=8"]),
    ("dqn", "CartPole-v1", ["learning_starts=32", "buffer_size=1000"]),
    ("qrdqn", "CartPole-v1", ["learning_starts=32", "buffer_size=1000"]),
    ("trpo", "CartPole-v1", ["n_steps=64", "batch_size=32"]),
    ("ppo_lstm", "CartPole-v1", ["n_steps=32", "batch_size=32"]),
    ("ars", "CartPole-v1", ["n_delta=2"]),
    ("reinforce", "CartPole-v1", ["n_steps=32"]),
    ("ppo_mask", "rltool/Snake-v0", ["n_steps=32", "batch_size=32"]),
    ("ddpg", "Pendulum-v1", ["learning_starts=32", "buffer_size=1000"]),
    ("td3", "Pendulum-v1", ["learning_starts=32", "buffer_size=1000"]),
    ("sac", "Pendulum-v1", ["learning_starts=32", "buffer_size=1000"]),
    ("tqc", "Pendulum-v1", ["learning_starts=32", "buffer_size=1000"]),
    ("crossq", "Pendulum-v1", ["learning_starts=32", "buffer_size=1000", "batch_size=32"]),
]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def make_config(tmp_path: Path, algo: str, env: str, n_timesteps: int = 128, extra: str = "") -> Path:
    path = tmp_path / f"{algo}.yaml"
    path.write_text(f"env: {env}\nalgo: {algo}\nseed: 1\nn_timesteps: {n_timesteps}\nn_envs: 2\n{extra}")
    return path


@pytest.mark.parametrize("algo, env, overrides", ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
def test_train_eval_video_round_trip(tmp_path, monkeypatch, algo, env, overrides):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, algo, env)
    params = [arg for override in overrides for arg in ("-p", override)]
    result = invoke("train", config, "--eval-freq", 64, "--eval-episodes", 1, "--no-progress", *params)
    assert result.exit_code == 0, result.output
    assert "mean_reward=" in result.output
    run_dir = tmp_path / "models" / f"{algo}-{env.replace('/', '_')}" / "run-1"
    for name in ("model.zip", "config.yaml", "train.json", "evaluations.npz", "best_model.zip"):
        assert (run_dir / name).exists(), name
    info = json.loads((run_dir / "train.json").read_text())
    assert info["status"] == "finished" and info["num_timesteps"] >= 128

    result = invoke("eval", config, "--episodes", 2, "--json")
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.output)
    assert len(evaluation["episode_rewards"]) == 2 and evaluation["algo"] == algo

    video = tmp_path / "agent.mp4"
    result = invoke("record-video", run_dir, "--length", 5, "--output", video)
    assert result.exit_code == 0, result.output
    assert video.stat().st_size > 1000


def test_second_run_never_clobbers_the_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, "ppo", "CartPole-v1", 64, "n_steps: 32\nbatch_size: 32\n")
    for _ in range(2):
        assert invoke("train", config, "--eval-freq", 0, "--no-progress").exit_code == 0
    runs = sorted(p.name for p in (tmp_path / "models" / "ppo-CartPole-v1").iterdir())
    assert runs == ["run-1", "run-2"]


def test_normalized_run_saves_and_reuses_statistics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, "ppo", "Pendulum-v1", 64, "n_steps: 32\nbatch_size: 32\nnormalize: true\n")
    assert invoke("train", config, "--eval-freq", 0, "--no-progress").exit_code == 0
    run_dir = tmp_path / "models" / "ppo-Pendulum-v1" / "run-1"
    assert (run_dir / "vecnormalize.pkl").exists()
    result = invoke("eval", run_dir, "--episodes", 1)
    assert result.exit_code == 0, result.output
    (run_dir / "vecnormalize.pkl").unlink()
    result = invoke("eval", run_dir, "--episodes", 1)
    assert result.exit_code == 2 and "vecnormalize.pkl" in result.output


def test_eval_of_a_bare_zip_needs_env_and_algo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, "ppo", "CartPole-v1", 64, "n_steps: 32\nbatch_size: 32\n")
    assert invoke("train", config, "--eval-freq", 0, "--no-progress").exit_code == 0
    bare = tmp_path / "elsewhere" / "agent.zip"
    bare.parent.mkdir()
    bare.write_bytes((tmp_path / "models" / "ppo-CartPole-v1" / "run-1" / "model.zip").read_bytes())
    result = invoke("eval", bare)
    assert result.exit_code == 2 and "--env" in result.output
    result = invoke(
        "eval", bare, "--env", "CartPole-v1", "--algo", "ppo", "--episodes", 1, "--min-reward", 1000
    )
    assert result.exit_code == 1  # the CI gate
    result = invoke("eval", bare, "--env", "CartPole-v1", "--algo", "ppo", "--episodes", 1, "--min-reward", 0)
    assert result.exit_code == 0


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "missing.yaml"], "missing.yaml: no such file"),
        (["train", "{bad}", "-p", "n_step=3"], "did you mean 'n_steps'"),
        (["train", "{bad}", "--vec-env", "threads"], "--vec-env: expected dummy, subproc or envpool"),
        (["eval", "nowhere"], "nowhere: no such file or folder"),
        (["eval", "{bad}"], "no trained run under"),
        (["record-video", "{bad}", "--length", "0"], "--length: must be >= 1"),
        (["train", "{lunar2}"], "use 'LunarLander-v3'"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    bad = make_config(tmp_path, "ppo", "CartPole-v1")
    lunar2 = make_config(tmp_path, "a2c", "LunarLander-v2")
    args = [a.replace("{bad}", str(bad)).replace("{lunar2}", str(lunar2)) for a in args]
    result = invoke(*args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and lines[0].startswith("rltool: error:"), result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "models").exists()


def test_video_output_never_overwritten(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, "ppo", "CartPole-v1", 64, "n_steps: 32\nbatch_size: 32\n")
    assert invoke("train", config, "--eval-freq", 0, "--no-progress").exit_code == 0
    existing = tmp_path / "keep.mp4"
    existing.write_bytes(b"precious")
    result = invoke("record-video", config, "--output", existing)
    assert result.exit_code == 2 and "already exists" in result.output
    assert existing.read_bytes() == b"precious"
    first = invoke("record-video", config, "--length", 3)
    second = invoke("record-video", config, "--length", 3)
    assert first.exit_code == second.exit_code == 0
    assert first.output != second.output  # numbered, not overwritten


def test_env_without_rgb_array_gets_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = tmp_path / "plain_env.py"
    module.write_text(
        "import gymnasium as gym\nimport numpy as np\n\n"
        "class PlainEnv(gym.Env):\n"
        "    metadata = {'render_modes': []}\n"
        "    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)\n"
        "    action_space = gym.spaces.Discrete(2)\n"
        "    def __init__(self, render_mode=None):\n        self.render_mode = render_mode\n"
        "    def reset(self, seed=None, options=None):\n"
        "        super().reset(seed=seed)\n        return np.zeros(2, np.float32), {}\n"
        "    def step(self, action):\n        return np.zeros(2, np.float32), 1.0, True, False, {}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = make_config(tmp_path, "ppo", "plain_env:PlainEnv", 64, "n_steps: 32\nbatch_size: 32\n")
    assert invoke("train", config, "--eval-freq", 0, "--no-progress").exit_code == 0
    result = invoke("record-video", config)
    assert result.exit_code == 2 and "cannot render rgb_array" in result.output


def _real_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rltool", *args], cwd=cwd, capture_output=True, text=True, env=env
    )


def _imported(stderr: str) -> set[str]:
    return {
        line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")
    }


def test_help_and_config_errors_do_not_import_torch(tmp_path):
    result = _real_cli("--help", cwd=tmp_path)
    assert result.returncode == 0 and "train" in result.stdout
    assert not {"torch", "stable_baselines3", "gymnasium", "jax", "sbx", "flax"} & _imported(result.stderr)

    bad = make_config(tmp_path, "ppo", "CartPole-v1", extra="n_step: 3\n")
    result = _real_cli("train", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "did you mean 'n_steps'" in result.stderr.splitlines()[-1]
    assert not {"torch", "stable_baselines3", "jax", "sbx"} & _imported(result.stderr)

    # the SBX backend's refusals answer before JAX is imported too
    result = _real_cli("train", str(bad), "--backend", "sbx", "--algo", "a2c", cwd=tmp_path)
    assert result.returncode == 2 and "backend sbx" in result.stderr.splitlines()[-1]
    assert not {"torch", "stable_baselines3", "jax", "sbx"} & _imported(result.stderr)


def test_real_subprocess_train_and_eval(tmp_path):
    config = make_config(tmp_path, "ppo", "CartPole-v1", 64, "n_steps: 32\nbatch_size: 32\n")
    train = subprocess.run(
        [sys.executable, "-m", "rltool", "train", str(config), "--eval-freq", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert train.returncode == 0, train.stderr
    assert "mean_reward=" in train.stdout
    assert "step/s" in train.stderr  # the progress bar
    evaluation = subprocess.run(
        [sys.executable, "-m", "rltool", "eval", str(config), "--episodes", "2", "--json"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert evaluation.returncode == 0, evaluation.stderr
    assert json.loads(evaluation.stdout)["n_episodes"] == 2


def test_n_eval_envs_runs_evaluation_episodes_side_by_side(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, "ppo", "CartPole-v1", n_timesteps=256, extra="n_eval_envs: 3\n")
    result = invoke(
        "train", config, "--eval-freq", 128, "--eval-episodes", 4, "--no-progress", "-p", "n_steps=64"
    )
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "models" / "ppo-CartPole-v1" / "run-1"
    import numpy as np

    with np.load(run_dir / "evaluations.npz") as evaluations:
        assert evaluations["results"].shape == (2, 4)  # 2 evaluations of 4 episodes each
    names = sorted(path.name for path in (run_dir / "monitor").glob("eval-*.monitor.csv"))
    assert names == ["eval-0.monitor.csv", "eval-1.monitor.csv", "eval-2.monitor.csv"]
    assert "n_eval_envs: 3" in (run_dir / "config.yaml").read_text()
    info = json.loads((run_dir / "train.json").read_text())
    assert len(info["final_eval"]["episode_rewards"]) == 10  # the final evaluation keeps its count


def test_n_eval_envs_below_one_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, "ppo", "CartPole-v1", extra="n_eval_envs: 0\n")
    result = invoke("train", config, "--no-progress")
    assert result.exit_code == 2
    assert "n_eval_envs: must be >= 1, got 0" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "models").exists()


@pytest.mark.timeout(240)
def test_time_limit_in_env_wrapper_ends_monitor_episodes_in_train_and_eval(tmp_path, monkeypatch):
    # Monitor sits inside env_wrapper (the zoo's order): a TimeLimit outside it must still end
    # Monitor's episodes, or evaluation waits for an episode end it never sees
    monkeypatch.chdir(tmp_path)
    wrapper = "env_wrapper:\n  - gymnasium.wrappers.TimeLimit:\n      max_episode_steps: 30\n"
    config = make_config(tmp_path, "ppo", "Pendulum-v1", n_timesteps=128, extra=wrapper)
    result = invoke(
        "train", config, "--eval-freq", 64, "--eval-episodes", 2, "--no-progress", "-p", "n_steps=32"
    )
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "models" / "ppo-Pendulum-v1" / "run-1"
    info = json.loads((run_dir / "train.json").read_text())
    assert info["final_eval"]["episode_lengths"] == [30] * 10
    rows = (run_dir / "monitor" / "train-0.monitor.csv").read_text().splitlines()[2:]
    assert rows and all(row.split(",")[1] == "30" for row in rows)  # r,l,t: every episode cut at 30
    evaluation = invoke("eval", run_dir, "--episodes", 3, "--json")
    assert evaluation.exit_code == 0, evaluation.output
    assert json.loads(evaluation.output[evaluation.output.index("{") :])["episode_lengths"] == [30, 30, 30]
