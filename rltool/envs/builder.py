"""The one builder of vectorized envs, used by train, eval, video, tune and smoke.

Order of wrappers (as in rl-baselines3-zoo, so zoo configs behave the same):
``gym.make`` -> Monitor -> ``env_wrapper``s (per env) -> DummyVecEnv/SubprocVecEnv ->
``vec_env_wrapper``s -> VecNormalize -> VecFrameStack -> VecTransposeImage (images).

With ``vec_env: envpool`` the first three steps are one :class:`~rltool.envs.envpool_vec.EnvPoolVecEnv`
(EnvPool's C++ envs, with Monitor's files and statistics); the rest is the same. Only training
envs use it: evaluation and video callers ask for ``vec_env="dummy"``, the gymnasium reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rltool.config import ExperimentConfig, WrapperSpec
from rltool.envs import families
from rltool.envs.registry import resolve_env_id
from rltool.errors import EnvError, ModelLoadError, first_line
from rltool.imports import import_object

if TYPE_CHECKING:
    import gymnasium as gym
    from stable_baselines3.common.vec_env import VecEnv

NormalizeMode = Literal["train", "frozen"]
VecEnvKind = Literal["dummy", "subproc", "envpool"]


#: evaluation envs draw seeds from their own range, so they never replay a training episode
EVAL_SEED_OFFSET = 10_000


def eval_seed(seed: int | None) -> int | None:
    """:return: the base seed of the evaluation envs of a run with training seed ``seed``."""
    return None if seed is None else seed + EVAL_SEED_OFFSET


@dataclass(frozen=True)
class EnvOptions:
    """How to build the envs of one config.

    :param n_envs: number of parallel envs (default: the config's).
    :param seed: base seed; env ``i`` gets ``seed + i`` (default: the config's).
    :param monitor_dir: folder for Monitor CSVs (``<prefix>-<i>.monitor.csv``); None keeps them in memory.
    :param monitor_prefix: file name prefix, "train" or "eval".
    :param render_mode: passed to ``gym.make`` (``"rgb_array"`` for video).
    :param normalize: "train" creates or continues VecNormalize statistics; "frozen" loads them for
        evaluation (no updates, raw rewards).
    :param vecnormalize_path: statistics to load (required for "frozen" when the config normalizes).
    :param vec_env: "dummy", "subproc" or "envpool" (default: the config's ``vec_env``); evaluation
        envs pass "dummy" so they always run gymnasium's dynamics.
    :param threads: EnvPool's worker threads (default 1; ignored by the other kinds).
    :param allowed_modules: module prefixes the user allowed for wrappers (``--allow-module``).
    :param trust_pickles: load VecNormalize statistics with plain pickle.
    :param append_monitor: append to existing Monitor CSVs (resume).
    """

    n_envs: int | None = None
    seed: int | None = None
    monitor_dir: Path | None = None
    monitor_prefix: str = "train"
    render_mode: str | None = None
    normalize: NormalizeMode = "train"
    vecnormalize_path: Path | None = None
    vec_env: VecEnvKind | None = None
    threads: int | None = None
    allowed_modules: tuple[str, ...] = ()
    trust_pickles: bool = False
    append_monitor: bool = False


def _apply_env_wrappers(
    env: gym.Env, specs: tuple[WrapperSpec, ...], allowed: tuple[str, ...], where: str
) -> gym.Env:
    for spec in specs:
        wrapper = import_object(spec.path, allowed_modules=allowed, where=where)
        try:
            env = wrapper(env, **spec.kwargs)
        except Exception as error:  # noqa: BLE001 - wrappers assert on spaces and missing packages
            raise EnvError(f"{where}: {spec.path} cannot wrap the env: {first_line(error)}") from None
    return env


def make_env_thunk(config: ExperimentConfig, rank: int, options: EnvOptions) -> Callable[[], gym.Env]:
    """Return a function that builds env number ``rank`` (runs in a subprocess with SubprocVecEnv).

    :param config: the experiment.
    :param rank: index of the env in the vector.
    :param options: see :class:`EnvOptions`.
    :return: a picklable thunk.
    """

    def thunk() -> gym.Env:
        import gymnasium as gym
        from stable_baselines3.common.monitor import Monitor

        from rltool.envs.monitoring import OuterCutsEndMonitorEpisodes

        env_id = resolve_env_id(config.env, config.env_packages, where=f"{config.source}: env")
        kwargs = families.make_kwargs(env_id, config.env_kwargs, tuple(w.path for w in config.env_wrapper))
        if options.render_mode is not None:
            kwargs["render_mode"] = options.render_mode
        try:
            env = gym.make(env_id, **kwargs)
        except Exception as error:  # noqa: BLE001 - gymnasium and user envs raise anything
            raise EnvError(
                f"{config.source}: cannot create env '{config.env}': {type(error).__name__}: {error}"
            ) from None
        seed = options.seed if options.seed is not None else config.seed
        if seed is not None:
            env.action_space.seed(seed + rank)
        filename = None
        if options.monitor_dir is not None:
            filename = str(options.monitor_dir / f"{options.monitor_prefix}-{rank}")
        monitor_kwargs = families.monitor_info_keywords(env_id, config.monitor_kwargs)
        monitor = Monitor(
            env, filename=filename, override_existing=not options.append_monitor, **monitor_kwargs
        )
        env = _apply_env_wrappers(
            monitor, config.env_wrapper, options.allowed_modules, f"{config.source}: env_wrapper"
        )
        return OuterCutsEndMonitorEpisodes(env, monitor) if config.env_wrapper else env

    return thunk


def build_vec_env(config: ExperimentConfig, options: EnvOptions | None = None) -> VecEnv:
    """Build the vectorized env of a config, with the same wrappers for train, eval and video.

    :param config: the experiment.
    :param options: see :class:`EnvOptions`.
    :return: the VecEnv, wrapped in VecNormalize / VecFrameStack as the config says.
    """
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack, VecTransposeImage

    options = options or EnvOptions()
    env_id = resolve_env_id(config.env, config.env_packages, where=f"{config.source}: env")
    try:  # before any env exists: a missing extra is one line
        families.check_family_packages(env_id, tuple(w.path for w in config.env_wrapper))
    except EnvError as error:
        raise EnvError(f"{config.source}: {error}") from None
    if options.monitor_dir is not None:
        options.monitor_dir.mkdir(parents=True, exist_ok=True)
    n_envs = options.n_envs or config.n_envs
    kind = options.vec_env or config.vec_env
    seed = options.seed if options.seed is not None else config.seed
    venv: VecEnv
    if kind == "envpool":
        venv = _envpool_vec_env(config, options, n_envs, seed)
    else:
        thunks = [make_env_thunk(config, rank, options) for rank in range(n_envs)]
        venv = SubprocVecEnv(thunks) if kind == "subproc" and n_envs > 1 else DummyVecEnv(thunks)
        if seed is not None:
            venv.seed(seed)

    for spec in config.vec_env_wrapper:
        wrapper = import_object(
            spec.path, allowed_modules=options.allowed_modules, where=f"{config.source}: vec_env_wrapper"
        )
        venv = wrapper(venv, **spec.kwargs)
    venv = _maybe_normalize(venv, config, options)
    if config.frame_stack:
        venv = VecFrameStack(venv, n_stack=config.frame_stack)
    space = venv.observation_space
    if is_image_space(space) and not is_image_space_channels_first(space):
        venv = VecTransposeImage(venv)
    return venv


def _envpool_vec_env(config: ExperimentConfig, options: EnvOptions, n_envs: int, seed: int | None) -> VecEnv:
    """EnvPool's envs for ``config``, after the checks that keep them equal to gymnasium's."""
    from rltool.config import refuse_for_envpool
    from rltool.envs.envpool_vec import EnvPoolVecEnv
    from rltool.envs.registry import check_envpool_env

    refuse_for_envpool(config)
    if options.render_mode is not None:
        raise EnvError(f"{config.source}: EnvPool envs do not render; videos use the gymnasium env")
    check_envpool_env(config.env, where=f"{config.source}: env")
    return EnvPoolVecEnv(
        config.env,
        n_envs,
        seed=seed,
        num_threads=options.threads or 1,
        monitor_dir=options.monitor_dir,
        monitor_prefix=options.monitor_prefix,
        append_monitor=options.append_monitor,
    )


def _maybe_normalize(venv: VecEnv, config: ExperimentConfig, options: EnvOptions) -> VecEnv:
    from stable_baselines3.common.vec_env import VecNormalize

    kwargs = config.normalize_kwargs
    if kwargs is None:
        return venv
    path = options.vecnormalize_path
    if path is not None:
        if not path.exists():
            venv.close()
            raise ModelLoadError(
                f"{path}: missing; the config sets 'normalize' so the statistics saved with the model are needed"
            )
        from rltool.safe_load import load_vecnormalize

        normalized = load_vecnormalize(path, venv, trust_pickles=options.trust_pickles)
    else:
        # new statistics: for training, or for an eval env that training keeps in sync
        if "gamma" not in kwargs and "gamma" in config.algo_kwargs:
            kwargs["gamma"] = config.algo_kwargs["gamma"]  # discount the reward like the algorithm does
        normalized = VecNormalize(venv, **kwargs)
    if options.normalize == "frozen":
        normalized.training = False
        normalized.norm_reward = False
    return normalized
