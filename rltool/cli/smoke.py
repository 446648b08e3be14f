"""``rltool smoke``: every config for a tiny budget, for CI. Registered by :mod:`rltool.cli.main`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rltool.cli.options import AllowModuleOpt, TrustOpt, user_errors


def smoke(
    targets: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Config files or folders of them (searched recursively). Default: configs/.",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps", help="Env steps per config (default: two rollouts, or learning_starts + 500)."
        ),
    ] = None,
    length: Annotated[int, typer.Option("--length", help="Env steps filmed per config.")] = 10,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temporary folder of runs and videos.")
    ] = False,
    allow_module: AllowModuleOpt = None,
    trust_pickles: TrustOpt = False,
) -> None:
    """CI smoke test: train every config for a tiny budget, reload, evaluate one episode, film a few frames.

    Prints a pass/fail table; exits 1 when a config fails (its row shows the error), 130 on Ctrl-C.
    """
    with user_errors():
        import tempfile

        from rltool.errors import RltoolError
        from rltool.smoke import FAIL, INTERRUPTED, find_configs, format_table, smoke_configs

        if not targets:
            if not Path("configs").is_dir():
                raise RltoolError(
                    "no configs/ folder here; give config files or folders, e.g. rltool smoke my_configs/"
                )
            targets = [Path("configs")]
        paths = find_configs(list(targets))
        workdir = Path(tempfile.mkdtemp(prefix="rltool-smoke-")) if keep else None
        results = smoke_configs(
            paths,
            steps,
            video_length=length,
            workdir=workdir,
            allowed_modules=tuple(allow_module or ()),
            trust_pickles=trust_pickles,
            report=lambda line: typer.echo(line, err=True),
        )
        typer.echo(format_table(results))
        if workdir is not None:
            typer.echo(f"kept: {workdir}")
        if any(r.status == INTERRUPTED for r in results):
            raise typer.Exit(code=130)
        if any(r.status == FAIL for r in results):
            raise typer.Exit(code=1)
