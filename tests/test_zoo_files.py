"""rl-baselines3-zoo's own hyperparameter files, read unchanged (README: "reads rl-baselines3-zoo
hyperparameter files unchanged").

The files come from the installed rl_zoo3 package (the dev extra pins it), located without importing
it. Every entry whose env is a gymnasium classic-control or Box2D env is loaded with rltool's config
loader, and its env and model are built (no training). Atari, MuJoCo and robotics families are
left to their own tests. Entries that use rl_zoo3's own wrappers (``rl_zoo3.wrappers.*``) must
stop with the allow-list's one-line error, as rltool imports nothing a config names on its own say-so.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

FAMILIES = ("gymnasium.envs.classic_control", "gymnasium.envs.box2d")
# Not training: keep what the build allocates small (a 1e6-step replay buffer of images is GBs)
SMALL = {"buffer_size": 1000}


def zoo_hyperparams() -> Path | None:
    spec = importlib.util.find_spec("rl_zoo3")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "hyperparams"


def zoo_entries() -> list[tuple[Path, str]]:
    import gymnasium as gym

    folder = zoo_hyperparams()
    if folder is None:
        return []
    entries = []
    for path in sorted(folder.glob("*.yml")):
        for env_id in yaml.safe_load(path.read_text()):
            spec = gym.registry.get(env_id)
            if spec is not None and str(spec.entry_point).startswith(FAMILIES):
                entries.append((path, env_id))
    return entries


ENTRIES = zoo_entries()


def test_the_zoo_files_are_there():
    # the dev extra installs rl_zoo3: without it the tests below would silently test nothing
    assert zoo_hyperparams() is not None and zoo_hyperparams().is_dir(), "pip install -e '.[dev]'"
    assert len(ENTRIES) >= 60, len(ENTRIES)
    assert {path.name for path, _ in ENTRIES} >= {"ppo.yml", "sac.yml", "dqn.yml", "td3.yml", "a2c.yml"}


@pytest.mark.parametrize(("path", "env_id"), ENTRIES, ids=[f"{p.stem}-{e}" for p, e in ENTRIES])
def test_zoo_entry_loads_and_builds(path: Path, env_id: str) -> None:
    from rltool.algos import build_model
    from rltool.config import load_config
    from rltool.envs.builder import build_vec_env
    from rltool.errors import ConfigError

    config = load_config(path, env=env_id)
    assert config.env == env_id and config.algo == path.stem
    overrides = [f"{key}={value}" for key, value in SMALL.items() if key in config.algo_kwargs]
    config = load_config(path, env=env_id, overrides=overrides, n_envs=min(config.n_envs, 2))
    try:
        env = build_vec_env(config)
    except ConfigError as error:
        # the documented refusal: rl_zoo3's own wrappers run only with --allow-module rl_zoo3
        message = str(error)
        assert "\n" not in message and "rl_zoo3.wrappers." in message, message
        assert message.endswith("pass --allow-module rl_zoo3"), message
        return
    try:
        model = build_model(config, env)
        assert model.observation_space == env.observation_space
    finally:
        env.close()
