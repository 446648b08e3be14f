"""``rltool plot`` and ``rltool report``: Typer command functions, registered by :mod:`rltool.cli.main`.

Only typer, pathlib and typing are imported here; matplotlib and pandas are imported inside the
commands so ``rltool --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rltool.cli.options import LogFolderOpt, user_errors

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
    log_folder: LogFolderOpt = Path("models"),
) -> None:
    """Plot learning curves; seeds of one config are drawn as their mean with a 95% confidence band."""
    with user_errors():
        from rltool.analysis.plot import plot_runs
        from rltool.analysis.runs import find_runs
        from rltool.errors import OutputError
        from rltool.rundir import folder_name

        runs = find_runs(list(targets), log_folder)
        if output is None:
            output = default_plot_path(folder_name(runs[0].algo, runs[0].env))
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
    log_folder: LogFolderOpt = Path("models"),
) -> None:
    """Summarise runs per config: final reward per seed, mean and IQM with 95% bootstrap CIs, speed."""
    with user_errors():
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
