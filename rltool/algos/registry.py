"""Algorithm names, classes and accepted keywords, known without importing torch.

Config validation must answer before torch or SB3 are imported, so the keyword
lists are written out here; ``tests/test_algos.py`` checks them against the
real constructor signatures so they cannot drift silently.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _spec(
    name: str,
    module: str,
    class_name: str,
    *extra: str,
    base: tuple[str, ...] = (),
    drop: tuple[str, ...] = (),
    **flags,
) -> AlgoSpec:
    return AlgoSpec(name, module, class_name, frozenset(base + extra + _COMMON) - set(drop), **flags)


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
              off_policy=True),
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
              "max_grad_norm", "rollout_buffer_class", "rollout_buffer_kwargs", "target_kl", "stats_window_size"),
        _spec("crossq", "sb3_contrib", "CrossQ", "action_noise", "ent_coef", "target_entropy", "policy_delay",
              "use_sde", "sde_sample_freq", "use_sde_at_warmup", base=_OFF_POLICY, drop=("tau",), off_policy=True,
              policies=("MlpPolicy",)),
        _spec("reinforce", "rltool.algos.reinforce", "Reinforce", "baseline", "vf_coef", base=_ON_POLICY,
              drop=("gae_lambda",)),
    )
}  # fmt: skip

# Keywords of the algorithms that hold a learning-rate-like schedule; "lin_X" strings become schedules.
SCHEDULE_KEYS = frozenset({"learning_rate", "clip_range", "clip_range_vf", "delta_std"})
