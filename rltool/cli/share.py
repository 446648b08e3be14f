"""``rltool export``, ``package``, ``push`` and ``pull``: share a trained agent.

Only typer, pathlib and typing are imported here; torch, onnx and huggingface_hub load
inside the commands, so ``rltool --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rltool.cli.options import (
    AlgoOpt,
    AllowModuleOpt,
    BestOpt,
    EnvOpt,
    LogFolderOpt,
    TrustOpt,
    user_errors,
)
from rltool.errors import RltoolError


def export(
    target: Annotated[Path, typer.Argument(help="Run folder, config (its latest run) or model .zip.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The .onnx file to write (must not exist).")],
    export_format: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    env: EnvOpt = None,
    algo: AlgoOpt = None,
    best: BestOpt = False,
    log_folder: LogFolderOpt = Path("models"),
    allow_module: AllowModuleOpt = None,
    trust_pickles: TrustOpt = False,
) -> None:
    """Export the deterministic policy to ONNX: raw env observation in, env action out."""
    with user_errors():
        if export_format != "onnx":
            raise RltoolError(f"--format: only onnx is supported, got '{export_format}'")
        from rltool.evaluate import resolve_target
        from rltool.share.export import export_onnx

        model_target = resolve_target(target, env=env, algo=algo, log_folder=log_folder, best=best)
        result = export_onnx(
            model_target, output, trust_pickles=trust_pickles, allowed_modules=tuple(allow_module or ())
        )
        normalized = " (VecNormalize statistics baked in)" if result.normalized else ""
        typer.echo(f"onnx: {result.path}{normalized}")
        typer.echo("run it with onnxruntime:")
        typer.echo(result.usage())


_RepoIdOpt = Annotated[str, typer.Option("--repo-id", help="Hub repository ORG/NAME.")]
_EpisodesOpt = Annotated[
    int,
    typer.Option("--eval-episodes", help="Deterministic episodes of the fresh evaluation (results.json)."),
]
_VideoLengthOpt = Annotated[
    int, typer.Option("--video-length", help="Env steps of replay.mp4 (0: no video).")
]


def _package_options(
    repo_id: str | None,
    eval_episodes: int,
    video_length: int,
    trust_pickles: bool,
    allow_module: list[str] | None,
):
    from rltool.share.hub import PackageOptions, check_repo_id

    if eval_episodes < 1:
        raise RltoolError(f"--eval-episodes: must be >= 1, got {eval_episodes}")
    if video_length < 0:
        raise RltoolError(f"--video-length: must be >= 0, got {video_length}")
    return PackageOptions(
        repo_id=None if repo_id is None else check_repo_id(repo_id),
        eval_episodes=eval_episodes,
        video_length=video_length,
        trust_pickles=trust_pickles,
        allowed_modules=tuple(allow_module or ()),
    )


def package(
    target: Annotated[Path, typer.Argument(help="Run folder, config (its latest run) or model .zip.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write (absent or empty).")],
    repo_id: Annotated[
        str | None, typer.Option("--repo-id", help="Hub repository ORG/NAME named in the model card.")
    ] = None,
    eval_episodes: _EpisodesOpt = 10,
    video_length: _VideoLengthOpt = 1000,
    env: EnvOpt = None,
    algo: AlgoOpt = None,
    best: BestOpt = False,
    log_folder: LogFolderOpt = Path("models"),
    allow_module: AllowModuleOpt = None,
    trust_pickles: TrustOpt = False,
) -> None:
    """Write a run as a Hugging Face Hub folder (zoo / huggingface_sb3 layout) without uploading."""
    with user_errors():
        from rltool.evaluate import resolve_target
        from rltool.share.hub import package_run

        options = _package_options(repo_id, eval_episodes, video_length, trust_pickles, allow_module)
        model_target = resolve_target(target, env=env, algo=algo, log_folder=log_folder, best=best)
        folder = package_run(model_target, output, options, report=typer.echo)
        typer.echo(f"packaged: {folder} ({', '.join(sorted(p.name for p in folder.iterdir()))})")


def push(
    target: Annotated[Path, typer.Argument(help="Run folder, config (its latest run) or model .zip.")],
    repo_id: _RepoIdOpt,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write the folder (to -o, default hub/NAME) and upload nothing.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Keep the packaged folder here (absent or empty).")
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    eval_episodes: _EpisodesOpt = 10,
    video_length: _VideoLengthOpt = 1000,
    env: EnvOpt = None,
    algo: AlgoOpt = None,
    best: BestOpt = False,
    log_folder: LogFolderOpt = Path("models"),
    allow_module: AllowModuleOpt = None,
    trust_pickles: TrustOpt = False,
) -> None:
    """Package a run and upload it to the Hugging Face Hub (token from huggingface_hub's usual places)."""
    import shutil
    import tempfile

    with user_errors():
        from rltool.evaluate import resolve_target
        from rltool.share.hub import package_run, push_folder

        options = _package_options(repo_id, eval_episodes, video_length, trust_pickles, allow_module)
        model_target = resolve_target(target, env=env, algo=algo, log_folder=log_folder, best=best)
        if dry_run:
            folder = output or Path("hub") / repo_id.split("/", 1)[1]
            package_run(model_target, folder, options, report=typer.echo)
            typer.echo(f"dry run: would upload {folder} to {repo_id}; nothing uploaded")
            return
        scratch = None if output is not None else Path(tempfile.mkdtemp(prefix="rltool-push-"))
        folder = output or scratch / repo_id.split("/", 1)[1]
        try:
            package_run(model_target, folder, options, report=typer.echo)
            url = push_folder(folder, repo_id, private=private)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        typer.echo(f"pushed: {url}")


def pull(
    source: Annotated[
        str,
        typer.Argument(
            help="Hub repository ORG/NAME (or hf://ORG/NAME), or a local rl-baselines3-zoo run folder."
        ),
    ],
    env: Annotated[
        str | None, typer.Option("--env", help="Env id, when the repository does not say.")
    ] = None,
    algo: Annotated[
        str | None, typer.Option("--algo", help="Algorithm, when the repository does not say.")
    ] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Branch, tag or commit.")] = None,
    log_folder: LogFolderOpt = Path("models"),
) -> None:
    """Download a Hub agent (zoo or huggingface_sb3 layout) into models/hub/ORG/NAME, or import a zoo run."""
    with user_errors():
        from rltool.share.pull import HF_PREFIX, import_zoo_run, is_zoo_run
        from rltool.share.pull import pull as pull_repo

        local = Path(source)
        if not source.startswith("hf:") and local.exists():
            if not is_zoo_run(local):
                raise RltoolError(
                    f"{source}: not an rl-baselines3-zoo run folder (expected <env>.zip and <env>/config.yml)"
                )
            run_dir = import_zoo_run(local, log_folder=log_folder, env=env, algo=algo, report=typer.echo)
        else:
            repo_id = source.removeprefix("hf://").removeprefix(HF_PREFIX)
            run_dir = pull_repo(
                repo_id, log_folder=log_folder, env=env, algo=algo, revision=revision, report=typer.echo
            )
        typer.echo(f"evaluate with: rltool eval {run_dir}")
