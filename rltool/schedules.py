"""Schedules named in configs (``lin_0.001``), as picklable callables.

SB3 calls a schedule with ``progress_remaining``, which goes from 1 at the start of
training to 0 at the end. Classes rather than closures, so models that hold them
pickle and load in another process.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearSchedule:
    """Goes linearly from ``initial_value`` to 0 over training."""

    initial_value: float

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial_value


class FixedSchedule:
    """A schedule that returns the same value whatever the training progress.

    Stands in for a schedule of a model that cannot be decoded safely (see :mod:`rltool.safe_load`).
    Named apart from SB3's own ``ConstantSchedule``; a plain class so a model holding it pickles again.

    :param value: the value returned for every progress.
    """

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, progress_remaining: float) -> float:
        """:return: the fixed value (``progress_remaining`` is ignored)."""
        return self.value

    def __repr__(self) -> str:
        return f"FixedSchedule({self.value!r})"


def is_schedule_string(value: object) -> bool:
    """:return: whether ``value`` is a schedule string such as ``lin_3e-4``."""
    if not isinstance(value, str) or not value.startswith("lin_"):
        return False
    try:
        float(value[len("lin_") :])
    except ValueError:
        return False
    return True


def to_schedule(value: float | str) -> float | LinearSchedule:
    """Turn a validated config value into what SB3 accepts.

    :param value: a number or a ``lin_X`` string.
    :return: the number unchanged, or a :class:`LinearSchedule`.
    """
    if isinstance(value, str):
        return LinearSchedule(float(value[len("lin_") :]))
    return value
