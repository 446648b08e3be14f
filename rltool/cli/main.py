"""The ``rltool`` command line: thin Typer commands that parse, call the core and map errors.

Heavy imports (torch, SB3) happen inside the commands, after the config is validated,
so ``rltool --help`` and config errors answer at once.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from rltool.errors import RltoolError

app = typer.Typer(
    name="rltool",
    help="Train, evaluate, tune and record deep RL agents (Stable-Baselines3) from YAML hyperparameter files.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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
DeterministicOpt = Annotated[
    bool, typer.Option("--deterministic/--stochastic", help="Greedy or sampled actions.")
]


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
    params: Annotated[
        list[str] | None,
        typer.Option("-p", "--param", help="Override a hyperparameter: key=value (repeatable)."),
    ] = None,
    log_folder: LogFolderOpt = Path("models"),
    eval_freq: Annotated[
        int, typer.Option("--eval-freq", help="Evaluate every N steps, keep the best (0: off).")
    ] = 10_000,
    eval_episodes: Annotated[
        int, typer.Option("--eval-episodes", help="Episodes per periodic evaluation.")
    ] = 5,
    save_freq: Annotated[int, typer.Option("--save-freq", help="Checkpoint every N steps (0: off).")] = 0,
    threads: Annotated[
        int | None,
        typer.Option("--threads", help="Threads of torch, XLA (sbx) and EnvPool (default 1 on CPU)."),
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
) -> None:
    """Train an agent from a config; the run folder goes under models/<algo>-<env>/run-N/."""
    with user_errors():
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
        for name, value in (("--eval-freq", eval_freq), ("--save-freq", save_freq)):
            if value < 0:
                raise RltoolError(f"{name}: must be >= 0, got {value}")
        if threads is not None and threads < 1:
            raise RltoolError(f"--threads: must be >= 1, got {threads}")
        if device not in (None, "auto", "cpu", "cuda"):
            raise RltoolError(f"--device: expected auto, cpu or cuda, got '{device}'")
        if resume is None and seeds is None:
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
            progress=progress,
            tensorboard=tensorboard,
            threads=threads,
            vec_env=vec_env,
            allowed_modules=tuple(allow_module or ()),
            trust_pickles=trust_pickles,
            verbose=verbose,
            device=device,
        )
        if seeds is not None:
            from rltool.multiseed import parse_seeds, train_seeds

            load_kwargs = dict(
                env=env,
                algo=algo,
                overrides=params or (),
                n_timesteps=n_timesteps,
                n_envs=n_envs,
                seed=seed,
                vec_env=vec_env,
                backend=backend,
            )
            code = train_seeds(config, parse_seeds(seeds), jobs, load_kwargs, options, report=typer.echo)
            raise typer.Exit(code=code)
        if resume is not None:
            from rltool.resume import resume as resume_run

            result = resume_run(resume, options, n_timesteps=n_timesteps, report=typer.echo)
            if result is None:  # already finished: nothing to do
                return
        else:
            result = run_training(experiment, options, report=typer.echo)
        if result.status == "interrupted":
            raise typer.Exit(code=130)


@app.command("eval")
def evaluate_command(
    target: Annotated[Path, typer.Argument(help="Config (its latest run), run folder, or model .zip.")],
    env: EnvOpt = None,
    algo: AlgoOpt = None,
    episodes: Annotated[int, typer.Option("--episodes", help="Episodes to run.")] = 10,
    deterministic: DeterministicOpt = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object for machines.")] = False,
    min_reward: Annotated[
        float | None,
        typer.Option("--min-reward", help="Exit 1 when the mean reward is below this (CI gate)."),
    ] = None,
    best: Annotated[bool, typer.Option("--best", help="Use best_model.zip of the run.")] = False,
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
    best: Annotated[bool, typer.Option("--best", help="Use best_model.zip of the run.")] = False,
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
from rltool.cli import analysis as _analysis  # noqa: E402
from rltool.cli import tune as _tune  # noqa: E402

app.command("tune")(_tune.tune)
app.command("plot")(_analysis.plot)
app.command("report")(_analysis.report)
app.command("smoke")(_analysis.smoke)


def run() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        echo_error("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    run()
