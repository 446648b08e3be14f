"""Learning curves of one or more runs (``rltool plot``).

Runs of the same config (same algo, env and label, different seeds) are drawn as the
mean over seeds with a 95% Student-t confidence band; single runs are drawn as they are.
The figure is rendered with matplotlib's Agg canvas on a standalone ``Figure`` (pyplot and
its global state are never touched), and everything drawn is returned as data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rltool.analysis.runs import RunInfo, load_evaluations, load_monitor
from rltool.errors import ConfigError, ModelLoadError, OutputError, first_line

X_MODES = ("steps", "episodes", "time")
_X_LABELS = {"steps": "timesteps", "episodes": "episodes", "time": "wall time (s)"}
_FORMATS = ("png", "pdf", "svg")
# Upper bound of points on the common x grid of a multi-seed mean curve.
_GRID_POINTS = 500
BAND_METHOD = "95% Student-t confidence interval of the mean across seeds"


@dataclass
class Curve:
    """One line of the figure.

    :param label: the config's label (:attr:`RunInfo.label`); the legend adds the seed count.
    :param kind: ``"train"`` (smoothed episode reward), ``"eval"`` (mean evaluation reward) or
        ``"success"`` (smoothed training success rate of goal envs, drawn in a panel of its own).
    :param x: x values (timesteps, episodes or seconds, see :attr:`PlotResult.x`).
    :param y: y values; for several seeds the mean across seeds.
    :param lo: lower edge of the confidence band, None for a single seed.
    :param hi: upper edge of the confidence band, None for a single seed.
    :param n_seeds: number of runs averaged.
    :param runs: the run folders behind the curve.
    :param member: for a seed drawn on its own because its config's seeds do not overlap in x,
        which seed (``"seed 3"``); None otherwise.
    """

    label: str
    kind: str
    x: np.ndarray
    y: np.ndarray
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    n_seeds: int = 1
    runs: list[Path] = field(default_factory=list)
    member: str | None = None


@dataclass
class PlotResult:
    """What :func:`plot_runs` drew and where.

    :param output: the image file written.
    :param x: the x mode, ``"steps"``, ``"episodes"`` or ``"time"``.
    :param xlabel: x axis label.
    :param ylabel: y axis label.
    :param window: rolling-mean window (episodes) of the training curves.
    :param band: how bands were computed.
    :param curves: the curves in drawing order (a config's train curve, then its eval curve).
    :param notes: remarks worth showing the user (e.g. seeds drawn separately).
    """

    output: Path
    x: str
    xlabel: str
    ylabel: str
    window: int
    band: str
    curves: list[Curve]
    notes: list[str] = field(default_factory=list)
    #: the runs drawn (those skipped for having no finished episode are listed in ``notes``)
    runs: list[RunInfo] = field(default_factory=list)


def rolling_mean(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing rolling mean; the first ``window - 1`` points average all episodes so far.

    :param y: values in episode order.
    :param window: number of episodes averaged.
    :return: array of the same length as ``y``.
    """
    import pandas as pd

    return pd.Series(np.asarray(y, dtype=float)).rolling(window, min_periods=1).mean().to_numpy()


def _last_per_x(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the last point of each run of equal x, so ``np.interp`` gets increasing x."""
    keep = np.append(x[1:] != x[:-1], True)
    return x[keep], y[keep]


def mean_with_band(
    xs: list[np.ndarray], ys: list[np.ndarray], grid: np.ndarray | None = None, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Mean of several curves on a common grid with a Student-t confidence band.

    Each curve is linearly interpolated onto the grid; the grid is restricted to the x
    range all curves cover, so no curve is extrapolated.

    :param xs: x values per curve, non-decreasing.
    :param ys: y values per curve.
    :param grid: candidate grid points (clipped to the overlap); default ``min(500, longest
        curve)`` evenly spaced points over the overlap.
    :param confidence: coverage of the band.
    :return: ``(grid, mean, lo, hi)``, or None when the curves' x ranges do not overlap.
    """
    from scipy import stats

    start = max(float(x[0]) for x in xs)
    stop = min(float(x[-1]) for x in xs)
    if start > stop:
        return None
    if grid is None:
        n = 1 if start == stop else min(_GRID_POINTS, max(2, max(len(x) for x in xs)))
        grid = np.linspace(start, stop, n)
    else:
        grid = np.asarray(grid, dtype=float)
        grid = grid[(grid >= start) & (grid <= stop)]
        if grid.size == 0:
            return None
    rows = [_last_per_x(np.asarray(x, float), np.asarray(y, float)) for x, y in zip(xs, ys, strict=True)]
    table = np.stack([np.interp(grid, x, y) for x, y in rows])
    n_seeds = table.shape[0]
    mean = table.mean(axis=0)
    if n_seeds < 2:
        return grid, mean, mean.copy(), mean.copy()
    sem = table.std(axis=0, ddof=1) / np.sqrt(n_seeds)
    half = stats.t.ppf(0.5 + confidence / 2.0, df=n_seeds - 1) * sem
    return grid, mean, mean - half, mean + half


def _monitor_x(df, x: str) -> np.ndarray:
    if x == "steps":
        return df["timesteps"].to_numpy(dtype=float)
    if x == "episodes":
        # Number of episodes finished, 1 for the first.
        return df["episode"].to_numpy(dtype=float) + 1.0
    return df["time"].to_numpy(dtype=float)


def _eval_x(timesteps: np.ndarray, df, x: str) -> np.ndarray:
    """Map evaluation timesteps to the x mode through the run's monitor table."""
    if x == "steps":
        return timesteps.astype(float)
    steps = df["timesteps"].to_numpy(dtype=float)
    if x == "episodes":
        return np.searchsorted(steps, timesteps, side="right").astype(float)
    # Wall time at that step, interpolated between episode ends (clamped at both ends).
    return np.interp(timesteps, steps, df["time"].to_numpy(dtype=float))


def _seed_name(run: RunInfo) -> str:
    return f"seed {run.seed}" if run.seed is not None else run.path.name


def _group_curves(
    label: str, kind: str, runs: list[RunInfo], xs: list[np.ndarray], ys: list[np.ndarray], notes: list[str]
) -> list[Curve]:
    paths = [r.path for r in runs]
    if len(runs) == 1:
        return [Curve(label, kind, xs[0], ys[0], None, None, 1, paths)]
    grid = None
    if kind == "eval":
        # Evaluations are sparse: average at the evaluation points themselves.
        grid = np.unique(np.concatenate(xs))
    res = mean_with_band(xs, ys, grid=grid)
    if res is None:
        notes.append(f"{label}: the {kind} curves of its {len(runs)} runs do not overlap; drawn per seed")
        return [
            Curve(label, kind, x, y, None, None, 1, [r.path], member=_seed_name(r))
            for r, x, y in zip(runs, xs, ys, strict=True)
        ]
    grid, mean, lo, hi = res
    return [Curve(label, kind, grid, mean, lo, hi, len(runs), paths)]


def _output_format(output: Path) -> str:
    fmt = output.suffix.lower().lstrip(".") or "png"
    if fmt not in _FORMATS:
        raise OutputError(f"{output}: unsupported image type '.{fmt}' (use .png, .pdf or .svg)")
    return fmt


def _legend_text(curve: Curve) -> str:
    text = {"train": curve.label, "success": f"{curve.label} success"}.get(curve.kind, f"{curve.label} eval")
    if curve.member:
        text = f"{text} {curve.member}"
    return f"{text} (mean ± 95% CI, {curve.n_seeds} seeds)" if curve.n_seeds > 1 else text


def plot_runs(
    runs: list[RunInfo],
    output: Path | str,
    x: str = "steps",
    window: int = 100,
    show_eval: bool = True,
    title: str | None = None,
) -> PlotResult:
    """Plot episode reward of runs against steps, episodes or wall time and save the image.

    Training episode rewards (from the monitor files) are smoothed with a trailing rolling
    mean of ``window`` episodes. Runs sharing ``(algo, env, label)`` are averaged: each
    seed's smoothed curve is interpolated onto a common grid over the x range all seeds
    cover, and drawn as the mean with a 95% Student-t band (mean ± t(0.975, n-1)·sd/√n).
    Evaluations (mean over evaluation episodes) are drawn dashed with markers, averaged
    over seeds the same way at the evaluation points.

    :param runs: runs to draw (see :func:`rltool.analysis.runs.find_runs`).
    :param output: image path (.png, or .pdf/.svg); parent folders are created. Only this
        file is written.
    :param x: ``"steps"``, ``"episodes"`` or ``"time"`` (seconds since the run started).
    :param window: rolling-mean window in episodes (1 = no smoothing).
    :param show_eval: draw evaluations from ``evaluations.npz`` when present.
    :param title: figure title; default the env id when all runs share one.
    :return: the curves drawn and the output path.
    :raises ConfigError: bad ``x`` or ``window``.
    :raises ModelLoadError: no runs, or a run's monitor files are missing or empty.
    :raises OutputError: the image cannot be written.
    """
    if x not in X_MODES:
        raise ConfigError(f"unknown x axis '{x}' (expected one of: {', '.join(X_MODES)})")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ConfigError(f"window must be a positive integer, got {window!r}")
    if not runs:
        raise ModelLoadError("no runs to plot")
    output = Path(output)
    fmt = _output_format(output)
    if output.is_dir():
        raise OutputError(f"{output}: is a folder (expected an image file path)")

    # Runs with no finished episode (crashed at once, still starting) or a broken monitor file
    # are skipped and listed; the others are drawn.
    monitors, skipped = {}, []
    for run in runs:
        try:
            monitors[run.path] = load_monitor(run.path)
        except (ModelLoadError, ValueError) as error:
            skipped.append(f"skipped {first_line(error)}")
    runs = [run for run in runs if run.path in monitors]
    if not runs:
        raise ModelLoadError(f"no run has a finished episode to plot ({'; '.join(skipped)})")

    groups: dict[tuple[str, str, str], list[RunInfo]] = {}
    for run in runs:
        groups.setdefault(run.group_key, []).append(run)

    # Load and compute everything before writing anything.
    curves: list[Curve] = []
    notes: list[str] = list(skipped)
    for (_, _, label), members in groups.items():
        xs, ys, eval_runs, eval_xs, eval_ys, success_ys = [], [], [], [], [], []
        for run in members:
            df = monitors[run.path]
            xs.append(_monitor_x(df, x))
            ys.append(rolling_mean(df["reward"].to_numpy(), int(window)))
            if "is_success" in df.columns:
                success_ys.append(rolling_mean(df["is_success"].to_numpy(), int(window)))
            ev = load_evaluations(run.path) if show_eval else None
            if ev is not None:
                eval_runs.append(run)
                eval_xs.append(_eval_x(ev.timesteps, df, x))
                eval_ys.append(ev.mean_reward)
        curves += _group_curves(label, "train", members, xs, ys, notes)
        if success_ys and len(success_ys) == len(members):
            curves += _group_curves(label, "success", members, xs, success_ys, notes)
        if eval_runs:
            if len(eval_runs) < len(members):
                notes.append(f"{label}: {len(eval_runs)} of {len(members)} runs have evaluations")
            curves += _group_curves(label, "eval", eval_runs, eval_xs, eval_ys, notes)

    envs = {r.env for r in runs}
    if title is None and len(envs) == 1:
        title = next(iter(envs))
    result = PlotResult(
        output=output,
        x=x,
        xlabel=_X_LABELS[x],
        ylabel="episode reward" + (f" (rolling mean, {window} episodes)" if window > 1 else ""),
        window=int(window),
        band=BAND_METHOD,
        curves=curves,
        notes=notes,
        runs=runs,
    )
    _draw_and_save(result, groups, title, fmt)
    return result


def _draw_and_save(result: PlotResult, groups: dict, title: str | None, fmt: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    has_success = any(curve.kind == "success" for curve in result.curves)
    fig = Figure(figsize=(8, 7.5 if has_success else 5), layout="constrained")
    FigureCanvasAgg(fig)
    if has_success:  # goal envs: success rate in a panel under the rewards, same x axis
        ax, success_ax = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
        success_ax.set_ylabel(
            "success rate" + (f" (rolling mean, {result.window} episodes)" if result.window > 1 else "")
        )
        success_ax.set_xlabel(result.xlabel)
        success_ax.set_ylim(-0.05, 1.05)
        success_ax.grid(True, alpha=0.3)
    else:
        ax = fig.add_subplot()
    colors = {label: f"C{i % 10}" for i, (_, _, label) in enumerate(groups)}
    for curve in result.curves:
        color = colors[curve.label]
        if curve.kind == "success":
            success_ax.plot(curve.x, curve.y, color=color, label=_legend_text(curve))
            if curve.lo is not None and curve.hi is not None:
                success_ax.fill_between(curve.x, curve.lo, curve.hi, color=color, alpha=0.2)
            continue
        style = (
            {"linestyle": "-"}
            if curve.kind == "train"
            else {"linestyle": "--", "marker": "o", "markersize": 3}
        )
        ax.plot(curve.x, curve.y, color=color, label=_legend_text(curve), **style)
        if curve.lo is not None and curve.hi is not None:
            ax.fill_between(
                curve.x, curve.lo, curve.hi, color=color, alpha=0.2 if curve.kind == "train" else 0.1
            )
    ax.set_xlabel(result.xlabel)
    ax.set_ylabel(result.ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")

    output = result.output
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{output}: cannot create folder {output.parent} ({exc.strerror or exc})") from exc
    try:
        fig.savefig(output, format=fmt, dpi=120)
    except OSError as exc:
        raise OutputError(f"{output}: cannot write image ({exc.strerror or exc})") from exc
