"""The skrl adapter (optional ``skrl`` extra): skrl's own TRPO.update on the suite's batch as
one-step episodes, so skrl's GAE gives back the suite's advantages; Gaussian policies only."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skrl", reason="skrl not installed (extra 'skrl')")

from claims.adapters.skrl import SkrlTRPO
from claims.framework.impl import ImplementationError, check_adapter, random_batch


def test_skrls_own_gae_recovers_the_suites_advantages_and_the_step_stays_within_delta():
    impl = SkrlTRPO()
    impl.new_policy("Hopper-v5", seed=0)
    batch = random_batch("Hopper-v5", n=128)
    outcome = impl.policy_step(batch, delta=0.01)
    assert 0 < outcome.old.kl_to(outcome.new).mean() < 0.01
    got = impl.agent.memory.get_tensor_by_name("advantages").reshape(-1).numpy()
    adv = batch.adv.astype(np.float32)
    np.testing.assert_allclose(got, (adv - adv.mean()) / (adv.std(ddof=1) + 1e-8), atol=1e-6)


def test_a_discrete_task_is_refused_with_the_reason():
    with pytest.raises(ImplementationError, match="Gaussian policies only"):
        SkrlTRPO().new_policy("CartPole-v1", seed=0)


def test_check_adapter_passes_on_a_box_task():
    findings = check_adapter("claims.adapters.skrl:factory", tasks=("Hopper-v5",))
    assert all(f.ok for f in findings), [f.detail for f in findings if not f.ok]


def test_importing_the_adapter_leaves_torch_distribution_validation_as_it_was():
    import torch

    assert torch.distributions.Distribution._validate_args  # torch's default: on
