"""Type aliases shared across rltool's core."""

from __future__ import annotations

from collections.abc import Callable

#: where a core function prints its progress lines (``print``, ``typer.echo``, a test's list.append)
Report = Callable[[str], None]
