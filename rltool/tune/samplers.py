"""Search spaces: one function per algorithm, turning an Optuna trial into config values.

A sampler returns the keys to put into the config: algorithm keywords (``learning_rate``,
``policy_kwargs``, ...) and a few config fields (:data:`CONFIG_FIELDS`, e.g. ``noise_type``).
Optuna parameter names are the config keys where the value is used as sampled; derived
values (``policy_kwargs`` from ``net_arch`` and ``activation_fn``) are built here, so the
same function turns a stored trial's parameters back into a config
(``optuna.trial.FixedTrial``). Which function serves which algorithm is the registry's
``AlgoSpec.search_space`` (:mod:`rltool.algos.registry`); an algorithm rltool does not ship can
add its own with :func:`register`.

The value sets stay fixed for a given algorithm: Optuna rejects a categorical parameter whose
choices change between trials of one study, so values that depend on the config (a batch
larger than the rollout) are clipped after sampling instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rltool.algos.registry import ALGOS
from rltool.config import ExperimentConfig
from rltool.literal import Symbol

if TYPE_CHECKING:
    import optuna

SamplerFn = Callable[["optuna.trial.BaseTrial", ExperimentConfig], dict[str, Any]]

#: name -> search space function; several algorithm names may share one function
SAMPLERS: dict[str, SamplerFn] = {}

#: sampled keys that are :class:`ExperimentConfig` fields rather than algorithm keywords
CONFIG_FIELDS = frozenset({"noise_type", "noise_std"})

_ACTIVATIONS = {"tanh": Symbol("nn.Tanh"), "relu": Symbol("nn.ReLU")}
_GAMMAS = [0.9, 0.95, 0.98, 0.99, 0.995, 0.999]
_GAE_LAMBDAS = [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]
_MAX_GRAD_NORMS = [0.3, 0.5, 0.7, 1.0, 2.0, 5.0]


def register(*names: str) -> Callable[[SamplerFn], SamplerFn]:
    """Register a search space function under one or more algorithm names.

    :param names: algorithm names (the shipped ones take theirs from the registry).
    :return: a decorator that returns the function unchanged.
    """

    def decorator(function: SamplerFn) -> SamplerFn:
        for name in names:
            SAMPLERS[name] = function
        return function

    return decorator


def _policy_kwargs(config: ExperimentConfig, **entries: Any) -> dict[str, Any]:
    """The config's ``policy_kwargs`` with the sampled entries on top (e.g. ``ortho_init`` is kept)."""
    return {**config.algo_kwargs.get("policy_kwargs", {}), **entries}


def _activation(trial: optuna.trial.BaseTrial) -> Symbol:
    return _ACTIVATIONS[trial.suggest_categorical("activation_fn", list(_ACTIVATIONS))]


def _net_arch(trial: optuna.trial.BaseTrial, sizes: dict[str, Any]) -> Any:
    return sizes[trial.suggest_categorical("net_arch", list(sizes))]


# ---------------------------------------------------------------------------
# On-policy


_ON_POLICY_NETS = {"tiny": [32], "small": [64, 64], "medium": [256, 256]}


def _on_policy_common(
    trial: optuna.trial.BaseTrial, config: ExperimentConfig, *, gae: bool = True, losses: bool = True
) -> dict[str, Any]:
    """Learning rate, discount, network; GAE lambda and loss weights for the algorithms that take them."""
    values: dict[str, Any] = {
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "gamma": trial.suggest_categorical("gamma", _GAMMAS),
    }
    if gae:
        values["gae_lambda"] = trial.suggest_categorical("gae_lambda", _GAE_LAMBDAS)
    if losses:
        values["ent_coef"] = trial.suggest_float("ent_coef", 1e-8, 0.1, log=True)
        values["vf_coef"] = trial.suggest_float("vf_coef", 0.2, 1.0)
        values["max_grad_norm"] = trial.suggest_categorical("max_grad_norm", _MAX_GRAD_NORMS)
    net_arch = _net_arch(trial, _ON_POLICY_NETS)
    values["policy_kwargs"] = _policy_kwargs(config, net_arch=net_arch, activation_fn=_activation(trial))
    return values


def _rollout_and_batch(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, int]:
    n_steps = trial.suggest_categorical("n_steps", [16, 32, 64, 128, 256, 512, 1024, 2048])
    batch_size = trial.suggest_categorical("batch_size", [16, 32, 64, 128, 256, 512])
    # a minibatch cannot be larger than the rollout (n_steps * n_envs)
    return {"n_steps": n_steps, "batch_size": min(batch_size, n_steps * config.n_envs)}


def sample_ppo(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, Any]:
    """PPO (and MaskablePPO): rollout and minibatch sizes, epochs, clipping, losses, network.

    :param trial: the Optuna trial (or a ``FixedTrial`` to rebuild a stored trial's config).
    :param config: the config being tuned.
    :return: config keys and values.
    """
    return {
        **_rollout_and_batch(trial, config),
        "n_epochs": trial.suggest_categorical("n_epochs", [1, 5, 10, 20]),
        "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3, 0.4]),
        **_on_policy_common(trial, config),
    }


def sample_ppo_lstm(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, Any]:
    """RecurrentPPO: the PPO space plus the LSTM size.

    :param trial: the Optuna trial.
    :param config: the config being tuned.
    :return: config keys and values.
    """
    values = sample_ppo(trial, config)
    lstm_hidden_size = trial.suggest_categorical("lstm_hidden_size", [16, 32, 64, 128, 256])
    values["policy_kwargs"] = {**values["policy_kwargs"], "lstm_hidden_size": lstm_hidden_size}
    return values


def sample_a2c(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, Any]:
    """A2C: rollout length, optimizer choice, advantage normalization, losses, network.

    :param trial: the Optuna trial.
    :param config: the config being tuned.
    :return: config keys and values.
    """
    return {
        "n_steps": trial.suggest_categorical("n_steps", [4, 8, 16, 32, 64, 128, 256, 512]),
        "normalize_advantage": trial.suggest_categorical("normalize_advantage", [False, True]),
        "use_rms_prop": trial.suggest_categorical("use_rms_prop", [False, True]),
        **_on_policy_common(trial, config),
    }


def sample_trpo(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, Any]:
    """TRPO: rollout and critic batch sizes, KL target, conjugate-gradient and critic steps.

    :param trial: the Optuna trial.
    :param config: the config being tuned.
    :return: config keys and values.
    """
    return {
        **_rollout_and_batch(trial, config),
        "target_kl": trial.suggest_categorical("target_kl", [0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1]),
        "n_critic_updates": trial.suggest_categorical("n_critic_updates", [5, 10, 20, 30]),
        "cg_max_steps": trial.suggest_categorical("cg_max_steps", [5, 10, 20, 30]),
        **_on_policy_common(trial, config, losses=False),  # TRPO has no entropy or value loss weights
    }


def sample_reinforce(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, Any]:
    """REINFORCE: rollout length, baseline kind, entropy bonus, network.

    :param trial: the Optuna trial.
    :param config: the config being tuned.
    :return: config keys and values.
    """
    return {
        "n_steps": trial.suggest_categorical("n_steps", [128, 256, 512, 1024, 2048]),
        "baseline": trial.suggest_categorical("baseline", ["none", "mean", "value"]),
        "normalize_advantage": trial.suggest_categorical("normalize_advantage", [False, True]),
        **_on_policy_common(trial, config, gae=False),  # Monte Carlo returns: no GAE
    }


def sample_ars(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, Any]:
    """ARS: number of directions, elite fraction, step size and exploration noise.

    :param trial: the Optuna trial.
    :param config: the config being tuned.
    :return: config keys and values.
    """
    n_delta = trial.suggest_categorical("n_delta", [4, 8, 16, 32, 64])
    top_fraction = trial.suggest_categorical("top_fraction", [0.1, 0.25, 0.5, 0.75, 1.0])
    return {
        "n_delta": n_delta,
        "n_top": max(int(top_fraction * n_delta), 1),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.1, log=True),
        "delta_std": trial.suggest_float("delta_std", 0.01, 0.3, log=True),
    }


# ---------------------------------------------------------------------------
# Off-policy


def _replay(trial: optuna.trial.BaseTrial, learning_starts: list[int]) -> dict[str, Any]:
    train_freq = trial.suggest_categorical("train_freq", [1, 4, 8, 16, 64, 256])
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256, 512]),
        "buffer_size": trial.suggest_categorical("buffer_size", [10_000, 100_000, 1_000_000]),
        "learning_starts": trial.suggest_categorical("learning_starts", learning_starts),
        "gamma": trial.suggest_categorical("gamma", _GAMMAS),
        "train_freq": train_freq,
        # one gradient step per env step collected, or fewer
        "gradient_steps": max(
            train_freq // trial.suggest_categorical("gradient_steps_divisor", [1, 2, 4]), 1
        ),
    }


_DQN_NETS = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}


def sample_dqn(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, Any]:
    """DQN: replay, target updates, exploration schedule, network.

    :param trial: the Optuna trial.
    :param config: the config being tuned.
    :return: config keys and values.
    """
    return {
        **_replay(trial, [0, 1_000, 5_000, 10_000]),
        "target_update_interval": trial.suggest_categorical(
            "target_update_interval", [1, 500, 1_000, 5_000, 10_000]
        ),
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.0, 0.5),
        "exploration_final_eps": trial.suggest_float("exploration_final_eps", 0.0, 0.2),
        "policy_kwargs": _policy_kwargs(config, net_arch=_net_arch(trial, _DQN_NETS)),
    }


def sample_qrdqn(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, Any]:
    """QR-DQN: the DQN space plus the number of quantiles.

    :param trial: the Optuna trial.
    :param config: the config being tuned.
    :return: config keys and values.
    """
    values = sample_dqn(trial, config)
    n_quantiles = trial.suggest_int("n_quantiles", 5, 200)
    values["policy_kwargs"] = {**values["policy_kwargs"], "n_quantiles": n_quantiles}
    return values


_ACTOR_CRITIC_NETS = {"small": [64, 64], "medium": [256, 256], "big": [400, 300]}


def sample_sac(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, Any]:
    """SAC: replay, soft update rate, network (entropy coefficient stays automatic).

    :param trial: the Optuna trial.
    :param config: the config being tuned.
    :return: config keys and values.
    """
    return {
        **_replay(trial, [0, 100, 1_000, 10_000]),
        "tau": trial.suggest_categorical("tau", [0.001, 0.005, 0.01, 0.02, 0.05]),
        "policy_kwargs": _policy_kwargs(config, net_arch=_net_arch(trial, _ACTOR_CRITIC_NETS)),
    }


def sample_tqc(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, Any]:
    """TQC: the SAC space plus quantiles per critic and how many of the top ones are dropped.

    :param trial: the Optuna trial.
    :param config: the config being tuned.
    :return: config keys and values.
    """
    values = sample_sac(trial, config)
    n_quantiles = trial.suggest_categorical("n_quantiles", [5, 10, 25, 50])
    values["top_quantiles_to_drop_per_net"] = min(
        trial.suggest_int("top_quantiles_to_drop_per_net", 0, 5), n_quantiles - 1
    )
    values["policy_kwargs"] = {**values["policy_kwargs"], "n_quantiles": n_quantiles}
    return values


def sample_crossq(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, Any]:
    """CrossQ: replay, actor update delay, network (no target network, so no ``tau``).

    :param trial: the Optuna trial.
    :param config: the config being tuned.
    :return: config keys and values.
    """
    return {
        **_replay(trial, [0, 100, 1_000, 5_000]),
        "policy_delay": trial.suggest_categorical("policy_delay", [1, 2, 3]),
        "policy_kwargs": _policy_kwargs(config, net_arch=_net_arch(trial, _ACTOR_CRITIC_NETS)),
    }


def sample_td3(trial: optuna.trial.BaseTrial, config: ExperimentConfig) -> dict[str, Any]:
    """TD3 and DDPG: replay, soft update rate, exploration noise, network.

    :param trial: the Optuna trial.
    :param config: the config being tuned.
    :return: config keys and values (``noise_type`` and ``noise_std`` are config fields).
    """
    values = {
        **_replay(trial, [0, 100, 1_000, 10_000]),
        "tau": trial.suggest_categorical("tau", [0.001, 0.005, 0.01, 0.02, 0.05]),
        "policy_kwargs": _policy_kwargs(config, net_arch=_net_arch(trial, _ACTOR_CRITIC_NETS)),
        "noise_type": None,
        "noise_std": None,
    }
    noise_type = trial.suggest_categorical("noise_type", ["none", "normal", "ornstein-uhlenbeck"])
    if noise_type != "none":  # a conditional parameter: sampled only when there is noise
        values["noise_type"] = noise_type
        values["noise_std"] = trial.suggest_float("noise_std", 0.01, 0.8, log=True)
    return values


# the shipped algorithms' search spaces, as the registry names them
SAMPLERS.update({name: globals()[spec.search_space] for name, spec in ALGOS.items() if spec.search_space})
