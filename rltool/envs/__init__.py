"""Environments: the one vectorized-env builder (:mod:`rltool.envs.builder`) and rltool's own envs.

Importing this package registers rltool's envs (``rltool/Snake-v0``) with gymnasium.
"""

from rltool.envs import snake as _snake  # noqa: F401  (registers rltool/Snake-v0)
