"""The tianshou adapter (optional ``tianshou`` extra): one step of tianshou's own TRPO update on
the suite's batch, measured by the suite; a step that cannot improve is rejected and nothing
moves; check-adapter passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("tianshou", reason="tianshou not installed (extra 'tianshou')")

from claims.adapters.tianshou import TianshouTRPO
from claims.framework.impl import StepBatch, check_adapter, random_batch


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Hopper-v5"])
def test_one_step_on_the_suites_batch_stays_near_delta(env_id):
    impl = TianshouTRPO()
    impl.new_policy(env_id, seed=0)
    batch = random_batch(env_id)
    outcome = impl.policy_step(batch, delta=0.01)
    kl = outcome.old.kl_to(outcome.new).mean()
    assert 0 < kl < 0.01  # a step was taken, inside the trust region (tianshou tests kl < delta)


def test_a_zero_gradient_crashes_tianshou_and_leaves_the_policy_non_finite():
    """A finding about tianshou 2.0.1, measured: with a zero policy gradient its conjugate
    gradient divides 0 by 0 (no early exit before the first iteration), the first candidate is
    NaN, torch.distributions raises inside the line search, and the actor is left with NaN
    parameters (no restore on an exception). The step protocol must record this as a crash
    that leaves the policy non-finite (issue 13, item 1)."""
    assert torch.distributions.Distribution._validate_args  # torch's default (skrl turns it off)
    impl = TianshouTRPO()
    impl.new_policy("Hopper-v5", seed=0)
    impl.algorithm.advantage_normalization = False  # zeros would be standardized to 0 / 0
    batch = random_batch("Hopper-v5", n=64)
    zero = StepBatch(batch.env_id, batch.obs, batch.act, np.zeros_like(batch.adv))
    with pytest.raises(ValueError, match="invalid values"):
        impl.policy_step(zero, delta=0.01)
    actor = impl.algorithm.policy.actor
    assert not all(bool(torch.isfinite(p).all()) for p in actor.parameters())


def test_check_adapter_passes():
    findings = check_adapter("claims.adapters.tianshou:factory")
    assert all(f.ok for f in findings), [f.detail for f in findings if not f.ok]
    assert "capabilities step" in findings[0].detail
