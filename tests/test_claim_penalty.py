"""theory.penalty_crawls at the quick tier, and its negative control."""

import numpy as np
import pytest

from claims.catalogue.theory.penalty import (
    TARGET,
    TR_DELTA,
    PenaltyCrawls,
    _penalty_bug_no_horizon,
    climb,
    normalized_return,
)
from claims.framework.core import Evidence, Status
from claims.framework.stats import bootstrap_ci
from trpo_ref.tabular import (
    evaluate,
    gridworld,
    optimal_policy,
    penalty_coefficient,
    random_mdp,
    trust_region_step,
    uniform_policy,
)

pytestmark = pytest.mark.quick

CLAIM = PenaltyCrawls()


@pytest.fixture(scope="module")
def runs():
    return CLAIM.run("quick"), CLAIM.run("quick", control=True)


def test_real_penalty_crawls(runs):
    real, _ = runs
    verdict = CLAIM.decide(real)
    assert verdict.status is Status.SUPPORTED, verdict.message
    assert verdict.ci[0] >= CLAIM.rule.threshold
    assert real.summary["n_censored_trust_region"] == 0


def test_control_without_horizon_factor_does_not_crawl(runs):
    _, control = runs
    verdict = CLAIM.decide(control)
    assert verdict.status is Status.REFUTED, verdict.message
    assert verdict.ci[1] < CLAIM.rule.threshold


def test_statistic_and_interval_recompute_from_data(runs):
    for evidence in runs:
        verdict = CLAIM.decide(evidence)
        pen = np.asarray(evidence.data["rounds_penalty"], dtype=float)
        tr = np.asarray(evidence.data["rounds_trust_region"], dtype=float)
        np.testing.assert_array_equal(evidence.data["ratio"], pen / tr)
        assert verdict.value == np.median(pen / tr)
        assert verdict.ci == bootstrap_ci(pen / tr, np.median, seed=evidence.config["seed"])
        assert verdict.n == len(pen) == evidence.summary["n_mdps"]


def test_censoring_is_recorded(runs):
    for evidence in runs:
        cap = evidence.config["max_rounds"]
        for method in ("penalty", "trust_region"):
            rounds = np.asarray(evidence.data[f"rounds_{method}"])
            assert np.all((rounds >= 1) & (rounds <= cap + 1))
            np.testing.assert_array_equal(evidence.data[f"censored_{method}"], rounds > cap)


def test_gridworld_trust_region_rounds_replay(runs):
    """Replay the gridworld trust-region climb: 90% is first reached at the recorded round."""
    real, _ = runs
    assert real.data["mdp"][0] == "gridworld"
    k_recorded = real.data["rounds_trust_region"][0]
    mdp = gridworld()
    theta = np.zeros((mdp.n_states, mdp.n_actions))
    eta_start = evaluate(mdp, uniform_policy(mdp.n_states, mdp.n_actions)).eta
    eta_star = optimal_policy(mdp)[1]
    progress = []
    for _ in range(k_recorded):
        step = trust_region_step(mdp, theta, TR_DELTA)
        theta = step.theta
        progress.append(float(normalized_return(step.eta_after, eta_start, eta_star)))
    assert progress[-1] >= TARGET
    assert all(p < TARGET for p in progress[:-1])


def test_normalized_return_hand_values():
    assert normalized_return(np.float64(2.0), np.float64(1.0), np.float64(3.0)) == 0.5
    assert normalized_return(np.float64(1.0), np.float64(1.0), np.float64(3.0)) == 0.0
    assert normalized_return(np.float64(3.0), np.float64(1.0), np.float64(3.0)) == 1.0


def test_control_penalty_is_the_theory_one_times_horizon_squared():
    mdp = random_mdp(2, 5, 3, 0.9, n_mdps=4)
    pi = np.broadcast_to(uniform_policy(5, 3), (4, 5, 3))
    np.testing.assert_allclose(
        _penalty_bug_no_horizon(mdp, pi), penalty_coefficient(mdp, pi) * (1 - 0.9) ** 2
    )


def test_climb_counts_censored_runs_past_the_cap():
    rounds, curves = climb(gridworld(), "penalty", max_rounds=3)
    assert rounds == 4  # the theory's C cannot reach 90% on the gridworld in 3 rounds
    assert curves.shape == (4,) and curves[0] == 0.0
    assert np.all(np.diff(curves) >= -1e-12)  # Algorithm 1 is monotone


def test_too_few_mdps_is_inconclusive():
    evidence = Evidence(
        CLAIM.id, "quick", False, {"seed": 0, "max_rounds": 10}, data={"ratio": [3.0]}
    )
    assert CLAIM.decide(evidence).status is Status.INCONCLUSIVE


def test_figure_is_written(runs, tmp_path):
    paths = CLAIM.figures(runs[0], tmp_path)
    assert paths and all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_deterministic(runs):
    again = CLAIM.run("quick", control=True)
    assert again.summary == runs[1].summary
    assert again.data == runs[1].data
