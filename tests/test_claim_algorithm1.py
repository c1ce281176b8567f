"""theory.algorithm1_monotonic (Algorithm 1) at the quick tier, and its negative control."""

import numpy as np
import pytest

from claims.core import Evidence, Status
from claims.theory.algorithm1 import (
    Algorithm1Monotonic,
    _mdp_with_flipped_advantages,
    iterate_algorithm1,
)
from trpo_ref.tabular import evaluate, random_mdp, random_policy

pytestmark = pytest.mark.quick

CLAIM = Algorithm1Monotonic()


@pytest.fixture(scope="module")
def runs():
    return CLAIM.run("quick"), CLAIM.run("quick", control=True)


def test_real_supported_and_control_refuted(runs):
    real, control = runs
    verdict = CLAIM.decide(real)
    assert verdict.status is Status.SUPPORTED, verdict.message
    assert "gridworld" in real.data["case"]
    assert CLAIM.decide(control).status is Status.REFUTED


def test_statistic_recomputes_from_data(runs):
    for evidence in runs:
        etas = np.asarray(evidence.artifacts["eta"])  # (runs, n_iterations + 1)
        verdict = CLAIM.decide(evidence)
        assert verdict.value == np.diff(etas, axis=1).min() == min(evidence.data["min_improvement"])
        assert verdict.n == etas.shape[0] * evidence.config["n_iterations"]
        np.testing.assert_array_equal(etas[:, 0], evidence.data["eta_first"])
        np.testing.assert_array_equal(etas[:, -1], evidence.data["eta_last"])


def test_flipped_mdp_negates_the_advantages_and_keeps_the_visitation():
    mdp = random_mdp(5, 4, 3, 0.9)
    pi = random_policy(2, 4, 3)
    ev, ev_flip = evaluate(mdp, pi), evaluate(_mdp_with_flipped_advantages(mdp), pi)
    np.testing.assert_allclose(ev_flip.adv, -ev.adv, atol=1e-12)
    np.testing.assert_allclose(ev_flip.rho, ev.rho, atol=1e-12)


def test_iterate_returns_true_etas():
    mdp = random_mdp(9, 3, 2, 0.8, n_mdps=2)
    pi0 = random_policy(4, 3, 2, batch_shape=(2,))
    etas, pi, fallbacks = iterate_algorithm1(mdp, pi0, 3)
    assert etas.shape == (4, 2) and fallbacks.shape == (3, 2)
    np.testing.assert_allclose(etas[0], evaluate(mdp, pi0).eta)
    np.testing.assert_allclose(etas[-1], evaluate(mdp, pi).eta)


def test_deterministic(runs):
    assert CLAIM.run("quick").summary == runs[0].summary


def test_empty_evidence_is_inconclusive():
    empty = Evidence(CLAIM.id, "quick", False, {"n_iterations": 10})
    assert CLAIM.decide(empty).status is Status.INCONCLUSIVE


def test_progress_figure_is_written(runs, tmp_path):
    paths = CLAIM.figures(runs[0], tmp_path)
    assert paths and all(p.exists() and p.stat().st_size > 0 for p in paths)
