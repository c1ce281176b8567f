"""step.fvp_exact, step.fisher_unbiased and step.fisher_variance at the quick tier, their
negative controls, and the helpers they are built from."""

import math

import numpy as np
import pytest
import torch

from claims.catalogue.step.fisher import (
    FisherBudget,
    FisherUnbiased,
    FisherVariance,
    FvpExact,
    _analytic_bug_sampled_kl,
    _empirical_bug_clipped_actions,
    _fvp_bug_live_old,
    analytic_fisher_products,
    empirical_fisher_products,
    explicit_kl_hessian,
    relative_error_of_mean,
    replicate_fisher_products,
    variance_ratio,
)
from claims.framework.core import Evidence, Status
from trpo_ref.deep import step
from trpo_ref.deep.policies import CategoricalMLP, DiagGaussianMLP

pytestmark = pytest.mark.quick

FVP = FvpExact()
UNBIASED = FisherUnbiased()
VARIANCE = FisherVariance()


@pytest.fixture(scope="module")
def fvp_runs():
    return FVP.run("quick"), FVP.run("quick", control=True)


@pytest.fixture(scope="module")
def unbiased_runs():
    return UNBIASED.run("quick"), UNBIASED.run("quick", control=True)


@pytest.fixture(scope="module")
def variance_runs():
    return VARIANCE.run("quick"), VARIANCE.run("quick", control=True)


# ---- step.fvp_exact ----------------------------------------------------------------------------


def test_fvp_real_supported(fvp_runs):
    verdict = FVP.decide(fvp_runs[0])
    assert verdict.status is Status.SUPPORTED, verdict.message
    assert verdict.value < 1e-12  # float64 rounding, far inside the 1e-8 rule


def test_fvp_control_live_old_refuted(fvp_runs):
    verdict = FVP.decide(fvp_runs[1])
    assert verdict.status is Status.REFUTED, verdict.message
    assert verdict.value > 0.1  # O(1) off, not a near miss


def test_fvp_statistic_recomputes(fvp_runs):
    for evidence in fvp_runs:
        rows = evidence.data["cases"]
        errors = [e for r in rows for e in (*r["fvp_rel_error"], *r["cg_rel_error"])]
        verdict = FVP.decide(evidence)
        assert verdict.value == max(errors)
        assert verdict.n == len(errors) == len(FVP.budgets["quick"].cases) * 2 * 3
        assert evidence.summary["max_fvp_rel_error"] == max(
            e for r in rows for e in r["fvp_rel_error"]
        )


def test_fvp_deterministic(fvp_runs):
    assert FVP.run("quick").summary == fvp_runs[0].summary


def test_explicit_hessian_of_linear_gaussian_is_the_hand_computed_fisher():
    """Linear mean mu = W x + b, state-independent log-std: the KL Hessian at theta_old is
    F[(i,j),(k,l)] = delta_ik E[x_j x_l] / sigma_i^2 (x extended by 1 for the bias) on the
    mean block and 2 I on the log-std block, with no cross terms."""
    torch.manual_seed(0)
    policy = DiagGaussianMLP(3, 2, hidden=())
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor([0.3, -0.5], dtype=torch.float64))
    obs = torch.randn(20, 3, dtype=torch.float64)
    with torch.no_grad():
        old = tuple(t.clone() for t in policy.dist_params(obs))
    h = explicit_kl_hessian(policy, obs, old)
    x = obs.numpy()
    xx = x.T @ x / len(x)
    xm = x.mean(axis=0)
    inv_var = np.exp(-2 * policy.log_std.detach().numpy())
    # parameter order: log_std (2; the module's own parameter comes first), W (2x3, row-major), b
    expected = np.zeros((10, 10))
    for i in range(2):
        w = slice(2 + 3 * i, 5 + 3 * i)
        expected[i, i] = 2.0
        expected[w, w] = xx * inv_var[i]
        expected[w, 8 + i] = expected[8 + i, w] = xm * inv_var[i]
        expected[8 + i, 8 + i] = inv_var[i]
    np.testing.assert_allclose(h, expected, atol=1e-12)


def test_fvp_bug_is_damping_times_v():
    torch.manual_seed(1)
    policy = CategoricalMLP(3, 4, hidden=(5,))
    obs = torch.randn(16, 3, dtype=torch.float64)
    v = torch.randn(step.get_flat_params(policy).numel(), dtype=torch.float64)
    with torch.no_grad():
        old = policy.dist_params(obs)
    got = _fvp_bug_live_old(policy, obs, old, 0.1)(v)
    torch.testing.assert_close(got, 0.1 * v, atol=1e-12, rtol=0)


def test_fvp_empty_evidence_is_inconclusive():
    assert FVP.decide(Evidence(FVP.id, "quick", False, {})).status is Status.INCONCLUSIVE


# ---- step.fisher_unbiased ----------------------------------------------------------------------


def test_unbiased_real_supported(unbiased_runs):
    real = unbiased_runs[0]
    verdict = UNBIASED.decide(real)
    assert verdict.status is Status.SUPPORTED, verdict.message
    # the error is of the order of the Monte Carlo noise, not of a bias
    for task in real.data["tasks"]:
        assert task["rel_error"] < 3 * task["mc_floor"]


def test_unbiased_control_clipped_actions_refuted(unbiased_runs):
    control = unbiased_runs[1]
    verdict = UNBIASED.decide(control)
    assert verdict.status is Status.REFUTED, verdict.message
    assert verdict.ci[0] > 0.3  # a large bias, not a near miss


def test_unbiased_statistic_recomputes(unbiased_runs):
    for evidence in unbiased_runs:
        verdict = UNBIASED.decide(evidence)
        values = [math.sqrt(max(np.mean(t["u"]), 0.0)) for t in evidence.data["tasks"]]
        assert verdict.value == pytest.approx(max(values), rel=1e-12)
        assert verdict.value == evidence.summary["max_rel_error"]
        assert verdict.n == UNBIASED.budgets["quick"].replicates
        for t in evidence.data["tasks"]:
            # the interval holds its estimate; the plug-in sits above it (its MC bias)
            assert t["ci"][0] <= t["rel_error"] <= t["ci"][1]
            assert t["plugin_rel_error"] >= t["rel_error"]
        assert verdict.ci[0] <= verdict.value <= verdict.ci[1]


def test_unbiased_empty_evidence_is_inconclusive():
    assert UNBIASED.decide(Evidence(UNBIASED.id, "quick", False, {})).status is (
        Status.INCONCLUSIVE
    )


# ---- step.fisher_variance ----------------------------------------------------------------------


def test_variance_real_supported(variance_runs):
    verdict = VARIANCE.decide(variance_runs[0])
    assert verdict.status is Status.SUPPORTED, verdict.message
    assert verdict.ci[0] > 2.0  # the empirical estimate is several times noisier


def test_variance_control_sampled_kl_refuted(variance_runs):
    verdict = VARIANCE.decide(variance_runs[1])
    assert verdict.status is Status.REFUTED, verdict.message
    assert verdict.ci[1] < 1.0


def test_variance_statistic_recomputes(variance_runs):
    for evidence in variance_runs:
        verdict = VARIANCE.decide(evidence)
        ratios = [
            sum(t["sq_dev_empirical"]) / sum(t["sq_dev_analytic"]) for t in evidence.data["tasks"]
        ]
        assert verdict.value == pytest.approx(min(ratios), rel=1e-12)
        assert verdict.value == evidence.summary["min_ratio"]
        lo, hi = verdict.ci
        assert lo <= verdict.value <= hi


def test_variance_empty_evidence_is_inconclusive():
    assert VARIANCE.decide(Evidence(VARIANCE.id, "quick", False, {})).status is (
        Status.INCONCLUSIVE
    )


# ---- helpers -----------------------------------------------------------------------------------


def test_resampled_statistics_match_direct_numpy():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 12, 7))
    t = rng.standard_normal(7)
    index = rng.integers(0, 12, size=12)
    d, rel = relative_error_of_mean(x, t)
    assert math.sqrt(d.mean()) == pytest.approx(
        np.linalg.norm(x.mean(0) - t) / np.linalg.norm(t), rel=1e-12
    )
    assert rel(index) == pytest.approx(
        np.linalg.norm(x[index].mean(0) - t) / np.linalg.norm(t), rel=1e-10
    )
    sx, sy, ratio = variance_ratio(x, y)
    assert sx.sum() / sy.sum() == pytest.approx(
        x.var(0, ddof=1).sum() / y.var(0, ddof=1).sum(), rel=1e-12
    )
    assert ratio(index) == pytest.approx(
        x[index].var(0).sum() / y[index].var(0).sum(), rel=1e-10
    )
    assert ratio(np.arange(12)) == pytest.approx(sx.sum() / sy.sum(), rel=1e-12)


def test_sampled_kl_hessian_is_exact_for_linear_categorical():
    """With linear logits, the Hessian of -log softmax(z)[a] in z is diag(p) - p p^T for every
    action, so the sampled-KL 'analytic' bug coincides with the KL Hessian there: its extra
    noise comes only from the network's curvature."""
    torch.manual_seed(2)
    policy = CategoricalMLP(3, 4, hidden=())
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p))
    obs = torch.randn(30, 3, dtype=torch.float64)
    act = policy.sample(obs, torch.Generator().manual_seed(0))
    v = torch.randn(2, step.get_flat_params(policy).numel(), dtype=torch.float64)
    torch.testing.assert_close(
        _analytic_bug_sampled_kl(policy, obs, act, v),
        analytic_fisher_products(policy, obs, act, v),
        atol=1e-12, rtol=1e-10,
    )


def test_clipped_bug_with_infinite_bounds_is_the_empirical_fisher():
    torch.manual_seed(3)
    policy = DiagGaussianMLP(3, 2, hidden=(4,))
    obs = torch.randn(25, 3, dtype=torch.float64)
    act = policy.sample(obs, torch.Generator().manual_seed(0))
    v = torch.randn(1, step.get_flat_params(policy).numel(), dtype=torch.float64)
    inf = torch.full((2,), math.inf, dtype=torch.float64)
    torch.testing.assert_close(
        _empirical_bug_clipped_actions(-inf, inf)(policy, obs, act, v),
        empirical_fisher_products(policy, obs, act, v),
    )


def test_replicates_are_deterministic_and_paired():
    budget = FisherBudget(envs=["InvertedPendulum-v5"], steps_per_iter=300, warmup_iters=0,
                          batch_states=20, replicates=3, n_directions=1, n_resamples=0)
    estimators = {"empirical": empirical_fisher_products, "analytic": analytic_fisher_products}
    a = replicate_fisher_products(budget, "InvertedPendulum-v5", 4, estimators)
    b = replicate_fisher_products(budget, "InvertedPendulum-v5", 4, estimators)
    for name in estimators:
        assert a["X"][name].shape == (3, a["n_params"])
        np.testing.assert_array_equal(a["X"][name], b["X"][name])
    np.testing.assert_array_equal(a["target"], b["target"])
