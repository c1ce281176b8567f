"""The pfrl adapter (optional ``pfrl`` extra): one step of pfrl's own TRPO policy update on the
suite's batch, measured by the suite; check-adapter passes."""

from __future__ import annotations

import pytest

pytest.importorskip("pfrl", reason="pfrl not installed (extra 'pfrl')")

from claims.adapters.pfrl import PfrlTRPO
from claims.framework.impl import check_adapter, random_batch


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Hopper-v5"])
def test_one_step_on_the_suites_batch_stays_within_delta(env_id):
    impl = PfrlTRPO()
    impl.new_policy(env_id, seed=0)
    outcome = impl.policy_step(random_batch(env_id, n=128), delta=0.01)
    assert 0 < outcome.old.kl_to(outcome.new).mean() <= 0.01  # pfrl accepts kl <= max_kl


def test_check_adapter_passes():
    findings = check_adapter("claims.adapters.pfrl:factory")
    assert all(f.ok for f in findings), [f.detail for f in findings if not f.ok]
