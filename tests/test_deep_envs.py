"""Every gymnasium task the paper's experiments use runs through the training loop: one batch
each, with the right policy family, exact step counts and whole episodes."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest

from trpo_ref.deep.policies import CategoricalMLP, DiagGaussianMLP
from trpo_ref.deep.trpo import TRPOConfig, make_env, make_policy, train

pytestmark = pytest.mark.quick

# (env id, policy family, the time limit gymnasium registers for it)
TASKS = [
    ("CartPole-v1", CategoricalMLP, 500),
    ("InvertedPendulum-v5", DiagGaussianMLP, 1000),
    ("Swimmer-v5", DiagGaussianMLP, 1000),
    ("Hopper-v5", DiagGaussianMLP, 1000),
    ("Walker2d-v5", DiagGaussianMLP, 1000),
]


@pytest.mark.parametrize(("env_id", "family", "limit"), TASKS, ids=[t[0] for t in TASKS])
def test_one_batch_on_each_task(env_id, family, limit):
    config = TRPOConfig(env_id=env_id, total_steps=2, steps_per_iter=2, network="paper",
                        hidden=8, vf_epochs=1, seed=0)
    env = make_env(env_id, config)
    try:
        assert env.spec.max_episode_steps == limit
        assert isinstance(make_policy(config, env), family)
        if family is DiagGaussianMLP:
            assert isinstance(env.action_space, gym.spaces.Box)
    finally:
        env.close()
    (metrics,) = train(config)  # one whole episode is more than 2 steps: one iteration
    assert metrics["rollout/episodes"] >= 1
    assert 2 <= metrics["rollout/steps"] <= limit * metrics["rollout/episodes"]
    assert metrics["global/steps"] == metrics["rollout/steps"]
    assert metrics["rollout/steps"] == pytest.approx(
        metrics["rollout/ep_len_mean"] * metrics["rollout/episodes"])
    # forward velocity: reported by the locomotion tasks, NaN where the env has none
    locomotion = env_id in ("Swimmer-v5", "Hopper-v5", "Walker2d-v5")
    assert math.isfinite(metrics["rollout/x_velocity_mean"]) == locomotion
