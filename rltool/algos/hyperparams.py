"""What each algorithm keyword is: its kind of value and its bounds.

One table for every algorithm and backend: a keyword means the same wherever it appears
(``gamma`` is a discount in (0, 1] for PPO and SAC alike). Which keywords an algorithm takes is
:class:`rltool.algos.registry.AlgoSpec`'s ``keywords``; it answers :meth:`AlgoSpec.kind` and
:meth:`AlgoSpec.bound` from here. ``rltool.config`` checks values against both, with file and
line in its messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    """The kind of value an algorithm keyword takes (how a config value is checked)."""

    INT = "int"
    #: an integer >= 1
    POSITIVE_INT = "positive int"
    FLOAT = "float"
    #: a number or null (``target_kl: null`` turns the early stop off)
    OPTIONAL_FLOAT = "float or null"
    BOOL = "bool"
    #: a number, or a ``lin_X`` schedule string
    SCHEDULE = "schedule"
    #: a mapping of keyword arguments (``policy_kwargs``, ...)
    MAPPING = "mapping"
    #: a class named by a string (``HerReplayBuffer``)
    CLASS = "class"
    #: a number, or ``auto``/``auto_X`` for SAC-like algorithms (``ent_coef``, ``target_entropy``)
    ENTROPY = "number or auto"
    #: an integer >= 1, or ``[N, "step"|"episode"]``
    TRAIN_FREQ = "train frequency"
    #: a list of step numbers
    STEP_LIST = "list of steps"
    #: one of the strings in :data:`CHOICES`
    CHOICE = "choice"
    #: anything (the algorithm checks it)
    ANY = "any"


KINDS: dict[str, Kind] = {
    **dict.fromkeys(("n_steps", "batch_size", "n_epochs", "buffer_size", "n_delta", "n_top"), Kind.POSITIVE_INT),
    **dict.fromkeys(
        ("learning_starts", "target_update_interval", "sde_sample_freq", "n_eval_episodes", "policy_delay",
         "top_quantiles_to_drop_per_net", "cg_max_steps", "line_search_max_iter", "n_critic_updates",
         "sub_sampling_factor", "stats_window_size", "gradient_steps", "verbose"),
        Kind.INT,
    ),
    **dict.fromkeys(
        ("gamma", "gae_lambda", "vf_coef", "max_grad_norm", "tau", "exploration_fraction",
         "exploration_initial_eps", "exploration_final_eps", "target_policy_noise", "target_noise_clip",
         "rms_prop_eps", "cg_damping", "line_search_shrinking_factor", "alive_bonus_offset"),
        Kind.FLOAT,
    ),
    **dict.fromkeys(("target_kl", "qf_learning_rate"), Kind.OPTIONAL_FLOAT),
    **dict.fromkeys(
        ("use_sde", "normalize_advantage", "use_rms_prop", "optimize_memory_usage", "use_sde_at_warmup",
         "zero_policy"),
        Kind.BOOL,
    ),
    # keywords holding a learning-rate-like value: "lin_X" strings become schedules
    **dict.fromkeys(("learning_rate", "clip_range", "clip_range_vf", "delta_std"), Kind.SCHEDULE),
    **dict.fromkeys(("policy_kwargs", "replay_buffer_kwargs", "rollout_buffer_kwargs"), Kind.MAPPING),
    **dict.fromkeys(("replay_buffer_class", "rollout_buffer_class"), Kind.CLASS),
    **dict.fromkeys(("ent_coef", "target_entropy"), Kind.ENTROPY),
    "train_freq": Kind.TRAIN_FREQ,
    "param_resets": Kind.STEP_LIST,
    **dict.fromkeys(("baseline", "device"), Kind.CHOICE),
}  # fmt: skip

#: the values of :attr:`Kind.CHOICE` keywords
CHOICES: dict[str, tuple[str, ...]] = {
    "baseline": ("none", "mean", "value"),
    "device": ("cpu", "cuda", "auto"),
}

#: keywords whose value is a schedule when written ``lin_X`` (the :attr:`Kind.SCHEDULE` ones)
SCHEDULE_KEYS = frozenset(key for key, kind in KINDS.items() if kind is Kind.SCHEDULE)

#: ``policy_kwargs`` entries whose value names a torch class (``nn.ReLU``)
CLASS_VALUED_POLICY_KWARGS = frozenset(["activation_fn", "optimizer_class", "features_extractor_class"])


@dataclass(frozen=True)
class Bound:
    """The range a numeric keyword must lie in; None: unbounded on that side."""

    low: float | None
    low_closed: bool
    high: float | None = None
    high_closed: bool = False

    def admits(self, value: float) -> bool:
        """:return: whether ``value`` lies in the range."""
        if self.low is not None and (value < self.low if self.low_closed else value <= self.low):
            return False
        return self.high is None or (value <= self.high if self.high_closed else value < self.high)

    def describe(self, key: str) -> str:
        """:return: the range as an inequality, e.g. ``0 < gamma <= 1``."""
        left = "" if self.low is None else f"{self.low:g} {'<=' if self.low_closed else '<'} "
        right = "" if self.high is None else f" {'<=' if self.high_closed else '<'} {self.high:g}"
        return f"{left}{key}{right}"


_POSITIVE = Bound(0.0, False)
_NON_NEGATIVE = Bound(0.0, True)
_FRACTION = Bound(0.0, True, 1.0, True)

BOUNDS: dict[str, Bound] = {
    "gamma": Bound(0.0, False, 1.0, True),
    "gae_lambda": _FRACTION,
    "tau": Bound(0.0, False, 1.0, True),
    "learning_rate": _POSITIVE,
    "clip_range": _POSITIVE,
    "clip_range_vf": _POSITIVE,
    "vf_coef": _NON_NEGATIVE,
    "ent_coef": _NON_NEGATIVE,
    "max_grad_norm": _POSITIVE,
    "exploration_fraction": _FRACTION,
    "exploration_initial_eps": _FRACTION,
    "exploration_final_eps": _FRACTION,
    "target_kl": _POSITIVE,
    "learning_starts": _NON_NEGATIVE,
    "gradient_steps": Bound(-1.0, True),
    "target_update_interval": Bound(1.0, True),
    "policy_delay": Bound(1.0, True),
    # a config field rather than a keyword, bounded the same way
    "noise_std": _NON_NEGATIVE,
}


def kind_of(key: str) -> Kind:
    """:return: the kind of value keyword ``key`` takes (:attr:`Kind.ANY` when it is not listed)."""
    return KINDS.get(key, Kind.ANY)
