"""Train the shipped configs with several seeds and write a results table next to the zoo's scores.

For each config (default: every ``configs/*.yaml``), train one run per seed (default 0,1,2) with
:func:`rltool.multiseed.run_seeds` (``--jobs`` at a time), summarise the finished runs with
:func:`rltool.analysis.report.build_report`, and write ``benchmarks/results.md``: IQM and mean
of the final evaluation over seeds (95% bootstrap CIs), budget, wall-clock minutes on this
machine, and the score rl-baselines3-zoo published for the same algorithm and env.

Usage::

    python benchmarks/results_table.py                               # full budgets (hours)
    python benchmarks/results_table.py --configs configs/cartpole.yaml --n-timesteps 2000 \\
        --output /tmp/results.md                                     # a quick check

Runs go under ``--log-folder`` (default ``runs/benchmarks``, never ``models/``); each invocation
adds new ``run-N`` folders and reports only its own. Exit code: 0, 1 when a seed failed, 130
after Ctrl-C (the table then covers the configs done so far).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results.md"
DEFAULT_LOG_FOLDER = Path("runs") / "benchmarks"
FINAL_EVAL_EPISODES = 10


@dataclass(frozen=True)
class ZooScore:
    """A row of rl-baselines3-zoo's benchmark.md: one trained agent, mean ± std episode reward.

    :param env_id: the env the zoo trained on.
    :param mean: mean episode reward of its evaluation.
    :param std: standard deviation of the episode rewards.
    :param n_timesteps: the training budget.
    """

    env_id: str
    mean: float
    std: float
    n_timesteps: int


# rl-baselines3-zoo benchmark.md (the numbers, typed in; budgets from the zoo's hyperparameter files).
ZOO_SCORES: dict[tuple[str, str], ZooScore] = {
    ("ppo", "CartPole-v1"): ZooScore("CartPole-v1", 500.0, 0.0, 100_000),
    ("ppo", "LunarLander-v2"): ZooScore("LunarLander-v2", 242.1, 31.8, 1_000_000),
    ("dqn", "LunarLander-v2"): ZooScore("LunarLander-v2", 154.4, 79.2, 100_000),
    ("a2c", "LunarLander-v2"): ZooScore("LunarLander-v2", 155.8, 80.4, 200_000),
    ("sac", "Pendulum-v1"): ZooScore("Pendulum-v1", -157.0, 88.7, 20_000),
    ("td3", "Pendulum-v1"): ZooScore("Pendulum-v1", -151.9, 90.2, 20_000),
    ("tqc", "LunarLanderContinuous-v2"): ZooScore("LunarLanderContinuous-v2", 278.0, 25.5, 500_000),
}
# gymnasium 1.x only has v3 of these; the zoo benchmarked v2 (see the footnote of the table).
ZOO_ENV_ALIASES = {"LunarLander-v3": "LunarLander-v2", "LunarLanderContinuous-v3": "LunarLanderContinuous-v2"}
VERSION_MARK = "†"


def zoo_score(algo: str, env: str) -> tuple[ZooScore | None, bool]:
    """The zoo's score for ``algo`` on ``env``.

    :param algo: algorithm name.
    :param env: env id as trained here.
    :return: the score (None when the zoo has none) and whether it is for another env version.
    """
    if (algo, env) in ZOO_SCORES:
        return ZOO_SCORES[algo, env], False
    alias = ZOO_ENV_ALIASES.get(env)
    if alias and (algo, alias) in ZOO_SCORES:
        return ZOO_SCORES[algo, alias], True
    return None, False


@dataclass
class Entry:
    """One config's outcome."""

    config: str
    algo: str = "-"
    env: str = "-"
    n_timesteps: int | None = None
    n_seeds: int = 0
    row: object | None = None  # rltool.analysis.report.ReportRow
    minutes: float | None = None
    errors: list[str] | None = None
    interrupted: bool = False


def short_steps(steps: float | None) -> str:
    """:return: ``100k``, ``1M``, ``2.5M`` or ``-``."""
    if steps is None:
        return "-"
    if steps >= 1_000_000:
        return f"{steps / 1_000_000:g}M"
    if steps >= 1_000:
        return f"{steps / 1_000:g}k"
    return f"{steps:g}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", type=Path, help="Config files (default: configs/*.yaml).")
    parser.add_argument("--seeds", default="0,1,2", help="Seeds, e.g. 0,1,2 or 0-4 (default 0,1,2).")
    parser.add_argument("--jobs", type=int, default=2, help="Seeds trained at once (default 2).")
    parser.add_argument("--log-folder", type=Path, default=DEFAULT_LOG_FOLDER, help="Where runs go.")
    parser.add_argument("--n-timesteps", type=int, help="Override every budget (quick runs; not comparable).")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown file to write.")
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
    parser.add_argument(
        "--into-readme",
        nargs="*",
        type=Path,
        metavar="RESULTS",
        help="Train nothing: copy these results pages (default: --output) into README.md's results section.",
    )
    return parser.parse_args(argv)


README = REPO / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def merge_pages(pages: list[str]) -> str:
    """Merge results pages into one: the first page's title, header and table, then the other pages'
    table rows, their "Generated by" lines when they differ, and footnotes not already there.

    :param pages: the pages' Markdown text.
    :return: one page.
    """
    lines = pages[0].strip().splitlines()
    table_end = max(i for i, line in enumerate(lines) if line.startswith("|")) + 1
    extra_rows: list[str] = []
    extra_notes: list[str] = []
    for page in pages[1:]:
        other = page.strip().splitlines()
        rows = [line for line in other if line.startswith("|")][2:]  # skip the header and separator
        extra_rows += [row for row in rows if row not in lines and row not in extra_rows]
        for line in other:
            known = line in lines or line in extra_notes
            if line.startswith("Generated by") and not known:
                extra_notes.append(f"- {line}")
            elif line.startswith("- ") and not known:
                extra_notes.append(line)
    merged = lines[:table_end] + extra_rows + lines[table_end:] + extra_notes
    return "\n".join(merged)


def copy_into_readme(pages: list[Path], readme: Path = README) -> None:
    """Replace the text between the results markers of the README with the generated pages, merged
    into one table (so running it again leaves exactly one block)."""
    from rltool.errors import RltoolError
    from rltool.fileio import write_text

    for page in pages:
        if not page.exists():
            raise RltoolError(f"{page}: no results yet; run benchmarks/results_table.py first")
    text = readme.read_text()
    if START not in text or END not in text:
        raise RltoolError(f"{readme}: the markers {START} and {END} are missing")
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    # each page starts with its own "# Results" title; in the README it sits under a section heading
    body = merge_pages([page.read_text() for page in pages]).replace("# Results", "### Results", 1)
    write_text(readme, f"{before}{START}\n{body}\n{END}{after}")


def run_config(path: Path, seeds: list[int], args: argparse.Namespace) -> Entry:
    """Train one config's seeds and summarise the finished ones."""
    from rltool.analysis.report import build_report
    from rltool.analysis.runs import load_run
    from rltool.config import load_config
    from rltool.errors import RltoolError
    from rltool.multiseed import run_seeds
    from rltool.train import TrainOptions

    shown = path.resolve().relative_to(REPO) if path.resolve().is_relative_to(REPO) else path
    entry = Entry(config=str(shown))
    try:
        config = load_config(path, n_timesteps=args.n_timesteps)
    except RltoolError as error:
        entry.errors = [str(error)]
        return entry
    entry.algo, entry.env, entry.n_timesteps = config.algo, config.env, config.n_timesteps
    options = TrainOptions(
        log_folder=args.log_folder,
        final_eval_episodes=FINAL_EVAL_EPISODES,
        tensorboard=False,
        progress=not args.no_progress,
        threads=1,
    )
    started = time.perf_counter()
    results = run_seeds([replace(config, seed=seed) for seed in seeds], options, args.jobs, report=print)
    entry.minutes = (time.perf_counter() - started) / 60
    entry.interrupted = any(r.status not in ("finished", "failed") for r in results)
    entry.errors = [
        f"seed {r.info.get('seed')}: {r.info.get('error')}" for r in results if r.status == "failed"
    ]
    finished = [r for r in results if r.status == "finished"]
    entry.n_seeds = len(finished)
    if finished:
        (entry.row,) = build_report([load_run(r.run_dir) for r in finished])
    return entry


def render(entries: list[Entry], seeds: list[int], args: argparse.Namespace) -> str:
    """The markdown page: table, then footnotes."""
    import rltool.train

    versions = rltool.train.package_versions()
    lines = [
        "# Results: rltool configs vs rl-baselines3-zoo",
        "",
        f"Generated by `benchmarks/results_table.py` on {date.today().isoformat()}: "
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), {args.jobs} at a time, "
        f"{os.cpu_count()} CPU cores, 1 torch thread per run; Python {versions.get('python')}, "
        f"torch {versions.get('torch')}, SB3 {versions.get('stable-baselines3')}, "
        f"gymnasium {versions.get('gymnasium')}, {platform.machine()}.",
        "",
    ]
    if args.n_timesteps is not None:
        lines += [
            f"**Quick run: every budget was overridden to {args.n_timesteps:,} steps; "
            "these scores are not comparable to the zoo's.**",
            "",
        ]
    lines += [
        "| config | algo | env | steps | seeds | IQM [95% CI] | mean [95% CI] | minutes | steps/s | zoo score (budget) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    any_alias = False
    for e in entries:
        zoo, alias = zoo_score(e.algo, e.env)
        any_alias |= alias and zoo is not None
        zoo_text = "-" if zoo is None else f"{zoo.mean:.1f} ± {zoo.std:.1f} ({short_steps(zoo.n_timesteps)})"
        if alias and zoo is not None:
            zoo_text += f" {VERSION_MARK}"
        row = e.row
        if row is None:
            iqm = mean = "failed" if e.errors else "-"
            speed = "-"
        else:
            iqm = f"{row.iqm:.1f} [{row.iqm_lo:.1f}, {row.iqm_hi:.1f}]"
            mean = f"{row.mean:.1f} [{row.mean_lo:.1f}, {row.mean_hi:.1f}]"
            speed = "-" if row.steps_per_s is None else f"{row.steps_per_s:,.0f}"
        minutes = "-" if e.minutes is None else f"{e.minutes:.1f}"
        seeds_text = f"{e.n_seeds}/{len(seeds)}" if e.n_seeds != len(seeds) else str(e.n_seeds)
        lines.append(
            f"| {e.config} | {e.algo} | {e.env} | {short_steps(e.n_timesteps)} | {seeds_text} | {iqm} | {mean} "
            f"| {minutes} | {speed} | {zoo_text} |"
        )
    lines += [
        "",
        f"- Score of a run: mean reward of {FINAL_EVAL_EPISODES} deterministic evaluation episodes after "
        "training (train.json `final_eval`). IQM and mean are over the finished seeds, with 95% "
        "percentile-bootstrap confidence intervals; with fewer than 4 seeds the IQM equals the mean.",
        "- minutes: wall-clock time to train all seeds of the config (including evaluations), "
        f"{args.jobs} seeds at a time on this machine; steps/s: mean training throughput of one seed.",
        "- zoo score: rl-baselines3-zoo's benchmark.md, i.e. a single trained agent (one seed) evaluated "
        "with its deterministic policy, mean ± standard deviation over its evaluation episodes; the budget "
        "is the zoo's n_timesteps for that algorithm and env. It is not an across-seed statistic.",
    ]
    if any_alias:
        lines.append(
            f"- {VERSION_MARK} The zoo's score is for LunarLander-v2 (or LunarLanderContinuous-v2); gymnasium "
            "1.x only provides v3, which resets the wind and turbulence state on every reset (matters only with "
            "`enable_wind`), fully destroys the Box2D world between episodes (removing a source of "
            "non-determinism) and widens the observation-space bounds. Its changelog lists no change to the "
            "dynamics or the rewards, so the scores are comparable, not identical."
        )
    failures = [(e.config, err) for e in entries for err in e.errors or []]
    if failures:
        lines += ["", "Failures:", ""] + [f"- {config}: {err}" for config, err in failures]
    if any(e.interrupted for e in entries):
        lines += ["", "Interrupted with Ctrl-C: the configs after the last row were not run."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark. :return: the exit code."""
    from rltool.errors import RltoolError
    from rltool.fileio import write_text
    from rltool.multiseed import parse_seeds

    args = parse_args(argv)
    if args.into_readme is not None:
        try:
            copy_into_readme(args.into_readme or [args.output])
        except RltoolError as error:
            print(f"results_table: error: {error}", file=sys.stderr)
            return 2
        print(f"copied {', '.join(map(str, args.into_readme or [args.output]))} into {README}")
        return 0
    try:
        seeds = parse_seeds(args.seeds)
        if args.jobs < 1:
            raise RltoolError(f"--jobs: must be >= 1, got {args.jobs}")
        if args.n_timesteps is not None and args.n_timesteps < 1:
            raise RltoolError(f"--n-timesteps: must be >= 1, got {args.n_timesteps}")
        configs = args.configs or sorted((REPO / "configs").glob("*.yaml"))
        if not configs:
            raise RltoolError(f"no configs given and none in {REPO / 'configs'}")
        entries: list[Entry] = []
        for number, path in enumerate(configs, 1):
            print(f"== [{number}/{len(configs)}] {path}", flush=True)
            entry = run_config(path, seeds, args)
            entries.append(entry)
            if entry.interrupted:
                break
        text = render(entries, seeds, args)
        write_text(args.output, text)
    except RltoolError as error:
        print(f"results_table: error: {error}", file=sys.stderr)
        return 2
    print(text, end="")
    print(f"written: {args.output}")
    if any(e.interrupted for e in entries):
        return 130
    return 1 if any(e.errors for e in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
