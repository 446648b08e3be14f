"""Tests of ``rltool tune``: search spaces, the exact global cap with racing workers (journal file and
PostgreSQL), pruning of diverging trials, Ctrl-C, and a best.yaml that trains as is.

Worker tests start real ``rltool tune`` processes. Budgets are tiny: PPO on CartPole-v1, 1024 steps per
trial. With ``--seed 11`` trial k always draws the same parameters (the sampler is seeded with
(seed, k)), and those of trials 0-7 all train in a few seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from typer.testing import CliRunner

from rltool.cli.main import app
from rltool.config import config_to_yaml, load_config
from rltool.tune.options import TuneError, TuneOptions, results_dir
from rltool.tune.samplers import SAMPLERS
from rltool.tune.storage import claim_results_dir, open_storage, parse_storage
from rltool.tune.study import open_study
from rltool.tune.trial import apply_params, config_of_params
from rltool.tune.worker import _lost_race, fail_dead_local_trials

SEED = "11"
TRIAL_ARGS = ["-n", "1024", "--n-evaluations", "2", "--eval-episodes", "2", "--seed", SEED]
CONFIG = """\
env: CartPole-v1
algo: ppo
seed: 11
n_timesteps: 50000
n_envs: 2
policy: MlpPolicy
"""
# Several workers: each imports what a tune worker needs, then waits at a start line until all are up,
# so which worker runs which trial does not depend on start-up times; then runs the real command line.
_START_LINE_LAUNCHER = """
import os
import sys
import time
from pathlib import Path

import optuna, stable_baselines3, torch  # noqa: F401,E401 - loaded before the start line
import rltool.tune.study  # noqa: F401
from rltool.cli.main import run

ready = Path(os.environ["RLTOOL_TEST_START_LINE"])
workers = int(os.environ["RLTOOL_TEST_WORKERS"])
ready.mkdir(parents=True, exist_ok=True)
(ready / str(os.getpid())).touch()
deadline = time.monotonic() + 60
while len(list(ready.iterdir())) < workers:
    if time.monotonic() > deadline:
        sys.exit("start line: the other workers never arrived")
    time.sleep(0.01)
sys.argv[0] = "rltool"
run()
"""


def _rltool(*args: str) -> list[str]:
    """:return: the real ``rltool`` command line (a command missing from rltool.cli.main fails)."""
    return [sys.executable, "-m", "rltool", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "cartpole.yaml"
    path.write_text(CONFIG)
    return path


def _run_workers(args: list[str], count: int, cwd: Path, timeout: float = 150) -> list[tuple[int, str, str]]:
    env = {
        **_env(),
        "RLTOOL_TEST_START_LINE": str(cwd / f"start-{uuid.uuid4().hex[:8]}"),
        "RLTOOL_TEST_WORKERS": str(count),
    }
    command = _rltool(*args) if count == 1 else [sys.executable, "-c", _START_LINE_LAUNCHER, *args]
    processes = [
        subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    results = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        results.append((process.returncode, out, err))
    return results


def _check_exact_cap(study: optuna.Study, cap: int, workers: int = 2) -> None:
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == cap, [(t.number, t.state.name) for t in trials]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], "a trial was lost"
    for trial in trials:  # the only FAIL trials allowed: race losers that never ran
        if trial.state == TrialState.FAIL:
            assert trial.user_attrs["fail_reason"].startswith("not run"), trial.user_attrs
    assert (
        sorted(t.number for t in finished)
        == sorted(t.number for t in trials if t.state != TrialState.FAIL)[:cap]
    )
    assert len({tuple(sorted(t.params.items())) for t in finished}) == cap, (
        "two trials drew the same parameters"
    )
    assert len({t.user_attrs["worker"] for t in finished}) == workers, "every worker should have run trials"


def _workers_ok(results: list[tuple[int, str, str]]) -> None:
    for code, out, err in results:
        assert code == 0, f"exit {code}\n{out}\n{err}"


# ---------------------------------------------------------------------------
# Several workers, one study


def test_two_workers_share_journal_study_with_exact_cap(config_file: Path, tmp_path: Path) -> None:
    name = f"cap-{uuid.uuid4().hex[:8]}"
    args = [
        "tune",
        str(config_file),
        "--max-total-trials",
        "6",
        "--study-name",
        name,
        "-f",
        "runs",
        *TRIAL_ARGS,
    ]
    results = _run_workers(args, 2, tmp_path)
    _workers_ok(results)
    folder = tmp_path / "runs" / "tune" / name
    study = optuna.load_study(
        study_name=name, storage=JournalStorage(JournalFileBackend(str(folder / "study.log")))
    )
    _check_exact_cap(study, 6)
    assert {"best.yaml", "trials.csv", "history.png", "study.log"} <= {p.name for p in folder.iterdir()}


def test_two_workers_share_postgres_study_with_exact_cap(config_file: Path, tmp_path: Path) -> None:
    url = os.environ.get("RLTOOL_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "CI=true but RLTOOL_TEST_POSTGRES_URL is unset: `source .ci/postgres.sh` before the tests"
            )
        pytest.skip("RLTOOL_TEST_POSTGRES_URL is unset (`source .ci/postgres.sh` starts a local PostgreSQL)")
    name = f"cap-pg-{uuid.uuid4().hex[:8]}"
    args = [
        "tune",
        str(config_file),
        "--max-total-trials",
        "6",
        "--study-name",
        name,
        "--storage",
        url,
        "-f",
        "runs",
    ]
    results = _run_workers([*args, *TRIAL_ARGS], 2, tmp_path)
    storage = open_storage(parse_storage(url, tmp_path / "unused.log"))
    try:
        _workers_ok(results)
        _check_exact_cap(optuna.load_study(study_name=name, storage=storage), 6)
        assert (tmp_path / "runs" / "tune" / name / "best.yaml").exists()
    finally:
        optuna.delete_study(study_name=name, storage=storage)


_INSTANT_WORKER = """
import os
import sys
import time
from pathlib import Path

import rltool.tune.study as study_module
import rltool.tune.worker as worker_module
from rltool.config import load_config


def instant_trial(trial, config, options):  # no training: trials end at once, so workers race hard
    return trial.suggest_float("x", 0.0, 1.0), config


worker_module.run_trial = instant_trial
config = load_config(sys.argv[1], check_env=False)
options = study_module.TuneOptions(
    max_total_trials=int(sys.argv[2]), study_name=sys.argv[3], log_folder=Path(sys.argv[4]), sampler="random"
)
study, _, _ = study_module.open_study(config, options)
# start line: no worker begins before all are up, so the race does not depend on start-up times
ready = Path(sys.argv[4]) / "ready"
ready.mkdir(exist_ok=True)
(ready / str(os.getpid())).touch()
deadline = time.monotonic() + 60
while len(list(ready.iterdir())) < int(sys.argv[5]) and time.monotonic() < deadline:
    time.sleep(0.01)
study_module.run_worker(study, config, options, report=lambda line: None)
"""


def test_cap_is_exact_when_three_workers_race_with_instant_trials(config_file: Path, tmp_path: Path) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-c", _INSTANT_WORKER, str(config_file), "30", name, str(tmp_path), "3"]
    processes = [subprocess.Popen(command, env=_env(), stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read()
    log = tmp_path / "tune" / name / "study.log"
    _check_exact_cap(
        optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(log)))), 30, 3
    )


_FRESH_STORAGE_WORKER = """
import os
import sys
import time
from pathlib import Path

import rltool.tune.study as study_module
import rltool.tune.worker as worker_module
from rltool.config import load_config


def instant_trial(trial, config, options):
    return trial.suggest_float("x", 0.0, 1.0), config


worker_module.run_trial = instant_trial
config_path, cap, name, folder, workers, storage = sys.argv[1:7]
config = load_config(config_path, check_env=False)
options = study_module.TuneOptions(
    max_total_trials=int(cap), study_name=name, log_folder=Path(folder), sampler="random", storage=storage
)
# start line before the storage is opened: every worker meets a brand-new storage at the same instant
ready = Path(folder) / "ready"
ready.mkdir(parents=True, exist_ok=True)
(ready / str(os.getpid())).touch()
deadline = time.monotonic() + 60
while len(list(ready.iterdir())) < int(workers):
    if time.monotonic() > deadline:
        sys.exit("start line: the other workers never arrived")
    time.sleep(0.005)
study, _, _ = study_module.open_study(config, options)
study_module.run_worker(study, config, options, report=lambda line: None)
"""


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A brand-new PostgreSQL database for this test alone, so the first-use path runs on every machine."""
    url = os.environ.get("RLTOOL_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but RLTOOL_TEST_POSTGRES_URL is unset: `source .ci/postgres.sh` first")
        pytest.skip("RLTOOL_TEST_POSTGRES_URL is unset (`source .ci/postgres.sh` starts a local PostgreSQL)")
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"rltool_fresh_{uuid.uuid4().hex[:10]}"
    conninfo = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("kind", ["journal", "sqlite", "postgres"])
def test_four_workers_start_together_on_a_brand_new_storage(
    kind: str, config_file: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    storage = {
        "journal": str(tmp_path / "fresh.log"),
        "sqlite": f"sqlite:///{tmp_path / 'fresh.db'}",
        "postgres": request.getfixturevalue("fresh_postgres_url") if kind == "postgres" else "",
    }[kind]
    name = f"fresh-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-c", _FRESH_STORAGE_WORKER, str(config_file), "12", name, str(tmp_path), "4"]
    processes = [
        subprocess.Popen([*command, storage], env=_env(), stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    errors = [(process.wait(timeout=120), process.stderr.read()) for process in processes]
    assert all(code == 0 for code, _ in errors), errors
    study = optuna.load_study(
        study_name=name, storage=open_storage(parse_storage(storage, tmp_path / "x.log"))
    )
    # which workers got trials depends on timing; that every worker opened the storage is the point here
    finished = [t for t in study.get_trials() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    _check_exact_cap(study, 12, workers=len({t.user_attrs["worker"] for t in finished}))


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_storage_that_is_another_kind_of_file_is_refused_untouched(
    kind: str, config_file: Path, tmp_path: Path
) -> None:
    target = tmp_path / ("notes.log" if kind == "journal" else "data.db")
    if kind == "journal":
        target.write_text("my own notes, not a journal\n")
    else:
        import sqlite3

        with contextlib.closing(sqlite3.connect(target)) as db:
            db.execute("CREATE TABLE mine (x INTEGER)")
            db.commit()
    before = target.read_bytes()
    storage = str(target) if kind == "journal" else f"sqlite:///{target}"
    code, output = _cli(str(config_file), "--storage", storage, "-f", str(tmp_path))
    assert code == 2, output
    assert "is not" in output and "Traceback" not in output
    assert target.read_bytes() == before


def test_worker_with_another_config_is_refused_naming_the_key(config_file: Path, tmp_path: Path) -> None:
    name = f"cfg-{uuid.uuid4().hex[:8]}"
    config = load_config(config_file)
    options = TuneOptions(study_name=name, log_folder=tmp_path)
    open_study(config, options)
    other = tmp_path / "other.yaml"
    other.write_text(CONFIG.replace("n_envs: 2", "n_envs: 4"))
    with pytest.raises(TuneError, match=r"n_envs = 2 there, 4 in .*other.yaml"):
        open_study(load_config(other), options)
    open_study(load_config(config_file), options)  # the same config joins


def test_trial_of_a_dead_worker_on_this_machine_is_failed(tmp_path: Path) -> None:
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(tmp_path / "study.log"))))
    orphan, mine = study.ask(), study.ask()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    orphan.set_user_attr("worker", f"{socket.gethostname()}:{gone.stdout.strip()}")
    mine.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    assert fail_dead_local_trials(study) == [orphan.number]
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.RUNNING]


def test_race_loser_is_told_fail_and_the_winners_run() -> None:
    study = optuna.create_study(direction="maximize")
    done = study.ask()
    study.tell(done, 1.0)
    first, second = study.ask(), study.ask()  # two workers asked at the same moment
    assert not _lost_race(study, first.number, cap=2)
    assert _lost_race(study, second.number, cap=2)
    study.tell(first, state=TrialState.FAIL)  # a trial that failed frees its place
    assert not _lost_race(study, second.number, cap=2)


# ---------------------------------------------------------------------------
# One worker: divergence, results, best.yaml


@pytest.fixture(scope="module")
def diverging_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, tuple[int, str, str]]:
    folder = tmp_path_factory.mktemp("diverge")
    (folder / "cartpole.yaml").write_text(CONFIG)
    name = f"nan-{uuid.uuid4().hex[:8]}"
    # learning_rate 1e30 overflows the weights at the first update (1e6 does not: Adam normalizes steps)
    args = ["tune", "cartpole.yaml", "--trials", "2", "--study-name", name, "--enqueue", "learning_rate=1e30"]
    (result,) = _run_workers([*args, "-f", "runs", *TRIAL_ARGS], 1, folder)
    return folder / "runs" / "tune" / name, name, result


def test_diverging_trial_is_pruned_with_reason_and_study_continues(diverging_study) -> None:
    folder, name, (code, out, err) = diverging_study
    assert code == 0, out + err
    study = optuna.load_study(
        study_name=name, storage=JournalStorage(JournalFileBackend(str(folder / "study.log")))
    )
    first, second = study.get_trials(deepcopy=False)
    assert first.params["learning_rate"] == 1e30
    assert first.state == TrialState.PRUNED
    assert "diverged" in first.user_attrs["fail_reason"]
    assert second.state == TrialState.COMPLETE and second.value is not None
    assert "diverged" in (folder / "trials.csv").read_text()
    assert "trial 0: pruned: training diverged" in out


def test_best_yaml_trains_as_is(diverging_study, tmp_path: Path) -> None:
    folder, _, (code, out, err) = diverging_study
    assert code == 0, out + err
    best = folder / "best.yaml"
    assert load_config(best).n_timesteps == 50000  # the config's budget, not the 1024 steps per trial
    args = [str(best), "-n", "256", "-f", str(tmp_path / "models"), "--eval-freq", "0", "--no-progress"]
    result = subprocess.run(
        [sys.executable, "-m", "rltool", "train", *args, "--no-tensorboard"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert list((tmp_path / "models").glob("ppo-CartPole-v1/run-*/model.zip"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "SIGTERM"])
def test_stop_signal_marks_the_trial_writes_results_and_exits_128_plus_signum(
    config_file: Path, tmp_path: Path, signum: int
) -> None:
    name = f"int-{uuid.uuid4().hex[:8]}"
    args = ["tune", str(config_file), "--trials", "3", "--study-name", name, "-f", "runs", "-n", "100000"]
    process = subprocess.Popen(
        _rltool(*args, "--n-evaluations", "50", "--seed", SEED),
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "runs" / "tune" / name / "study.log"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # interrupt once a trial has reported an evaluation
            if log.exists():
                storage = JournalStorage(JournalFileBackend(str(log)))
                trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
                if trials and trials[0].intermediate_values:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("no trial reported an evaluation within 60 s: the test cannot interrupt one")
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, out + err
    trial = optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(log)))).trials[0]
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"].startswith("interrupted")
    assert "interrupted" in (log.parent / "trials.csv").read_text()


# ---------------------------------------------------------------------------
# Search spaces, options, storage


_ENVS = {
    "sac": "Pendulum-v1",
    "td3": "Pendulum-v1",
    "ddpg": "Pendulum-v1",
    "tqc": "Pendulum-v1",
    "crossq": "Pendulum-v1",
}


@pytest.mark.parametrize("algo", sorted(SAMPLERS))
def test_search_space_gives_configs_that_round_trip_and_build(algo: str, tmp_path: Path) -> None:
    from rltool.algos import build_model
    from rltool.envs.builder import build_vec_env

    path = tmp_path / "base.yaml"
    path.write_text(f"env: {_ENVS.get(algo, 'CartPole-v1')}\nalgo: {algo}\nn_timesteps: 1000\nn_envs: 2\n")
    config = load_config(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(2):
        trial = study.ask()
        derived = apply_params(config, SAMPLERS[algo](trial, config), n_timesteps=500)
        study.tell(trial, 0.0)
        assert config_of_params(config, trial.params, n_timesteps=500) == derived  # best.yaml's path
        written = tmp_path / "trial.yaml"
        written.write_text(config_to_yaml(derived))
        reloaded = load_config(written)  # validates every key and value
        assert (reloaded.algo_kwargs, reloaded.noise_type) == (derived.algo_kwargs, derived.noise_type)
        env = build_vec_env(derived)
        try:
            build_model(derived, env)
        finally:
            env.close()
    for required in ("ppo", "a2c", "dqn", "sac", "td3", "ddpg"):
        assert required in SAMPLERS


def _cli(*args: str) -> tuple[int, str]:
    """Run ``rltool tune ARGS`` through the real app, as the user's command line does."""
    result = CliRunner().invoke(app, ["tune", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sampler", "tpee"], "--sampler: unknown sampler 'tpee'; did you mean 'tpe'?"),
        (["--pruner", "medain"], "did you mean 'median'?"),
        (["--trials", "0"], "--trials: must be >= 1, got 0"),
        (["--storage", "mysql://u:p@h/db"], "unsupported scheme 'mysql://'"),
        (["--storage", "study.txt"], "expected a journal file ending in .log"),
        (["--storage", "postgresql+psycopg2://u:secret@127.0.0.1:1/db"], "install rltool[postgres]"),
        (["--enqueue", "learnig_rate=1e-3"], "did you mean 'learning_rate'?"),
        (["-n", "2", "--n-evaluations", "5"], "--n-evaluations 5 is more than the 2 steps per trial"),
    ],
)
def test_bad_options_give_one_line(config_file: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    code, output = _cli(str(config_file), "-f", str(tmp_path / "m"), *extra)
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.startswith("rltool: error:")]
    assert len(lines) == 1 and message in lines[0], output
    assert "secret" not in output


def test_storage_urls() -> None:
    spec = parse_storage("postgresql://me:secret@db.lan/optuna", Path("unused.log"))
    assert spec.location == "postgresql+psycopg://me:secret@db.lan/optuna"
    assert spec.display == "postgresql+psycopg://me:***@db.lan/optuna"
    assert parse_storage(None, Path("m/study.log")).kind == "journal"
    assert parse_storage("sqlite:///x.db", Path("unused.log")).kind == "rdb"


def test_results_folder_of_another_study_is_never_reused(tmp_path: Path) -> None:
    folder = results_dir(tmp_path, "a/b")
    assert folder == results_dir(tmp_path, "a_b")  # same folder name: the owner file tells them apart
    folder.mkdir(parents=True)
    claim_results_dir(folder, "a/b", parse_storage(None, folder / "study.log"))
    claim_results_dir(folder, "a/b", parse_storage(None, folder / "study.log"))  # same study: fine
    with pytest.raises(TuneError, match="holds results of study 'a/b'"):
        claim_results_dir(folder, "a_b", parse_storage(None, folder / "study.log"))


def test_options_are_checked_before_anything_is_created(config_file: Path, tmp_path: Path) -> None:
    from rltool.tune.options import check_options

    config = load_config(config_file)
    with pytest.raises(TuneError, match="--timeout"):
        check_options(config, TuneOptions(timeout=0))
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------
# Options of the README, through the real command line


@pytest.mark.parametrize(
    "extra",
    [["--sampler", "random", "--pruner", "none"], ["--pruner", "halving"]],
    ids=["random-none", "halving"],
)
def test_sampler_and_pruner_options_run_a_study(config_file: Path, tmp_path: Path, extra: list[str]) -> None:
    name = f"opt-{uuid.uuid4().hex[:8]}"
    code, output = _cli(
        str(config_file), "--trials", "2", "--study-name", name, "-f", str(tmp_path), *TRIAL_ARGS, *extra
    )
    assert code == 0, output
    rows = (tmp_path / "tune" / name / "trials.csv").read_text().splitlines()
    assert len(rows) == 3, rows  # header + 2 trials
    assert all(",COMPLETE," in row or ",PRUNED," in row for row in rows[1:]), rows


def test_timeout_stops_starting_new_trials(config_file: Path, tmp_path: Path) -> None:
    name = f"time-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    code, output = _cli(
        str(config_file),
        "--trials",
        "20",
        "--timeout",
        "0.5",
        "--study-name",
        name,
        "-f",
        str(tmp_path),
        *TRIAL_ARGS,
    )
    assert code == 0, output
    rows = (tmp_path / "tune" / name / "trials.csv").read_text().splitlines()
    # a trial takes 0.3 s or more, so 0.5 s allows one or two of the 20 asked for, whatever the load
    assert 1 <= len(rows) - 1 <= 2, f"--timeout 0.5 should end the worker after a trial or two: {rows}"
    assert "--timeout 0.5 s reached" in output
    assert time.monotonic() - started < 120


@pytest.mark.parametrize(
    ("extra", "key"),
    [(["-n", "2048"], "n_timesteps"), (["--algo", "a2c"], "algo"), (["--env", "Acrobot-v1"], "env")],
    ids=["n_timesteps", "algo", "env"],
)
def test_worker_with_another_algo_env_or_budget_is_refused(
    config_file: Path, tmp_path: Path, extra: list[str], key: str
) -> None:
    name = f"join-{uuid.uuid4().hex[:8]}"
    common = ["--study-name", name, "-f", str(tmp_path)]
    code, output = _cli(str(config_file), "--trials", "1", *common, *TRIAL_ARGS)
    assert code == 0, output
    log = tmp_path / "tune" / name / "study.log"
    code, output = _cli(str(config_file), "--trials", "1", *common, *TRIAL_ARGS, *extra)
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.startswith("rltool: error:")]
    assert len(lines) == 1 and key in lines[0], output
    assert len(load_study_trials(log, name)) == 1, "the refused worker ran a trial"


def load_study_trials(log: Path, name: str) -> list:
    return optuna.load_study(
        study_name=name, storage=JournalStorage(JournalFileBackend(str(log)))
    ).get_trials()


def test_a_stop_inside_a_trial_that_a_library_turned_into_its_own_error_stops_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trial's error with a Ctrl-C behind it stops the worker; any other error fails only the trial."""
    from rltool.tune import worker

    def interrupted_write(*args: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("Can't close the ZIP file while there is an open writing handle on it") from None

    monkeypatch.setattr(worker, "run_trial", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        worker._run_trial_or_stop(None, None, None)  # type: ignore[arg-type]

    def broken_trial(*args: object) -> None:
        raise ValueError("a plain bug")

    monkeypatch.setattr(worker, "run_trial", broken_trial)
    with pytest.raises(ValueError, match="a plain bug"):
        worker._run_trial_or_stop(None, None, None)  # type: ignore[arg-type]
