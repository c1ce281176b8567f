"""step.kl_quadratic at the quick tier, its negative control and the broken FVP."""

import numpy as np
import pytest
import torch

from claims.catalogue.step.batches import task_config, trained_batch
from claims.catalogue.step.kl_quadratic import QuadraticKLModel, _fvp_bug_old_not_detached
from claims.framework.core import Evidence, Status
from trpo_ref.deep.runtime import torch_threads
from trpo_ref.deep.step import fisher_vector_product_fn, get_flat_params

pytestmark = pytest.mark.quick

CLAIM = QuadraticKLModel()


@pytest.fixture(scope="module")
def runs():
    return CLAIM.run("quick"), CLAIM.run("quick", control=True)


@pytest.fixture(scope="module", params=["CartPole-v1", "InvertedPendulum-v5"])
def item(request):
    with torch_threads(1):
        return trained_batch(task_config(request.param, 300, seed=2), warmup_iters=1)


def test_real_supported(runs):
    verdict = CLAIM.decide(runs[0])
    assert verdict.status is Status.SUPPORTED, verdict.message
    budget = CLAIM.budgets["quick"]
    assert verdict.n == len(budget.tasks) * len(budget.seeds) * budget.n_iters
    # damping takes a share of the quadratic model, never all of it
    share = np.asarray(runs[0].data["damping_share"])
    assert np.all((share > 0) & (share < 1))


def test_control_not_detached_refuted(runs):
    control = runs[1]
    verdict = CLAIM.decide(control)
    assert verdict.status is Status.REFUTED, verdict.message
    # A = damping * I: the whole model is damping
    np.testing.assert_allclose(control.data["damping_share"], 1.0, rtol=1e-9)


def test_statistic_recomputes_from_data(runs):
    for evidence in runs:
        tasks = np.asarray(evidence.data["task"])
        ratios = np.asarray(evidence.data["kl_full_over_delta"])
        medians = [np.median(np.abs(np.log2(ratios[tasks == t]))) for t in set(tasks)]
        assert CLAIM.decide(evidence).value == pytest.approx(max(medians), rel=1e-15)


def test_real_and_control_measure_the_same_batches(runs):
    """The control only swaps the FVP of the measured step; training follows step.update."""
    assert runs[0].data["return"] == runs[1].data["return"]


def test_deterministic(runs):
    assert CLAIM.run("quick").summary == runs[0].summary


def test_empty_evidence_is_inconclusive():
    assert CLAIM.decide(Evidence(CLAIM.id, "quick", False, {})).status is Status.INCONCLUSIVE


def test_figure_is_written(runs, tmp_path):
    for evidence in runs:
        paths = CLAIM.figures(evidence, tmp_path)
        assert paths and all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_bug_fvp_is_damping_times_identity(item):
    """With pi_old not detached the KL Hessian vanishes: A v = damping v exactly."""
    policy, batch = item.policy, item.batch
    v = torch.randn(get_flat_params(policy).shape, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0))
    with torch_threads(1):
        buggy = _fvp_bug_old_not_detached(policy, batch.obs, batch.old_params, 0.1)(v)
        right = fisher_vector_product_fn(policy, batch.obs, batch.old_params, 0.1)(v)
    torch.testing.assert_close(buggy, 0.1 * v, rtol=1e-12, atol=1e-15)
    curvature = float(v @ (right - 0.1 * v))  # v^T F v of the true Fisher: >= 0, here > 0
    assert curvature > 1e-6 * float(v @ v)
