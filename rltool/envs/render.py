"""Headless MuJoCo rendering: pick an OpenGL backend (EGL, then OSMesa) when none is set.

MuJoCo reads ``MUJOCO_GL`` to choose how it creates an OpenGL context; with it unset, a machine
without a display fails with ``mujoco.FatalError: an OpenGL platform library has not been
loaded``. Before rltool renders a MuJoCo env it probes, in a child process (a failed OpenGL
start can take the process down), which backend works here, sets ``MUJOCO_GL`` to it and says
so. A ``MUJOCO_GL`` the user set is never changed. No backend at all is one line that says what
to install.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from rltool.errors import EnvError

#: backends in the order they are tried, with what provides them on Debian/Ubuntu
BACKENDS = (("egl", "libegl1"), ("osmesa", "libosmesa6"))
_PROBE = "import mujoco\ncontext = mujoco.GLContext(16, 16)\ncontext.make_current()\ncontext.free()\n"
INSTALL_HINT = (
    "no headless OpenGL for MuJoCo rendering: install EGL (apt-get install libegl1 libgl1) or OSMesa "
    "(apt-get install libosmesa6), or set MUJOCO_GL to a backend that works here"
)


def backend_works(backend: str, timeout: float = 60.0) -> bool:
    """:return: whether MuJoCo can create an OpenGL context with ``MUJOCO_GL=backend`` (probed in a child)."""
    env = dict(os.environ, MUJOCO_GL=backend)  # PYOPENGL_PLATFORM as inherited: MuJoCo sets it when unset
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def choose_mujoco_gl(report: Callable[[str], None] | None = None) -> str:
    """Set ``MUJOCO_GL`` for headless rendering when it is unset: EGL, else OSMesa.

    :param report: where to say which backend was picked (default: stderr).
    :return: the backend in use.
    :raises EnvError: no backend works; the message says what to install.
    """
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        return chosen
    say = report or (lambda line: print(line, file=sys.stderr))
    for backend, _package in BACKENDS:
        if backend_works(backend):
            os.environ["MUJOCO_GL"] = backend
            say(
                f"rendering MuJoCo headless with {backend.upper()} (MUJOCO_GL={backend}; set MUJOCO_GL to choose)"
            )
            return backend
    raise EnvError(INSTALL_HINT)


def needs_mujoco_gl(env_id: str) -> bool:
    """:return: whether rendering ``env_id`` goes through MuJoCo's OpenGL renderer."""
    from rltool.envs.families import MUJOCO, ROBOTICS, family_of

    return family_of(env_id) in (MUJOCO, ROBOTICS)
