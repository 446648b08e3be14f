"""A tiny custom-environment package used by the tests: importing it registers ``envpkg/Corridor-v0``."""

import gymnasium

from envpkg.corridor import CorridorEnv, make_corridor

__all__ = ["CorridorEnv", "make_corridor"]

if "envpkg/Corridor-v0" not in gymnasium.registry:
    gymnasium.register(
        id="envpkg/Corridor-v0", entry_point="envpkg.corridor:CorridorEnv", max_episode_steps=50
    )
