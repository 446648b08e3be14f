"""Env ids -> gymnasium ids: registry checks, custom env classes and env packages.

Imports gymnasium but never torch, so config errors stay fast.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rltool.errors import EnvError, close_matches, did_you_mean

if TYPE_CHECKING:
    import gymnasium as gym

CUSTOM_NAMESPACE = "rltool-custom"


def _import_module(name: str, where: str):
    try:
        return importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 - report whatever the user's module raised
        raise EnvError(f"{where}: cannot import module '{name}': {type(error).__name__}: {error}") from None


def resolve_env_id(env: str, env_packages: tuple[str, ...] = (), *, where: str = "env") -> str:
    """Return the gymnasium id to build ``env`` with, registering custom classes on the way.

    ``env`` is a registered id (``CartPole-v1``, ``rltool/Snake-v0``) or ``module:Attr`` naming a
    ``gymnasium.Env`` class or a factory; ``env_packages`` are imported first so their
    ``gymnasium.register`` calls run. Both imports are the user's explicit choice in the config.

    :param env: the config's env.
    :param env_packages: modules to import first.
    :param where: file and key, for messages.
    :return: an id that ``gymnasium.make`` accepts.
    """
    import gymnasium

    import rltool.envs  # noqa: F401  (registers rltool's own envs)

    for package in env_packages:
        _import_module(package, f"{where} (env_packages)")
    if ":" in env:
        module_name, _, attribute = env.partition(":")
        module = _import_module(module_name, where)
        factory = getattr(module, attribute, None)
        if factory is None or not callable(factory):
            raise EnvError(f"{where}: module '{module_name}' has no env class or factory '{attribute}'")
        env_id = f"{CUSTOM_NAMESPACE}/{module_name}.{attribute}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=factory)
        return env_id
    from rltool.envs.families import check_family_packages, missing_extra_hint, register_family_of

    try:
        registered = register_family_of(env)
    except EnvError as error:
        raise EnvError(f"{where}: {error}") from None
    if registered:
        try:
            check_family_packages(env)
        except EnvError as error:
            raise EnvError(f"{where}: {error}") from None
        return env
    message = _unknown_env_message(env, list(gymnasium.registry))
    raise EnvError(f"{where}: {message}{missing_extra_hint()}")


def _unknown_env_message(env: str, known: list[str]) -> str:
    from gymnasium.envs.registration import parse_env_id

    try:
        namespace, name, _ = parse_env_id(env)
    except Exception:  # noqa: BLE001 - malformed ids get the generic message
        namespace, name = None, env
    versions = []
    for other in known:
        try:
            other_namespace, other_name, other_version = parse_env_id(other)
        except Exception:  # noqa: BLE001
            continue
        if other_namespace == namespace and other_name == name and other_version is not None:
            versions.append((other_version, other))
    if versions:
        latest = max(versions)[1]
        return f"'{env}' is not available in this gymnasium (deprecated or removed); use '{latest}'"
    return f"unknown env id '{env}'{did_you_mean(env, known)} (custom envs: 'my_pkg.module:MyEnv' or env_packages: [my_pkg])"


def check_env_id(env: str, env_packages: tuple[str, ...] = (), *, where: str = "env") -> None:
    """Raise :class:`EnvError` with a suggestion when ``env`` cannot be built.

    :param env: the config's env.
    :param env_packages: modules to import first.
    :param where: file and key, for messages.
    """
    resolve_env_id(env, env_packages, where=where)


def envpool_env_ids() -> list[str]:
    """:return: the env ids the installed EnvPool can build (imports envpool)."""
    import envpool

    return list(envpool.list_all_envs())


def check_envpool_env(env_id: str, *, where: str = "env") -> None:
    """Raise :class:`EnvError` unless EnvPool can train ``env_id`` for evaluation on gymnasium.

    :param env_id: the config's env (a gymnasium id).
    :param where: file and key, for messages.
    """
    try:
        known = envpool_env_ids()
    except ImportError:
        raise EnvError(
            f"{where}: vec_env: envpool needs the envpool package (pip install 'rltool[fast]', on Linux; "
            "elsewhere use vec_env: dummy)"
        ) from None
    if env_id not in known:
        close = close_matches(env_id, known, count=5)
        hint = f"; close ids it has: {', '.join(close)}" if close else ""
        raise EnvError(f"{where}: EnvPool has no env '{env_id}'{hint} (or use vec_env: dummy)")
    _check_same_spaces(env_id, where)


@contextlib.contextmanager
def quiet_envpool() -> Iterator[None]:
    """Silence gymnasium's warnings about the float64 bounds of EnvPool's spaces (harmless, and noisy)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32")
        yield


def envpool_spec(env_id: str) -> Any:
    """:return: EnvPool's spec of ``env_id`` (its ``gymnasium_*_space`` attributes are the spaces)."""
    import envpool

    with quiet_envpool():
        return envpool.make_spec(env_id)


def _check_same_spaces(env_id: str, where: str) -> None:
    """Refuse an EnvPool env whose spaces differ from gymnasium's: evaluation runs on gymnasium."""
    import gymnasium as gym

    spec = envpool_spec(env_id)
    reference = gym.make(env_id)
    try:
        with quiet_envpool():  # EnvPool builds its spaces when they are first read
            pairs = (
                ("observation", spec.gymnasium_observation_space, reference.observation_space),
                ("action", spec.gymnasium_action_space, reference.action_space),
            )
        for name, ours, theirs in pairs:
            if not _same_space(ours, theirs):
                raise EnvError(
                    f"{where}: EnvPool's '{env_id}' has another {name} space than gymnasium's "
                    f"({ours} vs {theirs}); a model trained on it cannot be evaluated on gymnasium, "
                    "use vec_env: dummy"
                )
    finally:
        reference.close()


def _same_space(ours: gym.Space, theirs: gym.Space) -> bool:
    from gymnasium import spaces

    if type(ours) is not type(theirs):
        return False
    if isinstance(ours, spaces.Discrete):
        return ours.n == theirs.n and ours.start == theirs.start
    if isinstance(ours, spaces.Box):
        # bounds may differ in how they write "unbounded" (inf or float32 max): compare shape and dtype
        return ours.shape == theirs.shape and ours.dtype == theirs.dtype
    return ours == theirs
