"""Importing what a config names, only from modules the user allowed.

Wrappers and callbacks in configs are dotted paths. rl-baselines3-zoo imports any
of them, so a downloaded file decides what code runs. rltool imports only from the
modules below, plus those the user names with ``--allow-module`` on the command
line (never from the config itself).
"""

from __future__ import annotations

import importlib
from typing import Any

from rltool.errors import ConfigError

DEFAULT_ALLOWED_MODULES = (
    "gymnasium.wrappers",
    "stable_baselines3.common.atari_wrappers",
    "stable_baselines3.common.vec_env",
    "stable_baselines3.common.callbacks",
    "sb3_contrib.common.wrappers",
    "rltool",
)


def _module_allowed(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)


def import_object(path: str, *, allowed_modules: tuple[str, ...] = (), where: str) -> Any:
    """Import ``module.sub.Name`` if its module is allowed.

    :param path: dotted path; ``gym.`` is read as ``gymnasium.`` as in old zoo files.
    :param allowed_modules: extra module prefixes the user opted into (``--allow-module``).
    :param where: file and key, for messages.
    :return: the object.
    """
    if path.startswith("gym."):
        path = "gymnasium." + path[len("gym.") :]
    module_name, _, attribute = path.rpartition(".")
    allowed = DEFAULT_ALLOWED_MODULES + tuple(allowed_modules)
    if not module_name or not _module_allowed(module_name, allowed):
        top = module_name.split(".")[0] or path
        raise ConfigError(
            f"{where}: '{path}' is outside the allowed modules ({', '.join(DEFAULT_ALLOWED_MODULES)}); "
            f"if you trust it, pass --allow-module {top}"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any import failure is the user's module's
        raise ConfigError(
            f"{where}: cannot import '{module_name}': {type(error).__name__}: {error}"
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"{where}: module '{module_name}' has no '{attribute}'") from None
