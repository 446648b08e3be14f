"""Options and error handling shared by every ``rltool`` command, defined once.

Only typer, pathlib and typing are imported here, so every command module can import it at its
top without an import cycle and ``rltool --help`` stays fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from rltool.errors import RltoolError


def echo_error(message: str) -> None:
    """Print one error line on stderr."""
    typer.echo(f"rltool: error: {message}", err=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn :class:`RltoolError` into one line on stderr and its exit code (2), no traceback."""
    try:
        yield
    except RltoolError as error:
        echo_error(str(error))
        raise typer.Exit(code=error.exit_code) from None


@contextlib.contextmanager
def interrupts_exit() -> Iterator[None]:
    """A Ctrl-C, SIGTERM or SIGHUP that ends a command before it saved: one line, exit 128 + signal."""
    from rltool.signals import exit_code

    try:
        yield
    except KeyboardInterrupt:
        echo_error("interrupted before training started; nothing was saved")
        raise typer.Exit(code=exit_code()) from None


# Options shared by several commands, defined once.
EnvOpt = Annotated[
    str | None, typer.Option("--env", help="Env id (required for zoo files and bare model zips).")
]
AlgoOpt = Annotated[
    str | None, typer.Option("--algo", help="Algorithm (default: the config's, or the zoo file's name).")
]
LogFolderOpt = Annotated[Path, typer.Option("-f", "--log-folder", help="Folder of the runs.")]
TrustOpt = Annotated[
    bool,
    typer.Option("--trust-pickles", help="Allow model/statistics files that need unpickling (can run code)."),
]
AllowModuleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-module", help="Allow wrappers/callbacks from this module (repeatable).", show_default=False
    ),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed.")]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend", help="sb3 (torch) or sbx (JAX); same as -p backend=... (default: the config's)."
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device", help="auto, cpu or cuda (default: the config's device, else cpu; sbx: JAX's choice)."
    ),
]
BestOpt = Annotated[bool, typer.Option("--best", help="Use best_model.zip of the run.")]
DeterministicOpt = Annotated[
    bool, typer.Option("--deterministic/--stochastic", help="Greedy or sampled actions.")
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-p", "--param", help="Override a config value: key=value (repeatable).", show_default=False
    ),
]
