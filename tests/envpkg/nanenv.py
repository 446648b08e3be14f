"""An env whose observations turn NaN after a few steps, so a policy's actions become NaN too."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class NanAfterEnv(gym.Env):
    """Box(2) observations and actions; from step ``nan_after`` on the observation is NaN."""

    metadata = {"render_modes": []}

    def __init__(self, nan_after: int = 40, render_mode: str | None = None):
        self.nan_after = nan_after
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.steps += 1  # counts across episodes: the env breaks for good
        observation = np.full(2, np.nan if self.steps >= self.nan_after else 0.0, np.float32)
        return observation, 0.0, False, self.steps % 20 == 0, {}
