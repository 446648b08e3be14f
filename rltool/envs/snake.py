"""Snake on a small square board, with action masks for sb3-contrib's MaskablePPO.

Importing this module registers the environment as ``rltool/Snake-v0``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

__all__ = ["ENV_ID", "SnakeEnv"]

ENV_ID = "rltool/Snake-v0"

Cell = tuple[int, int]  # (row, col); row 0 is the top of the board

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
_DELTAS: tuple[Cell, ...] = ((-1, 0), (0, 1), (1, 0), (0, -1))

_CELL_PX = 16
_GAP_PX = 1
_COLOR_BACKGROUND = np.array([24, 24, 32], dtype=np.uint8)
_COLOR_GRID = np.array([40, 40, 52], dtype=np.uint8)
_COLOR_HEAD = np.array([250, 210, 40], dtype=np.uint8)
_COLOR_NECK = np.array([40, 200, 80], dtype=np.uint8)
_COLOR_TAIL = np.array([20, 90, 45], dtype=np.uint8)
_COLOR_FOOD = np.array([230, 50, 50], dtype=np.uint8)


class SnakeEnv(gymnasium.Env[np.ndarray, np.int64]):
    """Classic Snake on a ``board_size`` x ``board_size`` board, without wrap-around.

    **Actions** -- ``Discrete(4)``, absolute directions: 0 up, 1 right, 2 down, 3 left.

    **Action mask** (:meth:`action_masks`, ``bool[4]``) -- the reverse of the current heading is always
    forbidden when the snake is longer than one cell (it would run into its own neck). With
    ``mask_deadly=True`` (default) every move that dies on the spot (into a wall, or into a body cell
    that is not about to move away) is forbidden too: the agent still has to learn to avoid traps.
    The tail cell counts as free: it moves away in the same step, and food is never on the snake.
    When every move is deadly (the snake is trapped), the mask falls back to the non-reverse moves,
    so at least one action is always allowed and the episode ends on the next step.

    **Observation** -- a flat ``float32`` vector of ``OBS_SIZE`` = 26 features in [-1, 1]; per-direction
    features are ordered like the actions. A compact vector lets a small MLP play well after ~1e5 steps
    on 6x6, where a one-hot board would first have to learn, cell by cell, how head and food relate:

    * ``[0:4]`` per direction: 1 if that move kills the snake;
    * ``[4:8]`` per direction: size of the free region reachable after that move (flood fill over the
      board as the move leaves it) / number of cells; 0 for deadly moves. Shows dead ends ahead;
    * ``[8:12]`` per direction: 1 if after that move the tail still borders the reachable region, so
      the snake can chase its tail and survive; 0 for deadly moves;
    * ``[12:16]`` per direction: 1 if the food lies (strictly) that way from the head;
    * ``[16:20]`` one-hot current heading;
    * ``[20:22]`` food offset from the head (drow, dcol) / (board_size - 1); 0 when there is no food;
    * ``[22:24]`` tail offset from the head, same scaling;
    * ``[24]`` snake length / number of cells;
    * ``[25]`` steps since the last food / ``max_steps_without_food``: lets a deterministic policy break
      out of a loop before the episode is truncated.

    **Reward** -- ``+1`` per food eaten, ``-1`` on death, 0 otherwise (no shaping).

    **Episode end** -- terminated on death, or on a win when the snake fills the board
    (``info["is_success"]`` is then True); truncated after ``max_steps_without_food`` steps without
    eating (default: twice the number of cells), so a policy that circles forever cannot stall the run.

    **Info** -- ``length``, ``food_eaten`` (this episode), ``steps_since_food``, ``is_success``.

    **Start** -- a straight snake of ``initial_length`` cells with random position and heading, and
    food on a random free cell; all randomness comes from ``self.np_random`` (seed it via ``reset``).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}

    OBS_SIZE = 26
    FOOD_REWARD = 1.0
    DEATH_REWARD = -1.0

    def __init__(
        self,
        board_size: int = 6,
        render_mode: str | None = None,
        max_steps_without_food: int | None = None,
        initial_length: int = 3,
        mask_deadly: bool = True,
    ) -> None:
        """Create the environment.

        :param board_size: side of the square board, in cells (at least 3).
        :param render_mode: None or "rgb_array" (16 px per cell).
        :param max_steps_without_food: truncate the episode after this many steps without eating;
            None means ``2 * board_size**2``.
        :param initial_length: length of the snake at reset, 1 .. board_size.
        :param mask_deadly: also mask moves into walls and body (not only the reverse move).
        """
        if board_size < 3:
            raise ValueError(f"board_size must be at least 3, got {board_size}")
        if not 1 <= initial_length <= board_size:
            raise ValueError(f"initial_length must be in [1, {board_size}], got {initial_length}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}")
        if max_steps_without_food is None:
            max_steps_without_food = 2 * board_size * board_size
        if max_steps_without_food < 1:
            raise ValueError(f"max_steps_without_food must be positive, got {max_steps_without_food}")

        self.board_size = board_size
        self.render_mode = render_mode
        self.max_steps_without_food = max_steps_without_food
        self.initial_length = initial_length
        self.mask_deadly = mask_deadly
        self.n_cells = board_size * board_size
        # Neighbours of each cell by flat index (row * board_size + col), for the flood fills.
        self._adjacent: list[tuple[int, ...]] = [
            tuple(
                (row + dr) * board_size + col + dc
                for dr, dc in _DELTAS
                if 0 <= row + dr < board_size and 0 <= col + dc < board_size
            )
            for row in range(board_size)
            for col in range(board_size)
        ]

        self.action_space = spaces.Discrete(4)
        self.observation_space = spaces.Box(low=-1.0, high=1.0, shape=(self.OBS_SIZE,), dtype=np.float32)

        # The snake, head first; `_occupied` mirrors it for O(1) collision tests.
        self.body: deque[Cell] = deque()
        self._occupied: set[Cell] = set()
        self.direction = RIGHT
        self.food: Cell | None = None
        self.steps_since_food = 0
        self.food_eaten = 0

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode; see the class docstring for the start state."""
        super().reset(seed=seed)
        n = self.board_size
        length = self.initial_length
        direction = int(self.np_random.integers(4))
        drow, dcol = _DELTAS[direction]
        # The head must leave room for the body straight behind it (opposite to the heading).
        rows = range(n) if drow == 0 else (range(length - 1, n) if drow > 0 else range(n - length + 1))
        cols = range(n) if dcol == 0 else (range(length - 1, n) if dcol > 0 else range(n - length + 1))
        head = (int(self.np_random.choice(rows)), int(self.np_random.choice(cols)))
        body = [(head[0] - k * drow, head[1] - k * dcol) for k in range(length)]
        self._set_body(body, direction)
        self.food = self._random_free_cell()
        self.steps_since_food = 0
        self.food_eaten = 0
        return self._observation(), self._info()

    def step(self, action: int | np.integer) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move the head one cell in the direction ``action``; grow if it reaches the food."""
        if not self.body:
            raise RuntimeError("call reset() before step()")
        action = int(action)
        if not 0 <= action < 4:
            raise ValueError(f"invalid action {action}")

        new_head = self._neighbour(self.body[0], action)
        if self._is_deadly(new_head):  # the snake stays where it was; the episode is over
            return self._observation(), self.DEATH_REWARD, True, False, self._info()

        self.direction = action
        eats = new_head == self.food
        if not eats:
            self._occupied.discard(self.body.pop())
        self.body.appendleft(new_head)
        self._occupied.add(new_head)

        reward = 0.0
        terminated = truncated = False
        if eats:
            reward = self.FOOD_REWARD
            self.food_eaten += 1
            self.steps_since_food = 0
            self.food = self._random_free_cell()
            terminated = self.food is None  # board full: the snake has won
        else:
            self.steps_since_food += 1
            truncated = self.steps_since_food >= self.max_steps_without_food
        return self._observation(), reward, terminated, truncated, self._info()

    def render(self) -> np.ndarray | None:
        """Return an (16 * board_size, 16 * board_size, 3) uint8 image when render_mode="rgb_array"."""
        if self.render_mode != "rgb_array":
            return None
        n, px = self.board_size, _CELL_PX
        image = np.empty((n * px, n * px, 3), dtype=np.uint8)
        image[:] = _COLOR_GRID
        for row in range(n):
            for col in range(n):
                self._paint(image, (row, col), _COLOR_BACKGROUND)
        if self.food is not None:
            self._paint(image, self.food, _COLOR_FOOD)
        # Body shades from bright (neck) to dark (tail) so the direction of travel is visible in a still.
        length = len(self.body)
        for i, cell in enumerate(self.body):
            if i == 0:
                color = _COLOR_HEAD
            else:
                t = (i - 1) / max(length - 2, 1)
                color = ((1 - t) * _COLOR_NECK + t * _COLOR_TAIL).astype(np.uint8)
            self._paint(image, cell, color)
        return image

    # ------------------------------------------------------------------ masks and test hooks

    def action_masks(self) -> np.ndarray:
        """Boolean mask over the 4 actions (True = allowed); see the class docstring for the rule."""
        mask = np.ones(4, dtype=bool)
        if len(self.body) > 1:
            mask[(self.direction + 2) % 4] = False
        if self.mask_deadly and self.body:
            safe = mask & ~self._deadly_moves()
            if safe.any():
                mask = safe
        return mask

    def set_state(
        self,
        body: Sequence[Cell],
        direction: int | None = None,
        food: Cell | None = None,
        steps_since_food: int = 0,
    ) -> np.ndarray:
        """Place the snake by hand (for tests and demos) and return the new observation.

        :param body: cells (row, col) from head to tail; consecutive cells must be adjacent.
        :param direction: current heading; by default the direction from the neck to the head
            (required for a one-cell snake).
        :param food: food cell, or None for no food on the board.
        :param steps_since_food: value of the hunger counter.
        """
        cells = [(int(r), int(c)) for r, c in body]
        if not cells:
            raise ValueError("body must contain at least the head")
        if any(not self._inside(cell) for cell in cells) or len(set(cells)) != len(cells):
            raise ValueError(f"body cells must be distinct and on the board: {cells}")
        for a, b in zip(cells, cells[1:], strict=False):
            if abs(a[0] - b[0]) + abs(a[1] - b[1]) != 1:
                raise ValueError(f"body cells {a} and {b} are not adjacent")
        if direction is None:
            if len(cells) == 1:
                raise ValueError("direction is required for a one-cell snake")
            delta = (cells[0][0] - cells[1][0], cells[0][1] - cells[1][1])
            direction = _DELTAS.index(delta)
        if food is not None and (not self._inside(food) or tuple(food) in set(cells)):
            raise ValueError(f"food {food} must be a free cell on the board")
        if not 0 <= steps_since_food < self.max_steps_without_food:
            raise ValueError(f"steps_since_food must be in [0, {self.max_steps_without_food})")
        self._set_body(cells, int(direction))
        self.food = None if food is None else (int(food[0]), int(food[1]))
        self.steps_since_food = steps_since_food
        return self._observation()

    # ------------------------------------------------------------------ internals

    def _set_body(self, cells: Sequence[Cell], direction: int) -> None:
        self.body = deque(cells)
        self._occupied = set(cells)
        self.direction = direction

    def _inside(self, cell: Cell) -> bool:
        return 0 <= cell[0] < self.board_size and 0 <= cell[1] < self.board_size

    @staticmethod
    def _neighbour(cell: Cell, direction: int) -> Cell:
        return cell[0] + _DELTAS[direction][0], cell[1] + _DELTAS[direction][1]

    def _is_deadly(self, cell: Cell) -> bool:
        """Whether moving the head onto ``cell`` kills the snake.

        The tail cell is safe unless the snake is only two long: then it is the neck, and moving there
        would mean reversing into itself. (The tail never stays put on such a move, because the food
        is never on the snake.)
        """
        if not self._inside(cell):
            return True
        if cell not in self._occupied:
            return False
        return not (cell == self.body[-1] and len(self.body) > 2)

    def _deadly_moves(self) -> np.ndarray:
        head = self.body[0]
        return np.array([self._is_deadly(self._neighbour(head, d)) for d in range(4)], dtype=bool)

    def _random_free_cell(self) -> Cell | None:
        if len(self._occupied) >= self.n_cells:
            return None
        free = [(r, c) for r in range(self.board_size) for c in range(self.board_size)]
        free = [cell for cell in free if cell not in self._occupied]
        return free[int(self.np_random.integers(len(free)))]

    def _look_ahead(self, directions: Sequence[int]) -> dict[int, tuple[int, bool]]:
        """Flood fill from the cell each (non-deadly) move leads to, on the board as it is after the move.

        For each direction, returns the number of free cells reachable (the new head cell included) and
        whether the cell the tail will occupy borders that region, i.e. the snake can still chase its
        tail, which keeps it alive indefinitely. The tail leaves its current cell unless the move eats.
        Works on flat cell indices with precomputed neighbour lists: this runs 4 times per step.
        """
        n = self.board_size
        occupied = bytearray(self.n_cells)
        for row, col in self.body:
            occupied[row * n + col] = 1
        head, tail = self.body[0], self.body[-1]
        tail_index = tail[0] * n + tail[1]
        next_tail_index = tail_index if len(self.body) == 1 else self.body[-2][0] * n + self.body[-2][1]
        food_index = -1 if self.food is None else self.food[0] * n + self.food[1]
        result = {}
        for direction in directions:
            row, col = self._neighbour(head, direction)
            start = row * n + col
            grid = bytearray(occupied)  # 1 = blocked or already visited
            if start == food_index:
                tail_after = tail_index
            else:
                grid[tail_index] = 0
                tail_after = next_tail_index if len(self.body) > 1 else start
            grid[start] = 1
            count, tail_reachable = 1, tail_after == start
            stack = [start]
            while stack:
                for nxt in self._adjacent[stack.pop()]:
                    if nxt == tail_after:
                        tail_reachable = True
                    if not grid[nxt]:
                        grid[nxt] = 1
                        count += 1
                        stack.append(nxt)
            result[direction] = (count, tail_reachable)
        return result

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self.OBS_SIZE, dtype=np.float32)
        head = self.body[0]
        scale = self.board_size - 1
        deadly = self._deadly_moves()
        obs[0:4] = deadly
        for d, (region, tail_reachable) in self._look_ahead(np.flatnonzero(~deadly).tolist()).items():
            obs[4 + d] = region / self.n_cells
            obs[8 + d] = tail_reachable
        if self.food is not None:
            drow, dcol = self.food[0] - head[0], self.food[1] - head[1]
            obs[12:16] = (drow < 0, dcol > 0, drow > 0, dcol < 0)
            obs[20:22] = (drow / scale, dcol / scale)
        obs[16 + self.direction] = 1.0
        tail = self.body[-1]
        obs[22:24] = ((tail[0] - head[0]) / scale, (tail[1] - head[1]) / scale)
        obs[24] = len(self.body) / self.n_cells
        obs[25] = self.steps_since_food / self.max_steps_without_food
        return obs

    def _info(self) -> dict[str, Any]:
        return {
            "length": len(self.body),
            "food_eaten": self.food_eaten,
            "steps_since_food": self.steps_since_food,
            "is_success": len(self.body) == self.n_cells,
        }

    def _paint(self, image: np.ndarray, cell: Cell, color: np.ndarray) -> None:
        top, left = cell[0] * _CELL_PX, cell[1] * _CELL_PX
        image[top + _GAP_PX : top + _CELL_PX - _GAP_PX, left + _GAP_PX : left + _CELL_PX - _GAP_PX] = color


# Episodes are already bounded by the hunger cap; the time limit is a generous backstop
# (a perfect game on the default 6x6 board takes far fewer steps).
if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="rltool.envs.snake:SnakeEnv", max_episode_steps=5000)
