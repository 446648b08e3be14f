"""The ``rltool`` command line: thin Typer commands that parse, call the core and map errors.

Heavy imports (torch, SB3) happen inside the commands, after the config is validated,
so ``rltool --help`` and config errors answer at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from rltool.cli import analysis, share, smoke, tune
from rltool.cli.options import (
    AlgoOpt,
    AllowModuleOpt,
    BackendOpt,
    BestOpt,
    DeterministicOpt,
    DeviceOpt,
    EnvOpt,
    LogFolderOpt,
    ParamOpt,
    SeedOpt,
    TrustOpt,
    echo_error,
    interrupts_exit,
    user_errors,
)
from rltool.errors import RltoolError

app = typer.Typer(
    name="rltool",
    help="Train, evaluate, tune and record deep RL agents (Stable-Baselines3) from YAML hyperparameter files.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command()
def train(
    config: Annotated[
        Path, typer.Argument(help="Config YAML (single experiment or rl-baselines3-zoo file).")
    ] = None,
    env: EnvOpt = None,
    algo: AlgoOpt = None,
    n_timesteps: Annotated[int | None, typer.Option("-n", "--n-timesteps", help="Total env steps.")] = None,
    seed: SeedOpt = None,
    n_envs: Annotated[int | None, typer.Option("--n-envs", help="Parallel envs.")] = None,
    params: ParamOpt = None,
    log_folder: LogFolderOpt = Path("models"),
    eval_freq: Annotated[
        int, typer.Option("--eval-freq", help="Evaluate every N steps, keep the best (0: off).")
    ] = 10_000,
    eval_episodes: Annotated[
        int, typer.Option("--eval-episodes", help="Episodes per periodic evaluation.")
    ] = 5,
    save_freq: Annotated[int, typer.Option("--save-freq", help="Checkpoint every N steps (0: off).")] = 0,
    keep_checkpoints: Annotated[
        int, typer.Option("--keep-checkpoints", help="Keep the newest K checkpoints (0: all).")
    ] = 3,
    keep_replay_buffers: Annotated[
        bool,
        typer.Option(
            "--keep-replay-buffers", help="Keep every kept checkpoint's replay buffer, not only the newest's."
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="Threads of torch, XLA's pool (sbx) and EnvPool (default: 1 torch, XLA one per core, 1 EnvPool).",
        ),
    ] = None,
    backend: BackendOpt = None,
    device: DeviceOpt = None,
    vec_env: Annotated[
        str | None,
        typer.Option("--vec-env", help="dummy, subproc or envpool (default: the config's)."),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar.")] = True,
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard/--no-tensorboard", help="TensorBoard logs.")
    ] = True,
    allow_module: AllowModuleOpt = None,
    trust_pickles: TrustOpt = False,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="SB3 log output.")] = 0,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue this run folder from its newest checkpoint.")
    ] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="Train several seeds in parallel processes: 0,1,2 or 0-4.")
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", help="Parallel seeds (default: one per core).")
    ] = None,
    track: Annotated[
        str | None,
        typer.Option("--track", help="Track the run with wandb or mlflow.", rich_help_panel="Tracking"),
    ] = None,
    track_project: Annotated[
        str | None, typer.Option("--track-project", help="W&B project / MLflow experiment (default: rltool).")
    ] = None,
    track_run_name: Annotated[
        str | None, typer.Option("--track-run-name", help="Tracking run name (default: <algo>-<env>-run-N).")
    ] = None,
    track_tags: Annotated[
        list[str] | None, typer.Option("--track-tag", help="Tracking tag (repeatable; MLflow: key=value).")
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option("--tracking-uri", help="MLflow tracking URI (default: MLflow's own).")
    ] = None,
) -> None:
    """Train an agent from a config; the run folder goes under models/<algo>-<env>/run-N/.

    SIGTERM and SIGHUP stop it like Ctrl-C (model, checkpoint and train.json saved), exit 128+signal.
    """
    from rltool.signals import exit_code, stop_signals_interrupt

    with user_errors(), interrupts_exit(), stop_signals_interrupt():
        from rltool.config import load_config

        if config is None and resume is None:
            raise RltoolError("give a config file (rltool train configs/cartpole.yaml) or --resume RUN_DIR")
        if resume is not None and seeds is not None:
            raise RltoolError("--resume and --seeds do not combine; resume each run folder on its own")
        if resume is not None and (
            config is not None or params or env or algo or n_envs or seed is not None or backend is not None
        ):
            raise RltoolError(
                "--resume continues a run with its own config; only --n-timesteps may change it"
            )
        if vec_env not in (None, "dummy", "subproc", "envpool"):
            raise RltoolError(f"--vec-env: expected dummy, subproc or envpool, got '{vec_env}'")
        for name, value in (
            ("--eval-freq", eval_freq),
            ("--save-freq", save_freq),
            ("--keep-checkpoints", keep_checkpoints),
        ):
            if value < 0:
                raise RltoolError(f"{name}: must be >= 0, got {value}")
        for name, value in (("--eval-episodes", eval_episodes), ("--threads", threads), ("--jobs", jobs)):
            if value is not None and value < 1:
                raise RltoolError(f"{name}: must be >= 1, got {value}")
        if device not in (None, "auto", "cpu", "cuda"):
            raise RltoolError(f"--device: expected auto, cpu or cuda, got '{device}'")
        if seeds is not None and seed is not None:
            raise RltoolError(
                "--seed and --seeds cannot be combined; put every seed in --seeds (e.g. --seeds 0-4)"
            )
        if resume is None:
            experiment = load_config(
                config,
                env=env,
                algo=algo,
                overrides=params or (),
                n_timesteps=n_timesteps,
                seed=seed,
                n_envs=n_envs,
                vec_env=vec_env,
                backend=backend,
            )
        from rltool.train import TrainOptions
        from rltool.train import train as run_training

        options = TrainOptions(
            log_folder=log_folder,
            eval_freq=eval_freq,
            eval_episodes=eval_episodes,
            save_freq=save_freq,
            keep_checkpoints=keep_checkpoints,
            keep_replay_buffers=keep_replay_buffers,
            progress=progress,
            tensorboard=tensorboard,
            threads=threads,
            vec_env=vec_env,
            allowed_modules=tuple(allow_module or ()),
            trust_pickles=trust_pickles,
            verbose=verbose,
            device=device,
        )
        from rltool.tracking import make_tracking_callback, run_tracked, tracking_options_from_cli

        tracking = tracking_options_from_cli(
            track, project=track_project, run_name=track_run_name, tags=track_tags, tracking_uri=tracking_uri
        )
        if seeds is not None:
            from rltool.cli.seeds import train_seeds

            code = train_seeds(experiment, seeds, jobs, options, tracking)
            raise typer.Exit(code=exit_code() if code == 130 else code)
        tracker = tracking and make_tracking_callback(tracking, lambda line: typer.echo(line, err=True))
        if resume is not None:
            from rltool.resume import resume as resume_run

            result = run_tracked(
                tracker,
                lambda callbacks: resume_run(
                    resume, options, n_timesteps=n_timesteps, report=typer.echo, extra_callbacks=callbacks
                ),
            )
            if result is None:  # already finished: nothing to do
                return
        else:
            result = run_tracked(
                tracker,
                lambda callbacks: run_training(
                    experiment, options, report=typer.echo, extra_callbacks=callbacks
                ),
            )
        from rltool.rundir import RunStatus

        if result.status == RunStatus.INTERRUPTED:
            raise typer.Exit(code=exit_code())


@app.command("eval")
def evaluate_command(
    target: Annotated[
        Path, typer.Argument(help="Config (its latest run), run folder, model .zip, or hf://ORG/NAME.")
    ],
    env: EnvOpt = None,
    algo: AlgoOpt = None,
    episodes: Annotated[int, typer.Option("--episodes", help="Episodes to run.")] = 10,
    deterministic: DeterministicOpt = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object for machines.")] = False,
    min_reward: Annotated[
        float | None,
        typer.Option("--min-reward", help="Exit 1 when the mean reward is below this (CI gate)."),
    ] = None,
    best: BestOpt = False,
    seed: SeedOpt = None,
    log_folder: LogFolderOpt = Path("models"),
    allow_module: AllowModuleOpt = None,
    trust_pickles: TrustOpt = False,
) -> None:
    """Evaluate a trained agent: mean +/- std reward and episode lengths."""
    with user_errors():
        from rltool.evaluate import evaluate, resolve_target

        if episodes < 1:
            raise RltoolError(f"--episodes: must be >= 1, got {episodes}")
        model_target = resolve_target(target, env=env, algo=algo, log_folder=log_folder, best=best)
        result = evaluate(
            model_target,
            episodes=episodes,
            deterministic=deterministic,
            seed=seed,
            trust_pickles=trust_pickles,
            allowed_modules=tuple(allow_module or ()),
        )
        if as_json:
            typer.echo(json.dumps(result.to_dict()))
        else:
            mode = "deterministic" if deterministic else "stochastic"
            typer.echo(f"model: {result.model_path} ({result.algo} on {result.env})")
            typer.echo(
                f"mean_reward={result.mean_reward:.2f} +/- {result.std_reward:.2f} over {episodes} {mode} episodes"
            )
            typer.echo("episode lengths: " + " ".join(str(n) for n in result.episode_lengths))
            if result.success_rate is not None:
                typer.echo(
                    f"success_rate={result.success_rate:.2f} over {len(result.episode_successes)} episodes"
                )
        if min_reward is not None and result.mean_reward < min_reward:
            if not as_json:
                typer.echo(f"below --min-reward {min_reward}", err=True)
            raise typer.Exit(code=1)


@app.command("record-video")
def record_video_command(
    target: Annotated[Path, typer.Argument(help="Config (its latest run), run folder, or model .zip.")],
    env: EnvOpt = None,
    algo: AlgoOpt = None,
    length: Annotated[int, typer.Option("--length", help="Env steps to film.")] = 300,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="The .mp4 to write (must not exist).")
    ] = None,
    deterministic: DeterministicOpt = True,
    fps: Annotated[int | None, typer.Option("--fps", help="Frames per second (default: the env's).")] = None,
    best: BestOpt = False,
    seed: SeedOpt = None,
    log_folder: LogFolderOpt = Path("models"),
    allow_module: AllowModuleOpt = None,
    trust_pickles: TrustOpt = False,
) -> None:
    """Record an mp4 of a trained agent (headless), into videos/<algo>-<env>/ or --output."""
    with user_errors():
        from rltool.evaluate import resolve_target
        from rltool.video import record_video

        if length < 1:
            raise RltoolError(f"--length: must be >= 1, got {length}")
        if fps is not None and fps < 1:
            raise RltoolError(f"--fps: must be >= 1, got {fps}")
        model_target = resolve_target(target, env=env, algo=algo, log_folder=log_folder, best=best)
        path = record_video(
            model_target,
            length=length,
            output=output,
            deterministic=deterministic,
            fps=fps,
            seed=seed,
            trust_pickles=trust_pickles,
            allowed_modules=tuple(allow_module or ()),
        )
        typer.echo(f"video: {path}")


# Commands of their own modules; each imports its heavy dependencies only when it runs.
app.command("tune")(tune.tune)
app.command("plot")(analysis.plot)
app.command("report")(analysis.report)
app.command("smoke")(smoke.smoke)
app.command("export")(share.export)
app.command("package")(share.package)
app.command("push")(share.push)
app.command("pull")(share.pull)


def run() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        from rltool.signals import exit_code

        echo_error("interrupted")
        sys.exit(exit_code())


if __name__ == "__main__":
    run()
