"""The engines' runtime: thread counts (torch, XLA, EnvPool) and the device the networks run on.

Measured here: 1 torch thread beats 2 for these small networks (``benchmarks/threads.py``), hence the
default; docs/fast-engines.md has the figures for XLA and EnvPool.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from rltool.errors import RltoolError, first_line


def default_threads() -> int:
    """:return: torch threads to use: 1 on CPU (small RL networks run faster without intra-op threads)."""
    return 1


DEVICES = ("auto", "cpu", "cuda")


def set_threads(threads: int | None, backend: str = "sb3") -> int:
    """Set the thread counts of the engines: torch's intra-op threads, and XLA's for the SBX backend.

    XLA's CPU client sizes its worker pool once, when JAX first runs something, from the CPUs the
    process may use; ``XLA_FLAGS`` do not change it on jaxlib 0.10 (docs/fast-engines.md). So for
    SBX the count is remembered here and applied by :func:`prepare_device`, which starts JAX's
    client under a CPU mask of that many cores (see :func:`_jax_started_with_threads`).

    :param threads: the count; None: 1 torch thread (:func:`default_threads`) and, for SBX, an
        XLA pool of one thread per usable core (JAX's own choice, the faster one measured here).
    :param backend: "sb3" or "sbx".
    :return: torch's thread count.
    """
    import torch

    global _xla_threads_wanted
    count = threads or default_threads()
    torch.set_num_threads(count)
    if backend == "sbx":
        _xla_threads_wanted = threads
    return count


#: XLA's pool size asked for by the last :func:`set_threads` (None: one thread per usable core).
_xla_threads_wanted: int | None = None
#: XLA's pool size when rltool started JAX's client in this process (None: not started by rltool).
_xla_threads_started: int | None = None


def xla_threads() -> int | None:
    """:return: the threads of XLA's CPU pool if rltool started JAX in this process, else None."""
    return _xla_threads_started


def compilation_cache_dir() -> Path | None:
    """:return: where JAX keeps compiled functions between runs (None: ``RLTOOL_JAX_CACHE=off``).

    ``$RLTOOL_JAX_CACHE`` if set, else ``$XDG_CACHE_HOME/rltool/jax`` (``~/.cache/rltool/jax``).
    """
    chosen = os.environ.get("RLTOOL_JAX_CACHE")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "0", "off", "none") else Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rltool" / "jax"


def use_compilation_cache() -> None:
    """Let JAX reuse the functions it compiled in earlier runs (SBX's updates take seconds to compile).

    Every compiled function is kept, however fast it compiled: a run compiles about fifty, which
    together take 5-6 s on this project's CPU. A cache folder that cannot be made leaves JAX
    compiling as before.
    """
    import jax

    folder = compilation_cache_dir()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _jax_started_with_threads(threads: int | None) -> None:
    """Start JAX's backends with an XLA CPU pool of ``threads`` threads.

    The pool takes its size from the CPU mask of the thread that creates it, so the mask is narrowed
    to ``threads`` cores while the client starts, then given back to every thread of the process:
    the pool keeps its size, and its threads, EnvPool's and torch's may run on any core. If JAX
    already started in this process (an earlier run, an import that ran JAX code), its pool stays as
    it is. Where the OS has no CPU masks (macOS, Windows), XLA keeps its own size and
    :func:`xla_threads` says None.
    """
    global _xla_threads_started
    import jax
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return
    if not hasattr(os, "sched_setaffinity"):  # macOS, Windows: no CPU masks, XLA sizes its own pool
        jax.devices()
        return
    allowed = os.sched_getaffinity(0)
    count = len(allowed) if threads is None else max(1, min(threads, len(allowed)))
    if count < len(allowed):
        os.sched_setaffinity(0, sorted(allowed)[:count])
    try:
        jax.devices()
    finally:
        if count < len(allowed):
            for task in os.listdir("/proc/self/task"):  # threads started meanwhile inherited the mask
                with contextlib.suppress(OSError):  # a thread that ended meanwhile
                    os.sched_setaffinity(int(task), allowed)
    _xla_threads_started = count


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
        use_compilation_cache()
        _jax_started_with_threads(_xla_threads_wanted)

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
