"""``rltool smoke``: shipped configs pass, broken configs fail their own row with the error line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rltool.cli.main import app
from rltool.config import load_config
from rltool.errors import RltoolError
from rltool.smoke import MAX_BUFFER_SIZE, find_configs, smoke_config

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def table_rows(output: str) -> dict[str, str]:
    """Rows of the printed table keyed by their config path."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("config "))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        rows[line.split()[0]] = line
    return rows


def test_smoke_passes_on_shipped_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # default target: configs/ of the current folder
    shipped = sorted(str(p.relative_to(REPO)) for p in find_configs([REPO / "configs"]))
    assert "configs/cartpole.yaml" in shipped and "configs/lunarlander.yaml" in shipped
    result = runner.invoke(app, ["smoke"])
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert sorted(rows) == shipped
    for row in rows.values():
        assert row.endswith("pass") or "pass (video skipped: no rgb_array)" in row, row
    assert f"{len(shipped)} passed, 0 failed" in result.output


def test_smoke_broken_configs_fail_their_rows(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    (folder / "nested").mkdir(parents=True)
    (folder / "unknown_key.yaml").write_text("env: CartPole-v1\nalgo: ppo\nn_timesteps: 1000\nn_stepz: 64\n")
    (folder / "nested" / "dqn_pendulum.yml").write_text("env: Pendulum-v1\nalgo: dqn\nn_timesteps: 1000\n")
    (folder / "tiny.yaml").write_text("env: CartPole-v1\nalgo: a2c\nn_timesteps: 100000\nn_envs: 4\n")
    (folder / "notes.txt").write_text("not a config")
    missing = tmp_path / "missing.yaml"
    result = runner.invoke(app, ["smoke", str(folder), str(missing), "--length", "3"])
    assert result.exit_code == 1, result.output
    rows = table_rows(result.output)
    assert len(rows) == 4  # notes.txt ignored, the nested .yml found
    key_row = rows[str(folder / "unknown_key.yaml")]
    assert "FAIL: " in key_row and "n_stepz: unknown key for ppo; did you mean 'n_steps'?" in key_row
    dqn_row = rows[str(folder / "nested" / "dqn_pendulum.yml")]
    assert "FAIL: " in dqn_row and "dqn does not fit the action space" in dqn_row
    assert "dqn  " in dqn_row and "Pendulum-v1" in dqn_row  # algo and env known once loaded
    assert "FAIL: " in rows[str(missing)] and "no such file" in rows[str(missing)]
    tiny = rows[str(folder / "tiny.yaml")]
    assert tiny.endswith("pass"), tiny  # a broken neighbour does not stop the others
    assert " 20 " in tiny  # a2c: 2 rollouts of n_steps 5 x 2 envs
    assert "1 passed, 3 failed" in result.output


def test_smoke_without_configs_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["smoke"])
    assert result.exit_code == 2 and "no configs/ folder here" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["smoke", "empty"])
    assert result.exit_code == 2 and "no *.yaml or *.yml config files" in result.output
    (tmp_path / "c.yaml").write_text("env: CartPole-v1\nalgo: ppo\nn_timesteps: 10\n")
    result = runner.invoke(app, ["smoke", "c.yaml", "--steps", "0"])
    assert result.exit_code == 2 and "--steps: must be >= 1" in result.output


def test_smoke_budgets(tmp_path: Path) -> None:
    cartpole = smoke_config(load_config(REPO / "configs" / "cartpole.yaml"))
    # n_steps 32 x 2 envs would not fill one batch of 256: keep the 8 envs; two rollouts.
    assert (cartpole.n_envs, cartpole.n_timesteps) == (8, 2 * 32 * 8)
    lunar = smoke_config(load_config(REPO / "configs" / "lunarlander.yaml"))
    assert (lunar.n_envs, lunar.n_timesteps) == (2, 2 * 1024 * 2)
    big = tmp_path / "big.yaml"
    big.write_text(
        "env: CartPole-v1\nalgo: ppo\nn_timesteps: 1000000\nn_envs: 4\nn_steps: 4096\nbatch_size: 64\n"
    )
    assert smoke_config(load_config(big)).n_timesteps == 4096 * 2  # one rollout: two would be too long
    sac = tmp_path / "sac.yaml"
    sac.write_text("env: Pendulum-v1\nalgo: sac\nn_timesteps: 20000\nlearning_starts: 10000\n")
    small = smoke_config(load_config(sac))
    assert (
        small.algo_kwargs["learning_starts"] == 1000 and small.algo_kwargs["buffer_size"] == MAX_BUFFER_SIZE
    )
    assert small.n_timesteps == 1000 + 100
    dqn = tmp_path / "dqn.yaml"
    dqn.write_text("env: CartPole-v1\nalgo: dqn\nn_timesteps: 50000\ntrain_freq: 256\nbuffer_size: 5000\n")
    small = smoke_config(load_config(dqn))
    assert small.n_timesteps == 100 + 2 * 256 and small.algo_kwargs["buffer_size"] == 5000
    assert smoke_config(load_config(dqn), steps=77).n_timesteps == 77


def test_find_configs(tmp_path: Path) -> None:
    (tmp_path / "a" / ".hidden").mkdir(parents=True)
    (tmp_path / "a" / "z.yml").write_text("")
    (tmp_path / "a" / "b.yaml").write_text("")
    (tmp_path / "a" / ".hidden" / "c.yaml").write_text("")
    found = find_configs([tmp_path / "a", tmp_path / "a" / "b.yaml"])
    assert found == [tmp_path / "a" / "b.yaml", tmp_path / "a" / "z.yml"]
    (tmp_path / "empty" / ".git").mkdir(parents=True)
    (tmp_path / "empty" / ".git" / "x.yaml").write_text("")
    with pytest.raises(RltoolError, match="no \\*.yaml"):
        find_configs([tmp_path / "empty"])
