"""trpo_ref.tabular.divergence and bounds: KL / TV, the surrogate (eq. 3), Theorem 1 (eqs. 8, 9)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trpo_ref.tabular import (
    MDP,
    evaluate,
    expected_return,
    kl,
    kl_max,
    kl_mean,
    penalty_coefficient,
    random_mdp,
    random_policy,
    softmax,
    surrogate,
    surrogate_error_bound,
    theorem1_bound,
    theorem1_check,
    tv_max,
    uniform_policy,
)

# Example counts: at least these, more if the hypothesis profile asks (tests/conftest.py:
# HYPOTHESIS_PROFILE=ci derandomizes, =thorough runs 2000).
PROPERTY = settings(max_examples=max(100, settings.default.max_examples), deadline=None)


@st.composite
def policy_pairs(draw, max_states: int = 6, max_actions: int = 4):
    """(p, q): two policies on the same (S, A), sometimes equal, sometimes near-deterministic."""
    seed = draw(st.integers(0, 2**31 - 1))
    S, A = draw(st.integers(1, max_states)), draw(st.integers(1, max_actions))
    t_old, t_new = draw(st.sampled_from([0.03, 1.0, 5.0])), draw(st.sampled_from([0.03, 1.0, 5.0]))
    p = random_policy(seed, S, A, temperature=t_old)
    q = p.copy() if draw(st.booleans()) and draw(st.booleans()) else random_policy(
        seed + 1, S, A, temperature=t_new
    )
    return p, q


@st.composite
def theorem1_cases(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    S, A = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    gamma = draw(st.sampled_from([0.0, 0.5, 0.9, 0.99]) | st.floats(0.0, 0.99))
    mdp = random_mdp(seed, S, A, gamma, sparsity=draw(st.sampled_from([0.0, 0.5, 1.0])))
    # a new policy from a perturbation of the old one's logits, of any size
    size = draw(st.sampled_from([1e-4, 1e-2, 0.3, 3.0]))
    p = random_policy(seed + 2, S, A, temperature=draw(st.sampled_from([0.03, 1.0, 5.0])))
    noise = np.random.default_rng(seed + 3).standard_normal((S, A))
    q = softmax(np.log(np.maximum(p, 1e-300)) + size * noise)
    return mdp, p, q


def test_kl_and_tv_by_hand() -> None:
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    q = np.array([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    expected = [0.5 * np.log(2.0) + 0.5 * np.log(2.0 / 3.0), np.log(2.0), np.inf, 0.0]
    np.testing.assert_allclose(kl(p, q), expected, rtol=1e-14)
    assert kl_max(p, q) == np.inf
    assert tv_max(p, q) == pytest.approx(0.5)
    assert tv_max(p[:1], q[:1]) == pytest.approx(0.25)
    # q below p * 1e-308: p / q overflows, the KL does not
    tiny = np.array([[1.0 - 1e-320, 1e-320]])
    expected_tiny = 0.5 * (np.log(0.5) - np.log(1e-320)) + 0.5 * np.log(0.5)
    assert kl(p[:1], tiny)[0] == pytest.approx(expected_tiny, rel=1e-3)  # 1e-320 is subnormal


@PROPERTY
@given(policy_pairs())
def test_kl_nonnegative_zero_iff_equal_and_pinsker(pair) -> None:
    p, q = pair
    per_state = kl(p, q)
    assert (per_state >= 0).all()
    assert (kl(p, p) == 0).all() and tv_max(p, p) == 0
    tv_per_state = 0.5 * np.abs(p - q).sum(axis=-1)
    different = tv_per_state > 1e-6
    assert (per_state[different] > 0).all()
    assert (tv_per_state**2 <= per_state / 2 + 1e-15).all()  # Pinsker, per state
    assert tv_max(p, q) ** 2 <= kl_max(p, q) / 2 + 1e-15


def test_kl_mean_weights_by_visitation_and_ignores_unvisited_states() -> None:
    P = np.zeros((2, 2, 2))
    P[:, :, 0] = 1.0  # everything goes to state 0; state 1 is never visited from mu0 = (1, 0)
    mdp = MDP(P, np.zeros((2, 2)), 0.9, np.array([1.0, 0.0]))
    p = np.array([[0.5, 0.5], [0.5, 0.5]])
    q = np.array([[0.25, 0.75], [1.0, 0.0]])  # infinite KL in the unvisited state
    assert kl_mean(mdp, p, q) == pytest.approx(kl(p, q)[0])
    assert kl_max(p, q) == np.inf

    mdp2 = random_mdp(0, 4, 3, 0.8)
    p2, q2 = random_policy(1, 4, 3), random_policy(2, 4, 3)
    rho = evaluate(mdp2, p2).rho
    assert kl_mean(mdp2, p2, q2) == pytest.approx(rho @ kl(p2, q2) / rho.sum(), rel=1e-12)


def _bandit() -> tuple[MDP, np.ndarray]:
    return MDP(np.ones((1, 2, 1)), np.array([[1.0, 3.0]]), 0.5, np.array([1.0])), np.array(
        [[0.25, 0.75]]
    )


def test_bandit_surrogate_is_exact_and_bounds_by_hand() -> None:
    mdp, p = _bandit()
    q = np.array([[0.5, 0.5]])
    # one state: L(q) = eta(p) + rho q.A = 5 + 2 * (0.5 * -1.5 + 0.5 * 0.5) = 4 = eta(q)
    assert surrogate(mdp, p, q) == pytest.approx(4.0)
    assert expected_return(mdp, q) == pytest.approx(4.0)
    C = 4 * 1.5 * 0.5 / 0.5**2  # eps = max|A| = 1.5
    assert penalty_coefficient(mdp, p) == pytest.approx(C)
    assert theorem1_bound(mdp, p, q, "tv") == pytest.approx(4.0 - C * 0.25**2)
    kl_pq = 0.25 * np.log(0.5) + 0.75 * np.log(1.5)
    assert theorem1_bound(mdp, p, q, "kl") == pytest.approx(4.0 - C * kl_pq)
    assert surrogate_error_bound(mdp, p, q) == pytest.approx(
        4 * 0.25**2 * 0.5 * 1.5 / (0.5 * (1 - 0.5 * 0.75))
    )


def test_surrogate_equals_eta_at_the_old_policy_and_is_linear() -> None:
    mdp = random_mdp(3, 6, 3, 0.95, n_mdps=4)
    p = random_policy(4, 6, 3, batch_shape=(4,))
    q1, q2 = random_policy(5, 6, 3, batch_shape=(4,)), random_policy(6, 6, 3, batch_shape=(4,))
    eta = evaluate(mdp, p).eta
    np.testing.assert_allclose(surrogate(mdp, p, p), eta, rtol=1e-12)
    mix = surrogate(mdp, p, 0.3 * q1 + 0.7 * q2)
    np.testing.assert_allclose(mix, 0.3 * surrogate(mdp, p, q1) + 0.7 * surrogate(mdp, p, q2))


def test_surrogate_gap_is_second_order_along_a_direction() -> None:
    """eq. (4): |eta(pi_eps) - L(pi_eps)| = O(eps^2), so the ratio shrinks ~4x per halving."""
    mdp = random_mdp(11, 5, 3, 0.9)
    theta = np.random.default_rng(0).standard_normal((5, 3))
    direction = np.random.default_rng(1).standard_normal((5, 3))
    p = softmax(theta)
    gaps = []
    for eps in (1e-2, 5e-3, 2.5e-3):
        q = softmax(theta + eps * direction)
        gaps.append(abs(float(expected_return(mdp, q) - surrogate(mdp, p, q))))
    slopes = np.log2(np.array(gaps[:-1]) / np.array(gaps[1:]))
    np.testing.assert_allclose(slopes, 2.0, atol=0.1)


@settings(max_examples=max(400, settings.default.max_examples), deadline=None)
@given(theorem1_cases())
def test_theorem1_holds_in_both_forms_and_app_a(case) -> None:
    mdp, p, q = case
    check = theorem1_check(mdp, p, q)
    scale = 1.0 / (1.0 - float(mdp.gamma))
    assert check.slack_tv >= -1e-10 * scale
    assert check.slack_kl >= -1e-10 * scale
    assert abs(check.eta_new - check.surrogate) <= check.gap_bound + 1e-10 * scale
    assert check.bound_kl <= check.bound_tv + 1e-12 * scale  # alpha^2 <= KL / 2 <= KL


def test_theorem1_check_matches_the_separate_functions_and_batches() -> None:
    mdp = random_mdp(21, 10, 4, 0.9, n_mdps=30, sparsity=0.4)
    p = random_policy(22, 10, 4, batch_shape=(30,))
    q = random_policy(23, 10, 4, batch_shape=(30,), temperature=0.3)
    check = theorem1_check(mdp, p, q)
    ev_old = evaluate(mdp, p)
    np.testing.assert_allclose(check.bound_tv, theorem1_bound(mdp, p, q, "tv"), rtol=1e-12)
    np.testing.assert_allclose(
        check.bound_kl, theorem1_bound(mdp, p, q, form="kl", ev_old=ev_old), rtol=1e-12
    )
    np.testing.assert_allclose(check.eta_new, evaluate(mdp, q).eta, rtol=1e-12)
    np.testing.assert_allclose(check.penalty, penalty_coefficient(mdp, p), rtol=1e-12)
    np.testing.assert_allclose(check.tv_max, tv_max(p, q))
    np.testing.assert_allclose(check.kl_max, kl_max(p, q))
    np.testing.assert_allclose(check.gap_bound, surrogate_error_bound(mdp, p, q), rtol=1e-12)
    for i in (0, 17, 29):
        one = theorem1_check(mdp[i], p[i], q[i])
        assert one.slack_kl == pytest.approx(check.slack_kl[i], rel=1e-10)
        assert one.slack_tv == pytest.approx(check.slack_tv[i], rel=1e-10)


def test_zero_penalty_with_infinite_kl_gives_the_exact_surrogate() -> None:
    """gamma = 0: C = 0, and eta(q) = L(q) exactly even where KL(p || q) is infinite."""
    mdp = random_mdp(2, 3, 2, 0.0)
    p = uniform_policy(3, 2)
    q = np.array([[1.0, 0.0]] * 3)
    assert penalty_coefficient(mdp, p) == 0.0
    bound = theorem1_bound(mdp, p, q, "kl")
    assert np.isfinite(bound) and bound == pytest.approx(expected_return(mdp, q))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, p: theorem1_bound(m, p, p, form="l2"), "form must be one of"),
        (lambda m, p: surrogate(m, p, np.ones((3, 3)) / 3), r"pi_new has shape \(3, 3\)"),
        (lambda m, p: kl_mean(m, p[:2], p[:2]), r"pi_old has shape \(2, 2\)"),
        (lambda m, p: penalty_coefficient(m, p * 2), r"pi_old\[0, :\] sums to 2"),
        (lambda m, p: kl(p, np.ones((3, 3)) / 3), r"q has shape \(3, 3\)"),
    ],
)
def test_bad_inputs_raise_value_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(random_mdp(0, 3, 2, 0.9), uniform_policy(3, 2))
