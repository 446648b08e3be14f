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
