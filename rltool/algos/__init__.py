"""Algorithms by rl-baselines3-zoo's names, and building a model from a config."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rltool.algos.hyperparams import SCHEDULE_KEYS
from rltool.algos.registry import ALGOS, DEFAULT_BACKEND, AlgoSpec, algo_spec
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
    if kwargs.get("optimize_memory_usage") and not _is_her(kwargs.get("replay_buffer_class")):
        # SB3's replay buffer refuses optimize_memory_usage with timeout handling on (as the zoo notes)
        buffer_kwargs = dict(kwargs.get("replay_buffer_kwargs") or {})
        buffer_kwargs.setdefault("handle_timeout_termination", False)
        kwargs["replay_buffer_kwargs"] = buffer_kwargs
    if config.noise_type is not None and env is not None:
        kwargs["action_noise"] = _action_noise(config, env)
    kwargs.setdefault("device", "cpu")
    return kwargs


def load_policy_kwargs(config: ExperimentConfig) -> dict[str, Any] | None:
    """:return: the config's ``policy_kwargs`` as the saved model holds them, for loading (None: not set).

    DDPG's constructor adds ``n_critics=1`` to the policy_kwargs it saves; a model loaded with the
    config's own dict would otherwise get TD3's two critics and refuse its weights.
    """
    policy_kwargs = model_kwargs(config).get("policy_kwargs")
    if policy_kwargs is not None and config.algo == "ddpg":
        policy_kwargs = {"n_critics": 1, **policy_kwargs}
    return policy_kwargs


def _is_her(buffer_class: Any) -> bool:
    return getattr(buffer_class, "__name__", None) == "HerReplayBuffer"


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
    cls = algo_class(config.algo, config.backend)
    on_backend = "" if config.backend == DEFAULT_BACKEND else f" (backend {config.backend})"
    cannot_build = f"{config.source}: cannot build {config.algo}{on_backend} on {config.env}"
    try:
        return cls(config.policy, env, seed=config.seed, **kwargs)
    except MemoryError as error:
        raise ConfigError(
            f"{config.source}: not enough memory to build {config.algo} on {config.env} ({first_line(error)}); "
            "lower buffer_size (e.g. -p buffer_size=100000) or set optimize_memory_usage: true"
        ) from None
    except TypeError as error:
        keyword = str(error).partition("unexpected keyword argument ")[2].strip("'\" ")
        if keyword and keyword in config.algo_kwargs.get("policy_kwargs", {}):
            raise ConfigError(
                f"{config.where('policy_kwargs')}: unknown keyword '{keyword}' for the {config.policy} "
                f"policy of {config.algo}{on_backend}"
            ) from None
        raise ConfigError(f"{cannot_build}: {first_line(error)}") from None
    except AssertionError as error:
        if "action spaces" in str(error):  # SB3: "The algorithm only supports (...) as action spaces"
            raise ConfigError(
                f"{config.where('algo')}: {config.algo} does not fit the action space "
                f"{env.action_space} of {config.env}"
            ) from None
        raise ConfigError(f"{cannot_build}: {first_line(error)}") from None
    except (ValueError, KeyError) as error:  # invalid combinations are config mistakes
        raise ConfigError(f"{cannot_build}: {first_line(error)}") from None
