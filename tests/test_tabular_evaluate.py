"""trpo_ref.tabular.evaluate: exact V, Q, A, rho, eta and optimal policies."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trpo_ref.tabular import (
    MDP,
    deterministic_policy,
    evaluate,
    expected_return,
    optimal_policy,
    random_mdp,
    random_policy,
    uniform_policy,
)

# Example counts: at least these, more if the hypothesis profile asks (tests/conftest.py:
# HYPOTHESIS_PROFILE=ci derandomizes, =thorough runs 2000).
PROPERTY = settings(max_examples=max(100, settings.default.max_examples), deadline=None)


@st.composite
def mdp_and_policy(draw, max_states: int = 6, max_actions: int = 4):
    seed = draw(st.integers(0, 2**31 - 1))
    S, A = draw(st.integers(1, max_states)), draw(st.integers(1, max_actions))
    gamma = draw(st.sampled_from([0.0, 0.5, 0.9, 0.99]) | st.floats(0.0, 0.99))
    sparsity = draw(st.sampled_from([0.0, 0.5, 1.0]))
    temperature = draw(st.sampled_from([0.03, 1.0, 5.0]))
    mdp = random_mdp(seed, S, A, gamma, sparsity=sparsity)
    return mdp, random_policy(seed + 1, S, A, temperature=temperature)


def test_one_state_bandit_by_hand() -> None:
    mdp = MDP(np.ones((1, 2, 1)), np.array([[1.0, 3.0]]), 0.5, np.array([1.0]))
    ev = evaluate(mdp, np.array([[0.25, 0.75]]))
    # r_pi = 2.5, v = 2.5 / (1 - 0.5), q = r + 0.5 v, rho = 1 / (1 - 0.5)
    np.testing.assert_allclose(ev.v, [5.0])
    np.testing.assert_allclose(ev.q, [[3.5, 5.5]])
    np.testing.assert_allclose(ev.adv, [[-1.5, 0.5]])
    np.testing.assert_allclose(ev.rho, [2.0])
    assert ev.eta == pytest.approx(5.0)


def test_two_state_chain_by_hand() -> None:
    P = np.zeros((2, 2, 2))
    P[0, 0] = [1.0, 0.0]  # stay
    P[0, 1] = [0.0, 1.0]  # go to state 1
    P[1, :] = [0.5, 0.5]
    r = np.array([[1.0, 0.0], [0.0, 2.0]])
    mdp = MDP(P, r, 0.9, np.array([1.0, 0.0]))
    ev = evaluate(mdp, deterministic_policy(np.array([1, 1]), 2))
    # v1 = 2 + 0.9 (v0 + v1) / 2, v0 = 0.9 v1  =>  v1 = 400/29, v0 = 360/29
    np.testing.assert_allclose(ev.v, [360 / 29, 400 / 29], rtol=1e-13)
    np.testing.assert_allclose(ev.rho, [110 / 29, 180 / 29], rtol=1e-13)
    np.testing.assert_allclose(ev.q[0], [353 / 29, 360 / 29], rtol=1e-13)
    assert ev.adv[0, 0] == pytest.approx(-7 / 29, rel=1e-12)
    assert ev.eta == pytest.approx(360 / 29, rel=1e-13)


def test_gamma_zero_is_the_immediate_reward() -> None:
    mdp = random_mdp(0, 4, 3, 0.0)
    pi = random_policy(1, 4, 3)
    ev = evaluate(mdp, pi)
    np.testing.assert_allclose(ev.v, (pi * mdp.r).sum(axis=-1))
    np.testing.assert_allclose(ev.rho, mdp.mu0)
    np.testing.assert_allclose(ev.q, mdp.r)


@PROPERTY
@given(mdp_and_policy())
def test_evaluation_identities(case) -> None:
    mdp, pi = case
    ev = evaluate(mdp, pi)
    gamma = float(mdp.gamma)
    scale = 1.0 / (1.0 - gamma)
    assert ev.rho.sum() == pytest.approx(scale, rel=1e-10)
    assert (ev.rho >= -1e-12).all()
    np.testing.assert_allclose((pi * ev.adv).sum(axis=-1), 0.0, atol=1e-11 * scale)
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    r_pi = (pi * mdp.r).sum(axis=-1)
    np.testing.assert_allclose(ev.v, r_pi + gamma * P_pi @ ev.v, atol=1e-11 * scale)
    np.testing.assert_allclose(ev.q, mdp.r + gamma * mdp.P @ ev.v, atol=1e-11 * scale)
    assert ev.eta == pytest.approx(ev.rho @ r_pi, abs=1e-10 * scale)
    assert ev.eta == pytest.approx(expected_return(mdp, pi), abs=1e-12 * scale)
    assert np.abs(ev.v).max() <= scale + 1e-9  # |r| <= 1


def test_batch_equals_per_item_loop() -> None:
    mdp = random_mdp(5, 7, 3, 0.95, n_mdps=20, sparsity=0.3)
    pi = random_policy(6, 7, 3, batch_shape=(20,), temperature=0.5)
    ev = evaluate(mdp, pi)
    for i in range(20):
        one = evaluate(mdp[i], pi[i])
        for field in ("v", "q", "adv", "rho", "eta"):
            np.testing.assert_allclose(getattr(ev, field)[i], getattr(one, field), rtol=1e-12,
                                       atol=1e-12)


def test_batch_of_policies_on_one_mdp_and_batched_gamma() -> None:
    mdp = random_mdp(1, 5, 2, 0.9)
    pis = random_policy(2, 5, 2, batch_shape=(3, 4))
    ev = evaluate(mdp, pis)
    assert ev.v.shape == (3, 4, 5) and ev.eta.shape == (3, 4)
    assert ev.eta[2, 1] == pytest.approx(evaluate(mdp, pis[2, 1]).eta, rel=1e-12)
    batch = MDP(np.stack([mdp.P] * 3), mdp.r, [0.0, 0.5, 0.9], mdp.mu0)
    pi = uniform_policy(5, 2)
    etas = evaluate(batch, pi).eta
    for i, gamma in enumerate([0.0, 0.5, 0.9]):
        assert etas[i] == pytest.approx(evaluate(MDP(mdp.P, mdp.r, gamma, mdp.mu0), pi).eta)


@pytest.mark.parametrize(
    ("pi", "message"),
    [
        (np.full((3, 2), 0.4), r"pi\[0, :\] sums to 0\.8"),
        (np.full((2, 2), 0.5), r"pi has shape \(2, 2\), expected \(\.\.\., 3, 2\)"),
        (np.array([[1.1, -0.1], [0.5, 0.5], [0.5, 0.5]]), "is negative"),
    ],
)
def test_evaluate_rejects_bad_policies(pi: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(random_mdp(0, 3, 2, 0.9), pi)


@settings(max_examples=max(25, settings.default.max_examples), deadline=None)
@given(mdp_and_policy(max_states=3, max_actions=3))
def test_optimal_policy_beats_every_deterministic_policy_in_every_state(case) -> None:
    mdp, _ = case
    pi_star, eta_star = optimal_policy(mdp)
    v_star = evaluate(mdp, pi_star).v
    assert ((pi_star == 0) | (pi_star == 1)).all()
    scale = 1.0 / (1.0 - float(mdp.gamma))
    best = -np.inf
    for actions in itertools.product(range(mdp.n_actions), repeat=mdp.n_states):
        ev = evaluate(mdp, deterministic_policy(np.array(actions), mdp.n_actions))
        assert (ev.v <= v_star + 1e-10 * scale).all()
        best = max(best, float(ev.eta))
    assert eta_star == pytest.approx(best, abs=1e-10 * scale)


def test_optimal_policy_batched_matches_loop() -> None:
    mdp = random_mdp(9, 6, 3, 0.99, n_mdps=5)
    pi_star, eta_star = optimal_policy(mdp)
    for i in range(5):
        assert eta_star[i] == pytest.approx(optimal_policy(mdp[i])[1], rel=1e-12)
        assert evaluate(mdp[i], pi_star[i]).eta == pytest.approx(eta_star[i], rel=1e-12)
