"""An env where exactly one action is legal per step, with ``action_masks()`` and a telling picture.

Each step one of 8 actions is legal (it moves on by 3 every step). A legal action earns +1, an
illegal one 0, so an agent that respects the masks scores exactly ``length`` per episode whatever
its weights, while one that ignores them scores about ``length / 8``. The frame shows the legal
action as a green cell that moves every step, and a red band across the top after an illegal action,
so a video of the agent shows whether masks were used.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

N_ACTIONS = 8
CELL = 32  # pixels per action cell; frames are 64 x 256, multiples of 16 as H.264 likes


class OneLegalActionEnv(gym.Env):
    """Discrete(8) actions, one of them legal per step; episodes of ``length`` steps."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, length: int = 12, render_mode: str | None = None):
        self.length = length
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, (N_ACTIONS,), np.float32)
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self.steps = 0
        self.last_illegal = False

    def legal_action(self) -> int:
        """:return: the one action allowed now."""
        return (3 * self.steps + 5) % N_ACTIONS

    def action_masks(self) -> np.ndarray:
        """:return: True for the legal action only (sb3-contrib's MaskablePPO reads this)."""
        masks = np.zeros(N_ACTIONS, dtype=bool)
        masks[self.legal_action()] = True
        return masks

    def _observation(self) -> np.ndarray:
        return self.action_masks().astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        self.last_illegal = False
        return self._observation(), {}

    def step(self, action):
        legal = int(action) == self.legal_action()
        self.last_illegal = not legal
        self.steps += 1
        return self._observation(), float(legal), False, self.steps >= self.length, {}

    def render(self):
        frame = np.zeros((2 * CELL, N_ACTIONS * CELL, 3), np.uint8)
        legal = self.legal_action()
        frame[CELL:, legal * CELL : (legal + 1) * CELL] = (0, 230, 0)
        if self.last_illegal:
            frame[:CELL] = (230, 0, 0)
        return frame
