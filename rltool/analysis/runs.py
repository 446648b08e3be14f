"""Find the run folders written by ``rltool train`` and load their logs.

A run folder is ``<log_folder>/<algo>-<env>/run-<N>/`` holding ``train.json``,
``config.yaml``, ``monitor/train-<i>.monitor.csv`` (one per env copy, SB3 Monitor
format) and optionally ``evaluations.npz`` (SB3 EvalCallback format).
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rltool.errors import ConfigError, ModelLoadError
from rltool.rundir import TRAIN_JSON, folder_name, is_run_dir, numbered_runs, read_train_json

_YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class RunInfo:
    """One training run.

    :param path: the run folder.
    :param algo: algorithm name as in train.json (e.g. ``"ppo"``).
    :param env: environment id (e.g. ``"CartPole-v1"``).
    :param seed: the run's seed, or None when unknown.
    :param config_name: stem of the config file the run was trained from (train.json
        ``config_file``), or None when not recorded.
    :param label: display and grouping label, ``"<algo> <env>"`` plus ``" (<config_name>)"``.
        Runs with the same (algo, env, label) are seeds of one config.
    :param train_json: the parsed train.json, or None when the run has none (e.g. still running).
    """

    path: Path
    algo: str
    env: str
    seed: int | None = None
    config_name: str | None = None
    label: str = ""
    train_json: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.label:
            self.label = make_label(self.algo, self.env, self.config_name)

    @property
    def group_key(self) -> tuple[str, str, str]:
        """``(algo, env, label)``: runs sharing it are seeds of the same config."""
        return (self.algo, self.env, self.label)

    @property
    def status(self) -> str | None:
        """``"finished"``, ``"interrupted"`` or None when train.json is missing."""
        return None if self.train_json is None else self.train_json.get("status")


@dataclass
class EvalData:
    """Periodic evaluations of one run (SB3 ``evaluations.npz``).

    :param timesteps: ``(K,)`` training steps at which each evaluation ran.
    :param results: ``(K, n_eval_episodes)`` episode rewards.
    """

    timesteps: np.ndarray
    results: np.ndarray

    @property
    def mean_reward(self) -> np.ndarray:
        """``(K,)`` mean reward over the evaluation episodes."""
        return self.results.mean(axis=1)


def make_label(algo: str, env: str, config_name: str | None) -> str:
    """Label of a config: ``"ppo CartPole-v1 (cartpole)"``, or ``"ppo CartPole-v1"`` without a config name.

    :param algo: algorithm name.
    :param env: environment id.
    :param config_name: config file stem or None.
    :return: the label.
    """
    base = f"{algo} {env}"
    return f"{base} ({config_name})" if config_name else base


def _run_dirs_in(folder: Path, need_train_json: bool) -> list[Path]:
    """``run-*`` subfolders of ``folder`` that are run folders, ordered by run number."""
    return [
        child
        for child in numbered_runs(folder)
        if ((child / TRAIN_JSON).is_file() if need_train_json else is_run_dir(child))
    ]


def _read_yaml_mapping(path: Path) -> dict[str, Any] | None:
    """The YAML file's top-level mapping, or None when it is not a mapping."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        # YAML errors span several lines; keep the message to one.
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{path}: cannot read YAML ({reason})") from exc
    return data if isinstance(data, dict) else None


def load_run(run_dir: Path | str) -> RunInfo:
    """Describe one run folder from its train.json (or config.yaml / folder name as fallbacks).

    :param run_dir: a run folder (has train.json or monitor/).
    :return: the run's :class:`RunInfo`.
    """
    path = Path(run_dir)
    train = read_train_json(path, strict=True) if (path / TRAIN_JSON).is_file() else None
    info: dict[str, Any] = {}
    if train is None and (path / "config.yaml").is_file():
        try:
            info = _read_yaml_mapping(path / "config.yaml") or {}
        except ConfigError:
            info = {}
    elif train is not None:
        info = train
    algo, env = info.get("algo"), info.get("env")
    if not algo or not env:
        # "<algo>-<env>" parent folder; algo names contain no "-".
        parent = path.resolve().parent.name
        guess_algo, _, guess_env = parent.partition("-")
        algo = algo or (guess_algo if guess_env else "unknown")
        env = env or (guess_env or parent)
    seed = info.get("seed")
    config_file = train.get("config_file") if train else None
    config_name = Path(str(config_file)).stem if config_file else None
    return RunInfo(
        path=path,
        algo=str(algo),
        env=str(env),
        seed=int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None,
        config_name=config_name,
        train_json=train,
    )


def _runs_of_config(config: Path, log_folder: Path) -> list[Path]:
    data = _read_yaml_mapping(config)
    if data is None or not data.get("env") or not data.get("algo"):
        raise ConfigError(f"{config}: not a single-experiment config (needs top-level 'env' and 'algo' keys)")
    algo, env = str(data["algo"]), str(data["env"])
    candidates = [log_folder / folder_name(algo, env)]
    if algo != algo.lower():
        candidates.append(log_folder / folder_name(algo.lower(), env))
    for folder in candidates:
        if folder.is_dir():
            runs = _run_dirs_in(folder, need_train_json=True)
            if runs:
                return runs
    raise ModelLoadError(
        f"{config}: no runs found in {candidates[0]} (expected run-*/train.json; train the config first)"
    )


def _run_dirs_of_target(target: Path, log_folder: Path) -> list[Path]:
    if not target.exists():
        if target.suffix.lower() in _YAML_SUFFIXES:
            raise ConfigError(f"{target}: config file not found")
        raise ModelLoadError(f"{target}: no such file or folder (expected a config YAML or a run folder)")
    if target.is_file():
        if target.suffix.lower() in _YAML_SUFFIXES:
            return _runs_of_config(target, log_folder)
        raise ModelLoadError(f"{target}: expected a config YAML, a run folder or a folder of run-* folders")
    if is_run_dir(target):
        return [target]
    runs = _run_dirs_in(target, need_train_json=False)
    if not runs:
        raise ModelLoadError(
            f"{target}: not a run folder (no train.json or monitor/) and contains no run-* folders"
        )
    return runs


def find_runs(targets: list[Path | str], log_folder: Path | str = "models") -> list[RunInfo]:
    """Resolve command-line targets into runs.

    A target is a config YAML (all runs under ``<log_folder>/<algo>-<env>/`` that have a
    train.json), a run folder (has train.json or monitor/), or a folder of ``run-*`` folders.
    A run named by several targets is listed once, at its first position.

    :param targets: config files and/or folders.
    :param log_folder: where ``rltool train`` writes runs (for config targets).
    :return: the runs, in target order and by run number within a folder.
    :raises ConfigError: a config file is missing, unreadable or not a single-experiment config.
    :raises ModelLoadError: a target is neither a config nor a run folder, or a config has no runs.
    """
    if not targets:
        raise ModelLoadError("no runs given (expected config files or run folders)")
    log = Path(log_folder)
    runs: list[RunInfo] = []
    seen: set[Path] = set()
    for target in targets:
        for run_dir in _run_dirs_of_target(Path(target), log):
            key = run_dir.resolve()
            if key in seen:
                continue
            seen.add(key)
            runs.append(load_run(run_dir))
    return runs


def _read_monitor_file(path: Path):
    """One monitor CSV as a DataFrame with absolute episode end times in column ``t``."""
    import pandas as pd

    try:
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
            if not first.startswith("#"):
                raise ModelLoadError(
                    f"{path}: not an SB3 monitor file (first line must be '#{{json header}}')"
                )
            try:
                t_start = float(json.loads(first[1:])["t_start"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ModelLoadError(f"{path}: bad monitor header line ({exc})") from exc
            # A killed run may leave a truncated last line: skip malformed lines.
            df = pd.read_csv(fh, on_bad_lines="skip")
    except pd.errors.EmptyDataError:
        return None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ModelLoadError(f"{path}: cannot read monitor file ({exc})") from exc
    missing = {"r", "l", "t"} - set(df.columns)
    if missing:
        raise ModelLoadError(f"{path}: monitor file lacks column(s) {', '.join(sorted(missing))}")
    columns = ["r", "l", "t"] + (["is_success"] if "is_success" in df.columns else [])  # goal envs
    df = df[columns].apply(pd.to_numeric, errors="coerce").dropna(subset=["r", "l", "t"])
    df["t"] = df["t"] + t_start
    return df, t_start


def load_monitor(run_dir: Path | str):
    """Merge the run's ``monitor/train-*.monitor.csv`` files into one episode table.

    Episodes of all env copies are ordered by their end time; the global timestep of an
    episode is the cumulative sum of episode lengths in that order (steps of episodes still
    running in other env copies are not counted).

    :param run_dir: a run folder.
    :return: ``pandas.DataFrame`` with one row per finished episode and columns
        ``episode`` (0-based index in time order), ``timesteps`` (cumulative steps at the
        episode's end), ``time`` (seconds since the earliest monitor start), ``reward``,
        ``length`` and ``env_index`` (which env copy); goal envs whose Monitor logs ``is_success``
        also get ``is_success`` (1.0 or 0.0).
    :raises ModelLoadError: no monitor files, unreadable files, or no finished episode.
    """
    import pandas as pd

    run = Path(run_dir)
    mon = run / "monitor"
    files = sorted(mon.glob("train-*.monitor.csv")) if mon.is_dir() else []
    if not files:
        raise ModelLoadError(f"{run}: no monitor files (expected monitor/train-*.monitor.csv)")
    frames = []
    starts = []
    for f in files:
        read = _read_monitor_file(f)
        if read is None:
            continue
        df, t_start = read
        starts.append(t_start)
        m = re.match(r"train-(\d+)\.monitor\.csv$", f.name)
        df["env_index"] = int(m.group(1)) if m else len(frames)
        frames.append(df)
    if not frames or all(len(df) == 0 for df in frames):
        raise ModelLoadError(f"{run}: monitor files contain no finished episode")
    data = pd.concat([df for df in frames if len(df)], ignore_index=True)
    data = data.sort_values(["t", "env_index"], kind="stable").reset_index(drop=True)
    out = pd.DataFrame(
        {
            "episode": np.arange(len(data), dtype=np.int64),
            "timesteps": data["l"].cumsum().astype(np.int64),
            "time": data["t"] - min(starts),
            "reward": data["r"].astype(float),
            "length": data["l"].astype(np.int64),
            "env_index": data["env_index"].astype(np.int64),
        }
    )
    if "is_success" in data.columns and data["is_success"].notna().all():
        out["is_success"] = data["is_success"].astype(float).to_numpy()
    return out


def load_evaluations(run_dir: Path | str) -> EvalData | None:
    """Read the run's ``evaluations.npz`` (SB3 EvalCallback).

    :param run_dir: a run folder.
    :return: the evaluations, or None when the file is absent or holds no evaluation.
    :raises ModelLoadError: the file exists but cannot be read or lacks ``timesteps``/``results``.
    """
    path = Path(run_dir) / "evaluations.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "timesteps" not in npz or "results" not in npz:
                raise ModelLoadError(f"{path}: expected arrays 'timesteps' and 'results'")
            timesteps = np.asarray(npz["timesteps"], dtype=float).ravel()
            results = np.asarray(npz["results"], dtype=float)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"{path}: cannot read evaluations ({exc})") from exc
    if results.ndim == 1:
        results = results[:, None]
    if timesteps.size == 0 or results.size == 0:
        return None
    if results.shape[0] != timesteps.size:
        raise ModelLoadError(f"{path}: {timesteps.size} timesteps but {results.shape[0]} rows of results")
    return EvalData(timesteps=timesteps, results=results)
