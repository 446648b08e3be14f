"""Learning test: configs/cartpole.yaml, trained through ``rltool train``, reaches what it promises.

PPO on CartPole-v1 (1e5 steps), seeds 0 and 1 in parallel: every seed must reach a deterministic
mean reward >= 475 in training's final evaluation and on 20 fresh episodes of another seed.
"""

from __future__ import annotations

import pytest
from conftest import eval_fresh_episodes, final_eval, train_shipped_config

REQUIRED = 475.0


@pytest.mark.slow
@pytest.mark.timeout(1200)  # minutes when 2 cores are shared; a hang still fails
def test_ppo_cartpole_reaches_475_on_two_seeds(tmp_path):
    for run in train_shipped_config("cartpole.yaml", "0,1", tmp_path):
        assert final_eval(run)["mean_reward"] >= REQUIRED, (run, final_eval(run))
        fresh = eval_fresh_episodes(run, REQUIRED)
        assert fresh["mean_reward"] >= REQUIRED, (run, fresh)
