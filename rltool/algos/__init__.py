"""Algorithms by rl-baselines3-zoo's names, and building a model from a config."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rltool.algos.registry import ALGOS, DEFAULT_BACKEND, SCHEDULE_KEYS, AlgoSpec, algo_spec
from rltool.errors import ConfigError, first_line
from rltool.literal import Symbol, resolve_symbols
from rltool.schedules import to_schedule

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecEnv

    from rltool.config import ExperimentConfig

__all__ = ["ALGOS", "AlgoSpec", "algo_class", "build_model", "model_kwargs"]


def algo_class(name: str, backend: str = DEFAULT_BACKEND) -> type[BaseAlgorithm]:
    """:return: the class of algorithm ``name`` on ``backend`` (imports SB3 / sb3-contrib / sbx)."""
    spec = algo_spec(name, backend)
    return getattr(importlib.import_module(spec.module), spec.class_name)


def _sbx_policy_kwargs(policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Translate a config's policy_kwargs for SBX: torch activation names become JAX functions."""
    from rltool.algos.jax_activations import jax_activation

    translated = dict(policy_kwargs)
    activation = translated.get("activation_fn")
    if isinstance(activation, Symbol):
        translated["activation_fn"] = jax_activation(activation.name)
    return resolve_symbols(translated)


def _action_noise(config: ExperimentConfig, env: VecEnv) -> Any:
    import numpy as np
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    n_actions = env.action_space.shape[0]
    sigma = np.asarray(config.noise_std, dtype=np.float64) * np.ones(n_actions)
    noise_class = NormalActionNoise if config.noise_type == "normal" else OrnsteinUhlenbeckActionNoise
    return noise_class(mean=np.zeros(n_actions), sigma=sigma)


def model_kwargs(config: ExperimentConfig, env: VecEnv | None = None) -> dict[str, Any]:
    """Turn the config's algorithm keywords into constructor arguments.

    Schedule strings become schedules, allow-listed names become classes, ``noise_type``
    becomes an action-noise object (needs ``env`` for the action shape).

    :param config: the experiment.
    :param env: the training env.
    :return: keyword arguments for the algorithm class.
    """
    kwargs: dict[str, Any] = {}
    for key, value in config.algo_kwargs.items():
        if key == "policy_kwargs" and config.backend == "sbx":
            kwargs[key] = _sbx_policy_kwargs(value)
        elif key in SCHEDULE_KEYS:
            kwargs[key] = to_schedule(value)
        elif key == "train_freq" and isinstance(value, (list, tuple)):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = resolve_symbols(value)
    if config.noise_type is not None and env is not None:
        kwargs["action_noise"] = _action_noise(config, env)
    kwargs.setdefault("device", "cpu")
    return kwargs


def build_model(
    config: ExperimentConfig,
    env: VecEnv,
    *,
    tensorboard_log: str | None = None,
    verbose: int = 0,
    device: str | None = None,
) -> BaseAlgorithm:
    """Create a fresh model of the config's algorithm on ``env``.

    :param config: the experiment.
    :param env: the training env from :func:`rltool.envs.builder.build_vec_env`.
    :param tensorboard_log: folder for TensorBoard events, or None.
    :param verbose: SB3 verbosity.
    :param device: torch device (SB3 backend; SBX places arrays through JAX's platform choice).
    :return: the model.
    """
    kwargs = model_kwargs(config, env)
    if device is not None:
        kwargs["device"] = device
    kwargs.setdefault("verbose", verbose)
    if tensorboard_log is not None:
        kwargs["tensorboard_log"] = tensorboard_log
    try:
        return algo_class(config.algo, config.backend)(config.policy, env, seed=config.seed, **kwargs)
    except (AssertionError, ValueError, TypeError, KeyError) as error:
        # SB3 asserts on unsupported spaces and invalid combinations; that is a config mistake
        on_backend = "" if config.backend == DEFAULT_BACKEND else f" (backend {config.backend})"
        raise ConfigError(
            f"{config.source}: cannot build {config.algo}{on_backend} on {config.env}: {first_line(error)}"
        ) from None
