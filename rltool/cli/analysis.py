"""``rltool plot``, ``rltool report`` and ``rltool smoke``: Typer command functions.

Registered by :mod:`rltool.cli.main` (``app.command("plot")(analysis.plot)`` and so on). Only
typer, pathlib and typing are imported here; matplotlib, pandas, torch and SB3 are imported
inside the commands so ``rltool --help`` stays fast.

The shared option types and ``user_errors`` are reached through the ``cli_main`` module object,
and annotations stay strings until Typer reads them, so ``rltool.cli.main`` may import this
module at its top (a circular import) without failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rltool.cli import main as cli_main

TargetsArg = Annotated[
    list[Path],
    typer.Argument(
        help="Run folders, folders of run-* folders, or config YAMLs (their runs under --log-folder).",
        show_default=False,
    ),
]
PLOTS_FOLDER = Path("plots")


def default_plot_path(name: str, folder: Path = PLOTS_FOLDER) -> Path:
    """``plots/<name>.png``, numbered (``<name>-2.png``, ...) so an existing image is never overwritten.

    :param name: file stem, e.g. ``ppo-CartPole-v1``.
    :param folder: where plots go.
    :return: a path that does not exist yet.
    """
    from rltool.fileio import numbered_path

    return numbered_path(folder, name, ".png")


def plot(
    targets: TargetsArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Image to write (.png, .pdf or .svg). Default: plots/<algo>-<env>.png."
        ),
    ] = None,
    x: Annotated[
        Literal["steps", "episodes", "time"],
        typer.Option("--x", help="X axis: env steps, episodes, or wall time in seconds."),
    ] = "steps",
    window: Annotated[
        int, typer.Option("--window", help="Rolling mean over this many episodes (1: raw).")
    ] = 100,
    evaluations: Annotated[
        bool, typer.Option("--eval/--no-eval", help="Also draw periodic evaluations (evaluations.npz).")
    ] = True,
    title: Annotated[str | None, typer.Option("--title", help="Figure title (default: the env id).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --output file.")] = False,
    log_folder: cli_main.LogFolderOpt = Path("models"),
) -> None:
    """Plot learning curves; seeds of one config are drawn as their mean with a 95% confidence band."""
    with cli_main.user_errors():
        from rltool.analysis.plot import plot_runs
        from rltool.analysis.runs import env_folder_name, find_runs
        from rltool.errors import OutputError

        runs = find_runs(list(targets), log_folder)
        if output is None:
            output = default_plot_path(env_folder_name(runs[0].algo, runs[0].env))
        elif output.exists() and not force:
            raise OutputError(f"{output}: already exists; pass --force to overwrite it or choose another -o")
        result = plot_runs(runs, output, x=x, window=window, show_eval=evaluations, title=title)
        drawn = result.runs
        configs = len({run.group_key for run in drawn})
        typer.echo(
            f"plot: {result.output} ({configs} config(s), {len(drawn)} run(s); x={x}, window={window})"
        )
        for note in result.notes:
            typer.echo(f"note: {note}")


def report(
    targets: TargetsArg,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object per config).")] = False,
    log_folder: cli_main.LogFolderOpt = Path("models"),
) -> None:
    """Summarise runs per config: final reward per seed, mean and IQM with 95% bootstrap CIs, speed."""
    with cli_main.user_errors():
        from rltool.analysis.report import build_report, format_markdown, format_table, to_json
        from rltool.analysis.runs import find_runs
        from rltool.errors import RltoolError

        if markdown and as_json:
            raise RltoolError("--markdown and --json: choose one output format")
        skipped: list[str] = []
        rows = build_report(find_runs(list(targets), log_folder), skipped=skipped)
        for line in skipped:  # on stderr, so --json output stays one JSON document
            typer.echo(f"note: {line}", err=True)
        if as_json:
            typer.echo(to_json(rows))
        elif markdown:
            typer.echo(format_markdown(rows))
        else:
            typer.echo(format_table(rows))


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
    allow_module: cli_main.AllowModuleOpt = None,
    trust_pickles: cli_main.TrustOpt = False,
) -> None:
    """CI smoke test: train every config for a tiny budget, reload, evaluate one episode, film a few frames.

    Prints a pass/fail table; exits 1 when a config fails (its row shows the error), 130 on Ctrl-C.
    """
    with cli_main.user_errors():
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
