"""trpo_ref.tabular.updates: trust-region, KL-penalty, gradient and Algorithm 1 steps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from trpo_ref.tabular import (
    MDP,
    algorithm1_step,
    deterministic_policy,
    evaluate,
    expected_return,
    gradient_step,
    gridworld,
    kl,
    kl_max,
    kl_mean,
    kl_penalty_step,
    natural_gradient,
    penalty_coefficient,
    policy_gradient,
    random_mdp,
    random_policy,
    softmax,
    surrogate,
    trust_region_step,
    uniform_policy,
)

# Example counts: at least these, more if the hypothesis profile asks (tests/conftest.py:
# HYPOTHESIS_PROFILE=ci derandomizes, =thorough runs 2000).
PROPERTY = settings(max_examples=max(80, settings.default.max_examples), deadline=None)


@st.composite
def mdp_and_logits(draw, max_states: int = 6, max_actions: int = 4):
    seed = draw(st.integers(0, 2**31 - 1))
    S, A = draw(st.integers(1, max_states)), draw(st.integers(1, max_actions))
    gamma = draw(st.sampled_from([0.0, 0.5, 0.9, 0.99]) | st.floats(0.0, 0.99))
    mdp = random_mdp(seed, S, A, gamma, sparsity=draw(st.sampled_from([0.0, 0.5, 1.0])))
    spread = draw(st.sampled_from([0.3, 1.0, 4.0]))
    return mdp, spread * np.random.default_rng(seed).standard_normal((S, A))


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


# --------------------------------------------------------------------------------------------
# trust_region_step
# --------------------------------------------------------------------------------------------


@PROPERTY
@given(mdp_and_logits(), st.sampled_from([1e-4, 1e-2, 0.1, 1.0]))
def test_trust_region_step_accepts_only_improving_steps_inside_the_region(case, delta) -> None:
    mdp, theta = case
    step = trust_region_step(mdp, theta, delta)
    pi = softmax(theta)
    if step.accepted:
        assert step.kl_mean <= delta
        assert step.surrogate_gain > 0
        assert step.kl_mean == pytest.approx(kl_mean(mdp, pi, step.pi), abs=1e-15)
        assert step.kl_max == pytest.approx(kl_max(pi, step.pi))
        assert step.surrogate_gain == pytest.approx(
            surrogate(mdp, pi, step.pi) - evaluate(mdp, pi).eta, rel=1e-6, abs=1e-12
        )
        assert step.eta_after == pytest.approx(expected_return(mdp, step.pi), rel=1e-12)
        s = natural_gradient(mdp, theta)
        expected = theta + step.beta * 0.5**step.n_backtracks * s
        np.testing.assert_allclose(step.theta, expected, rtol=1e-14, atol=1e-14)
        assert step.step_norm == pytest.approx(np.linalg.norm(step.theta - theta))
    else:
        assert _same_bits(step.theta, theta)
        assert step.eta_after == step.eta_before and step.kl_mean == 0 and step.step_norm == 0


def test_rejected_step_returns_theta_unchanged_bit_for_bit() -> None:
    mdp = random_mdp(3, 5, 3, 0.9)
    theta = np.random.default_rng(0).standard_normal((5, 3)) * np.pi  # not round numbers
    uphill_the_wrong_way = -natural_gradient(mdp, theta)
    step = trust_region_step(mdp, theta, 0.01, direction=uphill_the_wrong_way, max_backtracks=7)
    assert not step.accepted and step.n_backtracks == 7
    assert _same_bits(step.theta, theta) and step.theta is not theta
    assert _same_bits(step.pi, softmax(theta))
    assert step.eta_after == step.eta_before and step.surrogate_gain == 0


@pytest.mark.parametrize(
    ("direction", "reason"),
    [(np.zeros((5, 3)), "sAs = 0"), (np.full((5, 3), 1e300) * np.arange(3), "sAs overflows")],
)
def test_trust_region_guard_on_degenerate_quadratic_form(direction, reason) -> None:
    mdp = random_mdp(3, 5, 3, 0.9)
    theta = np.random.default_rng(1).standard_normal((5, 3))
    step = trust_region_step(mdp, theta, 0.01, direction=direction)
    assert not step.accepted, reason
    assert np.isnan(step.beta) and step.n_backtracks == 0
    assert _same_bits(step.theta, theta)


def test_trust_region_at_an_optimum_does_not_move() -> None:
    mdp = MDP(np.ones((1, 2, 1)), np.array([[1.0, 1.0]]), 0.9, np.array([1.0]))  # A = 0
    step = trust_region_step(mdp, np.array([[0.3, -0.2]]), 0.01)
    assert not step.accepted and step.sAs == 0


def test_beta_lands_the_step_at_mean_kl_close_to_delta() -> None:
    mdp = random_mdp(5, 8, 4, 0.95)
    theta = np.random.default_rng(3).standard_normal((8, 4))
    ratios = []
    for delta in (1e-2, 1e-4, 1e-6):
        step = trust_region_step(mdp, theta, delta)
        assert step.accepted and step.n_backtracks == 0
        ratios.append(float(step.kl_mean) / delta)
        assert step.sAs * step.beta**2 == pytest.approx(2 * delta)
    errors = np.abs(np.array(ratios) - 1.0)
    assert errors[-1] < 1e-2 and errors[-1] < errors[0]


def test_trust_region_batch_equals_loop_and_broadcasts_theta() -> None:
    mdp = random_mdp(7, 6, 3, 0.9, n_mdps=8)
    theta = np.random.default_rng(4).standard_normal((8, 6, 3)) * 2
    steps = trust_region_step(mdp, theta, 0.05, max_backtracks=5)
    for i in range(8):
        one = trust_region_step(mdp[i], theta[i], 0.05, max_backtracks=5)
        np.testing.assert_allclose(steps.theta[i], one.theta, rtol=1e-12, atol=1e-12)
        assert steps.accepted[i] == one.accepted and steps.n_backtracks[i] == one.n_backtracks
    shared = trust_region_step(mdp, theta[0], 0.05)  # one theta for all 8 MDPs
    assert shared.theta.shape == (8, 6, 3)


def test_estimated_advantage_drives_direction_and_test() -> None:
    mdp = random_mdp(2, 5, 3, 0.9)
    theta = np.random.default_rng(5).standard_normal((5, 3))
    true_adv = evaluate(mdp, softmax(theta)).adv
    same = trust_region_step(mdp, theta, 0.01, adv=true_adv)
    default = trust_region_step(mdp, theta, 0.01)
    np.testing.assert_allclose(same.theta, default.theta, rtol=1e-12)
    biased = true_adv + np.random.default_rng(6).standard_normal((5, 3))
    step = trust_region_step(mdp, theta, 0.01, adv=biased)
    direction = natural_gradient(mdp, theta, adv=biased)
    expected = theta + step.beta * 0.5**step.n_backtracks * direction
    np.testing.assert_allclose(step.theta, expected, rtol=1e-12, atol=1e-12)
    assert step.eta_after == pytest.approx(expected_return(mdp, step.pi))


# --------------------------------------------------------------------------------------------
# gradient_step and kl_penalty_step
# --------------------------------------------------------------------------------------------


def test_gradient_step_is_theta_plus_lr_times_gradient() -> None:
    mdp = random_mdp(4, 5, 3, 0.9)
    theta = np.random.default_rng(7).standard_normal((5, 3))
    step = gradient_step(mdp, theta, 1e-3)
    np.testing.assert_allclose(step.theta, theta + 1e-3 * policy_gradient(mdp, theta))
    assert step.accepted and step.beta == 1e-3
    assert step.eta_after > step.eta_before  # a small enough ascent step improves


def _penalized_objective(mdp, pi_old, ev_old, C):
    def objective(theta_flat):
        pi_new = softmax(theta_flat.reshape(pi_old.shape))
        L = surrogate(mdp, pi_old, pi_new, ev_old=ev_old)
        return float(L - C * kl_mean(mdp, pi_old, pi_new, ev_old=ev_old))

    return objective


@pytest.mark.parametrize(("seed", "gamma", "C"), [(0, 0.9, 0.5), (1, 0.5, 5.0), (2, 0.99, 50.0)])
def test_kl_penalty_step_maximizes_the_penalized_surrogate(seed, gamma, C) -> None:
    mdp = random_mdp(seed, 4, 3, gamma)
    theta = np.random.default_rng(seed).standard_normal((4, 3))
    pi_old = softmax(theta)
    objective = _penalized_objective(mdp, pi_old, evaluate(mdp, pi_old), C)
    step = kl_penalty_step(mdp, theta, C)
    best = objective(step.theta.ravel())
    found = minimize(lambda x: -objective(x), theta.ravel(), method="BFGS", options={"gtol": 1e-10})
    assert best >= -found.fun - 1e-10
    rng = np.random.default_rng(seed + 100)
    for _ in range(50):
        assert objective(step.theta.ravel() + 1e-3 * rng.standard_normal(12)) <= best + 1e-12
    assert step.kl_mean == pytest.approx(kl_mean(mdp, pi_old, step.pi))


def test_kl_penalty_step_shrinks_with_larger_penalty() -> None:
    mdp = random_mdp(5, 6, 4, 0.95)
    theta = np.zeros((6, 4))
    kls = [float(kl_penalty_step(mdp, theta, C).kl_mean) for C in (0.1, 1.0, 10.0, 100.0)]
    assert all(a > b for a, b in itertools.pairwise(kls))
    with pytest.raises(ValueError, match="C must be finite and > 0"):
        kl_penalty_step(mdp, theta, 0.0)


# --------------------------------------------------------------------------------------------
# algorithm1_step
# --------------------------------------------------------------------------------------------


@st.composite
def mdp_and_policy(draw):
    mdp, theta = draw(mdp_and_logits(max_states=5, max_actions=4))
    kind = draw(st.sampled_from(["soft", "sharp", "deterministic"]))
    if kind == "deterministic":
        actions = np.random.default_rng(int(abs(theta).sum() * 1e6)).integers(
            0, mdp.n_actions, mdp.n_states
        )
        return mdp, deterministic_policy(actions, mdp.n_actions)
    return mdp, softmax(theta * (10.0 if kind == "sharp" else 1.0))


def _objective(mdp, pi, pi_new, C):
    ev = evaluate(mdp, pi)
    div = kl_max(pi, pi_new)
    return surrogate(mdp, pi, pi_new, ev_old=ev) - (C * div if C > 0 else 0.0)


def _small_step_gain(mdp, pi, C):
    """max_t sum_s rho_s sqrt(2 Var_pi_s(A) t) - C t = (sum_s rho_s sd_s)^2 / (2 C): the best
    gain of Algorithm 1's objective to leading order in small steps."""
    ev = evaluate(mdp, pi)
    sd = np.sqrt((pi * (ev.adv - (pi * ev.adv).sum(axis=-1, keepdims=True)) ** 2).sum(axis=-1))
    return float((ev.rho * sd).sum()) ** 2 / (2 * C) if C > 0 else np.inf


@settings(max_examples=max(150, settings.default.max_examples), deadline=None)
@given(mdp_and_policy(), st.sampled_from([None, 0.0, 0.01, 1.0, 100.0]))
def test_algorithm1_step_never_lowers_the_objective_nor_eta(case, C) -> None:
    mdp, pi = case
    result = algorithm1_step(mdp, pi, C=C)
    scale = 1.0 / (1.0 - float(mdp.gamma))
    assert result.objective_after >= result.objective_before
    if result.fallback:  # allowed only where the best possible gain is within rounding of M:
        # L to ~1e-16 scale, and C * KL with KL of nearby float64 policies resolved to ~1e-16
        assert np.array_equal(result.pi, pi)
        C_used = float(result.penalty)
        assert _small_step_gain(mdp, pi, C_used) < 1e-13 * scale + 1e-15 * C_used
    assert result.objective_before == pytest.approx(evaluate(mdp, pi).eta, abs=1e-12 * scale)
    assert result.eta_after >= result.eta_before - 1e-10 * scale
    C_used = float(result.penalty)
    if C is None:
        assert C_used == pytest.approx(float(penalty_coefficient(mdp, pi)))
    assert result.objective_after == pytest.approx(
        _objective(mdp, pi, result.pi, C_used), abs=1e-12 * scale
    )


@settings(max_examples=max(60, settings.default.max_examples), deadline=None)
@given(mdp_and_policy(), st.sampled_from([None, 0.05, 2.0]))
def test_algorithm1_step_is_the_argmax(case, C) -> None:
    """No nearby policy, nor any mixture with the old one, scores higher (up to rounding)."""
    mdp, pi = case
    result = algorithm1_step(mdp, pi, C=C)
    C_used = float(result.penalty)
    scale = 1.0 / (1.0 - float(mdp.gamma))
    tol = 1e-14 * C_used + 1e-12 * scale  # rounding of C * KL and of L
    best = float(result.objective_after)
    rng = np.random.default_rng(0)
    log_new = np.log(np.maximum(result.pi, 1e-300))
    for size in (1e-6, 1e-4, 1e-2):
        for _ in range(10):
            other = softmax(log_new + size * rng.standard_normal(pi.shape))
            assert _objective(mdp, pi, other, C_used) <= best + tol
    for w in np.linspace(0.0, 1.0, 6):
        assert _objective(mdp, pi, (1 - w) * pi + w * result.pi, C_used) <= best + tol
    # States that move share the same KL: the max-KL budget is used everywhere. (Not checked
    # where spending it needs a probability below float64's range, q = p * exp(-t / p): the
    # solver stops at 1e-300 there, losing < 1e-290; nor for budgets near that range.)
    moved = kl(pi, result.pi)
    clear = (moved > 1e-14) & (np.where(pi > 0, result.pi, 1.0).min(axis=-1) > 1e-290)
    if clear.any() and C_used > 0 and result.kl_max < 100:
        np.testing.assert_allclose(moved[clear], result.kl_max, rtol=1e-6, atol=1e-14)


def test_algorithm1_moves_mass_outside_the_support_of_a_deterministic_policy_by_hand() -> None:
    """One state, r = (0, 1), gamma = 0.5, pi = (1, 0): A = (0, 1), rho = 2. Moving m to action 1
    costs KL = -log(1 - m) = t and gains rho m = 2 (1 - exp(-t)); the best t solves
    2 exp(-t) = C, so with C = 0.5 the new policy is (0.25, 0.75), KL log 4."""
    mdp = MDP(np.ones((1, 2, 1)), np.array([[0.0, 1.0]]), 0.5, np.array([1.0]))
    result = algorithm1_step(mdp, np.array([[1.0, 0.0]]), C=0.5)
    np.testing.assert_allclose(result.pi, [[0.25, 0.75]], rtol=1e-12)
    assert result.kl_max == pytest.approx(np.log(4.0), rel=1e-12)
    assert result.objective_after == pytest.approx(2 * 0.75 - 0.5 * np.log(4.0), rel=1e-12)
    # with C above rho * A = 2 the step is not worth it: t* = 0
    stay = algorithm1_step(mdp, np.array([[1.0, 0.0]]), C=2.5)
    np.testing.assert_array_equal(stay.pi, [[1.0, 0.0]])


def test_algorithm1_with_zero_penalty_is_a_policy_iteration_step() -> None:
    mdp = random_mdp(12, 6, 3, 0.9)
    pi = uniform_policy(6, 3)
    result = algorithm1_step(mdp, pi, C=0.0)
    greedy = deterministic_policy(evaluate(mdp, pi).adv.argmax(axis=-1), 3)
    np.testing.assert_allclose(result.pi, greedy)


def test_algorithm1_keeps_unvisited_states() -> None:
    P = np.zeros((2, 2, 2))
    P[:, :, 0] = 1.0
    mdp = MDP(P, np.array([[1.0, 0.0], [0.0, 1.0]]), 0.9, np.array([1.0, 0.0]))
    pi = uniform_policy(2, 2)
    result = algorithm1_step(mdp, pi)
    np.testing.assert_array_equal(result.pi[1], pi[1])
    assert result.pi[0, 0] > 0.5


def test_algorithm1_climbs_the_gridworld_monotonically() -> None:
    mdp = gridworld()
    pi = uniform_policy(25, 4)
    etas = [float(evaluate(mdp, pi).eta)]
    for _ in range(15):
        result = algorithm1_step(mdp, pi)
        pi = result.pi
        etas.append(float(result.eta_after))
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(etas))
    assert etas[-1] > etas[0]


def test_algorithm1_batch_equals_loop() -> None:
    mdp = random_mdp(13, 5, 3, 0.95, n_mdps=6)
    pi = random_policy(14, 5, 3, batch_shape=(6,))
    batch = algorithm1_step(mdp, pi)
    for i in range(6):
        one = algorithm1_step(mdp[i], pi[i])
        np.testing.assert_allclose(batch.pi[i], one.pi, rtol=1e-9, atol=1e-12)
        assert batch.eta_after[i] == pytest.approx(one.eta_after, rel=1e-10)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, t: trust_region_step(m, t, 0.0), "delta = 0.0 must be finite and > 0"),
        (lambda m, t: trust_region_step(m, t, np.nan), "delta"),
        (lambda m, t: trust_region_step(m, t, 0.01, backtrack=1.0), "backtrack = 1.0"),
        (lambda m, t: trust_region_step(m, t, 0.01, max_backtracks=-1), "max_backtracks"),
        (lambda m, t: trust_region_step(m, t[:2], 0.01), r"theta has shape \(2, 2\)"),
        (lambda m, t: trust_region_step(m, t, 0.01, direction=t[:, :1]), "direction has shape"),
        (lambda m, t: gradient_step(m, t, np.inf), "lr = inf"),
        (lambda m, t: algorithm1_step(m, softmax(t), C=-1.0), "C must be finite and >= 0"),
        (lambda m, t: algorithm1_step(m, t), r"pi\[0, :\] sums to"),
    ],
)
def test_bad_inputs_raise_value_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(random_mdp(0, 3, 2, 0.9), np.ones((3, 2)))
