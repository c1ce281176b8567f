"""theory.tr_direction and theory.beta_kl at the quick tier, and their negative controls."""

import itertools

import numpy as np
import pytest

from claims.catalogue.theory.mean_kl import step_scale_for_mean_kl
from claims.catalogue.theory.natural_gradient import (
    BETA_DELTAS,
    BetaLandsOnDelta,
    TrustRegionDirection,
    _kl_mean_gradient,
    cosine,
    remove_state_shifts,
    solve_trust_region,
)
from claims.framework.core import Evidence, Status
from trpo_ref.tabular import (
    evaluate,
    fisher_matrix,
    kl_mean,
    natural_gradient,
    random_mdp,
    softmax,
    surrogate,
    trust_region_step,
)
from trpo_ref.tabular.divergence import state_weights

pytestmark = pytest.mark.quick

DIRECTION = TrustRegionDirection()
BETA = BetaLandsOnDelta()


@pytest.fixture(scope="module")
def direction_runs():
    return DIRECTION.run("quick"), DIRECTION.run("quick", control=True)


@pytest.fixture(scope="module")
def beta_runs():
    return BETA.run("quick"), BETA.run("quick", control=True)


# ---- theory.tr_direction ---------------------------------------------------------------------


def test_direction_real_supported(direction_runs):
    verdict = DIRECTION.decide(direction_runs[0])
    assert verdict.status is Status.SUPPORTED, verdict.message
    assert verdict.n == DIRECTION.budgets["quick"].n_mdps + 1  # + the gridworld


def test_direction_control_vanilla_gradient_refuted(direction_runs):
    verdict = DIRECTION.decide(direction_runs[1])
    assert verdict.status is Status.REFUTED, verdict.message
    assert verdict.value < 0.95  # well below, not a near miss


def test_direction_statistic_recomputes(direction_runs):
    for evidence in direction_runs:
        verdict = DIRECTION.decide(evidence)
        assert verdict.value == min(evidence.data["cosine"]) == evidence.summary["min_cosine"]
        # the constraint is active at the solution: the step uses the whole KL budget
        for info in evidence.data["solver"]:
            assert info["kl_over_delta"] == pytest.approx(1.0, abs=1e-6)


def test_cosine_ignores_per_state_shifts():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 5, 3))
    shifted = x + rng.standard_normal((5, 1))
    assert cosine(shifted, y) == pytest.approx(cosine(x, y), abs=1e-12)
    assert cosine(x, x) == pytest.approx(1.0)
    np.testing.assert_allclose(remove_state_shifts(x).sum(axis=-1), 0.0, atol=1e-12)


def test_kl_mean_gradient_matches_finite_differences():
    mdp = random_mdp(1, 4, 3, 0.9)
    rng = np.random.default_rng(1)
    theta_old, theta_new = rng.standard_normal((2, 4, 3))
    pi_old = softmax(theta_old)
    ev = evaluate(mdp, pi_old)
    analytic = _kl_mean_gradient(state_weights(ev.rho), pi_old, softmax(theta_new))
    h = 1e-6
    numeric = np.zeros_like(theta_new)
    for idx in np.ndindex(theta_new.shape):
        e = np.zeros_like(theta_new)
        e[idx] = h
        numeric[idx] = (
            kl_mean(mdp, pi_old, softmax(theta_new + e), ev_old=ev)
            - kl_mean(mdp, pi_old, softmax(theta_new - e), ev_old=ev)
        ) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, atol=1e-8)


def test_solver_beats_the_natural_step_of_the_same_kl():
    """The SLSQP solution is feasible and at least as good as the natural-gradient step scaled
    to exact mean KL = delta (a feasible point), so it is a real maximizer, not a start point."""
    mdp = random_mdp(5, 5, 3, 0.9)
    theta = np.random.default_rng(2).standard_normal((5, 3))
    delta = 1e-3
    dtheta, info = solve_trust_region(mdp, theta, delta, max_iter=300)
    pi = softmax(theta)
    assert kl_mean(mdp, pi, softmax(theta + dtheta)) <= delta * (1 + 1e-9)
    s = natural_gradient(mdp, theta)
    t = step_scale_for_mean_kl(mdp, theta, s, delta)
    natural_value = surrogate(mdp, pi, softmax(theta + t * s))
    assert surrogate(mdp, pi, softmax(theta + dtheta)) >= natural_value - 1e-12
    assert info["surrogate_gain"] > 0


def test_direction_empty_evidence_is_inconclusive():
    assert (
        DIRECTION.decide(Evidence(DIRECTION.id, "quick", False, {})).status is Status.INCONCLUSIVE
    )


# ---- theory.beta_kl ----------------------------------------------------------------------------


def test_beta_real_supported(beta_runs):
    real = beta_runs[0]
    verdict = BETA.decide(real)
    assert verdict.status is Status.SUPPORTED, verdict.message
    errors = real.summary["max_abs_error_by_delta"]
    # |ratio - 1| shrinks as delta shrinks, roughly like sqrt(delta)
    values = [errors[str(d)] for d in BETA_DELTAS]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert 0.3 < real.summary["median_loglog_slope"] < 0.7


def test_beta_control_missing_two_refuted(beta_runs):
    control = beta_runs[1]
    verdict = BETA.decide(control)
    assert verdict.status is Status.REFUTED, verdict.message
    smallest = np.asarray(control.data["ratio"])[:, int(np.argmin(BETA_DELTAS))]
    np.testing.assert_allclose(smallest, 0.5, atol=0.01)  # the step lands at delta / 2


def test_beta_statistic_recomputes(beta_runs):
    for evidence in beta_runs:
        verdict = BETA.decide(evidence)
        ratios = np.asarray(evidence.data["ratio"])
        j = int(np.argmin(evidence.config["deltas"]))
        assert verdict.value == np.abs(ratios[:, j] - 1.0).max()
        assert verdict.value == evidence.summary["max_abs_error_by_delta"][str(BETA_DELTAS[j])]


@pytest.mark.parametrize("delta", [1e-2, 1e-4])
def test_engine_beta_matches_explicit_fisher(delta):
    """beta from trust_region_step equals sqrt(2 delta / s^T F s) with F formed explicitly."""
    mdp = random_mdp(4, 4, 3, 0.9)
    theta = np.random.default_rng(3).standard_normal((4, 3))
    s = natural_gradient(mdp, theta).ravel()
    sAs = s @ fisher_matrix(mdp, theta) @ s
    step = trust_region_step(mdp, theta, delta, max_backtracks=0)
    assert step.sAs == pytest.approx(sAs, rel=1e-12)
    assert step.beta == pytest.approx(np.sqrt(2 * delta / sAs), rel=1e-12)


def test_beta_empty_evidence_is_inconclusive():
    assert BETA.decide(Evidence(BETA.id, "quick", False, {})).status is Status.INCONCLUSIVE


def test_beta_figure_is_written(beta_runs, tmp_path):
    paths = BETA.figures(beta_runs[0], tmp_path)
    assert paths and all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_deterministic(direction_runs, beta_runs):
    assert BETA.run("quick").summary == beta_runs[0].summary
    assert DIRECTION.run("quick", control=True).summary == direction_runs[1].summary
