"""``rltool train --seeds``: the lines and the exit code of a multi-seed run (the core is :mod:`rltool.multiseed`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rltool.config import ExperimentConfig
    from rltool.tracking import TrackingOptions
    from rltool.train import TrainOptions, TrainResult
    from rltool.type_aliases import Report


def train_seeds(
    config: ExperimentConfig,
    seeds_text: str,
    jobs: int | None,
    options: TrainOptions,
    tracking: TrackingOptions | None = None,
) -> int:
    """Train ``config`` once per seed of ``seeds_text`` in parallel processes, print one line per seed.

    :param config: the loaded config (its own seed is replaced by each of the seeds).
    :param seeds_text: the ``--seeds`` value, e.g. ``0-4``.
    :param jobs: seeds at once (None: one per core).
    :param options: training options.
    :param tracking: ``--track``: each seed is its own tracking run (see :func:`rltool.tracking.for_seed`).
    :return: the exit code: 0 every seed finished, 130 Ctrl-C stopped one, 1 one failed.
    """
    from rltool.multiseed import parse_seeds, run_seeds, seed_configs

    configs = seed_configs(config, parse_seeds(seeds_text))
    return summarize(run_seeds(configs, options, jobs, report=typer.echo, tracking=tracking), typer.echo)


def summarize(results: list[TrainResult], report: Report) -> int:
    """Print one line per seed and the command that compares them.

    :param results: from :func:`rltool.multiseed.run_seeds`.
    :param report: where lines go.
    :return: the exit code: 130 when Ctrl-C stopped any seed, else 1 when one failed, else 0.
    """
    from rltool.multiseed import FAILED, NOT_STARTED, STOPPED
    from rltool.rundir import RunStatus

    for result in results:
        info = result.info or {}
        line = f"seed {info.get('seed')}: {result.status:<11} {result.num_timesteps:>10,} steps"
        if result.status in (FAILED, STOPPED):
            line += f"  {info.get('error')}"
        else:
            if result.final_eval:
                line += f"  mean_reward={result.final_eval['mean_reward']:.2f}"
            if result.status != NOT_STARTED:
                line += f"  {result.run_dir}"
        report(line)
    done = [
        r
        for r in results
        if r.status == RunStatus.FINISHED or (r.status == RunStatus.INTERRUPTED and r.num_timesteps)
    ]
    if done:
        report("compare: rltool report " + " ".join(str(r.run_dir) for r in done))
    statuses = {r.status for r in results}
    if statuses & {RunStatus.INTERRUPTED, STOPPED, NOT_STARTED}:
        return 130
    return 1 if FAILED in statuses else 0
