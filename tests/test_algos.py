"""The static algorithm table agrees with the real classes."""

from __future__ import annotations

import inspect

import pytest

from rltool.algos import algo_class
from rltool.algos.registry import ALGOS

# Constructor parameters that are not hyperparameters a config sets.
_NOT_CONFIG = {"self", "policy", "env", "_init_setup_model", "kwargs"}


@pytest.mark.parametrize("name", sorted(ALGOS))
def test_keywords_match_the_constructor(name):
    cls = algo_class(name)
    parameters = set(inspect.signature(cls.__init__).parameters) - _NOT_CONFIG
    assert set(ALGOS[name].keywords) == parameters


@pytest.mark.parametrize("name", sorted(ALGOS))
def test_policies_match_the_class(name):
    cls = algo_class(name)
    assert set(ALGOS[name].policies) <= set(cls.policy_aliases)


def test_zoo_names():
    expected = {
        "ppo",
        "a2c",
        "dqn",
        "ddpg",
        "td3",
        "sac",
        "ars",
        "qrdqn",
        "tqc",
        "trpo",
        "ppo_lstm",
        "ppo_mask",
        "crossq",
    }
    assert expected <= set(ALGOS)


def test_registry_knows_search_space_format_kinds_and_bounds_of_every_algorithm():
    from rltool.algos.hyperparams import BOUNDS, KINDS, Kind
    from rltool.algos.registry import BACKENDS
    from rltool.tune import samplers

    every_keyword = set()
    for backend, table in BACKENDS.items():
        for name, spec in table.items():
            every_keyword |= spec.keywords
            assert spec.model_format == backend, (backend, name)
            assert callable(getattr(samplers, spec.search_space)), (backend, name)
            for key in spec.keywords:
                assert spec.kind(key) is KINDS.get(key, Kind.ANY)
    # no stale entries: each listed kind belongs to a keyword some algorithm takes
    assert set(KINDS) <= every_keyword, set(KINDS) - every_keyword
    numeric = {Kind.INT, Kind.POSITIVE_INT, Kind.FLOAT, Kind.OPTIONAL_FLOAT, Kind.SCHEDULE, Kind.ENTROPY}
    for key in set(BOUNDS) - {"noise_std"}:
        assert KINDS[key] in numeric, key
    assert (
        samplers.SAMPLERS["ppo_mask"] is samplers.sample_ppo
        and samplers.SAMPLERS["ddpg"] is samplers.sample_td3
    )
