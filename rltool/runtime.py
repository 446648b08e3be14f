"""The engines' runtime: thread counts (torch, XLA, EnvPool) and the device the networks run on.

Measured here: 1 torch thread beats 2 for these small networks (``benchmarks/threads.py``), hence the
default; docs/fast-engines.md has the figures for XLA and EnvPool.
"""

from __future__ import annotations

import os

from rltool.errors import RltoolError, first_line


def default_threads() -> int:
    """:return: torch threads to use: 1 on CPU (small RL networks run faster without intra-op threads)."""
    return 1


DEVICES = ("auto", "cpu", "cuda")


def set_threads(threads: int | None, backend: str = "sb3") -> int:
    """Set the thread counts of the engines: torch's intra-op threads, and XLA's for the SBX backend.

    XLA reads its flags once, when JAX starts, so for SBX this must run before ``jax`` is imported
    (rltool imports it only when it builds an SBX model); see :func:`xla_thread_flags`.

    :param threads: the count (None: :func:`default_threads`).
    :param backend: "sb3" or "sbx".
    :return: the count set.
    """
    import torch

    count = threads or default_threads()
    torch.set_num_threads(count)
    if backend == "sbx":
        flags = os.environ.get("XLA_FLAGS", "").split()
        wanted = xla_thread_flags(count)
        names = {flag.split("=")[0] for flag in wanted}
        os.environ["XLA_FLAGS"] = " ".join([f for f in flags if f.split("=")[0] not in names] + wanted)
    return count


def xla_thread_flags(threads: int) -> list[str]:
    """:return: the XLA_FLAGS that ask XLA's CPU backend for ``threads`` threads (jax/jaxlib 0.10).

    ``--xla_cpu_multi_thread_eigen=false`` makes XLA's Eigen kernels (matrix products, convolutions)
    single-threaded; ``intra_op_parallelism_threads`` sizes the intra-op pool where the runtime
    honours it. docs/fast-engines.md has the measurement.
    """
    multi = "true" if threads > 1 else "false"
    return [f"--xla_cpu_multi_thread_eigen={multi}", f"intra_op_parallelism_threads={threads}"]


def prepare_device(device: str | None, backend: str) -> str:
    """Check that ``device`` exists on this machine for ``backend`` and say what will run where.

    For SBX this selects JAX's platform (``JAX_PLATFORMS``) before JAX is imported.

    :param device: "auto", "cpu", "cuda" or None (cpu for SB3; JAX's default platform for SBX).
    :param backend: "sb3" or "sbx".
    :return: the device name recorded in train.json ("cpu", "cuda").
    :raises RltoolError: an unknown device, or cuda on a machine without it.
    """
    if device is not None and device not in DEVICES:
        raise RltoolError(f"--device: expected one of {', '.join(DEVICES)}, got '{device}'")
    if backend == "sbx":
        if device == "cpu":
            os.environ["JAX_PLATFORMS"] = "cpu"
        import jax

        if device == "cpu":  # also when jax was imported already (EnvPool imports it)
            jax.config.update("jax_platforms", "cpu")

        if device == "cuda":
            try:
                gpus = jax.devices("gpu")
            except Exception as error:  # RuntimeError "Unknown backend", failed plugin start, ...
                raise RltoolError(
                    f"--device cuda: JAX sees no CUDA device on this machine ({first_line(error)}); "
                    "use --device cpu or auto"
                ) from None
            jax.config.update("jax_default_device", gpus[0])
            return "cuda"
        platform = jax.devices()[0].platform
        return "cuda" if platform == "gpu" else platform
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RltoolError(
            "--device cuda: torch sees no CUDA device on this machine (use --device cpu or auto)"
        )
    if device in ("cuda", "auto") and torch.cuda.is_available():
        return "cuda"
    return "cpu"
