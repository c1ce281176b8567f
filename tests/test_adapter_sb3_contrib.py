"""The sb3-contrib adapter (optional ``external`` extra): one step of sb3-contrib's own code on
the suite's batch, measured by the suite; a rejected step leaves the policy as it was; training
returns the Monitor's episodes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sb3_contrib")

from claims.adapters.sb3_contrib import SB3ContribTRPO
from claims.framework.impl import StepBatch, random_batch


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Hopper-v5"])
def test_one_step_on_the_suites_batch(env_id):
    impl = SB3ContribTRPO()
    impl.new_policy(env_id, seed=0)
    batch = random_batch(env_id)
    outcome = impl.policy_step(batch, delta=0.01)
    outcome.old.validate(len(batch.adv), "old")
    outcome.new.validate(len(batch.adv), "new")
    assert outcome.old.kl_to(outcome.new).mean() > 0  # a step was taken


def test_a_step_that_cannot_improve_is_rejected_and_nothing_moves():
    impl = SB3ContribTRPO()
    impl.new_policy("Hopper-v5", seed=0)
    batch = random_batch("Hopper-v5")
    zero = StepBatch(batch.env_id, batch.obs, batch.act, np.zeros_like(batch.adv))
    outcome = impl.policy_step(zero, delta=0.01)
    np.testing.assert_array_equal(outcome.old.mean, outcome.new.mean)
    np.testing.assert_array_equal(outcome.old.std, outcome.new.std)


def test_training_returns_the_monitors_episodes():
    outcome = SB3ContribTRPO(n_steps=512).train("CartPole-v1", seed=0, total_steps=1024)
    outcome.validate(1024)
    assert 0 < sum(outcome.episode_lengths) <= 1024
