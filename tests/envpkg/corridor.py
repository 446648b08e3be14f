"""Walk right along a corridor to the goal: learnable in a few thousand steps."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class CorridorEnv(gym.Env):
    """Position ``0..length-1``; action 1 moves right, 0 left; reward 1 at the right end.

    An episode that has not reached the end after ``max_steps`` steps is cut (truncated) with
    reward 0, so an agent that never learnt the corridor scores 0 instead of running forever.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, length: int = 6, render_mode: str | None = None, max_steps: int = 40):
        self.length = length
        self.max_steps = max_steps
        self.steps = 0
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, (length,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def _observation(self) -> np.ndarray:
        observation = np.zeros(self.length, np.float32)
        observation[self.position] = 1.0
        return observation

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        self.steps = 0
        return self._observation(), {}

    def step(self, action):
        self.position = int(np.clip(self.position + (1 if action == 1 else -1), 0, self.length - 1))
        self.steps += 1
        reached = self.position == self.length - 1
        return self._observation(), float(reached), reached, self.steps >= self.max_steps, {}

    def render(self):
        frame = np.zeros((16, 16 * self.length, 3), np.uint8)
        frame[:, 16 * self.position : 16 * (self.position + 1)] = (240, 200, 40)
        return frame


def make_corridor(length: int = 6, render_mode: str | None = None) -> gym.Env:
    """A factory, as a config may name one instead of a class."""
    return CorridorEnv(length=length, render_mode=render_mode)
