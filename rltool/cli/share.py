"""``rltool export``, ``package``, ``push`` and ``pull``: share a trained agent.

Only typer, pathlib and typing are imported here; torch, onnx and huggingface_hub load
inside the commands, so ``rltool --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rltool.errors import RltoolError

# Defined here rather than imported from rltool.cli.main, which imports this module.
_EnvOpt = Annotated[str | None, typer.Option("--env", help="Env id (for a bare model zip).")]
_AlgoOpt = Annotated[str | None, typer.Option("--algo", help="Algorithm (for a bare model zip).")]
_BestOpt = Annotated[bool, typer.Option("--best", help="Use best_model.zip of the run.")]
_LogFolderOpt = Annotated[Path, typer.Option("-f", "--log-folder", help="Folder of the runs.")]
_TrustOpt = Annotated[
    bool,
    typer.Option("--trust-pickles", help="Allow model/statistics files that need unpickling (can run code)."),
]
_AllowModuleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-module", help="Allow wrappers/callbacks from this module (repeatable).", show_default=False
    ),
]


def export(
    target: Annotated[Path, typer.Argument(help="Run folder, config (its latest run) or model .zip.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The .onnx file to write (must not exist).")],
    export_format: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    env: _EnvOpt = None,
    algo: _AlgoOpt = None,
    best: _BestOpt = False,
    log_folder: _LogFolderOpt = Path("models"),
    allow_module: _AllowModuleOpt = None,
    trust_pickles: _TrustOpt = False,
) -> None:
    """Export the deterministic policy to ONNX: raw env observation in, env action out."""
    from rltool.cli.main import user_errors

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
