"""theory.algorithm1_monotonic (Algorithm 1, judged on eq. (10)) at the quick tier, its
wrong-bound negative control, and its verdicts on hand-built evidence."""

import numpy as np
import pytest

from claims.catalogue.theory.algorithm1 import (
    TOLERANCE,
    Algorithm1Monotonic,
    iterate_algorithm1,
    penalty_without_horizon,
    theorem1_penalty,
)
from claims.framework.core import Evidence, Status
from trpo_ref.tabular import algorithm1_step, evaluate, random_mdp, random_policy

pytestmark = pytest.mark.quick

CLAIM = Algorithm1Monotonic()


@pytest.fixture(scope="module")
def runs():
    return CLAIM.run("quick"), CLAIM.run("quick", control=True)


def test_real_supported_and_wrong_bound_control_refuted(runs):
    real, control = runs
    verdict = CLAIM.decide(real)
    assert verdict.status is Status.SUPPORTED, verdict.message
    assert "gridworld" in real.data["case"]
    refuted = CLAIM.decide(control)
    assert refuted.status is Status.REFUTED, refuted.message
    # the control breaks eq. (10), not monotonicity: eta still never falls under it
    assert control.summary["min_improvement"] >= TOLERANCE


def test_sensitivity_shows_how_much_room_theorem1_leaves(runs):
    table = runs[0].summary["eq10_slack_under_other_penalties"]
    assert table["C = 4 eps gamma (no horizon factor)"]["min_slack"] < TOLERANCE
    assert table["C = 0 (policy iteration)"]["min_slack"] < TOLERANCE


def test_statistic_recomputes_from_data(runs):
    for evidence in runs:
        etas = np.asarray(evidence.artifacts["eta"])  # (runs, n_iterations + 1)
        verdict = CLAIM.decide(evidence)
        assert verdict.value == min(evidence.data["min_slack"])
        assert evidence.summary["min_improvement"] == np.diff(etas, axis=1).min()
        assert verdict.n == etas.shape[0] * evidence.config["n_iterations"]
        np.testing.assert_array_equal(etas[:, 0], evidence.data["eta_first"])
        np.testing.assert_array_equal(etas[:, -1], evidence.data["eta_last"])
        assert CLAIM.samples(evidence) and min(CLAIM.samples(evidence).values()) == verdict.value


def test_eq10_slack_by_hand():
    """slack = [eta(pi_1) - eta(pi_0)] - [M_0(pi_1) - M_0(pi_0)] with M_0 = L - C max KL."""
    mdp = random_mdp(9, 3, 2, 0.8, n_mdps=2)
    pi0 = random_policy(4, 3, 2, batch_shape=(2,))
    out = iterate_algorithm1(mdp, pi0, 1)
    step = algorithm1_step(mdp, pi0)
    eta0, eta1 = evaluate(mdp, pi0).eta, evaluate(mdp, step.pi).eta
    expected = (eta1 - eta0) - (step.objective_after - step.objective_before)
    np.testing.assert_allclose(out["slack"][0], expected, atol=1e-12)
    np.testing.assert_allclose(out["eta"][[0, 1]], [eta0, eta1], atol=1e-12)


def test_control_penalty_is_theorem1s_times_one_minus_gamma_squared():
    mdp = random_mdp(3, 3, 2, 0.9)
    ev = evaluate(mdp, random_policy(1, 3, 2))
    np.testing.assert_allclose(penalty_without_horizon(mdp, ev),
                               theorem1_penalty(mdp, ev) * 0.1**2)


def _evidence(min_slack):
    return Evidence(CLAIM.id, "quick", False, {"n_iterations": 5},
                    {"min_slack": min_slack},
                    {"n_eq10_violations": 0, "min_improvement": 0.0, "n_decreasing_steps": 0,
                     "n_solver_fallbacks": 0, "mean_total_improvement": 0.0,
                     "median_fraction_of_gap_closed": 0.0})


@pytest.mark.parametrize(("min_slack", "status"), [
    ([1e-3, 0.0], Status.SUPPORTED),
    ([1e-3, -1e-10], Status.SUPPORTED),  # the float64 tolerance is inclusive
    ([1e-3, -2e-10], Status.REFUTED),
    ([], Status.INCONCLUSIVE),
])
def test_decide_on_hand_built_evidence(min_slack, status):
    assert CLAIM.decide(_evidence(min_slack)).status is status


def test_deterministic(runs):
    assert CLAIM.run("quick", control=True).summary == runs[1].summary


def test_progress_figure_is_written(runs, tmp_path):
    paths = CLAIM.figures(runs[0], tmp_path)
    assert paths and all(p.exists() and p.stat().st_size > 0 for p in paths)
