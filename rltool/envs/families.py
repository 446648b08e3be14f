"""Env families that live in optional packages: Atari (ale-py), MuJoCo, goal-conditioned robotics.

Their ids resolve without any extra config key: when an id is not registered yet, the package
that provides it is imported on the spot (``ale_py`` for ``PongNoFrameskip-v4`` and
``ALE/Pong-v5``, ``gymnasium_robotics`` for ``FetchReach-v4``). Nothing here imports those
packages before an id needs them, so ``rltool --help`` and CartPole runs stay light. A missing
package is one line naming the extra to install (``pip install 'rltool[atari]'``).

The module also holds what these families need beyond the id, as rl-baselines3-zoo does it:

* goal envs log ``is_success`` in their Monitor (:func:`monitor_info_keywords`);
* ``ALE/*-v5`` ids under ``AtariWrapper`` get ``frameskip=1`` so frames are not skipped twice
  (:func:`make_kwargs`);
* the SB3 1.x HER format (``model_class``, ``online_sampling``...) gets a message that names the
  current form (:func:`legacy_her_message`).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from dataclasses import dataclass
from typing import Any

from rltool.errors import EnvError


@dataclass(frozen=True)
class Family:
    """An env family provided by optional packages.

    :param name: what users call it.
    :param extra: the rltool extra that installs it.
    :param register_module: the module whose import registers the ids (None: gymnasium has them).
    :param needs: modules the family needs to build its envs.
    :param id_pattern: ids that belong to the family even before its package is imported.
    :param entry_points: entry-point prefixes of registered ids of the family.
    """

    name: str
    extra: str
    register_module: str | None
    needs: tuple[str, ...]
    id_pattern: re.Pattern[str]
    entry_points: tuple[str, ...]

    def install_hint(self) -> str:
        """:return: the instruction that makes the family available."""
        return f"install rltool[{self.extra}] (pip install 'rltool[{self.extra}]')"


ATARI = Family(
    name="Atari",
    extra="atari",
    register_module="ale_py",
    needs=("ale_py",),
    id_pattern=re.compile(r"^(ALE/.+|.+NoFrameskip-v\d+|.+-ram(Deterministic)?-v\d+|.+Deterministic-v\d+)$"),
    entry_points=("ale_py",),
)
MUJOCO = Family(
    name="MuJoCo",
    extra="mujoco",
    register_module=None,
    needs=("mujoco",),
    id_pattern=re.compile(r"^$"),  # gymnasium registers its MuJoCo ids itself
    entry_points=("gymnasium.envs.mujoco",),
)
ROBOTICS = Family(
    name="goal-conditioned robotics",
    extra="robotics",
    register_module="gymnasium_robotics",
    needs=("gymnasium_robotics", "mujoco"),
    id_pattern=re.compile(r"^(Fetch|Hand|AdroitHand|PointMaze|AntMaze|FrankaKitchen)\w*-v\d+$"),
    entry_points=("gymnasium_robotics",),
)
FAMILIES = (ATARI, MUJOCO, ROBOTICS)


def _import(module: str, family: Family) -> Any:
    """Import ``module`` quietly (gymnasium-robotics prints notices on import); missing: one line."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            imported = importlib.import_module(module)
    except ImportError as error:
        raise EnvError(
            f"{family.name} envs need the package '{module}' ({error}); {family.install_hint()}"
        ) from None
    if module == "gymnasium_robotics":
        _patch_robotics_joint_checks()
    return imported


def register_family_of(env_id: str) -> bool:
    """Import the package that registers ``env_id``, when it is not registered yet.

    Ids that look like a family's (``ALE/...``, ``...NoFrameskip-v4``, ``Fetch...``) import that
    family's package, and a missing package is an :class:`EnvError` naming the extra. Other
    unknown ids try the family packages that are installed, so every Atari and robotics id
    resolves.

    :param env_id: a gymnasium id.
    :return: whether ``env_id`` is registered now.
    """
    import gymnasium

    if env_id in gymnasium.registry:
        return True
    for family in FAMILIES:
        if family.register_module and family.id_pattern.match(env_id):
            _import(family.register_module, family)
            return env_id in gymnasium.registry
    for family in FAMILIES:
        if family.register_module and _installed(family.register_module):
            _import(family.register_module, family)
            if env_id in gymnasium.registry:
                return True
    return False


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return False


def family_of(env_id: str) -> Family | None:
    """:return: the family of a registered ``env_id`` (by its entry point), or None."""
    import gymnasium

    spec = gymnasium.registry.get(env_id)
    if spec is None:
        return None
    entry_point = spec.entry_point if isinstance(spec.entry_point, str) else ""
    if not entry_point and callable(spec.entry_point):
        entry_point = getattr(spec.entry_point, "__module__", "") or ""
    for family in FAMILIES:
        if entry_point.startswith(family.entry_points):
            return family
    return None


def missing_extra_hint() -> str:
    """:return: a note for unknown ids while a family package is missing ('' when all are there)."""
    missing = [f for f in (ATARI, ROBOTICS) if f.register_module and not _installed(f.register_module)]
    if not missing:
        return ""
    return "; " + "; ".join(f"{f.name} ids need rltool[{f.extra}]" for f in missing)


def check_family_packages(env_id: str, wrapper_paths: tuple[str, ...] = ()) -> None:
    """Raise :class:`EnvError` naming the extra when a package the env needs is missing.

    :param env_id: a registered gymnasium id.
    :param wrapper_paths: the config's env wrappers (``AtariWrapper`` needs OpenCV).
    """
    family = family_of(env_id)
    if family is not None:
        for module in family.needs:
            if not _installed(module):
                raise EnvError(f"env '{env_id}' needs the package '{module}'; {family.install_hint()}")
    if any(path.rsplit(".", 1)[-1] == "AtariWrapper" for path in wrapper_paths) and not _installed("cv2"):
        raise EnvError(
            f"AtariWrapper needs OpenCV (the package 'opencv-python-headless'); {ATARI.install_hint()}"
        )


def is_goal_env(env_id: str) -> bool:
    """:return: whether ``env_id`` is a goal-conditioned env that reports ``is_success``."""
    return family_of(env_id) is ROBOTICS


def monitor_info_keywords(env_id: str, monitor_kwargs: dict[str, Any]) -> dict[str, Any]:
    """:return: Monitor keywords; goal envs log ``is_success`` per episode unless the config says otherwise."""
    kwargs = dict(monitor_kwargs)
    if "info_keywords" not in kwargs and is_goal_env(env_id):
        kwargs["info_keywords"] = ("is_success",)
    elif isinstance(kwargs.get("info_keywords"), list):
        kwargs["info_keywords"] = tuple(kwargs["info_keywords"])
    return kwargs


def make_kwargs(env_id: str, env_kwargs: dict[str, Any], wrapper_paths: tuple[str, ...]) -> dict[str, Any]:
    """Keywords for ``gym.make``: ``ALE/*-v5`` under ``AtariWrapper`` gets ``frameskip=1``.

    ``AtariWrapper`` skips 4 frames itself (it is written for ``NoFrameskip-v4`` ids); v5 ids skip
    4 frames in the emulator too, which would make 16. An explicit ``frameskip`` is kept.

    :param env_id: a registered gymnasium id.
    :param env_kwargs: the config's ``env_kwargs``.
    :param wrapper_paths: the config's env wrappers.
    :return: the keywords to use.
    """
    kwargs = dict(env_kwargs)
    uses_atari_wrapper = any(path.rsplit(".", 1)[-1] == "AtariWrapper" for path in wrapper_paths)
    if uses_atari_wrapper and env_id.startswith("ALE/") and "frameskip" not in kwargs:
        kwargs["frameskip"] = 1
    return kwargs


# The SB3 1.x HER keys (rl-baselines3-zoo's her.yml), and what replaced them.
_NEW_HER_FORM = (
    "replay_buffer_class: HerReplayBuffer with replay_buffer_kwargs: "
    "\"dict(goal_selection_strategy='future', n_sampled_goal=4)\" and policy: MultiInputPolicy"
)
LEGACY_HER_KEYS = {
    "model_class": "choose the algorithm with --algo (or algo:) instead, e.g. --algo sac; then use "
    + _NEW_HER_FORM,
    "online_sampling": "SB3 >= 2.0 always samples online; drop it and use " + _NEW_HER_FORM,
    "max_episode_length": "SB3 >= 2.0 reads episode ends from the env; drop it and use " + _NEW_HER_FORM,
    "n_sampled_goal": "it moved into replay_buffer_kwargs: use " + _NEW_HER_FORM,
    "goal_selection_strategy": "it moved into replay_buffer_kwargs: use " + _NEW_HER_FORM,
}


def legacy_her_message(key: str) -> str | None:
    """:return: how to write an SB3 1.x HER key (as in the zoo's her.yml) today, or None for other keys."""
    advice = LEGACY_HER_KEYS.get(key)
    if advice is None:
        return None
    return f"'{key}' is the SB3 1.x HER format (rl-baselines3-zoo's her.yml); {advice}"


def legacy_her_kwargs_message(replay_buffer_kwargs: dict[str, Any]) -> str | None:
    """:return: a message when ``replay_buffer_kwargs`` holds keys HerReplayBuffer no longer takes."""
    for key in ("online_sampling", "max_episode_length"):
        if key in replay_buffer_kwargs:
            return (
                f"'{key}' is an SB3 1.x HerReplayBuffer option that SB3 >= 2.0 no longer accepts; "
                "drop it (keep goal_selection_strategy and n_sampled_goal)"
            )
    return None


def _patch_robotics_joint_checks() -> None:
    """Make gymnasium-robotics' joint-type checks work with MuJoCo >= 4.

    MuJoCo 4 enums compare unequal to numpy integers when the enum is on the left, so
    gymnasium-robotics 1.4's ``assert joint_type in (mjJNT_HINGE, mjJNT_SLIDE)`` fails for every
    Fetch env. Its helper module gets a ``mujoco`` whose ``mjtJoint`` is a plain ``IntEnum`` with
    the same values; every other name is MuJoCo's own. Nothing changes when the installed MuJoCo
    compares correctly.
    """
    import enum

    import mujoco
    import numpy as np
    from gymnasium_robotics.utils import mujoco_utils

    hinge = mujoco.mjtJoint.mjJNT_HINGE
    if hinge == np.int32(int(hinge)) or isinstance(mujoco_utils.mujoco, _MujocoWithIntJoints):
        return
    joint_types = enum.IntEnum("mjtJoint", {name: int(value) for name, value in _members(mujoco.mjtJoint)})
    mujoco_utils.mujoco = _MujocoWithIntJoints(mujoco, joint_types)


def _members(enum_type: Any) -> list[tuple[str, Any]]:
    members = getattr(enum_type, "__members__", None)
    if members:
        return list(members.items())
    return [(name, getattr(enum_type, name)) for name in dir(enum_type) if name.startswith("mjJNT_")]


class _MujocoWithIntJoints:
    """The ``mujoco`` module, except ``mjtJoint``, which compares equal to numpy integers."""

    def __init__(self, module: Any, joint_types: Any):
        self._module = module
        self.mjtJoint = joint_types

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)
