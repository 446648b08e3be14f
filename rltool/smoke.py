"""CI smoke runs (``rltool smoke``): does every config still train, save, load, evaluate and render?

For each config file, in a temporary folder:

1. load and validate it (as ``rltool train`` does);
2. train for a tiny budget with a shrunk copy of it (:func:`smoke_config`);
3. load the saved model back through the safe loader and evaluate one episode;
4. record a few frames to an mp4 (skipped, with a note, for envs without ``rgb_array`` rendering).

A failure in any step fails that config's row with its one-line error; the other configs still run.

Default budget (``--steps`` replaces it):

* on-policy algorithms (PPO, A2C, TRPO, ...): two rollouts, ``2 * n_steps * n_envs``; only one
  when two would exceed :data:`MAX_STEPS` (SB3 always completes the rollout it started);
* off-policy algorithms (DQN, SAC, TD3, TQC, ...): ``learning_starts`` (capped at
  :data:`MAX_LEARNING_STARTS`) plus :data:`OFF_POLICY_TRAIN_STEPS` steps of updates, or two
  ``train_freq`` periods when those are longer;
* others (ARS): :data:`OTHER_STEPS` (one update at least).

To keep the run small, the copy also uses at most :data:`MAX_ENVS` envs (more when an on-policy
rollout would not fill one ``batch_size`` mini-batch), a replay buffer of at most
:data:`MAX_BUFFER_SIZE`, and no periodic evaluation, checkpoints or TensorBoard. Nothing else of the
config changes.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rltool.config import ExperimentConfig
from rltool.errors import EnvError, RltoolError
from rltool.rundir import RunStatus
from rltool.type_aliases import Report

MAX_STEPS = 5_000
MAX_ENVS = 2
MAX_LEARNING_STARTS = 1_000
OFF_POLICY_TRAIN_STEPS = 100
MAX_BUFFER_SIZE = 10_000
OTHER_STEPS = 1_000
YAML_SUFFIXES = (".yaml", ".yml")

PASS, FAIL, INTERRUPTED = "pass", "fail", "interrupted"


@dataclass
class SmokeResult:
    """The outcome of one config's smoke run.

    :param config: the config file as given.
    :param algo: algorithm, once the config loaded.
    :param env: env id, once the config loaded.
    :param steps: env steps trained, once training ended.
    :param seconds: wall time of the whole row (load, train, evaluate, video).
    :param status: :data:`PASS`, :data:`FAIL` or :data:`INTERRUPTED`.
    :param error: the one-line error of a failed row.
    :param notes: remarks such as a skipped video.
    :param run_dir: the run folder in the smoke folder (gone unless it was kept).
    """

    config: str
    algo: str | None = None
    env: str | None = None
    steps: int | None = None
    seconds: float = 0.0
    status: str = FAIL
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    run_dir: Path | None = None

    @property
    def passed(self) -> bool:
        """:return: whether the row passed."""
        return self.status == PASS


def find_configs(targets: list[Path]) -> list[Path]:
    """Expand folders into the ``*.yaml``/``*.yml`` files below them (recursively, sorted).

    :param targets: config files and folders; files are kept as given (a missing file fails its row).
    :return: the config files, each once, in target order.
    :raises RltoolError: a folder holds no YAML file.
    """
    found: list[Path] = []
    for target in targets:
        if target.is_dir():
            files = sorted(
                p
                for p in target.rglob("*")
                if p.suffix.lower() in YAML_SUFFIXES and p.is_file() and not _hidden(p, target)
            )
            if not files:
                raise RltoolError(f"{target}: no *.yaml or *.yml config files in this folder")
            found += files
        else:
            found.append(target)
    unique: list[Path] = []
    seen: set[Path] = set()
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _defaults(algo: str) -> dict[str, Any]:
    """Constructor defaults of the algorithm class (imports it)."""
    from rltool.algos import algo_class

    parameters = inspect.signature(algo_class(algo)).parameters
    return {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}


def smoke_config(config: ExperimentConfig, steps: int | None = None) -> ExperimentConfig:
    """A copy of ``config`` shrunk for a smoke run (see the module docstring for the rules).

    :param config: the validated config.
    :param steps: the budget; None: the per-algorithm default.
    :return: the copy, with ``n_timesteps`` set to the budget.
    """
    from rltool.algos.registry import ALGOS

    spec = ALGOS[config.algo]
    defaults = _defaults(config.algo)
    kwargs = dict(config.algo_kwargs)

    def value(key: str) -> Any:
        return kwargs.get(key, defaults.get(key))

    n_envs = min(config.n_envs, MAX_ENVS)
    if spec.off_policy:
        learning_starts = min(int(value("learning_starts") or 0), MAX_LEARNING_STARTS)
        if "learning_starts" in defaults:
            kwargs["learning_starts"] = learning_starts
        buffer_size = value("buffer_size")
        if isinstance(buffer_size, int) and buffer_size > MAX_BUFFER_SIZE:
            kwargs["buffer_size"] = MAX_BUFFER_SIZE
        train_steps = OFF_POLICY_TRAIN_STEPS
        train_freq = value("train_freq")
        if isinstance(train_freq, int) or (isinstance(train_freq, (tuple, list)) and train_freq[1] == "step"):
            frequency = train_freq if isinstance(train_freq, int) else int(train_freq[0])
            train_steps = max(train_steps, 2 * frequency * n_envs)
        budget = learning_starts + train_steps
    elif "n_steps" in spec.keywords and isinstance(value("n_steps"), int):
        n_steps = value("n_steps")
        batch_size = value("batch_size")
        if isinstance(batch_size, int) and n_steps * n_envs < batch_size:
            # a rollout smaller than a mini-batch makes SB3 warn; use just enough envs to fill one
            n_envs = min(config.n_envs, math.ceil(batch_size / n_steps))
        rollout = n_steps * n_envs
        budget = 2 * rollout if 2 * rollout <= MAX_STEPS else rollout
    else:
        budget = OTHER_STEPS
    return replace(config, n_envs=n_envs, n_timesteps=steps or budget, algo_kwargs=kwargs)


def _one_line(error: BaseException) -> str:
    if isinstance(error, RltoolError):
        return str(error)
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def smoke_one(
    path: Path,
    folder: Path,
    *,
    steps: int | None = None,
    video_length: int = 10,
    allowed_modules: tuple[str, ...] = (),
    trust_pickles: bool = False,
) -> SmokeResult:
    """Load, train, evaluate and film one config inside ``folder``.

    :param path: the config file.
    :param folder: where its run and video go.
    :param steps: budget (None: the per-algorithm default).
    :param video_length: env steps to film.
    :param allowed_modules: module prefixes allowed for wrappers and callbacks.
    :param trust_pickles: allow files that need unpickling.
    :return: the row; never raises for a broken config (KeyboardInterrupt propagates).
    """
    from rltool.config import load_config

    result = SmokeResult(config=str(path))
    started = time.perf_counter()
    stage = "load"
    try:
        config = load_config(path)
        result.algo, result.env = config.algo, config.env
        small = smoke_config(config, steps)
        stage = "train"
        from rltool.train import TrainOptions, train

        options = TrainOptions(
            log_folder=folder / "models",
            eval_freq=0,
            save_freq=0,
            final_eval_episodes=0,
            progress=False,
            tensorboard=False,
            threads=1,
            allowed_modules=allowed_modules,
            trust_pickles=trust_pickles,
        )
        trained = train(small, options, report=lambda line: None)
        result.steps, result.run_dir = trained.num_timesteps, trained.run_dir
        if trained.status != RunStatus.FINISHED:
            result.status = INTERRUPTED
            return result
        stage = "evaluate"
        from rltool.evaluate import evaluate, resolve_target

        target = resolve_target(trained.run_dir)
        evaluate(target, episodes=1, trust_pickles=trust_pickles, allowed_modules=allowed_modules)
        stage = "video"
        from rltool.video import check_rgb_array, record_video

        try:
            check_rgb_array(target)
        except EnvError:
            result.notes.append("video skipped: no rgb_array")
        else:
            output = folder / "videos" / f"{trained.run_dir.parent.name}-{trained.run_dir.name}.mp4"
            record_video(
                target,
                length=video_length,
                output=output,
                trust_pickles=trust_pickles,
                allowed_modules=allowed_modules,
            )
        result.status = PASS
    except Exception as error:  # noqa: BLE001 - every failure becomes its row's one-line error
        message = _one_line(error)
        result.error = message if stage in ("load", "train") else f"{stage}: {message}"
    finally:
        result.seconds = time.perf_counter() - started
    return result


def smoke_configs(
    paths: list[Path],
    steps: int | None = None,
    *,
    video_length: int = 10,
    workdir: Path | None = None,
    allowed_modules: tuple[str, ...] = (),
    trust_pickles: bool = False,
    report: Report | None = None,
) -> list[SmokeResult]:
    """Smoke-run every config; stops early only on Ctrl-C (that row is :data:`INTERRUPTED`).

    :param paths: config files (see :func:`find_configs` for folders).
    :param steps: budget per config (None: the per-algorithm default).
    :param video_length: env steps filmed per config.
    :param workdir: folder for runs and videos, kept afterwards; None: a temporary folder, deleted.
    :param allowed_modules: module prefixes allowed for wrappers and callbacks.
    :param trust_pickles: allow files that need unpickling.
    :param report: called with a line before each config and after it.
    :return: one row per config that ran, in order.
    :raises RltoolError: ``steps`` or ``video_length`` < 1.
    """
    if steps is not None and steps < 1:
        raise RltoolError(f"--steps: must be >= 1, got {steps}")
    if video_length < 1:
        raise RltoolError(f"--length: must be >= 1, got {video_length}")
    from rltool.runtime import set_threads

    set_threads(1)
    folder = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="rltool-smoke-"))
    results: list[SmokeResult] = []
    try:
        for number, path in enumerate(paths, 1):
            if report:
                report(f"[{number}/{len(paths)}] {path}")
            try:
                row = smoke_one(
                    path,
                    folder / f"{number:03d}",
                    steps=steps,
                    video_length=video_length,
                    allowed_modules=allowed_modules,
                    trust_pickles=trust_pickles,
                )
            except KeyboardInterrupt:
                row = SmokeResult(config=str(path), status=INTERRUPTED)
            results.append(row)
            if report:
                report(f"[{number}/{len(paths)}] {path}: {_result_text(row)} ({row.seconds:.1f}s)")
            if row.status == INTERRUPTED:
                break
    finally:
        if workdir is None:
            with contextlib.suppress(OSError):
                shutil.rmtree(folder)
    return results


def _result_text(row: SmokeResult) -> str:
    if row.status == FAIL:
        return f"FAIL: {row.error}"
    if row.status == INTERRUPTED:
        return "interrupted"
    return "pass" + (f" ({'; '.join(row.notes)})" if row.notes else "")


def format_table(results: list[SmokeResult]) -> str:
    """The pass/fail table: config, algo, env, steps, seconds, result (a failure shows its error).

    :param results: from :func:`smoke_configs`.
    :return: the table, lines joined by newlines, followed by a one-line total.
    """
    headers = ["config", "algo", "env", "steps", "seconds", "result"]
    rows = [
        [
            r.config,
            r.algo or "-",
            r.env or "-",
            "-" if r.steps is None else f"{r.steps:,}",
            f"{r.seconds:.1f}",
            _result_text(r),
        ]
        for r in results
    ]
    right = [False, False, False, True, True, False]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers) - 1)]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=False)]
        return "  ".join([*parts, cells[-1]]).rstrip()

    out = [line(headers), "  ".join("-" * w for w in [*widths, len("result")])]
    out += [line(row) for row in rows]
    failed = sum(r.status == FAIL for r in results)
    passed = sum(r.passed for r in results)
    out.append("")
    out.append(
        f"{passed} passed, {failed} failed"
        + (" (interrupted)" if results and results[-1].status == INTERRUPTED else "")
    )
    return "\n".join(out)
