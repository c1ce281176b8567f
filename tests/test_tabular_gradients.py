"""trpo_ref.tabular.gradients: exact policy gradient, Fisher matrix and natural gradient."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trpo_ref.tabular import (
    MDP,
    evaluate,
    expected_return,
    fisher_matrix,
    fisher_vector_product,
    kl_mean,
    natural_gradient,
    policy_gradient,
    random_mdp,
    softmax,
    surrogate,
)

# Example counts: at least these, more if the hypothesis profile asks (tests/conftest.py:
# HYPOTHESIS_PROFILE=ci derandomizes, =thorough runs 2000).
PROPERTY = settings(max_examples=max(40, settings.default.max_examples), deadline=None)


@st.composite
def mdp_and_logits(draw, max_states: int = 4, max_actions: int = 3):
    seed = draw(st.integers(0, 2**31 - 1))
    S, A = draw(st.integers(1, max_states)), draw(st.integers(1, max_actions))
    gamma = draw(st.sampled_from([0.0, 0.5, 0.9, 0.99]))
    mdp = random_mdp(seed, S, A, gamma, sparsity=draw(st.sampled_from([0.0, 0.5])))
    theta = draw(st.sampled_from([0.5, 2.0])) * np.random.default_rng(seed).standard_normal((S, A))
    return mdp, theta


def _finite_difference_gradient(f, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        e = np.zeros_like(theta)
        e[idx] = h
        grad[idx] = (f(theta + e) - f(theta - e)) / (2 * h)
    return grad


@PROPERTY
@given(mdp_and_logits())
def test_policy_gradient_matches_finite_differences_of_eta_and_of_the_surrogate(case) -> None:
    mdp, theta = case
    g = policy_gradient(mdp, theta)
    scale = 1.0 / (1.0 - float(mdp.gamma))
    fd_eta = _finite_difference_gradient(lambda t: float(expected_return(mdp, softmax(t))), theta)
    np.testing.assert_allclose(g, fd_eta, atol=1e-7 * scale**2)
    # eq. (4): the surrogate has the same gradient at theta_old
    pi_old, ev_old = softmax(theta), evaluate(mdp, softmax(theta))
    fd_L = _finite_difference_gradient(
        lambda t: float(surrogate(mdp, pi_old, softmax(t), ev_old=ev_old)), theta
    )
    np.testing.assert_allclose(g, fd_L, atol=1e-7 * scale**2)


@PROPERTY
@given(mdp_and_logits(max_states=3, max_actions=3))
def test_fisher_is_the_hessian_of_mean_kl(case) -> None:
    mdp, theta = case
    S, A = theta.shape
    F = fisher_matrix(mdp, theta)
    pi_old = softmax(theta)
    ev_old = evaluate(mdp, pi_old)

    def f(t: np.ndarray) -> float:
        return float(kl_mean(mdp, pi_old, softmax(t), ev_old=ev_old))

    h = 1e-4
    H = np.zeros((S * A, S * A))
    for i in range(S * A):
        for j in range(S * A):
            ei = np.zeros(S * A)
            ej = np.zeros(S * A)
            ei[i], ej[j] = h, h
            ei, ej = ei.reshape(S, A), ej.reshape(S, A)
            H[i, j] = (
                f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej) + f(theta - ei - ej)
            ) / (4 * h * h)
    np.testing.assert_allclose(F, H, atol=1e-6)
    np.testing.assert_allclose(F, F.T)
    assert np.linalg.eigvalsh(F).min() >= -1e-12
    # constant shifts of one state's logits change nothing
    for s in range(S):
        shift = np.zeros((S, A))
        shift[s] = 1.0
        np.testing.assert_allclose(F @ shift.ravel(), 0.0, atol=1e-14)


@PROPERTY
@given(mdp_and_logits(max_states=5, max_actions=4))
def test_natural_gradient_solves_fisher_system_and_is_advantage_over_one_minus_gamma(case) -> None:
    mdp, theta = case
    F = fisher_matrix(mdp, theta)
    g = policy_gradient(mdp, theta)
    x = natural_gradient(mdp, theta)
    scale = 1.0 / (1.0 - float(mdp.gamma))
    np.testing.assert_allclose(F @ x.ravel(), g.ravel(), atol=1e-10 * scale)
    np.testing.assert_allclose(x.ravel(), np.linalg.pinv(F, rcond=1e-12) @ g.ravel(),
                               atol=1e-7 * scale)
    ev = evaluate(mdp, softmax(theta))
    visited = ev.rho > 0
    offset = x - ev.adv * scale  # Kakade: A / (1 - gamma) up to per-state constants
    np.testing.assert_allclose(offset[visited] - offset[visited][:, :1], 0.0, atol=1e-9 * scale)
    np.testing.assert_allclose(x.sum(axis=-1), 0.0, atol=1e-10 * scale)  # minimum norm
    x_f = fisher_vector_product(mdp, theta, x)
    np.testing.assert_allclose(x_f.ravel(), F @ x.ravel(), atol=1e-12 * scale)


def test_natural_gradient_is_zero_in_unvisited_states() -> None:
    P = np.zeros((2, 2, 2))
    P[:, :, 0] = 1.0
    mdp = MDP(P, np.array([[1.0, 0.0], [0.0, 1.0]]), 0.9, np.array([1.0, 0.0]))
    theta = np.zeros((2, 2))
    x = natural_gradient(mdp, theta)
    assert (x[1] == 0).all() and (x[0] != 0).all()
    assert (policy_gradient(mdp, theta)[1] == 0).all()


def test_per_state_constants_in_the_advantage_change_nothing() -> None:
    mdp = random_mdp(4, 5, 3, 0.9)
    theta = np.random.default_rng(0).standard_normal((5, 3))
    adv = evaluate(mdp, softmax(theta)).adv
    shifted = adv + np.arange(5.0)[:, None]
    np.testing.assert_allclose(policy_gradient(mdp, theta, adv=adv), policy_gradient(mdp, theta))
    np.testing.assert_allclose(
        policy_gradient(mdp, theta, adv=shifted), policy_gradient(mdp, theta), atol=1e-12
    )
    np.testing.assert_allclose(natural_gradient(mdp, theta, adv=shifted),
                               natural_gradient(mdp, theta), atol=1e-11)


def test_near_deterministic_policy_keeps_the_closed_form() -> None:
    """pinv with a cutoff would drop the tiny-probability directions; the closed form does not."""
    mdp = random_mdp(8, 3, 3, 0.9)
    theta = np.array([[30.0, 0.0, 0.0], [0.0, 25.0, 0.0], [0.0, 0.0, 0.0]])
    x = natural_gradient(mdp, theta)
    ev = evaluate(mdp, softmax(theta))
    expected = (ev.adv - ev.adv.mean(axis=-1, keepdims=True)) / (1 - 0.9)
    np.testing.assert_allclose(x, expected, rtol=1e-9, atol=1e-9)


def test_batched_gradients_equal_per_item() -> None:
    mdp = random_mdp(1, 4, 3, 0.95, n_mdps=6)
    theta = np.random.default_rng(2).standard_normal((6, 4, 3))
    g, x, F = policy_gradient(mdp, theta), natural_gradient(mdp, theta), fisher_matrix(mdp, theta)
    assert F.shape == (6, 12, 12)
    for i in range(6):
        np.testing.assert_allclose(g[i], policy_gradient(mdp[i], theta[i]), rtol=1e-12)
        np.testing.assert_allclose(x[i], natural_gradient(mdp[i], theta[i]), rtol=1e-12)
        np.testing.assert_allclose(F[i], fisher_matrix(mdp[i], theta[i]), rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: policy_gradient(m, np.zeros((3, 3))), r"theta has shape \(3, 3\)"),
        (lambda m: natural_gradient(m, np.full((3, 2), np.nan)), r"theta\[0, 0\] = nan"),
        (lambda m: fisher_matrix(m, np.zeros(6)), "theta has shape"),
        (lambda m: policy_gradient(m, np.zeros((3, 2)), adv=np.zeros((3, 3))), "adv has shape"),
        (lambda m: natural_gradient(m, np.zeros((3, 2)), adv=np.full((3, 2), np.inf)),
         "is not finite"),
        (lambda m: fisher_vector_product(m, np.zeros((3, 2)), np.zeros((2, 2))), "x has shape"),
    ],
)
def test_bad_inputs_raise_value_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(random_mdp(0, 3, 2, 0.9))
