"""The one exception hierarchy of rltool.

Every mistake a user can make (a bad config, a missing file, a model that does
not fit the env) raises a subclass of :class:`RltoolError`. The CLI turns it
into a single line on stderr and exit code 2; nothing else prints tracebacks
for user mistakes.
"""

from __future__ import annotations

from collections.abc import Iterable


class RltoolError(Exception):
    """Base class: a user-facing error with a one-line message."""

    exit_code = 2


class ConfigError(RltoolError):
    """A config file or command-line override is invalid."""


class EnvError(RltoolError):
    """An environment cannot be created, imported or rendered."""


class ModelLoadError(RltoolError):
    """A model, run folder or statistics file cannot be loaded."""


class UnsafeFileError(ModelLoadError):
    """A file would run code when loaded and the user did not opt in."""


class OutputError(RltoolError):
    """An output path cannot be written."""


class TrainingDivergedError(RltoolError):
    """Training produced NaN or infinite values."""


def first_line(error: BaseException) -> str:
    """:return: the first non-empty line of an exception's message, or its type name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def close_matches(word: str, options: Iterable[str], count: int = 1, cutoff: float = 0.6) -> list[str]:
    """:return: up to ``count`` of ``options`` close to ``word``, the closest first (difflib's ratio)."""
    import difflib

    return difflib.get_close_matches(word, sorted(options), n=count, cutoff=cutoff)


def did_you_mean(word: str, options: Iterable[str], cutoff: float = 0.6) -> str:
    """:return: ``"; did you mean 'x'?"`` for the closest of ``options``, or ``""`` when none is close."""
    close = close_matches(word, options, cutoff=cutoff)
    return f"; did you mean '{close[0]}'?" if close else ""
