"""A corridor that notes which process built it, so a test can tell DummyVecEnv from SubprocVecEnv."""

from __future__ import annotations

import os
from pathlib import Path

from envpkg.corridor import CorridorEnv


class PidCorridorEnv(CorridorEnv):
    """:class:`CorridorEnv` that touches ``pid_dir/<pid>`` of the process that builds it.

    Episodes are cut after 30 steps, so an agent that walks left still finishes them.
    """

    def __init__(self, pid_dir: str, length: int = 6, render_mode: str | None = None):
        super().__init__(length=length, render_mode=render_mode)
        Path(pid_dir, str(os.getpid())).touch()
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        self.steps = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self.steps += 1
        observation, reward, terminated, _, info = super().step(action)
        return observation, reward, terminated, self.steps >= 30, info
