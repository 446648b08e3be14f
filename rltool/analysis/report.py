"""Summary table of runs per config (``rltool report``).

One row per config (runs sharing algo, env and label): the final reward of every seed,
their mean and interquartile mean with 95% percentile-bootstrap confidence intervals
(:func:`rltool.analysis.stats.aggregate`; one config is one task, so the stratified
bootstrap reduces to resampling seeds), and throughput.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from rltool.analysis.runs import RunInfo, load_monitor
from rltool.analysis.stats import aggregate
from rltool.errors import ModelLoadError, first_line
from rltool.rundir import RunStatus

# Fallback final score: mean reward of this many last training episodes.
LAST_EPISODES = 10
SOURCE_EVAL = "final_eval"
SOURCE_MONITOR = "monitor"


@dataclass
class ReportRow:
    """Summary of the seeds of one config.

    :param algo: algorithm name.
    :param env: environment id.
    :param label: config label (see :attr:`RunInfo.label`).
    :param config_name: config file stem, or None when not recorded.
    :param n_seeds: number of runs.
    :param seeds: seed of each run (None when unknown), in run order.
    :param runs: run folder of each run.
    :param final_rewards: final mean reward of each run.
    :param final_sources: per run, ``"final_eval"`` (train.json ``final_eval.mean_reward``) or
        ``"monitor"`` (mean of the last 10 training episodes, when there is no final evaluation).
    :param from_monitor: True when any final reward comes from the monitor fallback.
    :param mean: mean of the final rewards.
    :param mean_lo: lower CI bound of the mean.
    :param mean_hi: upper CI bound of the mean.
    :param iqm: interquartile mean of the final rewards.
    :param iqm_lo: lower CI bound of the IQM.
    :param iqm_hi: upper CI bound of the IQM.
    :param confidence: CI coverage (0.95).
    :param ci_reps: bootstrap replicates behind the CIs.
    :param steps_per_s: mean training throughput over runs that recorded it, else None.
    :param wall_time_s: mean training wall time over runs that recorded it, else None.
    :param num_timesteps: mean steps done over runs that recorded it, else None.
    :param n_interrupted: runs whose train.json status is ``"interrupted"``.
    """

    algo: str
    env: str
    label: str
    config_name: str | None
    n_seeds: int
    seeds: list[int | None]
    runs: list[str]
    final_rewards: list[float]
    final_sources: list[str]
    from_monitor: bool
    mean: float
    mean_lo: float
    mean_hi: float
    iqm: float
    iqm_lo: float
    iqm_hi: float
    confidence: float
    ci_reps: int
    steps_per_s: float | None = None
    wall_time_s: float | None = None
    num_timesteps: float | None = None
    n_interrupted: int = 0


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def final_reward(run: RunInfo, last_episodes: int = LAST_EPISODES) -> tuple[float, str]:
    """Final score of a run: train.json ``final_eval.mean_reward``, else the last training episodes' mean.

    :param run: the run.
    :param last_episodes: episodes averaged by the monitor fallback.
    :return: ``(reward, source)`` with source ``"final_eval"`` or ``"monitor"``.
    :raises ModelLoadError: neither a final evaluation nor monitor episodes are available.
    """
    final_eval = (run.train_json or {}).get("final_eval")
    if isinstance(final_eval, dict):
        value = _finite(final_eval.get("mean_reward"))
        if value is not None:
            return value, SOURCE_EVAL
    try:
        df = load_monitor(run.path)
    except ModelLoadError as exc:
        raise ModelLoadError(
            f"{run.path}: no final_eval in train.json and no monitor episodes ({exc})"
        ) from exc
    return float(df["reward"].tail(last_episodes).mean()), SOURCE_MONITOR


def _mean_of(runs: list[RunInfo], key: str) -> float | None:
    values = [_finite((r.train_json or {}).get(key)) for r in runs]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def build_report(
    runs: list[RunInfo],
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    skipped: list[str] | None = None,
) -> list[ReportRow]:
    """Group runs per config and summarise each group.

    :param runs: runs (see :func:`rltool.analysis.runs.find_runs`).
    :param reps: bootstrap replicates for the CIs.
    :param confidence: CI coverage.
    :param seed: seed of the bootstrap (the report is deterministic).
    :return: one row per ``(algo, env, label)``, in order of first appearance.
    :param skipped: when given, runs without a final score (no final evaluation and no finished
        episode, or a broken monitor file) are left out and described here instead of raising.
    :raises ModelLoadError: no runs, or (``skipped`` None) a run has no final score.
    """
    if not runs:
        raise ModelLoadError("no runs to report")
    if skipped is not None:
        scored = []
        for run in runs:
            try:
                final_reward(run)
                scored.append(run)
            except (ModelLoadError, ValueError) as error:
                skipped.append(f"skipped {first_line(error)}")
        if not scored:
            raise ModelLoadError(f"no run has a final score to report ({'; '.join(skipped)})")
        runs = scored
    groups: dict[tuple[str, str, str], list[RunInfo]] = {}
    for run in runs:
        groups.setdefault(run.group_key, []).append(run)
    rows = []
    for (algo, env, label), members in groups.items():
        finals = [final_reward(r) for r in members]
        rewards = [v for v, _ in finals]
        agg = aggregate(rewards, reps=reps, confidence=confidence, seed=seed)
        rows.append(
            ReportRow(
                algo=algo,
                env=env,
                label=label,
                config_name=members[0].config_name,
                n_seeds=len(members),
                seeds=[r.seed for r in members],
                runs=[str(r.path) for r in members],
                final_rewards=rewards,
                final_sources=[s for _, s in finals],
                from_monitor=any(s == SOURCE_MONITOR for _, s in finals),
                mean=float(agg["mean"]),
                mean_lo=float(agg["mean_lo"]),
                mean_hi=float(agg["mean_hi"]),
                iqm=float(agg["iqm"]),
                iqm_lo=float(agg["iqm_lo"]),
                iqm_hi=float(agg["iqm_hi"]),
                confidence=float(confidence),
                ci_reps=int(reps),
                steps_per_s=_mean_of(members, "steps_per_s"),
                wall_time_s=_mean_of(members, "wall_time_s"),
                num_timesteps=_mean_of(members, "num_timesteps"),
                n_interrupted=sum(r.status == RunStatus.INTERRUPTED for r in members),
            )
        )
    return rows


# ----------------------------------------------------------------------------- formatting


def _decimals(values: list[float]) -> int:
    """Decimals for a row's rewards: fewer for large magnitudes (500.0, 12.34, 0.123)."""
    top = max((abs(v) for v in values), default=0.0)
    return 1 if top >= 100 else 2 if top >= 1 else 3


def _num(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


_HEADERS = (
    "config",
    "seeds",
    "final reward per seed",
    "mean [95% CI]",
    "IQM [95% CI]",
    "steps/s",
    "wall time",
)
_RIGHT = (False, True, False, True, True, True, True)


def _cells(row: ReportRow) -> list[str]:
    d = _decimals(row.final_rewards)
    per_seed = ", ".join(
        _num(v, d) + ("*" if s == SOURCE_MONITOR else "")
        for v, s in zip(row.final_rewards, row.final_sources, strict=True)
    )
    seeds = str(row.n_seeds) + (f" ({row.n_interrupted} interrupted)" if row.n_interrupted else "")
    mean = f"{_num(row.mean, d)} [{_num(row.mean_lo, d)}, {_num(row.mean_hi, d)}]"
    iqm = f"{_num(row.iqm, d)} [{_num(row.iqm_lo, d)}, {_num(row.iqm_hi, d)}]"
    steps = "-" if row.steps_per_s is None else f"{row.steps_per_s:,.0f}"
    return [row.label, seeds, per_seed, mean, iqm, steps, _duration(row.wall_time_s)]


def _headers(rows: list[ReportRow]) -> list[str]:
    pct = f"{round(rows[0].confidence * 100)}%" if rows else "95%"
    return [h.replace("95%", pct) for h in _HEADERS]


def _footnotes(rows: list[ReportRow]) -> list[str]:
    notes = []
    if any(r.from_monitor for r in rows):
        notes.append(
            f"* no final evaluation in train.json: mean of the last {LAST_EPISODES} training episodes."
        )
    if rows:
        notes.append(
            f"CIs: percentile bootstrap over seeds ({rows[0].ci_reps} replicates); "
            "IQM = mean of the middle 50% of seeds (equals the mean below 4 seeds)."
        )
    return notes


def format_table(rows: list[ReportRow]) -> str:
    """Plain-text table with aligned columns, followed by footnotes.

    :param rows: rows from :func:`build_report`.
    :return: the table, lines joined by newlines (no trailing newline).
    """
    headers = _headers(rows)
    body = [_cells(r) for r in rows]
    widths = [max(len(c) for c in col) for col in zip(headers, *body, strict=True)]

    def line(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if right else c.ljust(w) for c, w, right in zip(cells, widths, _RIGHT, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(cells) for cells in body]
    notes = _footnotes(rows)
    if notes:
        out += [""] + notes
    return "\n".join(out)


def format_markdown(rows: list[ReportRow]) -> str:
    """GitHub-flavoured Markdown table followed by footnotes.

    :param rows: rows from :func:`build_report`.
    :return: the Markdown text (no trailing newline).
    """

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    out = [
        "| " + " | ".join(esc(h) for h in _headers(rows)) + " |",
        "|" + "|".join("---:" if right else "---" for right in _RIGHT) + "|",
    ]
    out += ["| " + " | ".join(esc(c) for c in _cells(r)) + " |" for r in rows]
    notes = _footnotes(rows)
    if notes:
        out += [""] + [n.replace("*", "\\*", 1) if n.startswith("*") else n for n in notes]
    return "\n".join(out)


def to_json(rows: list[ReportRow]) -> str:
    """JSON array of the rows (every :class:`ReportRow` field; missing values are null).

    :param rows: rows from :func:`build_report`.
    :return: indented JSON text.
    """
    return json.dumps([asdict(r) for r in rows], indent=2, allow_nan=False)
