"""theory.performance_difference (eq. 1), theory.cpi_mixture_bound (eq. 6) and
theory.is_estimator_unbiased (eq. 14): quick-tier runs with their controls, and verdicts on
hand-built evidence."""

import numpy as np
import pytest

from claims.catalogue.theory.identities import advantage_sum, sample_is_estimates
from claims.framework.core import Evidence, Status
from claims.framework.registry import get
from trpo_ref.tabular import MDP, evaluate, random_mdp, random_policy

S, R, U = Status.SUPPORTED, Status.REFUTED, Status.INCONCLUSIVE
EXACT = ("theory.performance_difference", "theory.cpi_mixture_bound")


@pytest.mark.parametrize("claim_id", EXACT)
def test_exact_claims_supported_and_controls_refuted(claim_id):
    claim = get(claim_id)
    real, control = claim.run("quick"), claim.run("quick", control=True)
    assert claim.decide(real).status is S, claim.decide(real)
    assert claim.decide(control).status is R, claim.decide(control)
    assert claim.run("quick").data == real.data  # deterministic
    assert min(claim.samples(real).values()) == min(real.data[next(iter(real.data))])


def test_eq1_by_hand_on_a_two_state_mdp():
    """Two states, one action each way: pi~ = pi makes the advantage sum 0; the control (pi's
    visitation) equals the true one then, and differs once pi~ moves."""
    mdp = random_mdp(3, 2, 2, 0.9)
    pi = random_policy(1, 2, 2)
    assert advantage_sum(mdp, pi, pi, control=False) == pytest.approx(0.0, abs=1e-12)
    new = random_policy(2, 2, 2)
    gain = evaluate(mdp, new).eta - evaluate(mdp, pi).eta
    assert advantage_sum(mdp, pi, new, control=False) == pytest.approx(gain, abs=1e-12)
    assert abs(advantage_sum(mdp, pi, new, control=True) - gain) > 1e-6


def test_is_estimator_mean_matches_the_exact_surrogate_gain():
    mdp = random_mdp(5, 3, 2, 0.5)
    pi, new = random_policy(6, 3, 2, temperature=2.0), random_policy(7, 3, 2, temperature=2.0)
    ev = evaluate(mdp, pi)
    exact = float((ev.rho * (new * ev.adv).sum(-1)).sum())
    x = sample_is_estimates(MDP(mdp.P, mdp.r, 0.5, mdp.mu0), pi, new, ev.adv, 20000,
                            np.random.default_rng(0), control=False)
    assert abs(x.mean() - exact) < 4 * x.std() / np.sqrt(x.size)


def test_is_estimator_control_refuted():
    claim = get("theory.is_estimator_unbiased")
    control = claim.run("quick", control=True)
    assert claim.decide(control).status is R


def _z(claim_id, z):
    return Evidence(claim_id, "quick", False, {}, {"z": z, "temperature": [1.0] * len(z)},
                    {"median_per_trajectory_variance": 1.0})


@pytest.mark.parametrize(("evidence", "status"), [
    (Evidence("theory.performance_difference", "quick", False, {},
              {"group_max_relative_error": [1e-14, 1e-10]}), S),
    (Evidence("theory.performance_difference", "quick", False, {},
              {"group_max_relative_error": [1e-14, 2e-10]}), R),
    (Evidence("theory.performance_difference", "quick", False, {}, {}), U),
    (Evidence("theory.cpi_mixture_bound", "quick", False, {},
              {"group_min_relative_slack": [1e-3, -1e-10]}), S),
    (Evidence("theory.cpi_mixture_bound", "quick", False, {},
              {"group_min_relative_slack": [1e-3, -1e-9]}), R),
    (Evidence("theory.cpi_mixture_bound", "quick", False, {}, {}), U),
    (_z("theory.is_estimator_unbiased", [0.5] * 400), S),  # all covered, Wilson lo > 0.9
    (_z("theory.is_estimator_unbiased", [0.5] * 37 + [3.0] * 3), U),  # 0.925 of 40
    (_z("theory.is_estimator_unbiased", [5.0] * 30 + [0.0] * 10), R),
    (_z("theory.is_estimator_unbiased", []), U),
])
def test_decide_on_hand_built_evidence(evidence, status):
    verdict = get(evidence.claim_id).decide(evidence)
    assert verdict.status is status, verdict
