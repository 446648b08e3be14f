"""``rltool plot`` and ``rltool report`` through Typer's CliRunner, on synthetic run folders.

The run folders hold what ``rltool train`` writes for analysis: monitor CSVs (two env copies),
train.json (with a final evaluation) and evaluations.npz; values are simple functions of the
episode index so the output can be checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rltool.analysis.plot import plot_runs
from rltool.analysis.runs import find_runs
from rltool.cli.main import app

runner = CliRunner()


def write_run(run_dir: Path, *, algo: str, seed: int, final: float, episodes: int = 30) -> Path:
    """A finished run: 2 env copies, episode i has reward ``seed + i`` and length 10."""
    (run_dir / "monitor").mkdir(parents=True)
    for env_index in range(2):
        lines = ['#{"t_start": 1000.0, "env_id": "CartPole-v1"}', "r,l,t"]
        lines += [f"{seed + i},10,{0.1 * (i + 1):.2f}" for i in range(env_index, episodes, 2)]
        (run_dir / "monitor" / f"train-{env_index}.monitor.csv").write_text("\n".join(lines) + "\n")
    steps = np.array([100, 200])
    np.savez(
        run_dir / "evaluations.npz",
        timesteps=steps,
        results=np.full((2, 3), final),
        ep_lengths=np.full((2, 3), 10),
    )
    train = {
        "algo": algo,
        "env": "CartPole-v1",
        "seed": seed,
        "n_timesteps": episodes * 10,
        "num_timesteps": episodes * 10,
        "wall_time_s": 5.0,
        "steps_per_s": 60.0,
        "status": "finished",
        "config_file": f"configs/{algo}.yaml",
        "final_eval": {
            "mean_reward": final,
            "std_reward": 0.0,
            "episode_rewards": [final],
            "episode_lengths": [10],
        },
    }
    (run_dir / "train.json").write_text(json.dumps(train))
    (run_dir / "config.yaml").write_text(f"env: CartPole-v1\nalgo: {algo}\nseed: {seed}\n")
    return run_dir


@pytest.fixture()
def models(tmp_path: Path) -> Path:
    """ppo with 3 seeds and a2c with 2 seeds under tmp/models."""
    root = tmp_path / "models"
    for seed, final in enumerate([100.0, 200.0, 300.0]):
        write_run(root / "ppo-CartPole-v1" / f"run-{seed + 1}", algo="ppo", seed=seed, final=final)
    for seed, final in enumerate([50.0, 70.0]):
        write_run(root / "a2c-CartPole-v1" / f"run-{seed + 1}", algo="a2c", seed=seed, final=final)
    return root


def is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_writes_png_with_one_curve_pair_per_config(tmp_path: Path, models: Path) -> None:
    out = tmp_path / "curves.png"
    targets = [str(models / "ppo-CartPole-v1"), str(models / "a2c-CartPole-v1")]
    result = runner.invoke(app, ["plot", *targets, "-o", str(out), "--window", "5"])
    assert result.exit_code == 0, result.output
    assert is_png(out)
    assert f"plot: {out} (2 config(s), 5 run(s)" in result.output
    # The data behind the figure: a training and an evaluation curve per config, seeds averaged.
    data = plot_runs(find_runs(targets), tmp_path / "check.png", window=5)
    assert [(c.label, c.kind, c.n_seeds) for c in data.curves] == [
        ("ppo CartPole-v1 (ppo)", "train", 3),
        ("ppo CartPole-v1 (ppo)", "eval", 3),
        ("a2c CartPole-v1 (a2c)", "train", 2),
        ("a2c CartPole-v1 (a2c)", "eval", 2),
    ]
    no_eval = plot_runs(find_runs(targets), tmp_path / "check2.png", show_eval=False)
    assert [c.kind for c in no_eval.curves] == ["train", "train"]


def test_plot_default_output_is_numbered_and_explicit_output_needs_force(
    tmp_path: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "ppo.yaml"
    config.write_text("env: CartPole-v1\nalgo: ppo\n")
    for expected in ("plots/ppo-CartPole-v1.png", "plots/ppo-CartPole-v1-2.png"):
        result = runner.invoke(app, ["plot", str(config), "-f", str(models), "--x", "episodes", "--no-eval"])
        assert result.exit_code == 0, result.output
        assert f"plot: {expected} " in result.output
        assert is_png(tmp_path / expected)

    existing = tmp_path / "plots" / "ppo-CartPole-v1.png"
    before = existing.read_bytes()
    result = runner.invoke(app, ["plot", str(models / "a2c-CartPole-v1"), "-o", str(existing)])
    assert result.exit_code == 2
    assert "already exists; pass --force" in result.output and len(result.output.strip().splitlines()) == 1
    assert existing.read_bytes() == before
    result = runner.invoke(app, ["plot", str(models / "a2c-CartPole-v1"), "-o", str(existing), "--force"])
    assert result.exit_code == 0, result.output
    assert existing.read_bytes() != before


def test_plot_bad_input_is_one_line(tmp_path: Path, models: Path) -> None:
    result = runner.invoke(app, ["plot", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert "no such file or folder" in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(
        app, ["plot", str(models / "ppo-CartPole-v1"), "-o", str(tmp_path / "x.png"), "--x", "hours"]
    )
    assert result.exit_code == 2 and "hours" in result.output and not (tmp_path / "x.png").exists()
    result = runner.invoke(
        app, ["plot", str(models / "ppo-CartPole-v1"), "-o", str(tmp_path / "x.png"), "--window", "0"]
    )
    assert result.exit_code == 2 and "window" in result.output


def test_report_json_keys_and_seed_counts(models: Path) -> None:
    targets = [str(models / "ppo-CartPole-v1"), str(models / "a2c-CartPole-v1")]
    result = runner.invoke(app, ["report", *targets, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["algo"], r["n_seeds"], r["seeds"]) for r in rows] == [
        ("ppo", 3, [0, 1, 2]),
        ("a2c", 2, [0, 1]),
    ]
    expected_keys = {
        "algo", "env", "label", "config_name", "n_seeds", "seeds", "runs", "final_rewards", "final_sources",
        "from_monitor", "mean", "mean_lo", "mean_hi", "iqm", "iqm_lo", "iqm_hi", "confidence", "ci_reps",
        "steps_per_s", "wall_time_s", "num_timesteps", "n_interrupted",
    }  # fmt: skip
    assert all(set(r) == expected_keys for r in rows)
    assert rows[0]["final_rewards"] == [100.0, 200.0, 300.0] and rows[0]["mean"] == pytest.approx(200.0)
    assert rows[1]["iqm"] == pytest.approx(60.0)
    assert rows[0]["mean_lo"] <= rows[0]["mean"] <= rows[0]["mean_hi"]


def test_report_table_markdown_and_errors(tmp_path: Path, models: Path) -> None:
    config = tmp_path / "ppo.yaml"
    config.write_text("env: CartPole-v1\nalgo: ppo\n")
    table = runner.invoke(app, ["report", str(config), "-f", str(models)])
    assert table.exit_code == 0, table.output
    assert table.output.startswith("config") and "ppo CartPole-v1 (ppo)" in table.output
    markdown = runner.invoke(app, ["report", str(models / "a2c-CartPole-v1"), "--markdown"])
    assert markdown.exit_code == 0 and markdown.output.startswith("| config |")
    both = runner.invoke(app, ["report", str(models), "--json", "--markdown"])
    assert both.exit_code == 2 and "choose one" in both.output
    missing = runner.invoke(app, ["report", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "config file not found" in missing.output
