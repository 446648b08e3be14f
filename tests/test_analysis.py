"""Tests of rltool.analysis: statistics, run discovery, learning-curve plots and reports.

Run folders are synthetic: monitor CSVs, train.json and evaluations.npz are written here
with values chosen so that curve means and report numbers can be checked by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from rltool.analysis import stats
from rltool.analysis.plot import mean_with_band, plot_runs, rolling_mean
from rltool.analysis.report import build_report, format_markdown, format_table, to_json
from rltool.analysis.runs import find_runs, load_evaluations, load_monitor, load_run
from rltool.errors import ConfigError, ModelLoadError, OutputError, RltoolError

EP_LEN = 10  # every synthetic episode lasts 10 steps

# ----------------------------------------------------------------------------- helpers


def write_monitor(path: Path, t_start: float, rows: list[tuple[float, int, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"t_start": t_start, "env_id": "CartPole-v1"})
    lines = [f"#{header}", "r,l,t"]
    lines += [f"{r},{length},{t}" for r, length, t in rows]
    path.write_text("\n".join(lines) + "\n")


def make_run(
    run_dir: Path,
    *,
    algo: str = "ppo",
    env: str = "CartPole-v1",
    seed: int = 0,
    base: float = 0.0,
    n_episodes: int = 40,
    final: float | None = 100.0,
    evals: list[int] | None = None,
    config_file: str | None = "configs/cartpole.yaml",
    steps_per_s: float = 1000.0,
    wall_time_s: float = 10.0,
    status: str = "finished",
) -> Path:
    """A run with 2 env copies whose merged episode i has reward ``base + i``.

    Episode i ends at global timestep ``10 * (i + 1)`` and, for i = 2j (env 0) or
    i = 2j + 1 (env 1), at wall time ``0.1 (j + 1)`` or ``0.1 (j + 1) + 0.05`` seconds.
    Evaluation at timestep s has mean reward ``base + s / 100``.
    """
    env0 = [(base + i, EP_LEN, round(0.1 * (i // 2 + 1), 6)) for i in range(0, n_episodes, 2)]
    # env 1 started 0.02 s later; its episodes end 0.05 s after env 0's (absolute time).
    env1 = [(base + i, EP_LEN, round(0.1 * (i // 2 + 1) + 0.03, 6)) for i in range(1, n_episodes, 2)]
    write_monitor(run_dir / "monitor" / "train-0.monitor.csv", 1000.0, env0)
    write_monitor(run_dir / "monitor" / "train-1.monitor.csv", 1000.02, env1)
    train = {
        "algo": algo,
        "env": env,
        "seed": seed,
        "n_timesteps": n_episodes * EP_LEN,
        "num_timesteps": n_episodes * EP_LEN,
        "wall_time_s": wall_time_s,
        "steps_per_s": steps_per_s,
        "n_envs": 2,
        "threads": 1,
        "status": status,
        "versions": {},
        "config_file": config_file,
    }
    if final is not None:
        train["final_eval"] = {
            "mean_reward": final,
            "std_reward": 0.0,
            "episode_rewards": [final] * 5,
            "episode_lengths": [EP_LEN] * 5,
            "deterministic": True,
        }
    (run_dir / "train.json").write_text(json.dumps(train))
    (run_dir / "config.yaml").write_text(f"env: {env}\nalgo: {algo}\nseed: {seed}\n")
    if evals is not None:
        ts = np.asarray(evals, dtype=np.int64)
        # 5 eval episodes per evaluation, symmetric around base + ts / 100.
        results = (base + ts / 100.0)[:, None] + np.array([-2.0, -1.0, 0.0, 1.0, 2.0])[None, :]
        np.savez(
            run_dir / "evaluations.npz", timesteps=ts, results=results, ep_lengths=np.full(results.shape, 10)
        )
    return run_dir


@pytest.fixture()
def two_configs(tmp_path: Path) -> dict:
    """ppo (bases 0, 3, 9) and a2c (bases 100, 110, 120), 3 seeds each, different lengths."""
    models = tmp_path / "models"
    spec = {
        "ppo": {"bases": [0.0, 3.0, 9.0], "episodes": [40, 44, 48], "finals": [100.0, 200.0, 600.0]},
        "a2c": {"bases": [100.0, 110.0, 120.0], "episodes": [50, 40, 46], "finals": [10.0, 20.0, 30.0]},
    }
    for algo, s in spec.items():
        for k in range(3):
            make_run(
                models / f"{algo}-CartPole-v1" / f"run-{k + 1}",
                algo=algo,
                seed=k,
                base=s["bases"][k],
                n_episodes=s["episodes"][k],
                final=s["finals"][k],
                evals=[100, 200, 300],
                config_file=f"configs/{algo}.yaml",
                steps_per_s=1000.0 * (k + 1),
                wall_time_s=10.0 * (k + 1),
            )
    return {"models": models, "spec": spec}


# ----------------------------------------------------------------------------- stats


def test_iqm_hand_values() -> None:
    assert stats.iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert stats.iqm([1, 2, 3, 4, 1000, -1000, 5, 6]) == pytest.approx(3.5)  # outliers cut
    assert stats.iqm([7.0]) == 7.0
    assert stats.iqm([[1, 2], [3, 4]]) == pytest.approx(2.5)  # flattened; n=4 cuts one each end
    rng = np.random.default_rng(1)
    for n in (3, 5, 10, 11, 13, 30):
        x = rng.normal(size=n)
        assert stats.iqm(x) == pytest.approx(sps.trim_mean(x, 0.25))
    with pytest.raises(ValueError):
        stats.iqm([])


def test_bootstrap_ci_basic_properties() -> None:
    x = np.random.default_rng(2).normal(5.0, 1.0, size=(8, 2))
    lo, hi = stats.stratified_bootstrap_ci(x, stats.iqm, reps=1000, seed=3)
    assert lo < stats.iqm(x) < hi
    assert (lo, hi) == stats.stratified_bootstrap_ci(x, stats.iqm, reps=1000, seed=3)  # deterministic
    # A custom (non-vectorised) statistic gives the same result as the built-in fast path.
    assert stats.stratified_bootstrap_ci(x, lambda a: stats.iqm(a), reps=1000, seed=3) == (lo, hi)
    # One run: nothing to resample, the interval collapses.
    assert stats.stratified_bootstrap_ci([[4.0, 6.0]], stats.mean) == (5.0, 5.0)
    with pytest.raises(ValueError):
        stats.stratified_bootstrap_ci([1.0, np.nan], stats.mean)


def test_bootstrap_is_stratified_per_task() -> None:
    # Task 0 always scores 0, task 1 always 10: resampling runs within each task keeps
    # every replicate at 5, whereas pooling runs across tasks would not.
    scores = np.column_stack([np.zeros(6), np.full(6, 10.0)])
    assert stats.stratified_bootstrap_ci(scores, stats.mean, reps=500) == (5.0, 5.0)
    # Different numbers of samples per task would change the mean; here each task keeps 6.
    dist = stats.bootstrap_distribution(scores, {"iqm": stats.iqm}, reps=200)
    assert np.all(dist["iqm"] == 5.0)


def test_aggregate_keys_and_values() -> None:
    agg = stats.aggregate([1.0, 2.0, 3.0, 100.0], reps=500)
    assert set(agg) >= {"mean", "mean_lo", "mean_hi", "iqm", "iqm_lo", "iqm_hi", "n_runs", "n_tasks"}
    assert agg["mean"] == pytest.approx(26.5)
    assert agg["iqm"] == pytest.approx(2.5)
    assert (agg["n_runs"], agg["n_tasks"]) == (4, 1)
    assert 1.0 <= agg["mean_lo"] <= agg["mean"] <= agg["mean_hi"] <= 100.0


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_bootstrap_ci_matches_rliable() -> None:
    from rliable import library, metrics  # the reference implementation (a dev dependency)

    scores = np.random.default_rng(0).normal(size=(10, 3))
    points, intervals = library.get_interval_estimates(
        {"x": scores},
        lambda s: np.array([metrics.aggregate_iqm(s), metrics.aggregate_mean(s)]),
        reps=5000,
        random_state=np.random.RandomState(0),
    )
    ours = stats.aggregate(scores, reps=20000, seed=0)
    assert ours["iqm"] == pytest.approx(points["x"][0])
    assert ours["mean"] == pytest.approx(points["x"][1])
    # Both are Monte Carlo estimates: agree within 2% of the data range (0.074 here). Measured
    # differences of the CI bounds: 0.0035 with this seed, at most 0.015 over rliable seeds 0-2.
    tol = 0.02 * float(np.ptp(scores))
    (iqm_lo, mean_lo), (iqm_hi, mean_hi) = intervals["x"]
    assert ours["iqm_lo"] == pytest.approx(iqm_lo, abs=tol)
    assert ours["iqm_hi"] == pytest.approx(iqm_hi, abs=tol)
    assert ours["mean_lo"] == pytest.approx(mean_lo, abs=tol)
    assert ours["mean_hi"] == pytest.approx(mean_hi, abs=tol)


# ----------------------------------------------------------------------------- runs


def test_find_runs_from_config(tmp_path: Path, two_configs: dict) -> None:
    models = two_configs["models"]
    # A run without train.json is not a finished run of the config and is skipped.
    write_monitor(models / "ppo-CartPole-v1" / "run-4" / "monitor" / "train-0.monitor.csv", 0.0, [(1, 10, 1)])
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text("env: CartPole-v1\nalgo: ppo\nn_timesteps: 1000\n")
    runs = find_runs([cfg], log_folder=models)
    assert [r.path.name for r in runs] == ["run-1", "run-2", "run-3"]
    assert [r.seed for r in runs] == [0, 1, 2]
    assert {r.group_key for r in runs} == {("ppo", "CartPole-v1", "ppo CartPole-v1 (ppo)")}
    assert runs[0].train_json["steps_per_s"] == 1000.0


def test_find_runs_config_env_with_slash(tmp_path: Path) -> None:
    models = tmp_path / "models"
    make_run(models / "sac-ns_Env-v0" / "run-1", algo="sac", env="ns/Env-v0")
    cfg = tmp_path / "c.yml"
    cfg.write_text("env: ns/Env-v0\nalgo: sac\n")
    (run,) = find_runs([str(cfg)], log_folder=str(models))
    assert (run.algo, run.env) == ("sac", "ns/Env-v0")


def test_find_runs_folders(two_configs: dict) -> None:
    models = two_configs["models"]
    folder = models / "a2c-CartPole-v1"
    make_run(folder / "run-10", algo="a2c", seed=9, config_file="configs/a2c.yaml")
    runs = find_runs([folder, folder / "run-2", models / "ppo-CartPole-v1" / "run-1"])
    # Numeric order (run-10 after run-3); run-2 listed once.
    assert [r.path.name for r in runs] == ["run-1", "run-2", "run-3", "run-10", "run-1"]
    assert [r.algo for r in runs] == ["a2c"] * 4 + ["ppo"]


def test_find_runs_run_without_train_json(tmp_path: Path) -> None:
    run_dir = tmp_path / "dqn-MountainCar-v0" / "run-1"
    write_monitor(run_dir / "monitor" / "train-0.monitor.csv", 0.0, [(-200, 200, 1.0)])
    (run,) = find_runs([run_dir])
    assert (run.algo, run.env, run.seed, run.train_json) == ("dqn", "MountainCar-v0", None, None)
    assert run.label == "dqn MountainCar-v0"


@pytest.mark.parametrize(
    ("kind", "error", "expected"),
    [
        ("missing_yaml", ConfigError, "not found"),
        ("no_env_algo", ConfigError, "single-experiment"),
        ("list_yaml", ConfigError, "single-experiment"),
        ("bad_yaml", ConfigError, "cannot read YAML"),
        ("no_runs", ModelLoadError, "no runs found"),
        ("missing_dir", ModelLoadError, "no such file or folder"),
        ("text_file", ModelLoadError, "expected a config YAML"),
        ("empty_dir", ModelLoadError, "no run-* folders"),
    ],
)
def test_find_runs_bad_targets(tmp_path: Path, kind: str, error: type, expected: str) -> None:
    target = {
        "missing_yaml": tmp_path / "nope.yaml",
        "no_env_algo": tmp_path / "sweep.yaml",
        "list_yaml": tmp_path / "list.yaml",
        "bad_yaml": tmp_path / "bad.yaml",
        "no_runs": tmp_path / "ok.yaml",
        "missing_dir": tmp_path / "nowhere",
        "text_file": tmp_path / "notes.txt",
        "empty_dir": tmp_path / "empty",
    }[kind]
    if kind == "no_env_algo":
        target.write_text("experiments:\n  - env: CartPole-v1\n    algo: ppo\n")
    elif kind == "list_yaml":
        target.write_text("- 1\n- 2\n")
    elif kind == "bad_yaml":
        target.write_text("env: [unclosed\n")
    elif kind == "no_runs":
        target.write_text("env: CartPole-v1\nalgo: ppo\n")
    elif kind == "text_file":
        target.write_text("hello")
    elif kind == "empty_dir":
        target.mkdir()
    with pytest.raises(error) as info:
        find_runs([target], log_folder=tmp_path / "models")
    assert isinstance(info.value, RltoolError)
    message = str(info.value)
    assert str(target) in message and expected in message
    assert "\n" not in message


def test_load_monitor_merges_envs_by_absolute_time(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-1"
    # env 1 started 5 s earlier, so its episode at t=6 (absolute 1001) precedes env 0's at t=2 (1002).
    write_monitor(run_dir / "monitor" / "train-0.monitor.csv", 1000.0, [(1.0, 10, 2.0), (2.0, 20, 4.0)])
    write_monitor(run_dir / "monitor" / "train-1.monitor.csv", 995.0, [(3.0, 5, 6.0), (4.0, 7, 8.5)])
    df = load_monitor(run_dir)
    assert df["reward"].tolist() == [3.0, 1.0, 4.0, 2.0]
    assert df["timesteps"].tolist() == [5, 15, 22, 42]
    assert df["episode"].tolist() == [0, 1, 2, 3]
    assert df["env_index"].tolist() == [1, 0, 1, 0]
    # Seconds since the earliest monitor start (995).
    assert df["time"].tolist() == pytest.approx([6.0, 7.0, 8.5, 9.0])


def test_load_monitor_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no monitor files"):
        load_monitor(tmp_path)
    write_monitor(tmp_path / "monitor" / "train-0.monitor.csv", 0.0, [])
    (tmp_path / "monitor" / "train-1.monitor.csv").write_text('#{"t_start": 0.0}\n')
    with pytest.raises(ModelLoadError, match="no finished episode") as info:
        load_monitor(tmp_path)
    assert str(tmp_path) in str(info.value)
    (tmp_path / "monitor" / "train-0.monitor.csv").write_text("r,l,t\n1,2,3\n")
    with pytest.raises(ModelLoadError, match="not an SB3 monitor file"):
        load_monitor(tmp_path)


def test_load_evaluations(tmp_path: Path) -> None:
    assert load_evaluations(tmp_path) is None
    make_run(tmp_path, base=1.0, evals=[100, 200])
    ev = load_evaluations(tmp_path)
    assert ev.timesteps.tolist() == [100, 200]
    assert ev.results.shape == (2, 5)
    assert ev.mean_reward.tolist() == pytest.approx([2.0, 3.0])
    (tmp_path / "evaluations.npz").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="evaluations"):
        load_evaluations(tmp_path)


# ----------------------------------------------------------------------------- plot


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_two_configs_three_seeds(tmp_path: Path, two_configs: dict) -> None:
    models = two_configs["models"]
    runs = find_runs([models / "ppo-CartPole-v1", models / "a2c-CartPole-v1"])
    out = tmp_path / "figs" / "sub" / "curves.png"
    res = plot_runs(runs, out, x="steps", window=1)
    assert res.output == out and _is_png(out)
    assert [(c.label, c.kind, c.n_seeds) for c in res.curves] == [
        ("ppo CartPole-v1 (ppo)", "train", 3),
        ("ppo CartPole-v1 (ppo)", "eval", 3),
        ("a2c CartPole-v1 (a2c)", "train", 3),
        ("a2c CartPole-v1 (a2c)", "eval", 3),
    ]
    for curve in res.curves:
        assert curve.lo is not None and curve.hi is not None
        assert curve.x.shape == curve.y.shape == curve.lo.shape == curve.hi.shape
        assert np.all(curve.lo <= curve.y) and np.all(curve.y <= curve.hi)

    t975 = sps.t.ppf(0.975, df=2)
    for (train, ev), algo in ((res.curves[0:2], "ppo"), (res.curves[2:4], "a2c")):
        spec = two_configs["spec"][algo]
        bases = np.array(spec["bases"])
        # Grid restricted to the overlap: from the latest first episode to the earliest last one.
        assert train.x[0] == EP_LEN and train.x[-1] == EP_LEN * min(spec["episodes"])
        # Seed curve: reward base + i at step 10 (i + 1), so y = base + x / 10 - 1 (exact under interp).
        np.testing.assert_allclose(train.y, bases.mean() + train.x / EP_LEN - 1.0)
        half = t975 * bases.std(ddof=1) / np.sqrt(3)
        np.testing.assert_allclose(train.hi - train.y, half)
        np.testing.assert_allclose(train.y - train.lo, half)
        # Eval: mean over 5 eval episodes is base + s / 100, averaged over seeds.
        assert ev.x.tolist() == [100, 200, 300]
        np.testing.assert_allclose(ev.y, bases.mean() + ev.x / 100.0)
        np.testing.assert_allclose(ev.hi - ev.y, half)


def test_plot_without_eval_and_single_run(tmp_path: Path, two_configs: dict) -> None:
    models = two_configs["models"]
    runs = find_runs([models / "ppo-CartPole-v1"])
    res = plot_runs(runs, tmp_path / "a.png", show_eval=False, window=5)
    assert [(c.kind, c.n_seeds) for c in res.curves] == [("train", 3)]
    res = plot_runs(runs[:1], tmp_path / "b.png", window=3)
    train, ev = res.curves
    assert train.lo is None and train.hi is None and train.n_seeds == 1
    # Rolling mean of 0, 1, 2, 3, ... over 3 episodes (fewer at the start).
    assert train.y[:5].tolist() == pytest.approx([0.0, 0.5, 1.0, 2.0, 3.0])
    assert train.x[:3].tolist() == [10, 20, 30]
    assert ev.kind == "eval" and ev.y.tolist() == pytest.approx([1.0, 2.0, 3.0])


def test_plot_x_modes(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "ppo-CartPole-v1" / "run-1", n_episodes=40, evals=[100, 200])
    runs = find_runs([run_dir])
    by_mode = {
        m: plot_runs(runs, tmp_path / f"{m}.png", x=m, window=1) for m in ("steps", "episodes", "time")
    }
    steps, episodes, time = (by_mode[m].curves for m in ("steps", "episodes", "time"))
    assert steps[0].x[-1] == 400 and by_mode["steps"].xlabel == "timesteps"
    assert episodes[0].x.tolist() == list(range(1, 41))
    # Episodes finished by step 100 and 200.
    assert episodes[1].x.tolist() == [10, 20]
    # Episode i ends 0.1 (i // 2 + 1) s (+0.05 for env 1) after the first monitor start.
    assert time[0].x[:4].tolist() == pytest.approx([0.1, 0.15, 0.2, 0.25])
    assert time[1].x.tolist() == pytest.approx([0.55, 1.05])  # step 100 = episode 9 (env 1)
    assert by_mode["time"].xlabel == "wall time (s)"
    for m in by_mode:
        assert _is_png(tmp_path / f"{m}.png")
    with pytest.raises(ConfigError, match="unknown x axis"):
        plot_runs(runs, tmp_path / "x.png", x="hours")
    with pytest.raises(ConfigError, match="window"):
        plot_runs(runs, tmp_path / "x.png", window=0)


def test_plot_non_overlapping_seeds_drawn_separately(tmp_path: Path) -> None:
    a = make_run(tmp_path / "r" / "run-1", seed=1)
    b = make_run(tmp_path / "r" / "run-2", seed=2)
    # Run 2's episodes all happen after run 1's last one in wall time.
    for f in (b / "monitor").glob("*.csv"):
        lines = f.read_text().splitlines()
        header, rows = lines[:2], [line.split(",") for line in lines[2:]]
        f.write_text("\n".join(header + [f"{r},{n},{float(t) + 100}" for r, n, t in rows]) + "\n")
    res = plot_runs(find_runs([a, b]), tmp_path / "t.png", x="time", show_eval=False)
    assert [c.member for c in res.curves] == ["seed 1", "seed 2"]
    assert res.notes and "do not overlap" in res.notes[0]


def test_mean_with_band_interpolates_on_overlap() -> None:
    xs = [np.array([0.0, 10.0]), np.array([2.0, 4.0, 20.0])]
    ys = [np.array([0.0, 10.0]), np.array([2.0, 4.0, 20.0])]
    grid, mean, lo, hi = mean_with_band(xs, ys, grid=np.array([1.0, 3.0, 5.0, 15.0]))
    assert grid.tolist() == [3.0, 5.0]
    assert mean.tolist() == [3.0, 5.0] and lo.tolist() == [3.0, 5.0] and hi.tolist() == [3.0, 5.0]
    assert mean_with_band([np.array([0.0, 1.0]), np.array([2.0, 3.0])], ys) is None
    assert rolling_mean(np.array([2.0, 4.0, 6.0]), 2).tolist() == [2.0, 3.0, 5.0]


def test_plot_output_errors(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run-1")
    runs = find_runs([run_dir])
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for bad, expected in (
        (blocker / "plot.png", "cannot"),
        (tmp_path, "is a folder"),
        (tmp_path / "a.gif", ".gif"),
    ):
        with pytest.raises(OutputError, match=expected) as info:
            plot_runs(runs, bad)
        assert str(bad) in str(info.value) and "\n" not in str(info.value)
    # An existing output file is replaced; nothing else in the folder changes.
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "plot.png").write_bytes(b"old")
    (out_dir / "other.png").write_bytes(b"keep")
    res = plot_runs(runs, out_dir / "plot.png")
    assert _is_png(res.output)
    assert sorted(p.name for p in out_dir.iterdir()) == ["other.png", "plot.png"]
    assert (out_dir / "other.png").read_bytes() == b"keep"
    with pytest.raises(ModelLoadError, match="no runs"):
        plot_runs([], tmp_path / "none.png")
    # A run folder whose monitor files are gone.
    for f in (run_dir / "monitor").iterdir():
        f.unlink()
    with pytest.raises(ModelLoadError, match=str(run_dir)):
        plot_runs([load_run(run_dir)], tmp_path / "m.png")
    assert not (tmp_path / "m.png").exists()


# ----------------------------------------------------------------------------- report


def test_report_groups_seeds(two_configs: dict) -> None:
    models = two_configs["models"]
    # A fourth ppo seed without a final evaluation: falls back to the last 10 episodes.
    make_run(models / "ppo-CartPole-v1" / "run-4", seed=3, base=50.0, n_episodes=20, final=None,
             config_file="configs/ppo.yaml", status="interrupted")  # fmt: skip
    runs = find_runs([models / "a2c-CartPole-v1", models / "ppo-CartPole-v1"])
    rows = build_report(runs, reps=500)
    assert [(r.algo, r.n_seeds) for r in rows] == [("a2c", 3), ("ppo", 4)]
    a2c, ppo = rows
    assert a2c.seeds == [0, 1, 2] and a2c.final_rewards == [10.0, 20.0, 30.0]
    assert a2c.mean == pytest.approx(20.0) and a2c.iqm == pytest.approx(20.0)
    assert not a2c.from_monitor and a2c.final_sources == ["final_eval"] * 3
    assert a2c.steps_per_s == pytest.approx(2000.0) and a2c.wall_time_s == pytest.approx(20.0)
    # Last 10 of episodes 0..19 with reward 50 + i: mean 50 + 14.5.
    assert ppo.final_rewards == [100.0, 200.0, 600.0, 64.5]
    assert ppo.final_sources[-1] == "monitor" and ppo.from_monitor
    assert ppo.mean == pytest.approx(241.125)
    assert ppo.iqm == pytest.approx(150.0)  # middle two of 64.5, 100, 200, 600
    assert ppo.n_interrupted == 1
    for r in rows:
        assert min(r.final_rewards) <= r.mean_lo <= r.mean <= r.mean_hi <= max(r.final_rewards)
        assert min(r.final_rewards) <= r.iqm_lo <= r.iqm <= r.iqm_hi <= max(r.final_rewards)

    data = json.loads(to_json(rows))
    assert len(data) == 2
    keys = {"algo", "env", "label", "n_seeds", "seeds", "final_rewards", "final_sources", "from_monitor"}
    keys |= {"mean", "mean_lo", "mean_hi", "iqm", "iqm_lo", "iqm_hi", "steps_per_s", "wall_time_s"}
    assert keys <= set(data[0])
    assert data[1]["final_sources"][-1] == "monitor"

    table = format_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("config") and "IQM [95% CI]" in lines[0]
    assert lines[2].startswith("a2c CartPole-v1 (a2c)") and lines[3].startswith("ppo CartPole-v1 (ppo)")
    assert "64.5*" in lines[3] and "1 interrupted" in lines[3]
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule aligned
    assert any(line.startswith("* ") for line in lines)

    md = format_markdown(rows).splitlines()
    assert md[0].startswith("| config |") and md[1].startswith("|---|")
    assert len(md[2].split(" | ")) == len(md[0].split(" | "))


def test_report_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        build_report([])
    run_dir = tmp_path / "ppo-X-v0" / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / "train.json").write_text(json.dumps({"algo": "ppo", "env": "X-v0", "seed": 0}))
    with pytest.raises(ModelLoadError, match="no final_eval") as info:
        build_report(find_runs([run_dir]))
    assert str(run_dir) in str(info.value)
