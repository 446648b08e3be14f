"""``rltool tune``: one Optuna worker; start several (on one or many machines) to share a study.

Only typer, pathlib and typing are imported here; Optuna, torch and SB3 load inside the
command, so ``rltool --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# Defined here rather than imported from rltool.cli.main, which imports this module.
_EnvOpt = Annotated[str | None, typer.Option("--env", help="Env id (required for zoo files).")]
_AlgoOpt = Annotated[
    str | None, typer.Option("--algo", help="Algorithm (default: the config's, or the zoo file's name).")
]
_ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-p", "--param", help="Set a config value before tuning: key=value (repeatable).", show_default=False
    ),
]
_AllowModuleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-module", help="Allow wrappers/callbacks from this module (repeatable).", show_default=False
    ),
]


def tune(
    config: Annotated[
        Path, typer.Argument(help="Config YAML whose algorithm is tuned (single experiment or zoo file).")
    ],
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            help="Trials this worker runs (default: until --max-total-trials or --timeout; else 20).",
        ),
    ] = None,
    max_total_trials: Annotated[
        int | None,
        typer.Option(
            "--max-total-trials",
            help="Stop all workers once the study has exactly N finished or pruned trials.",
        ),
    ] = None,
    n_timesteps: Annotated[
        int | None,
        typer.Option("-n", "--n-timesteps", help="Env steps per trial (default: the config's budget)."),
    ] = None,
    n_evaluations: Annotated[
        int, typer.Option("--n-evaluations", help="Evaluations per trial, reported to the pruner.")
    ] = 5,
    eval_episodes: Annotated[int, typer.Option("--eval-episodes", help="Episodes per evaluation.")] = 5,
    sampler: Annotated[str, typer.Option("--sampler", help="tpe or random.")] = "tpe",
    pruner: Annotated[str, typer.Option("--pruner", help="median, halving or none.")] = "median",
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed of training and of the sampler (default: the config's)."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds after which this worker starts no new trial.")
    ] = None,
    study_name: Annotated[
        str | None, typer.Option("--study-name", help="Study to create or join (default: <algo>-<env>).")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="A .log journal file, sqlite:///file.db or postgresql://user:pass@host/db "
            "(default: <log-folder>/tune/<study>/study.log).",
        ),
    ] = None,
    enqueue: Annotated[
        list[str] | None,
        typer.Option(
            "--enqueue",
            help="Try these parameters first: key=value[,key=value] (repeatable).",
            show_default=False,
        ),
    ] = None,
    env: _EnvOpt = None,
    algo: _AlgoOpt = None,
    n_envs: Annotated[int | None, typer.Option("--n-envs", help="Parallel envs per trial.")] = None,
    params: _ParamOpt = None,
    log_folder: Annotated[
        Path, typer.Option("-f", "--log-folder", help="Results go to <log-folder>/tune/<study-name>/.")
    ] = Path("models"),
    allow_module: _AllowModuleOpt = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend", help="sb3 (torch) or sbx (JAX); same as -p backend=... (default: the config's)."
        ),
    ] = None,
) -> None:
    """Search the config's hyperparameters with Optuna; writes best.yaml, trials.csv and plots."""
    import signal

    from rltool.cli.main import user_errors

    with user_errors():
        from rltool.config import load_config
        from rltool.tune.samplers import SAMPLERS
        from rltool.tune.study import TuneOptions, parse_enqueue, search_space_names
        from rltool.tune.study import tune as run_tune

        experiment = load_config(
            config, env=env, algo=algo, overrides=params or (), seed=seed, n_envs=n_envs, backend=backend
        )
        if params and experiment.algo in SAMPLERS:
            tuned = search_space_names(experiment)
            for key in sorted({text.partition("=")[0].strip() for text in params} & tuned):
                typer.echo(
                    f"note: -p {key} is tuned, so trials replace it; use --enqueue {key}=... to try one value"
                )
        if trials is None and max_total_trials is None and timeout is None:
            trials = 20
        options = TuneOptions(
            trials=trials,
            max_total_trials=max_total_trials,
            n_timesteps=n_timesteps,
            n_evaluations=n_evaluations,
            eval_episodes=eval_episodes,
            sampler=sampler,
            pruner=pruner,
            seed=seed,
            timeout=timeout,
            study_name=study_name,
            storage=storage,
            log_folder=log_folder,
            enqueue=tuple(parse_enqueue(text) for text in enqueue or ()),
            allowed_modules=tuple(allow_module or ()),
        )

        def stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt  # `kill` finishes like Ctrl-C: the trial is marked, results written

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            result = run_tune(experiment, options, report=typer.echo)
        finally:
            signal.signal(signal.SIGTERM, previous)
        if result.interrupted:
            raise typer.Exit(code=130)
