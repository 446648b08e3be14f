"""Multi-seed training: ``--seeds`` parsing and seeds trained in parallel spawned processes."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rltool.cli.main import app
from rltool.cli.seeds import summarize
from rltool.config import load_config
from rltool.errors import ConfigError, RltoolError
from rltool.multiseed import FAILED, MAX_SEEDS, parse_seeds, run_seeds
from rltool.train import TrainOptions

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("0,1,2", [0, 1, 2]),
        ("0-4", [0, 1, 2, 3, 4]),
        ("7", [7]),
        (" 3 , 1 ", [3, 1]),
        ("0-2,10,20-21", [0, 1, 2, 10, 20, 21]),
        ("5-5", [5]),
        ("1 - 3", [1, 2, 3]),
    ],
)
def test_parse_seeds_good(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("a", "'a' is not a seed"),
        ("1.5", "'1.5' is not a seed"),
        ("0,,2", "empty seed"),
        ("0,1,", "empty seed"),
        ("3-", "empty seed"),
        ("-1", "empty seed"),
        ("4-2", "runs backwards; write it as 2-4"),
        ("0-2,1", "seed 1 is listed twice"),
        ("1-2-3", "'2-3' is not a seed"),
        (f"0-{MAX_SEEDS}", f"more than {MAX_SEEDS}"),
    ],
)
def test_parse_seeds_bad(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_seeds(text)
    assert isinstance(info.value, RltoolError)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("--seeds")


def test_train_seeds_rejects_bad_arguments(tmp_path: Path) -> None:
    config = str(REPO / "configs" / "cartpole.yaml")
    runner = CliRunner()
    for extra, message in (
        (["--seeds", "0,1", "--seed", "3"], "--seed and --seeds cannot be combined"),
        (["--seeds", "0,1", "--jobs", "0"], "--jobs: must be >= 1"),
    ):
        result = runner.invoke(app, ["train", config, "-f", str(tmp_path), *extra])
        assert result.exit_code == 2 and message in result.output, result.output
    with pytest.raises(ConfigError, match="no seeds"):
        run_seeds([], TrainOptions(log_folder=tmp_path), 1)
    assert not any(tmp_path.iterdir())  # nothing created


def test_two_seeds_in_parallel_and_a_failing_one(tmp_path: Path) -> None:
    config = load_config(REPO / "configs" / "cartpole.yaml", n_timesteps=1000)
    # The third "seed" cannot build its env: it fails alone, with its one-line error.
    broken = replace(config, seed=2, env="NoSuchEnv-v0")
    configs = [replace(config, seed=0), replace(config, seed=1), broken]
    options = TrainOptions(
        log_folder=tmp_path,
        eval_freq=512,
        eval_episodes=2,
        final_eval_episodes=2,
        tensorboard=False,
        progress=False,
    )
    lines: list[str] = []
    results = run_seeds(configs, options, jobs=2, report=lines.append)

    assert [r.status for r in results] == ["finished", "finished", FAILED]
    run_dirs = [r.run_dir for r in results]
    assert len(set(run_dirs)) == 3 and all(d.parent == tmp_path / "ppo-CartPole-v1" for d in run_dirs[:2])
    pids = set()
    for seed, result in enumerate(results[:2]):
        run_dir = result.run_dir
        assert result.num_timesteps >= 1000
        assert (run_dir / "model.zip").stat().st_size > 0
        assert (run_dir / "evaluations.npz").is_file()
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["seed"] == seed
        train = json.loads((run_dir / "train.json").read_text())
        assert (train["status"], train["seed"], train["threads"]) == ("finished", seed, 1)
        assert train["final_eval"]["mean_reward"] > 0
        pids.add(train["pid"])
        monitors = sorted(p.name for p in (run_dir / "monitor").glob("*.monitor.csv"))
        assert monitors == ["eval-0.monitor.csv"] + [f"train-{i}.monitor.csv" for i in range(config.n_envs)]
        assert len((run_dir / "monitor" / "train-0.monitor.csv").read_text().splitlines()) > 2
    assert len(pids) == 2 and os.getpid() not in pids  # each seed in its own process

    error = results[2].info["error"]
    assert "unknown env id 'NoSuchEnv-v0'" in error and "\n" not in error
    assert any(line.startswith("[seed 2] failed: ") for line in lines)
    assert any(line.startswith("[seed 0] mean_reward=") for line in lines)

    summary: list[str] = []
    assert summarize(results, summary.append) == 1
    assert summary[0].startswith("seed 0: finished") and summary[2].startswith("seed 2: failed")
    assert summary[-1].startswith("compare: rltool report ") and str(run_dirs[2]) not in summary[-1]
