"""theory.mean_kl_bound (eq. 9 with mean KL; max/mean KL audit) at the quick tier + control."""

import numpy as np
import pytest

from claims.catalogue.theory.mean_kl import (
    AUDIT_DELTAS,
    MeanKLBound,
    max_over_mean_kl,
    mean_kl_bound_check,
    step_scale_for_mean_kl,
)
from claims.framework.core import Evidence, Status
from trpo_ref.tabular import (
    MDP,
    evaluate,
    kl_mean,
    natural_gradient,
    random_mdp,
    softmax,
    surrogate,
    theorem1_bound,
)

pytestmark = pytest.mark.quick

CLAIM = MeanKLBound()


@pytest.fixture(scope="module")
def runs():
    return CLAIM.run("quick"), CLAIM.run("quick", control=True)


def _recheck(record: dict) -> dict:
    """Recompute a recorded triple from its raw arrays, with trpo_ref.tabular only."""
    mdp = MDP(
        np.array(record["P"]), np.array(record["r"]), record["gamma"], np.array(record["mu0"])
    )
    pi_old, pi_new = np.array(record["pi_old"]), np.array(record["pi_new"])
    ev_old = evaluate(mdp, pi_old)
    eps = np.abs(ev_old.adv).max()
    gamma = record["gamma"]
    power = 1 if record["penalty_coefficient"] == "4 eps gamma / (1 - gamma)" else 2
    C = 4.0 * eps * gamma / (1.0 - gamma) ** power
    eta_new = float(evaluate(mdp, pi_new).eta)
    surr = float(surrogate(mdp, pi_old, pi_new))
    klm = float(kl_mean(mdp, pi_old, pi_new))
    return {
        "slack": eta_new - surr + C * klm,
        "eta_new": eta_new,
        "surrogate": surr,
        "kl_mean": klm,
        "coef": C,
        "max_kl_bound": float(theorem1_bound(mdp, pi_old, pi_new, form="kl")),
    }


def test_real_no_counterexample_found(runs):
    real, _ = runs
    verdict = CLAIM.decide(real)
    assert verdict.status is Status.SUPPORTED, verdict.message
    assert not real.summary["counterexample_found"]
    assert "not a proof" in verdict.message
    budget = CLAIM.budgets["quick"]
    assert real.summary["n_hypothesis_triples"] == budget.n_families * budget.pairs_per_family
    assert real.summary["n_optimizer_runs"] == budget.n_optimizer_seeds * (
        1 + budget.n_restarts
    )
    assert verdict.n == real.summary["n_examples"]


def test_control_search_finds_a_counterexample_that_rechecks(runs):
    _, control = runs
    verdict = CLAIM.decide(control)
    assert verdict.status is Status.REFUTED, verdict.message
    record = control.data["min_slack_example"]
    again = _recheck(record)
    assert again["slack"] < CLAIM.rule.threshold
    assert again["slack"] == pytest.approx(record["slack"], rel=1e-9, abs=1e-12)
    assert again["slack"] == pytest.approx(verdict.value, rel=1e-9, abs=1e-12)
    # the same triple satisfies the real Theorem 1 (max KL, right constant): the bug is the cause
    assert again["eta_new"] >= again["max_kl_bound"] - 1e-10


def test_recorded_examples_recheck(runs):
    for evidence in runs:
        for key in ("min_slack_example", "max_ratio_example"):
            record = evidence.data[key]
            again = _recheck(record)
            for name in ("slack", "eta_new", "surrogate", "kl_mean", "coef"):
                assert again[name] == pytest.approx(record[name], rel=1e-9, abs=1e-12), name


def test_statistic_recomputes_from_data(runs):
    for evidence in runs:
        verdict = CLAIM.decide(evidence)
        runs_min = [r["min_slack"] for r in evidence.data["optimizer_runs"]]
        expected = min(min(evidence.data["family_min_slack"]), min(runs_min))
        assert verdict.value == expected == evidence.summary["min_slack"]
        assert evidence.data["min_slack_example"]["slack"] == pytest.approx(expected, abs=1e-12)
        assert (verdict.status is Status.REFUTED) == evidence.summary["counterexample_found"]


def test_hand_computed_single_state_case():
    # one state, actions with rewards 1 and 0, gamma 1/2, pi_old uniform: V = 1, A = +-1/2,
    # rho = 2; pi_new = (3/4, 1/4): eta_new = L = 3/2 (no state distribution to shift),
    # kl_mean = 1/2 log(4/3), C = 4 * 1/2 * 1/2 / (1/2)^2 = 4, slack = C kl_mean.
    mdp = MDP(np.ones((1, 2, 1)), np.array([[1.0, 0.0]]), 0.5, np.array([1.0]))
    pi_old, pi_new = np.array([[0.5, 0.5]]), np.array([[0.75, 0.25]])
    out = mean_kl_bound_check(mdp, pi_old, pi_new, ev_old=evaluate(mdp, pi_old), control=False)
    assert out["eta_new"] == pytest.approx(1.5)
    assert out["surrogate"] == pytest.approx(1.5)
    assert out["coef"] == pytest.approx(4.0)
    assert out["slack"] == pytest.approx(2.0 * np.log(4.0 / 3.0))
    control = mean_kl_bound_check(mdp, pi_old, pi_new, ev_old=evaluate(mdp, pi_old), control=True)
    assert control["coef"] == pytest.approx(2.0)  # 4 * 1/2 * 1/2 / (1/2)


@pytest.mark.parametrize("delta", [1e-3, 1e-2, 1e-1])
def test_step_scale_lands_exactly_on_delta(delta):
    mdp = random_mdp(3, 6, 3, 0.9, n_mdps=5)
    theta = np.random.default_rng(0).standard_normal((5, 6, 3))
    s = natural_gradient(mdp, theta)
    t = step_scale_for_mean_kl(mdp, theta, s, delta)
    assert np.all(t > 0)
    kl = kl_mean(mdp, softmax(theta), softmax(theta + t[:, None, None] * s))
    np.testing.assert_allclose(kl, delta, rtol=1e-10)


def test_audit_max_kl_is_at_least_mean_kl():
    mdp = random_mdp(5, 5, 3, 0.95, n_mdps=10, sparsity=0.5)
    theta = np.random.default_rng(1).standard_normal((10, 5, 3))
    ratio = max_over_mean_kl(mdp, theta, AUDIT_DELTAS)
    assert ratio.shape == (len(AUDIT_DELTAS), 10)
    assert np.all(ratio >= 1.0 - 1e-9)  # max over states >= any weighted mean


def test_audit_summary_is_ordered(runs):
    s = runs[0].summary
    assert 1.0 <= s["audit_median"] <= s["audit_p90"] <= s["audit_max"]
    assert s["audit_gridworld_max"] >= s["audit_gridworld_uniform"] >= 1.0


def test_empty_evidence_is_inconclusive():
    verdict = CLAIM.decide(Evidence(CLAIM.id, "quick", False, {}))
    assert verdict.status is Status.INCONCLUSIVE


def test_figure_is_written(runs, tmp_path):
    paths = CLAIM.figures(runs[0], tmp_path)
    assert paths and all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_deterministic(runs):
    again = CLAIM.run("quick", control=True)
    assert again.summary == runs[1].summary
