"""The algorithm registry: every fact rltool knows about an algorithm, without importing torch or JAX.

One :class:`AlgoSpec` per algorithm and backend: its class, on- or off-policy, its keywords and
their kinds and bounds (:mod:`rltool.algos.hyperparams`), its policies, its search space and how
its model is saved and safely loaded. A backend is one table (:data:`ALGOS` for SB3,
:data:`SBX_ALGOS` for SBX). Config validation must answer before torch or SB3 are imported, so
the keyword lists are written out here; ``tests/test_algos.py`` checks them against the real
constructor signatures so they cannot drift silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from rltool.algos.hyperparams import BOUNDS, Bound, Kind, kind_of

_ON_POLICY = (
    "learning_rate", "n_steps", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm",
    "use_sde", "sde_sample_freq", "normalize_advantage", "stats_window_size",
)  # fmt: skip
_OFF_POLICY = (
    "learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq",
    "gradient_steps", "replay_buffer_class", "replay_buffer_kwargs", "optimize_memory_usage", "n_steps",
    "stats_window_size",
)  # fmt: skip
_COMMON = ("policy_kwargs", "tensorboard_log", "verbose", "seed", "device")
_STANDARD_POLICIES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")


@dataclass(frozen=True)
class AlgoSpec:
    """What rltool knows about one algorithm before importing it."""

    name: str
    module: str
    class_name: str
    keywords: frozenset[str]
    policies: tuple[str, ...] = _STANDARD_POLICIES
    off_policy: bool = False
    #: entries of ``policy_kwargs`` this backend accepts (None: whatever the library takes)
    policy_keywords: frozenset[str] | None = None
    #: the function in :mod:`rltool.tune.samplers` that draws its hyperparameters (None: not tunable)
    search_space: str | None = None
    #: how its model is saved: "sb3" (SB3's zip, loaded by :mod:`rltool.safe_load`) or "sbx" (that zip
    #: plus flax msgpack parameters, :mod:`rltool.sbx_io`), both loaded without pickles
    model_format: str = "sb3"

    def kind(self, key: str) -> Kind:
        """:return: the kind of value keyword ``key`` takes."""
        return kind_of(key)

    def bound(self, key: str) -> Bound | None:
        """:return: the range a numeric keyword must lie in (None: unbounded)."""
        return BOUNDS.get(key)


def _spec(
    name: str,
    module: str,
    class_name: str,
    *extra: str,
    base: tuple[str, ...] = (),
    drop: tuple[str, ...] = (),
    **flags,
) -> AlgoSpec:
    flags.setdefault("search_space", f"sample_{name}")
    return AlgoSpec(name, module, class_name, frozenset(base + extra + _COMMON) - set(drop), **flags)


def _sbx_spec(
    name: str,
    class_name: str,
    *extra: str,
    base: tuple[str, ...] = (),
    drop: tuple[str, ...] = (),
    module: str = "sbx",
    **flags,
) -> AlgoSpec:
    policy_keywords = frozenset(_SBX_POLICY_COMMON + flags.pop("policy_extra", ()))
    return _spec(
        name, module, class_name, *extra, base=base, drop=drop, policy_keywords=policy_keywords,
        model_format="sbx", **flags,
    )  # fmt: skip


ALGOS: dict[str, AlgoSpec] = {
    spec.name: spec
    for spec in (
        _spec("ppo", "stable_baselines3", "PPO", "batch_size", "n_epochs", "clip_range", "clip_range_vf",
              "rollout_buffer_class", "rollout_buffer_kwargs", "target_kl", base=_ON_POLICY),
        _spec("a2c", "stable_baselines3", "A2C", "rms_prop_eps", "use_rms_prop", "rollout_buffer_class",
              "rollout_buffer_kwargs", base=_ON_POLICY),
        _spec("dqn", "stable_baselines3", "DQN", "target_update_interval", "exploration_fraction",
              "exploration_initial_eps", "exploration_final_eps", "max_grad_norm", base=_OFF_POLICY,
              off_policy=True),
        _spec("ddpg", "stable_baselines3", "DDPG", "action_noise", base=_OFF_POLICY, drop=("stats_window_size",),
              off_policy=True, search_space="sample_td3"),
        _spec("td3", "stable_baselines3", "TD3", "action_noise", "policy_delay", "target_policy_noise",
              "target_noise_clip", base=_OFF_POLICY, off_policy=True),
        _spec("sac", "stable_baselines3", "SAC", "action_noise", "ent_coef", "target_update_interval",
              "target_entropy", "use_sde", "sde_sample_freq", "use_sde_at_warmup", base=_OFF_POLICY,
              off_policy=True),
        _spec("ars", "sb3_contrib", "ARS", "n_delta", "n_top", "learning_rate", "delta_std", "zero_policy",
              "alive_bonus_offset", "n_eval_episodes", "stats_window_size", policies=("LinearPolicy", "MlpPolicy")),
        _spec("qrdqn", "sb3_contrib", "QRDQN", "target_update_interval", "exploration_fraction",
              "exploration_initial_eps", "exploration_final_eps", "max_grad_norm", base=_OFF_POLICY,
              off_policy=True),
        _spec("tqc", "sb3_contrib", "TQC", "action_noise", "ent_coef", "target_update_interval",
              "target_entropy", "top_quantiles_to_drop_per_net", "use_sde", "sde_sample_freq",
              "use_sde_at_warmup", base=_OFF_POLICY, off_policy=True),
        _spec("trpo", "sb3_contrib", "TRPO", "batch_size", "cg_max_steps", "cg_damping",
              "line_search_shrinking_factor", "line_search_max_iter", "n_critic_updates", "rollout_buffer_class",
              "rollout_buffer_kwargs", "target_kl", "sub_sampling_factor", "learning_rate", "n_steps", "gamma",
              "gae_lambda", "use_sde", "sde_sample_freq", "normalize_advantage", "stats_window_size"),
        _spec("ppo_lstm", "sb3_contrib", "RecurrentPPO", "batch_size", "n_epochs", "clip_range", "clip_range_vf",
              "target_kl", base=_ON_POLICY,
              policies=("MlpLstmPolicy", "CnnLstmPolicy", "MultiInputLstmPolicy")),
        _spec("ppo_mask", "sb3_contrib", "MaskablePPO", "learning_rate", "n_steps", "batch_size", "n_epochs",
              "gamma", "gae_lambda", "clip_range", "clip_range_vf", "normalize_advantage", "ent_coef", "vf_coef",
              "max_grad_norm", "rollout_buffer_class", "rollout_buffer_kwargs", "target_kl", "stats_window_size",
              search_space="sample_ppo"),
        _spec("crossq", "sb3_contrib", "CrossQ", "action_noise", "ent_coef", "target_entropy", "policy_delay",
              "use_sde", "sde_sample_freq", "use_sde_at_warmup", base=_OFF_POLICY, drop=("tau",), off_policy=True,
              policies=("MlpPolicy",)),
        _spec("reinforce", "rltool.algos.reinforce", "Reinforce", "baseline", "vf_coef", base=_ON_POLICY,
              drop=("gae_lambda",)),
    )
}  # fmt: skip

# ---------------------------------------------------------------------------
# The SBX (JAX) backend: the same names, SBX's classes and keywords (sbx-rl 0.28).

# policy_kwargs entries that mean the same on both backends. Torch-only entries (optimizer_class,
# optimizer_kwargs, features_extractor_class, ...) are refused: their values are torch objects.
_SBX_POLICY_COMMON = ("net_arch", "activation_fn")
_SBX_ACTOR = ("log_std_init", "use_sde", "use_expln", "clip_mean")
_SBX_CRITICS = ("n_critics", "dropout_rate", "layer_norm")
_SBX_SAC_LIKE = ("qf_learning_rate", "action_noise", "policy_delay", "ent_coef", "target_entropy", "use_sde",
                 "sde_sample_freq", "use_sde_at_warmup", "param_resets")  # fmt: skip

SBX_ALGOS: dict[str, AlgoSpec] = {
    spec.name: spec
    for spec in (
        # rltool's subclass of sbx.PPO: the same learning, all minibatch updates in one jitted call
        _sbx_spec("ppo", "FusedPPO", "batch_size", "n_epochs", "clip_range", "clip_range_vf", "rollout_buffer_class",
                  "rollout_buffer_kwargs", "target_kl", base=_ON_POLICY, drop=("stats_window_size",),
                  policies=("MlpPolicy", "CnnPolicy"), policy_extra=("ortho_init", *_SBX_ACTOR),
                  module="rltool.algos.sbx_ppo"),
        _sbx_spec("sac", "SAC", *_SBX_SAC_LIKE, base=_OFF_POLICY, drop=("optimize_memory_usage",),
                  off_policy=True, policies=("MlpPolicy", "MultiInputPolicy", "SimbaPolicy"),
                  policy_extra=(*_SBX_ACTOR, *_SBX_CRITICS)),
        _sbx_spec("tqc", "TQC", *_SBX_SAC_LIKE, "top_quantiles_to_drop_per_net", base=_OFF_POLICY,
                  drop=("optimize_memory_usage",), off_policy=True,
                  policies=("MlpPolicy", "MultiInputPolicy", "SimbaPolicy"),
                  policy_extra=(*_SBX_ACTOR, *_SBX_CRITICS, "n_quantiles")),
        _sbx_spec("dqn", "DQN", "target_update_interval", "exploration_fraction", "exploration_initial_eps",
                  "exploration_final_eps", base=_OFF_POLICY, drop=("stats_window_size",), off_policy=True,
                  policies=("MlpPolicy", "CnnPolicy")),
        _sbx_spec("td3", "TD3", "qf_learning_rate", "action_noise", "policy_delay", "target_policy_noise",
                  "target_noise_clip", "param_resets", base=_OFF_POLICY, drop=("optimize_memory_usage",),
                  off_policy=True, policies=("MlpPolicy", "MultiInputPolicy"),
                  policy_extra=("use_sde", *_SBX_CRITICS)),
        _sbx_spec("ddpg", "DDPG", "qf_learning_rate", "action_noise", base=_OFF_POLICY,
                  drop=("optimize_memory_usage", "stats_window_size"), off_policy=True, policies=("MlpPolicy",),
                  search_space="sample_td3",
                  policy_extra=("use_sde", *_SBX_CRITICS)),
        _sbx_spec("crossq", "CrossQ", *_SBX_SAC_LIKE, base=_OFF_POLICY, drop=("optimize_memory_usage", "tau"),
                  off_policy=True, policies=("MlpPolicy", "MultiInputPolicy", "SimbaPolicy"),
                  policy_extra=(*_SBX_ACTOR, *_SBX_CRITICS, "batch_norm", "batch_norm_actor",
                                "batch_norm_momentum", "renorm_warmup_steps")),
    )
}  # fmt: skip

#: Backend name -> its algorithm table. "sb3" is the default.
BACKENDS: dict[str, dict[str, AlgoSpec]] = {"sb3": ALGOS, "sbx": SBX_ALGOS}
DEFAULT_BACKEND = "sb3"


def algo_spec(name: str, backend: str = DEFAULT_BACKEND) -> AlgoSpec:
    """:return: what ``backend`` knows about algorithm ``name`` (KeyError if it lacks it)."""
    return BACKENDS[backend][name]
