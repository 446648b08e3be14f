"""The SBX (JAX) backend through the CLI: train, eval, record-video, resume, refusals, safe loading."""

from __future__ import annotations

import base64
import inspect
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from rltool.algos import algo_class
from rltool.algos.jax_activations import JAX_ACTIVATIONS, jax_activation
from rltool.algos.registry import ALGOS, SBX_ALGOS
from rltool.cli.main import app
from rltool.sbx_io import STATE_ENTRY

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

runner = CliRunner()
_NOT_CONFIG = {"self", "policy", "env", "_init_setup_model", "kwargs"}

PPO_CONFIG = """\
env: CartPole-v1
algo: ppo
backend: sbx
seed: 1
n_timesteps: 256
n_envs: 2
normalize: true
n_steps: 64
batch_size: 64
n_epochs: 2
learning_rate: lin_0.003
clip_range: lin_0.2
policy_kwargs: "dict(net_arch=dict(pi=[32], vf=[32]), activation_fn=nn.ReLU)"
"""

SAC_CONFIG = """\
env: Pendulum-v1
algo: sac
backend: sbx
seed: 2
n_timesteps: 200
learning_starts: 50
batch_size: 32
buffer_size: 1000
learning_rate: lin_0.001
policy_kwargs: "dict(net_arch=[16, 16], activation_fn=nn.Tanh)"
"""


@pytest.fixture(autouse=True)
def _restore_jax_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training sets XLA_FLAGS and JAX_PLATFORMS in this process; put them back afterwards."""
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")


def invoke(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def error_line(result: Any) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines, "no output"
    assert "Traceback" not in result.output, result.output
    return lines[-1]


def train_run(folder: Path, text: str, *extra: object) -> Path:
    config = folder / "config.yaml"
    config.write_text(text)
    result = invoke("train", config, "-f", folder / "models", "--eval-freq", 0, "--no-progress", *extra)
    assert result.exit_code == 0, result.output
    return next((folder / "models").glob("*/run-1"))


# ---------------------------------------------------------------------------
# The SBX table against sbx-rl's real classes


@pytest.mark.parametrize("name", sorted(SBX_ALGOS))
def test_sbx_keywords_match_the_constructor(name: str) -> None:
    cls = algo_class(name, "sbx")
    # sbx's class, or rltool's subclass of it (ppo: rltool.algos.sbx_ppo.FusedPPO)
    assert any(base.__module__.startswith("sbx.") for base in cls.__mro__)
    assert set(SBX_ALGOS[name].keywords) == set(inspect.signature(cls.__init__).parameters) - _NOT_CONFIG


@pytest.mark.parametrize("name", sorted(SBX_ALGOS))
def test_sbx_policies_and_policy_keywords_match(name: str) -> None:
    spec = SBX_ALGOS[name]
    cls = algo_class(name, "sbx")
    assert set(spec.policies) <= set(cls.policy_aliases)
    for policy in spec.policies:
        accepted = set(inspect.signature(cls.policy_aliases[policy].__init__).parameters)
        assert spec.policy_keywords <= accepted, (policy, spec.policy_keywords - accepted)


def test_sbx_covers_the_issue_algorithms_and_all_are_sb3_names() -> None:
    assert set(SBX_ALGOS) == {"ppo", "sac", "tqc", "dqn", "td3", "ddpg", "crossq"}
    assert set(SBX_ALGOS) <= set(ALGOS)


@pytest.mark.parametrize("name", sorted(JAX_ACTIVATIONS))
def test_activation_names_map_to_the_same_function(name: str) -> None:
    import torch

    from rltool.literal import SYMBOLS

    x = np.linspace(-4, 4, 41, dtype=np.float32)
    torch_class = getattr(torch.nn, SYMBOLS[name].split(":")[1])
    expected = torch_class()(torch.from_numpy(x)).numpy()
    got = np.asarray(jax_activation(name)(x))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_every_torch_activation_rltool_accepts_has_a_jax_twin() -> None:
    from rltool.literal import SYMBOLS

    assert {name for name in SYMBOLS if name.startswith("nn.")} == set(JAX_ACTIVATIONS)


# ---------------------------------------------------------------------------
# Threads: --threads sizes XLA's CPU pool

_XLA_LOAD = """
import json, os, sys, time
from rltool.runtime import prepare_device, set_threads, xla_threads
set_threads(int(sys.argv[1]) if sys.argv[1] != "-" else None, "sbx")
prepare_device("cpu", "sbx")
import jax, jax.numpy as jnp
weights = jax.random.normal(jax.random.PRNGKey(0), (256, 256))
batch = jax.random.normal(jax.random.PRNGKey(1), (4096, 256))
step = jax.jit(lambda w, x: jnp.tanh(jnp.tanh(x @ w) @ w).sum(axis=0))
step(weights, batch).block_until_ready()
wall, cpu = time.perf_counter(), time.process_time()
for _ in range(150):
    out = step(weights, batch)
out.block_until_ready()
masks = {len(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")}
print(json.dumps({"xla_threads": xla_threads(), "cores_busy": (time.process_time() - cpu) / (time.perf_counter() - wall),
                  "masks": sorted(masks), "allowed": len(os.sched_getaffinity(0))}))
"""


def _xla_load(threads: str) -> dict[str, Any]:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _XLA_LOAD, threads], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 usable cores")
def test_threads_one_holds_xla_to_one_core_and_frees_the_mask_after() -> None:
    one = _xla_load("1")
    assert one["xla_threads"] == 1
    # XLA's pool has one thread: the process never keeps more than one core busy (load elsewhere
    # can only lower this figure, so it cannot fail because the machine is busy)
    assert one["cores_busy"] < 1.3, one
    assert one["masks"] == [one["allowed"]], "every thread may run on every core again after JAX started"
    default = _xla_load("-")
    assert default["xla_threads"] == default["allowed"] and default["masks"] == [default["allowed"]]


def test_without_cpu_masks_jax_starts_with_its_own_pool() -> None:
    """macOS and Windows have no sched_setaffinity: JAX starts as it would, and nothing breaks."""
    code = (
        "import os; del os.sched_setaffinity; "
        "from rltool.runtime import set_threads, prepare_device, xla_threads; "
        "set_threads(1, 'sbx'); print(prepare_device('cpu', 'sbx'), xla_threads())"
    )
    env = {**os.environ, "RLTOOL_JAX_CACHE": "off"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cpu", "None"], result.stdout


# ---------------------------------------------------------------------------
# Train, eval, record-video, resume


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sbx-ppo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XLA_FLAGS", "")
        return train_run(folder, PPO_CONFIG, "--save-freq", 128, "--threads", 1)


def test_sbx_run_records_engine_and_config(ppo_run: Path) -> None:
    info = json.loads((ppo_run / "train.json").read_text())
    assert info["status"] == "finished" and info["num_timesteps"] == 256
    assert (info["backend"], info["engine"], info["device"], info["threads"]) == ("sbx", "jax", "cpu", 1)
    assert "xla_threads" in info  # None here: JAX already ran in this test process before the run
    assert "backend: sbx" in (ppo_run / "config.yaml").read_text()
    with zipfile.ZipFile(ppo_run / "model.zip") as archive:
        assert STATE_ENTRY in archive.namelist()
        data = json.loads(archive.read("data"))
    pickled = {key for key, value in data.items() if isinstance(value, dict) and ":serialized:" in value}
    assert pickled == {"observation_space", "action_space"}  # no policy, no train state pickles


def test_eval_reproduces_the_final_evaluation(ppo_run: Path) -> None:
    info = json.loads((ppo_run / "train.json").read_text())
    result = invoke("eval", ppo_run, "--episodes", 10, "--json")
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.output)
    # same seed (config seed + 10000), deterministic: the restored weights act exactly as trained
    assert evaluated["episode_rewards"] == info["final_eval"]["episode_rewards"]


def test_loaded_parameters_equal_the_trained_ones(ppo_run: Path) -> None:
    import jax

    from rltool.config import load_config
    from rltool.evaluate import ModelTarget, load_trained

    config = load_config(ppo_run / "config.yaml")
    checkpoint = ppo_run / "model.zip"
    statistics = ppo_run / "vecnormalize.pkl"
    model, env = load_trained(ModelTarget(checkpoint, config, ppo_run, statistics))
    try:
        fresh, _ = load_trained(ModelTarget(checkpoint, config, ppo_run, statistics))
        leaves = jax.tree_util.tree_leaves(model.policy.actor_state.params)
        # a freshly built model of the same seed has other weights: the file's were restored
        from rltool.algos import build_model

        untrained = build_model(config, env)
        assert any(
            not np.array_equal(a, b)
            for a, b in zip(
                leaves, jax.tree_util.tree_leaves(untrained.policy.actor_state.params), strict=True
            )
        )
        for a, b in zip(leaves, jax.tree_util.tree_leaves(fresh.policy.actor_state.params), strict=True):
            np.testing.assert_array_equal(a, b)
        assert model.num_timesteps == 256
    finally:
        env.close()


def test_record_video(ppo_run: Path, tmp_path: Path) -> None:
    output = tmp_path / "agent.mp4"
    result = invoke("record-video", ppo_run, "--length", 5, "--output", output)
    assert result.exit_code == 0, result.output
    assert output.stat().st_size > 0


def test_resume_continues_to_the_new_budget(ppo_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run-1"
    shutil.copytree(ppo_run, run)
    result = invoke("train", "--resume", run, "-n", 384, "--eval-freq", 0, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "at step 256 of 384" in result.output
    info = json.loads((run / "train.json").read_text())
    assert info["status"] == "finished" and info["num_timesteps"] == 384 and len(info["segments"]) == 2


def test_sac_pendulum_with_replay_buffer_resume(tmp_path: Path) -> None:
    run = train_run(tmp_path, SAC_CONFIG, "--save-freq", 100)
    assert (run / "checkpoints" / "step-000000000200" / "replay_buffer.pkl").exists()
    result = invoke("eval", run, "--episodes", 1, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["episode_lengths"] == [200]
    result = invoke("train", "--resume", run, "-n", 260, "--eval-freq", 0, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "replay buffer: 200 transitions" in result.output
    assert json.loads((run / "train.json").read_text())["num_timesteps"] == 260


# ---------------------------------------------------------------------------
# Refusals: one line, exit 2, no run folder


@pytest.mark.parametrize(
    ("extra", "algo", "expected"),
    [
        ("max_grad_norm: 10\n", "dqn", ["max_grad_norm", "dqn", "backend sbx"]),
        ("", "a2c", ["a2c", "backend sbx"]),
        (
            'policy_kwargs: "dict(optimizer_class=optim.RMSprop)"\n',
            "sac",
            ["optimizer_class", "sac", "backend sbx"],
        ),
        ("policy: CnnPolicy\n", "sac", ["CnnPolicy", "sac", "backend sbx"]),
    ],
)
def test_unsupported_on_sbx_is_one_line(tmp_path: Path, extra: str, algo: str, expected: list[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"env: CartPole-v1\nalgo: {algo}\nn_timesteps: 100\n{extra}")
    result = invoke("train", config, "--backend", "sbx", "-f", tmp_path / "models")
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith("rltool: error:") and all(word in line for word in expected), line
    assert not (tmp_path / "models").exists()


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(PPO_CONFIG)
    result = invoke("train", config, "--backend", "jaxx", "-f", tmp_path / "models")
    assert result.exit_code == 2 and "expected one of sb3, sbx" in error_line(result)
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("backend", ["sb3", "sbx"])
def test_device_cuda_without_cuda_is_one_line(tmp_path: Path, backend: str) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = tmp_path / "c.yaml"
    config.write_text(PPO_CONFIG)
    result = invoke("train", config, "--backend", backend, "--device", "cuda", "-f", tmp_path / "models")
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith("rltool: error: --device cuda:") and "no CUDA device" in line
    assert not (tmp_path / "models").exists()


# ---------------------------------------------------------------------------
# Hostile SBX zips


class Payload:
    """Unpickles into ``open(marker, "w")``: the marker file appears if and only if code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def _plant(model_zip: Path, key: str, marker: Path) -> None:
    with zipfile.ZipFile(model_zip) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    data[key] = {
        ":type:": "<class 'object'>",
        ":serialized:": base64.b64encode(pickle.dumps(Payload(marker))).decode(),
    }
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(model_zip, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def _plain_sbx_zip(path: Path, marker: Path) -> Path:
    """A zip saved by SBX itself (policy cloudpickled), with a payload in its policy entry's place."""
    import sbx

    model = sbx.PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, policy_kwargs={"net_arch": [8]})
    model.save(path)
    _plant(path, "policy", marker)
    return path


def test_plain_sbx_zip_is_refused_and_trust_pickles_runs_it(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    model_zip = _plain_sbx_zip(tmp_path / "plain.zip", marker)
    config = tmp_path / "sbx.yaml"
    config.write_text("env: CartPole-v1\nalgo: ppo\nbackend: sbx\nn_timesteps: 64\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(config.read_text())
    run_zip = run / "model.zip"
    run_zip.write_bytes(model_zip.read_bytes())
    for target in (run, run_zip):
        result = invoke("eval", target, "--episodes", 1)
        assert result.exit_code == 2
        line = error_line(result)
        assert "needs unpickling" in line and "--trust-pickles" in line, line
        assert not marker.exists()
    # positive control: the payload is real, and plain SBX loading runs it
    invoke("eval", run, "--episodes", 1, "--trust-pickles")
    assert marker.exists()


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_planted_entry_in_an_rltool_sbx_zip_is_refused(ppo_run: Path, tmp_path: Path, command: str) -> None:
    import shutil

    run = tmp_path / "run-1"
    shutil.copytree(ppo_run, run)
    marker = tmp_path / "marker"
    for model_zip in run.rglob("*.zip"):
        _plant(model_zip, "evil", marker)
    before = sorted(str(p) for p in run.rglob("*"))
    args = (
        ["eval", run, "--episodes", 1]
        if command == "eval"
        else ["train", "--resume", run, "-n", 384, "--eval-freq", 0, "--no-progress"]
    )
    result = invoke(*args)
    assert result.exit_code == 2
    line = error_line(result)
    assert "entry 'evil'" in line and "refused" in line, line
    assert not marker.exists()
    assert sorted(str(p) for p in run.rglob("*")) == before


def test_nan_guard_sees_nan_in_jax_weights(ppo_run: Path, tmp_path: Path) -> None:
    import jax

    from rltool.checkpoints import weights_finite, write_checkpoint
    from rltool.config import load_config
    from rltool.errors import TrainingDivergedError
    from rltool.evaluate import ModelTarget, load_trained

    config = load_config(ppo_run / "config.yaml")
    model, env = load_trained(
        ModelTarget(ppo_run / "model.zip", config, ppo_run, ppo_run / "vecnormalize.pkl")
    )
    try:
        assert weights_finite(model)
        state = model.policy.actor_state
        poisoned = jax.tree_util.tree_map(lambda leaf: leaf * np.nan, state.params)
        model.policy.actor_state = state.replace(params=poisoned)
        assert not weights_finite(model)
        with pytest.raises(TrainingDivergedError, match="NaN"):
            write_checkpoint(model, tmp_path)
        assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())
    finally:
        env.close()


def test_backend_override_by_param_or_file(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("env: CartPole-v1\nalgo: dqn\nn_timesteps: 100\nmax_grad_norm: 10\n")
    result = invoke("train", config, "-p", "backend=sbx", "-f", tmp_path / "models")
    assert result.exit_code == 2 and "not supported by dqn on backend sbx" in error_line(result)
    config.write_text("env: CartPole-v1\nalgo: dqn\nbackend: sbx\nn_timesteps: 100\nmax_grad_norm: 10\n")
    result = invoke("train", config, "-f", tmp_path / "models")
    assert (
        result.exit_code == 2
        and "c.yaml:5: max_grad_norm: not supported by dqn on backend sbx" in error_line(result)
    )
    assert not (tmp_path / "models").exists()


# ---------------------------------------------------------------------------
# tune, --seeds, report, plot and smoke on the SBX backend

TINY_PPO = PPO_CONFIG.replace("n_timesteps: 256", "n_timesteps: 128")


def test_tune_trains_its_trials_on_sbx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "fast.yaml"
    config.write_text(TINY_PPO)
    result = invoke(
        "tune", config, "--trials", 2, "-n", 256, "--n-evaluations", 1, "--eval-episodes", 1,
        "--sampler", "random", "--pruner", "none",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    best = next((tmp_path / "models" / "tune").rglob("best.yaml"))
    assert "backend: sbx" in best.read_text()


def test_seeds_report_and_plot_on_sbx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "fast.yaml"
    config.write_text(TINY_PPO)
    trained = invoke("train", config, "--seeds", "0,1", "--jobs", 1, "--eval-freq", 64, "--eval-episodes", 1)
    assert trained.exit_code == 0, trained.output
    runs = sorted((tmp_path / "models").glob("*/run-*"))
    infos = [json.loads((run / "train.json").read_text()) for run in runs]
    assert [(info["backend"], info["seed"], info["status"]) for info in infos] == [
        ("sbx", 0, "finished"),
        ("sbx", 1, "finished"),
    ]
    report = invoke("report", config)
    assert report.exit_code == 0, report.output
    assert "IQM" in report.output and "2" in report.output
    plotted = invoke("plot", config, "-o", tmp_path / "curves.png")
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_smoke_passes_an_sbx_config(tmp_path: Path) -> None:
    config = tmp_path / "fast.yaml"
    config.write_text(TINY_PPO)
    result = invoke("smoke", config)
    assert result.exit_code == 0, result.output
    assert "fast.yaml" in result.output
