"""trpo_ref.tabular.mdp and policy: validation, random MDPs, the gridworld, policy helpers."""

from __future__ import annotations

import numpy as np
import pytest

from trpo_ref.tabular import (
    GOAL_STATE,
    GRID_SIZE,
    MDP,
    START_STATE,
    TRAP_STATE,
    deterministic_policy,
    evaluate,
    grid_state,
    gridworld,
    optimal_policy,
    random_mdp,
    random_policy,
    render_policy,
    softmax,
    uniform_policy,
    validate_policy,
)


def _two_state_arrays() -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    P = np.zeros((2, 2, 2))
    P[0, 0] = [1.0, 0.0]
    P[0, 1] = [0.0, 1.0]
    P[1, :] = [0.5, 0.5]
    r = np.array([[1.0, 0.0], [0.0, 2.0]])
    return P, r, 0.9, np.array([1.0, 0.0])


def test_valid_mdp_has_sizes_and_is_read_only() -> None:
    P, r, gamma, mu0 = _two_state_arrays()
    mdp = MDP(P, r, gamma, mu0)
    assert (mdp.n_states, mdp.n_actions, mdp.batch_shape) == (2, 2, ())
    assert mdp.P.dtype == np.float64
    with pytest.raises(ValueError, match="read-only"):
        mdp.P[0, 0, 0] = 0.5
    P[0, 0, 0] = 0.5  # the MDP holds its own copy
    assert mdp.P[0, 0, 0] == 1.0


def _bad(**changes):
    P, r, gamma, mu0 = _two_state_arrays()
    args = {"P": P, "r": r, "gamma": gamma, "mu0": mu0}
    for key, change in changes.items():
        args[key] = change(args[key])
    return args


def _set(index, value):
    def change(x):
        x = np.array(x, dtype=float)
        x[index] = value
        return x

    return change


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (_bad(P=_set((1, 0, 1), 0.4)), r"P\[1, 0, :\] sums to 0\.9, expected 1"),
        (_bad(P=_set((0, 1), [1.2, -0.2])), r"P\[0, 1, 1\] = -0\.2 is negative"),
        (_bad(P=_set((0, 0, 0), np.nan)), r"P\[0, 0, 0\] = nan is not finite"),
        (_bad(P=lambda P: P[:, :, :1]), r"P must have shape \(\.\.\., S, A, S\)"),
        (_bad(P=lambda P: P[0]), r"P must have shape"),
        (_bad(r=lambda r: np.zeros((3, 2))), r"r has shape \(3, 2\)"),
        (_bad(r=_set((1, 1), np.inf)), r"r\[1, 1\] = inf is not finite"),
        (_bad(gamma=lambda g: 1.0), r"gamma = 1 is outside \[0, 1\)"),
        (_bad(gamma=lambda g: -0.1), r"gamma = -0.1 is outside \[0, 1\)"),
        (_bad(gamma=lambda g: np.nan), r"gamma = nan is outside \[0, 1\)"),
        (_bad(mu0=lambda m: np.array([0.5, 0.4])), r"mu0\[:\] sums to 0\.9"),
        (_bad(mu0=lambda m: np.array([1.5, -0.5])), r"mu0\[1\] = -0\.5 is negative"),
        (_bad(mu0=lambda m: np.ones(3) / 3), r"mu0 has shape \(3,\)"),
        (_bad(P=lambda P: np.stack([P, P]), gamma=lambda g: [0.5, 1.0]),
         r"gamma\[1\] = 1 is outside"),
        (_bad(P=lambda P: "not an array"), r"P must be an array of real numbers"),
    ],
)
def test_bad_mdp_raises_value_error_naming_the_problem(args, message) -> None:
    with pytest.raises(ValueError, match=message):
        MDP(**args)


def test_batch_broadcasts_shared_parts_and_indexes() -> None:
    P, r, gamma, mu0 = _two_state_arrays()
    batch = MDP(np.stack([P, P, P]), r, [0.0, 0.5, 0.9], mu0)
    assert batch.batch_shape == (3,)
    assert batch.r.shape == (3, 2, 2) and batch.mu0.shape == (3, 2)
    one = batch[1]
    assert one.batch_shape == () and float(one.gamma) == 0.5
    np.testing.assert_array_equal(one.P, P)
    assert batch[1:].batch_shape == (2,)
    with pytest.raises(IndexError):
        MDP(P, r, gamma, mu0)[0]
    with pytest.raises(IndexError, match="at most 1 indices"):
        batch[0, 1]


def test_batched_validation_names_the_batch_index() -> None:
    P, r, gamma, mu0 = _two_state_arrays()
    bad = P.copy()
    bad[1, 1] = [0.7, 0.7]
    with pytest.raises(ValueError, match=r"P\[2, 1, 1, :\] sums to 1\.4"):
        MDP(np.stack([P, P, bad]), r, gamma, mu0)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 1.0])
def test_random_mdp_is_valid_deterministic_and_sparse(sparsity: float) -> None:
    a = random_mdp(3, 6, 3, 0.9, n_mdps=4, sparsity=sparsity, reward_scale=2.0)
    b = random_mdp(3, 6, 3, 0.9, n_mdps=4, sparsity=sparsity, reward_scale=2.0)
    np.testing.assert_array_equal(a.P, b.P)
    np.testing.assert_array_equal(a.r, b.r)
    assert a.batch_shape == (4,) and a.P.shape == (4, 6, 3, 6)
    n_kept = (a.P > 0).sum(axis=-1)
    assert (n_kept == max(1, 6 - round(sparsity * 6))).all()
    assert np.abs(a.r).max() <= 2.0
    assert not np.array_equal(a.P, random_mdp(4, 6, 3, 0.9, n_mdps=4, sparsity=sparsity).P)
    assert random_mdp(3, 6, 3, 0.9).batch_shape == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_states": 0}, "n_states >= 1"),
        ({"sparsity": 1.5}, "sparsity"),
        ({"gamma": 1.0}, "gamma"),
        ({"n_mdps": 0}, "n_mdps"),
        ({"reward_scale": -1.0}, "reward_scale"),
    ],
)
def test_random_mdp_rejects_bad_arguments(kwargs, message) -> None:
    args = {"seed": 0, "n_states": 3, "n_actions": 2, "gamma": 0.9} | kwargs
    with pytest.raises(ValueError, match=message):
        random_mdp(**args)


def test_gridworld_layout_moves_and_rewards() -> None:
    mdp = gridworld()
    assert (mdp.n_states, mdp.n_actions, float(mdp.gamma)) == (25, 4, 0.95)
    assert mdp.mu0[START_STATE] == 1.0 and START_STATE == 0
    up, right, down, left = range(4)
    # walls keep you in place
    assert mdp.P[grid_state(0, 0), up, grid_state(0, 0)] == 1.0
    assert mdp.P[grid_state(0, 0), left, grid_state(0, 0)] == 1.0
    assert mdp.P[grid_state(0, 0), right, grid_state(0, 1)] == 1.0
    assert mdp.P[grid_state(0, 0), down, grid_state(1, 0)] == 1.0
    # reward on entering the goal / the trap, nothing else
    assert mdp.r[grid_state(4, 3), right] == 1.0 and mdp.r[grid_state(3, 4), down] == 1.0
    assert mdp.r[grid_state(2, 1), right] == -1.0 and mdp.r[grid_state(1, 2), down] == -1.0
    assert (mdp.r != 0).sum() == 2 + 4
    # goal and trap absorb with zero reward
    for s in (GOAL_STATE, TRAP_STATE):
        assert (mdp.P[s, :, s] == 1.0).all() and (mdp.r[s] == 0).all()


def test_gridworld_optimum_is_eight_moves_around_the_trap() -> None:
    mdp = gridworld()
    pi_star, eta_star = optimal_policy(mdp)
    assert eta_star == pytest.approx(0.95**7, abs=1e-12)
    # follow the greedy path: 8 moves to the goal, never through the trap
    s, visited = START_STATE, []
    for _ in range(8):
        s = int(mdp.P[s, pi_star[s].argmax()].argmax())
        visited.append(s)
    assert s == GOAL_STATE and TRAP_STATE not in visited
    assert evaluate(mdp, uniform_policy(25, 4)).eta < 0  # the trap matters for a random walker


def test_render_policy_draws_arrows_goal_and_trap() -> None:
    text = render_policy(deterministic_policy(np.full(25, 1), 4))
    rows = text.splitlines()
    assert len(rows) == GRID_SIZE
    assert rows[0] == "> > > > >"
    assert rows[2].split()[2] == "X" and rows[4].split()[4] == "G"
    with pytest.raises(ValueError, match="shape"):
        render_policy(np.ones((4, 4)) / 4)


def test_softmax_is_stable_and_normalized() -> None:
    theta = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    pi = softmax(theta)
    np.testing.assert_allclose(pi[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(pi[1], [1 / 3] * 3)
    np.testing.assert_allclose(softmax(theta + 5.0), pi)


def test_random_policy_temperature_and_batch() -> None:
    pi = random_policy(0, 5, 4, batch_shape=(2, 3))
    assert pi.shape == (2, 3, 5, 4)
    validate_policy(pi, 5, 4)
    sharp = random_policy(0, 50, 4, temperature=0.01)
    assert np.median(sharp.max(axis=-1)) > 1 - 1e-10
    np.testing.assert_array_equal(random_policy(7, 3, 2), random_policy(7, 3, 2))
    with pytest.raises(ValueError, match="temperature"):
        random_policy(0, 3, 2, temperature=0.0)


@pytest.mark.parametrize(
    ("pi", "message"),
    [
        (np.array([[0.5, 0.4], [0.5, 0.5]]), r"pi\[0, :\] sums to 0\.9, expected 1"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), r"pi\[0, 1\] = -0\.5 is negative"),
        (np.array([[np.nan, 1.0], [0.5, 0.5]]), r"pi\[0, 0\] = nan is not finite"),
        (np.array([0.5, 0.5]), r"shape \(\.\.\., S, A\)"),
        (np.ones((3, 2)) / 2, r"pi has shape \(3, 2\), expected \(\.\.\., 2, 2\)"),
        (np.ones((2, 3)) / 3, r"expected \(\.\.\., 2, 2\)"),
    ],
)
def test_validate_policy_names_the_problem(pi: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_policy(pi, 2, 2)


def test_validate_policy_accepts_within_tolerance_and_returns_float64() -> None:
    pi = validate_policy([[0.5, 0.5 + 1e-10]], 1, 2)
    assert pi.dtype == np.float64
    with pytest.raises(ValueError, match="sums to"):
        validate_policy([[0.5, 0.5 + 1e-6]], 1, 2)


def test_deterministic_and_uniform_policies() -> None:
    np.testing.assert_array_equal(deterministic_policy(np.array([2, 0]), 3),
                                  [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(uniform_policy(2, 4), np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="actions must lie"):
        deterministic_policy(np.array([3]), 3)
