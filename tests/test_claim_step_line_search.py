"""step.line_search_restores at the quick tier, its negative control, and its fault helpers."""

import math

import numpy as np
import pytest
import torch

from claims.catalogue.step.batches import param_bits, surrogate_and_kl, task_config, trained_batch
from claims.catalogue.step.line_search import (
    FAULTS,
    PATHS,
    LineSearchRestores,
    _line_search_bug_no_restore,
    _nan_advantages,
    injected,
    run_line_search_case,
    run_update_case,
)
from claims.faults import FAULTS as REGISTRY
from claims.faults import fvp_negative, fvp_zero
from claims.framework.core import Evidence, Status
from trpo_ref.deep import step as step_module
from trpo_ref.deep.runtime import torch_threads
from trpo_ref.deep.step import get_flat_params, line_search, set_flat_params

pytestmark = pytest.mark.quick

CLAIM = LineSearchRestores()
CONFIG = task_config("CartPole-v1", 300, seed=4)


@pytest.fixture(scope="module")
def runs():
    return CLAIM.run("quick"), CLAIM.run("quick", control=True)


@pytest.fixture(scope="module")
def item():
    with torch_threads(1):
        return trained_batch(CONFIG, warmup_iters=1)


def test_real_supported(runs):
    verdict = CLAIM.decide(runs[0])
    assert verdict.status is Status.SUPPORTED, verdict.message
    budget = CLAIM.budgets["quick"]
    assert verdict.n == len(FAULTS) * len(PATHS) * len(budget.tasks) * len(budget.seeds)
    assert all(runs[0].data["rejected"]) and all(runs[0].data["restored"])
    assert all(runs[0].data["reason"])


def test_control_no_restore_refuted(runs):
    control = runs[1]
    verdict = CLAIM.decide(control)
    assert verdict.status is Status.REFUTED, verdict.message
    data = control.data
    for fault, path, restored in zip(data["fault"], data["path"], data["restored"], strict=True):
        if path == "line_search" and not fault.startswith("fvp_"):
            assert not restored  # the buggy search leaves its last candidate in place
    # step.update's own backstop restores theta_old whatever its line search leaves
    assert all(r for p, r in zip(data["path"], data["restored"], strict=True) if p == "update")


def test_statistic_recomputes_from_data(runs):
    for evidence in runs:
        d = evidence.data
        correct = [bool(a and b and c) for a, b, c in
                   zip(d["rejected"], d["restored"], d["reason"], strict=True)]
        assert correct == d["correct"]
        assert CLAIM.decide(evidence).value == np.mean(correct) == evidence.summary[
            "fraction_correct"]


def test_deterministic(runs):
    again = CLAIM.run("quick", control=True)
    assert again.summary == runs[1].summary and again.data["reason"] == runs[1].data["reason"]


def test_empty_evidence_is_inconclusive():
    assert CLAIM.decide(Evidence(CLAIM.id, "quick", False, {})).status is Status.INCONCLUSIVE


def test_injected_restores_the_strategies_even_on_error():
    real = step_module.current_strategies()
    with pytest.raises(RuntimeError), injected(conjugate_gradient=None):
        assert step_module.current_strategies().conjugate_gradient is None
        raise RuntimeError("boom")
    assert step_module.current_strategies() is real
    assert step_module.conjugate_gradient.__name__ == "conjugate_gradient"  # never patched


def test_fault_fvps_give_non_positive_curvature():
    v = torch.tensor([1.0, -2.0], dtype=torch.float64)
    assert float(v @ fvp_negative(None, None, (), 0.1)(v)) == -5.0
    assert float(v @ fvp_zero(None, None, (), 0.1)(v)) == 0.0
    assert step_module.step_scale(-5.0, 0.01)[1] and step_module.step_scale(0.0, 0.01)[1]


def test_nan_faults_only_at_evaluation(item):
    policy, batch = item.policy, item.batch
    nan_surrogate = REGISTRY["nonfinite_surrogate"].pieces()["surrogate"]
    assert math.isfinite(float(nan_surrogate(policy, batch).detach()))
    with torch.no_grad():
        assert math.isnan(float(nan_surrogate(policy, batch)))
    surr, kl = surrogate_and_kl(policy, _nan_advantages(batch))
    assert math.isnan(surr) and kl == 0.0
    assert torch.isfinite(batch.adv).all()  # the original batch is untouched


def test_bug_line_search_leaves_last_candidate(item):
    """Hand-checkable: a reversed step fails every try; the bug leaves 0.8^9 of it in place."""
    policy, batch = item.policy, item.batch
    theta = get_flat_params(policy)
    direction = -1e-3 * torch.ones_like(theta)
    surr_old = surrogate_and_kl(policy, batch)[0]

    def evaluate():
        return -math.inf, 0.0  # no candidate ever improves

    result = _line_search_bug_no_restore(policy, theta, direction, evaluate, surr_old, 0.01)
    assert not result.accepted
    torch.testing.assert_close(get_flat_params(policy), theta + 0.8**9 * direction)
    set_flat_params(policy, theta)
    before = param_bits(policy)
    line_search(policy, theta, direction, evaluate, surr_old, 0.01)
    assert torch.equal(before, param_bits(policy))


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("case", [run_line_search_case, run_update_case])
def test_each_fault_is_rejected_with_a_reason(item, fault, case):
    policy, batch = item.policy, item.batch
    before = param_bits(policy)
    with torch_threads(1):
        rejected, reason = case(fault, policy, batch, CONFIG, torch.Generator().manual_seed(0),
                                step_module.line_search)
    assert rejected and reason
    assert torch.equal(before, param_bits(policy))
