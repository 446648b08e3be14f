"""Atari, MuJoCo and goal-conditioned robotics envs: from zoo files and shipped configs, through the CLI.

Each family trains a few hundred steps, then ``eval --json`` and ``record-video`` run on the run
folder; the mp4 is read back for its frame size. Missing extras are simulated by hiding a
package in a child process (``sys.modules[name] = None``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def _zoo_dir() -> Path:
    """The zoo's own hyperparameter files, found without importing rl_zoo3."""
    import importlib.util

    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or spec.origin is None:
        pytest.skip("rl_zoo3 (the zoo's hyperparameter files) is not installed", allow_module_level=True)
    return Path(spec.origin).parent / "hyperparams"


ZOO = _zoo_dir()
ATARI_FILES = ("dqn.yml", "ppo.yml", "a2c.yml", "qrdqn.yml")

pytestmark = pytest.mark.timeout(600)


def rltool(*args: str, cwd: Path, hide: tuple[str, ...] = (), env: dict[str, str] | None = None):
    """Run ``python -m rltool ARGS`` in ``cwd``; ``hide`` makes those modules unimportable."""
    code = "import sys\n"
    for name in hide:
        code += f"sys.modules[{name!r}] = None\n"
    code += "from rltool.cli.main import run\nsys.argv = ['rltool', *sys.argv[1:]]\nrun()\n"
    child_env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    child_env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def ok(result) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def error_lines(result) -> list[str]:
    """:return: the stderr lines rltool wrote (without emulator banners)."""
    return [line for line in result.stderr.splitlines() if line.startswith("rltool: error:")]


def video_size(path: Path) -> tuple[int, int]:
    """:return: (width, height) of an mp4, read back from the file."""
    from moviepy import VideoFileClip

    clip = VideoFileClip(str(path))
    try:
        return tuple(clip.size)
    finally:
        clip.close()


def train_eval_video(tmp_path: Path, train_args: list[str], eval_args: list[str] = ()):
    """Train, then eval --json and record-video on the run folder; :return: eval JSON, video path, stderr."""
    out = ok(
        rltool("train", "--eval-freq", "0", "--no-progress", "--no-tensorboard", *train_args, cwd=tmp_path)
    )
    run_dir = Path(re.search(r"run folder: (\S+)", out).group(1))
    result = json.loads(
        ok(rltool("eval", str(run_dir), "--json", *eval_args, cwd=tmp_path)).strip().splitlines()[-1]
    )
    video = tmp_path / "video.mp4"
    recorded = rltool("record-video", str(run_dir), "--length", "8", "--output", str(video), cwd=tmp_path)
    ok(recorded)
    return out, result, video, recorded.stderr


# ---------------------------------------------------------------------------- Atari


def test_atari_zoo_dqn_trains_evaluates_unclipped_and_films_game_frames(tmp_path):
    """The zoo's dqn.yml 'atari' section, unchanged apart from a tiny budget, with optimize_memory_usage."""
    out, result, video, _ = train_eval_video(
        tmp_path,
        [str(ZOO / "dqn.yml"), "--env", "SpaceInvadersNoFrameskip-v4", "-n", "400", "--seed", "0",
         "-p", "buffer_size=1000", "-p", "learning_starts=200", "-p", "optimize_memory_usage=true",
         "--save-freq", "300"],
        ["--episodes", "1", "--stochastic"],
    )  # fmt: skip
    assert re.search(r"checkpoint \S+: [\d.]+ MiB \(replay buffer [\d.]+ MiB\)", out), (
        out
    )  # its size is printed
    (score,) = result["episode_rewards"]
    # SpaceInvaders pays 5 to 30 points per alien: a clipped reward (+1 per alien) would be a small
    # count, and an episode cut at the first lost life (AtariWrapper's training episodes) short.
    assert score >= 50 and score % 5 == 0, result
    assert result["episode_lengths"][0] > 300, result
    assert video_size(video) == (160, 210)  # the game's RGB frames, not the 84x84 grayscale input


@pytest.mark.parametrize("env_id", ["PongNoFrameskip-v4", "ALE/Pong-v5"])
def test_atari_ids_resolve_without_env_packages_and_missing_extra_is_one_line(tmp_path, env_id):
    hidden = rltool("train", str(ZOO / "ppo.yml"), "--env", env_id, cwd=tmp_path, hide=("ale_py",))
    assert hidden.returncode == 2
    assert "rltool[atari]" in hidden.stderr and "Traceback" not in hidden.stderr
    assert len(hidden.stderr.strip().splitlines()) == 1, hidden.stderr
    assert not (tmp_path / "models").exists()


def test_replay_buffer_too_big_for_memory_is_one_line_and_leaves_no_run_folder(tmp_path):
    """The zoo's qrdqn.yml Atari section keeps SB3's 1M-frame buffer: 26 GiB."""
    result = rltool("train", str(ZOO / "qrdqn.yml"), "--env", "PongNoFrameskip-v4", cwd=tmp_path)
    if result.returncode == 0:
        pytest.skip("this machine has the memory for a 1M-frame Atari replay buffer")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = error_lines(result)
    assert "not enough memory" in line and "buffer_size" in line and "Traceback" not in result.stderr
    assert not any(tmp_path.rglob("run-*"))


def test_v5_atari_ids_under_atari_wrapper_skip_frames_once():
    """ALE/*-v5 skips 4 frames in the emulator; AtariWrapper skips 4 more unless the emulator's is 1."""
    from rltool.config import load_config
    from rltool.envs.builder import build_vec_env

    for env_kwargs, expected in (([], 1), (["env_kwargs=dict(frameskip=2)"], 2)):
        config = load_config(ZOO / "ppo.yml", env="ALE/Pong-v5", n_envs=1, overrides=env_kwargs)
        venv = build_vec_env(config)
        try:
            assert venv.venv.venv.envs[0].unwrapped._frameskip == expected
            assert venv.observation_space.shape == (4, 84, 84)  # frame stack, channel first
        finally:
            venv.close()


def test_atari_wrapper_without_opencv_is_one_line_and_leaves_no_run_folder(tmp_path):
    result = rltool(
        "train", str(ZOO / "a2c.yml"), "--env", "PongNoFrameskip-v4", "-n", "100", cwd=tmp_path, hide=("cv2",)
    )
    assert result.returncode == 2, result.stderr
    assert "rltool[atari]" in error_lines(result)[0] and "Traceback" not in result.stderr
    assert not any(tmp_path.rglob("run-*"))


# ---------------------------------------------------------------------------- MuJoCo


def test_mujoco_v5_config_trains_evaluates_and_renders_headless_without_mujoco_gl(tmp_path):
    out, result, video, stderr = train_eval_video(
        tmp_path,
        [str(CONFIGS / "sac-halfcheetah.yaml"), "-n", "300", "-p", "learning_starts=100",
         "-p", "env_kwargs=dict(max_episode_steps=50)"],
        ["--episodes", "2"],
    )  # fmt: skip
    assert result["env"] == "HalfCheetah-v5" and result["episode_lengths"] == [50, 50]
    assert "success_rate" not in result
    assert re.search(r"rendering MuJoCo headless with (EGL|OSMESA)", stderr), stderr
    assert video_size(video) == (480, 480)


def test_mujoco_zoo_v4_entry_trains(tmp_path):
    ok(
        rltool(
            "train", str(ZOO / "td3.yml"), "--env", "Hopper-v4", "-n", "200", "-p", "learning_starts=100",
            "-p", "env_kwargs=dict(max_episode_steps=20)", "--eval-freq", "0", "--no-progress", cwd=tmp_path,
        )
    )  # fmt: skip


def test_mujoco_missing_extra_is_one_line(tmp_path):
    result = rltool("train", str(CONFIGS / "sac-halfcheetah.yaml"), cwd=tmp_path, hide=("mujoco",))
    assert result.returncode == 2
    assert "rltool[mujoco]" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists()


def test_opengl_backend_is_egl_then_osmesa_and_a_set_mujoco_gl_is_kept(monkeypatch):
    from rltool.envs import render

    monkeypatch.setenv("MUJOCO_GL", "")  # recorded, so whatever the test sets is undone
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setattr(render, "backend_works", lambda backend, timeout=60.0: backend == "osmesa")
    said = []
    assert render.choose_mujoco_gl(said.append) == "osmesa"
    assert os.environ["MUJOCO_GL"] == "osmesa" and "OSMESA" in said[0]
    monkeypatch.setenv("MUJOCO_GL", "glfw")
    assert render.choose_mujoco_gl(said.append) == "glfw" and len(said) == 1


def test_no_opengl_backend_says_what_to_install(monkeypatch):
    from rltool.envs import render
    from rltool.errors import EnvError

    monkeypatch.setenv("MUJOCO_GL", "")
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setattr(render, "backend_works", lambda backend, timeout=60.0: False)
    with pytest.raises(EnvError, match="libegl1.*libosmesa6"):
        render.choose_mujoco_gl()
    assert "MUJOCO_GL" not in os.environ


# ---------------------------------------------------------------------------- goal envs + HER


def test_her_fetchreach_config_reports_success_rate(tmp_path):
    out, result, video, _ = train_eval_video(
        tmp_path,
        [
            str(CONFIGS / "her-fetchreach.yaml"),
            "-n",
            "300",
            "-p",
            "learning_starts=100",
            "--eval-freq",
            "150",
        ],
        ["--episodes", "3"],
    )
    assert 0.0 <= result["success_rate"] <= 1.0 and len(result["episode_successes"]) == 3
    assert result["episode_lengths"] == [50, 50, 50]
    run_dir = tmp_path / re.search(r"run folder: (\S+)", out).group(1)
    header = (run_dir / "monitor" / "train-0.monitor.csv").read_text().splitlines()[1]
    assert header == "r,l,t,is_success"
    import numpy as np

    with np.load(run_dir / "evaluations.npz") as evaluations:  # periodic evaluations, SB3's format
        assert evaluations["successes"].shape == (2, 5) and evaluations["timesteps"].tolist() == [150, 300]
    final = json.loads((run_dir / "train.json").read_text())["final_eval"]  # as eval --json reports it
    assert (
        len(final["episode_successes"]) == 10
        and final["success_rate"] == sum(final["episode_successes"]) / 10
    )
    assert f"success rate {final['success_rate']:.0%}" in out
    assert video_size(video) == (480, 480)

    from rltool.analysis.plot import plot_runs
    from rltool.analysis.runs import find_runs

    plotted = plot_runs(find_runs([run_dir]), tmp_path / "curves.png", window=2)
    (success,) = [curve for curve in plotted.curves if curve.kind == "success"]
    assert len(success.y) == 6 and set(success.y) <= {0.0, 0.5, 1.0}  # 300 steps: 6 episodes of 50
    from matplotlib.image import imread

    assert imread(tmp_path / "curves.png").shape[0] > 600  # the success panel under the rewards


def test_zoo_her_yml_old_keys_name_the_new_form(tmp_path):
    for args in (["--env", "FetchReach-v1"], ["--env", "FetchReach-v1", "--algo", "sac"]):
        result = rltool("train", str(ZOO / "her.yml"), *args, cwd=tmp_path)
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert "replay_buffer_class: HerReplayBuffer" in line and "replay_buffer_kwargs" in line
    old_kwargs = "replay_buffer_kwargs=dict(online_sampling=True, n_sampled_goal=4)"
    result = rltool("train", str(CONFIGS / "her-fetchreach.yaml"), "-p", old_kwargs, cwd=tmp_path)
    assert result.returncode == 2 and "online_sampling" in result.stderr and "drop it" in result.stderr


def test_robotics_missing_extra_is_one_line(tmp_path):
    result = rltool("train", str(CONFIGS / "her-fetchreach.yaml"), cwd=tmp_path, hide=("gymnasium_robotics",))
    assert result.returncode == 2
    assert "rltool[robotics]" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists()


# ---------------------------------------------------------------------------- lazy imports


def test_no_family_package_is_imported_until_a_config_needs_one():
    code = (
        "import sys\n"
        "from rltool.cli.main import app\n"
        "from rltool.config import load_config\n"
        f"load_config({str(CONFIGS / 'cartpole.yaml')!r})\n"
        "print(sorted(m for m in ('ale_py', 'gymnasium_robotics', 'mujoco', 'cv2') if m in sys.modules))\n"
        f"load_config({str(ZOO / 'ppo.yml')!r}, env='ALE/Pong-v5')\n"
        "print('ale_py' in sys.modules, 'gymnasium_robotics' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "True False"]


# ---------------------------------------------------------------------------- every zoo entry


def _uses_mujoco_py(env_id: str) -> bool:
    """Ids whose envs need the retired mujoco-py (v2/v3 MuJoCo, Fetch v1): not installable today."""
    import gymnasium

    entry_point = str(gymnasium.registry[env_id].entry_point)
    return "MujocoPy" in entry_point or re.search(r"_v[23]:", entry_point) is not None


def zoo_entries() -> list[tuple[str, str]]:
    """(zoo file, env id) of every Atari, MuJoCo and robotics entry whose env is installed here."""
    import gymnasium

    from rltool.envs.families import FAMILIES, family_of, register_family_of

    entries = [(name, "SpaceInvadersNoFrameskip-v4") for name in ATARI_FILES]  # their 'atari' sections
    for path in sorted(ZOO.glob("*.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        for env_id in data:
            if env_id in ("atari", "default") or path.stem == "her":
                continue
            if not register_family_of(env_id) or env_id not in gymnasium.registry:
                continue
            if family_of(env_id) in FAMILIES and not _uses_mujoco_py(env_id):
                entries.append((path.name, env_id))
    return entries


def test_zoo_lists_atari_mujoco_and_robotics_entries():
    entries = zoo_entries()
    assert ("sac.yml", "HalfCheetah-v4") in entries and ("ppo.yml", "Humanoid-v4") in entries
    assert len(entries) > 30


def test_every_installed_zoo_entry_loads_and_builds(tmp_path, monkeypatch):
    """Load, build the envs and the model of each entry (no training)."""
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the current folder
    from rltool.algos import build_model
    from rltool.algos.registry import ALGOS
    from rltool.config import load_config
    from rltool.envs.builder import EnvOptions, build_vec_env

    failures = []
    for file_name, env_id in zoo_entries():
        # replay buffers capped at 10k transitions: memory only (QR-DQN's Atari default of 1M is 26 GiB)
        cap = ["buffer_size=10000"] if ALGOS[Path(file_name).stem].off_policy else []
        try:
            config = load_config(ZOO / file_name, env=env_id, n_envs=1, overrides=cap)
            env = build_vec_env(config, EnvOptions())
            try:
                build_model(config, env)
            finally:
                env.close()
        except Exception as error:  # noqa: BLE001 - collect every failing entry
            failures.append(f"{file_name} {env_id}: {type(error).__name__}: {error}")
    assert not failures, "\n".join(failures)


def test_zoo_her_entries_load_and_build_on_current_fetch_ids(tmp_path, monkeypatch):
    """The zoo's HER entries (sac.yml, tqc.yml: Fetch*-v1, mujoco-py) work unchanged on the -v4 ids."""
    monkeypatch.chdir(tmp_path)
    from rltool.algos import build_model
    from rltool.config import load_config
    from rltool.envs.builder import EnvOptions, build_vec_env

    built = []
    for file_name in ("sac.yml", "tqc.yml"):
        text = (ZOO / file_name).read_text()
        data = yaml.safe_load(text)
        for env_id, section in data.items():
            if not env_id.startswith("Fetch") or section.get("replay_buffer_class") != "HerReplayBuffer":
                continue
            current = env_id.replace("-v1", "-v4")
            copy = tmp_path / file_name
            copy.write_text(text.replace(f"\n{env_id}:", f"\n{current}:"))
            config = load_config(copy, env=current, n_envs=1, overrides=["buffer_size=1000"])
            env = build_vec_env(config, EnvOptions())
            try:
                model = build_model(config, env)
                assert type(model.replay_buffer).__name__ == "HerReplayBuffer"
            finally:
                env.close()
            built.append((file_name, current))
    assert ("sac.yml", "FetchReach-v4") in built and ("tqc.yml", "FetchPush-v4") in built
