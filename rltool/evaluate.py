"""Finding a trained model (config, run folder or zip), loading it safely, and evaluating it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rltool.config import ExperimentConfig, load_config
from rltool.errors import ConfigError, ModelLoadError, did_you_mean
from rltool.rundir import is_run_dir, latest_run_with_model, newest_checkpoint_model


@dataclass(frozen=True)
class ModelTarget:
    """A model to load, with the config that rebuilds its env.

    :param model_path: the SB3 zip.
    :param config: the experiment (from the run's config.yaml, or built from --env/--algo).
    :param run_dir: the run folder, when the model lives in one.
    :param vecnormalize_path: statistics saved with the model, if the run has them.
    """

    model_path: Path
    config: ExperimentConfig
    run_dir: Path | None
    vecnormalize_path: Path | None


def resolve_target(
    target: Path | str,
    *,
    env: str | None = None,
    algo: str | None = None,
    log_folder: Path = Path("models"),
    best: bool = False,
) -> ModelTarget:
    """Find the model a command-line target names.

    ``target`` is a config file (its latest run under ``log_folder``), a run folder, a folder of
    runs (the latest), or a model zip (its run's config.yaml, else ``--env`` and ``--algo``).

    :param target: what the user typed.
    :param env: env id for a bare zip (or to override the config's).
    :param algo: algorithm for a bare zip.
    :param log_folder: where runs of configs live.
    :param best: prefer best_model.zip over model.zip.
    :return: the model and its config.
    """
    from rltool.share.pull import is_hf_target, is_zoo_run

    if is_hf_target(target):  # hf://ORG/NAME: pull (once), then use the pulled run folder
        from rltool.share.pull import hf_repo_id, pull

        target = pull(hf_repo_id(target), log_folder=log_folder, env=env, algo=algo)
    path = Path(target)
    if not path.exists():
        raise ModelLoadError(
            f"{path}: no such file or folder (expected a config, a run folder or a model .zip)"
        )
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        config = load_config(path, env=env, algo=algo)
        parent = log_folder / config.run_name
        run = latest_run_with_model(parent)
        if run is None:
            raise ModelLoadError(
                f"{path}: no trained run under {parent}/ (train it first: rltool train {path})"
            )
        return _from_run_dir(run, best)
    if path.is_dir():
        if is_zoo_run(path):  # an rl-baselines3-zoo run folder, read in place
            from rltool.share.pull import zoo_run_target

            best_zip = path / "best_model.zip"
            return zoo_run_target(
                path, env=env, algo=algo, model_path=best_zip if best and best_zip.exists() else None
            )
        run = path if is_run_dir(path) else latest_run_with_model(path)
        if run is None:
            raise ModelLoadError(f"{path}: holds no model (expected model.zip, or run-N folders with one)")
        found = _from_run_dir(run, best)
        _check_run_matches(found, env, algo)
        return found
    if path.suffix != ".zip":
        raise ModelLoadError(f"{path}: expected a config (.yaml), a run folder or a model .zip")
    if is_zoo_run(path.parent) and algo is None:  # a zip of a zoo run: with the run's config and statistics
        from rltool.share.pull import zoo_run_target

        return zoo_run_target(path.parent, env=env, model_path=path)
    run_dir = _run_dir_of(path)
    if run_dir is not None:
        config = _run_config(run_dir)
        if env is None or (env == config.env and algo in (None, config.algo)):  # same answer as the folder
            return ModelTarget(path, config, run_dir, _vecnormalize_beside(path, run_dir))
    if env is None or algo is None:
        raise ConfigError(
            f"{path}: a model zip outside a run folder needs --env and --algo (e.g. --env CartPole-v1 --algo ppo)"
        )
    return ModelTarget(path, _bare_config(path, env, algo), None, _vecnormalize_beside(path, None))


def _check_run_matches(found: ModelTarget, env: str | None, algo: str | None) -> None:
    """A run folder rebuilds its own env: refuse an --env or --algo that disagrees instead of ignoring it."""
    config = found.config
    for option, given, trained in (("--env", env, config.env), ("--algo", algo, config.algo)):
        if given is not None and given != trained:
            raise ConfigError(
                f"{found.run_dir}: trained with {option} {trained}, not {given}; a run folder keeps its "
                f"own env and algo (for its model on another env, give the zip: {found.model_path} "
                f"--env ENV --algo {config.algo})"
            )


def _run_dir_of(model_path: Path) -> Path | None:
    folder = model_path.parent
    if (folder / "config.yaml").exists():
        return folder
    if folder.parent.name == "checkpoints" and (folder.parent.parent / "config.yaml").exists():
        return folder.parent.parent
    return None


def _vecnormalize_beside(model_path: Path, run_dir: Path | None) -> Path | None:
    for candidate in (
        model_path.parent / "vecnormalize.pkl",
        run_dir / "vecnormalize.pkl" if run_dir else None,
    ):
        if candidate is not None and candidate.exists():
            return candidate
    return None


def _run_config(run_dir: Path) -> ExperimentConfig:
    config_path = run_dir / "config.yaml"
    if not config_path.exists():
        raise ModelLoadError(f"{run_dir}: no config.yaml (not a run folder written by rltool train)")
    return load_config(config_path)


def _from_run_dir(run_dir: Path, best: bool) -> ModelTarget:
    config = _run_config(run_dir)
    order = ("best_model.zip", "model.zip") if best else ("model.zip", "best_model.zip")
    for name in order:
        if (run_dir / name).exists():
            return ModelTarget(run_dir / name, config, run_dir, _vecnormalize_beside(run_dir / name, run_dir))
    checkpoint = newest_checkpoint_model(run_dir)
    if checkpoint is not None:  # killed before its first save: its newest complete checkpoint
        statistics = checkpoint.parent / "vecnormalize.pkl"
        return ModelTarget(checkpoint, config, run_dir, statistics if statistics.exists() else None)
    raise ModelLoadError(f"{run_dir}: holds no model.zip (was training stopped before the first save?)")


def _bare_config(model_path: Path, env: str, algo: str) -> ExperimentConfig:
    from rltool.algos.registry import ALGOS
    from rltool.envs.registry import check_env_id

    if algo not in ALGOS:
        raise ConfigError(f"--algo: unknown algorithm '{algo}'{did_you_mean(algo, ALGOS)}")
    check_env_id(env, where="--env")
    return ExperimentConfig(
        env=env, algo=algo, n_timesteps=1, policy=ALGOS[algo].policies[0], source=str(model_path)
    )


def load_trained(
    target: ModelTarget,
    *,
    n_envs: int = 1,
    render_mode: str | None = None,
    seed: int | None = None,
    trust_pickles: bool = False,
    allowed_modules: tuple[str, ...] = (),
) -> tuple[Any, Any]:
    """Build the target's env through the shared builder and load its model without unpickling.

    :param target: from :func:`resolve_target`.
    :param n_envs: parallel envs.
    :param render_mode: ``"rgb_array"`` for video.
    :param seed: base seed of the env.
    :param trust_pickles: allow files that need unpickling.
    :param allowed_modules: module prefixes allowed for wrappers.
    :return: the model and the env.
    """
    from rltool.algos import algo_class, load_policy_kwargs
    from rltool.envs.builder import EnvOptions, build_vec_env
    from rltool.safe_load import load_model

    config = target.config
    if config.normalize_kwargs is not None and target.vecnormalize_path is None:
        raise ModelLoadError(
            f"{target.model_path}: the config sets 'normalize' but no vecnormalize.pkl lies beside the model"
        )
    env = build_vec_env(
        config,
        EnvOptions(
            n_envs=n_envs,
            seed=seed if seed is not None else config.seed,
            render_mode=render_mode,
            normalize="frozen",
            vecnormalize_path=target.vecnormalize_path,
            vec_env="dummy",  # gymnasium: the reference dynamics, whatever trained the model
            allowed_modules=allowed_modules,
            trust_pickles=trust_pickles,
        ),
    )
    from rltool.algos.registry import algo_spec
    from rltool.sbx_io import load_sbx_model, zip_has_sbx_state

    # the registry says how the config's algorithm saves; the zip itself tells for older run folders
    if algo_spec(config.algo, config.backend).model_format == "sbx" or zip_has_sbx_state(target.model_path):
        try:
            model = load_sbx_model(
                target.model_path,
                replace(config, backend="sbx"),
                env,
                trust_pickles=trust_pickles,
                env_name=config.env,
            )
        except BaseException:
            env.close()
            raise
        return model, env
    extra: dict[str, Any] = {}
    policy_kwargs = load_policy_kwargs(config)
    if policy_kwargs is not None:
        extra["policy_kwargs"] = policy_kwargs
    try:
        model = load_model(
            target.model_path,
            algo_class(config.algo),
            observation_space=env.observation_space,
            action_space=env.action_space,
            trust_pickles=trust_pickles,
            extra_custom_objects=extra,
            env_name=config.env,
            env=env,
        )
    except BaseException:
        env.close()
        raise
    env_seed = seed if seed is not None else config.seed
    if env_seed is not None:
        env.seed(env_seed)  # loading with env= reseeded it with the model's training seed
    return model, env


@dataclass
class EvalResult:
    """Episode results of one evaluation."""

    model_path: Path
    run_dir: Path | None
    algo: str
    env: str
    deterministic: bool
    episode_rewards: list[float]
    episode_lengths: list[int]
    #: ``is_success`` of each episode, for goal envs (empty for envs that do not report success)
    episode_successes: list[float] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        """:return: the fraction of successful episodes, or None when the env reports no success."""
        if not self.episode_successes:
            return None
        return sum(self.episode_successes) / len(self.episode_successes)

    @property
    def mean_reward(self) -> float:
        import numpy as np

        return float(np.mean(self.episode_rewards))

    @property
    def std_reward(self) -> float:
        import numpy as np

        return float(np.std(self.episode_rewards))

    def to_dict(self) -> dict[str, Any]:
        """:return: the JSON form printed by ``rltool eval --json``."""
        return {
            "mean_reward": self.mean_reward,
            "std_reward": self.std_reward,
            "episode_rewards": self.episode_rewards,
            "episode_lengths": self.episode_lengths,
            "n_episodes": len(self.episode_rewards),
            "deterministic": self.deterministic,
            "model": str(self.model_path),
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "algo": self.algo,
            "env": self.env,
            **(
                {"success_rate": self.success_rate, "episode_successes": self.episode_successes}
                if self.episode_successes
                else {}
            ),
        }


def evaluate(
    target: ModelTarget,
    *,
    episodes: int = 10,
    deterministic: bool = True,
    seed: int | None = None,
    trust_pickles: bool = False,
    allowed_modules: tuple[str, ...] = (),
) -> EvalResult:
    """Evaluate a trained model for ``episodes`` full episodes.

    :param target: from :func:`resolve_target`.
    :param episodes: number of episodes.
    :param deterministic: greedy actions.
    :param seed: env seed (default: the config's seed + 10000, as during training's evaluations).
    :param trust_pickles: allow files that need unpickling.
    :param allowed_modules: module prefixes allowed for wrappers.
    :return: the results.
    """
    from rltool.episodes import evaluate_episodes
    from rltool.runtime import set_threads

    set_threads(None, target.config.backend)
    if seed is None:
        from rltool.envs.builder import eval_seed

        seed = eval_seed(target.config.seed)
    model, env = load_trained(target, seed=seed, trust_pickles=trust_pickles, allowed_modules=allowed_modules)
    successes: list[float] = []
    try:
        rewards, lengths = evaluate_episodes(model, env, episodes, deterministic, successes=successes)
    finally:
        env.close()
    config = target.config
    return EvalResult(
        target.model_path, target.run_dir, config.algo, config.env, deterministic, rewards, lengths, successes
    )
