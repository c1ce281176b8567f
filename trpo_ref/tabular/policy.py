"""Tabular stochastic policies: arrays ``pi[..., s, a]`` of probabilities, and softmax logits.

The softmax parameterization ``pi(a|s) = exp(theta[s, a]) / sum_b exp(theta[s, b])`` is the one
the gradient, Fisher and update functions use (one free logit per state-action pair).
"""

from __future__ import annotations

import numpy as np

from trpo_ref.tabular.mdp import PROB_TOL, check_distributions


def softmax(theta: np.ndarray) -> np.ndarray:
    """pi(a|s) = exp(theta[s, a]) / sum_b exp(theta[s, b]) over the last axis; shape kept.

    Shifted by the row maximum, so large logits do not overflow; very negative logits may
    underflow to probability exactly 0 (the rest of the package handles zeros).
    """
    theta = np.asarray(theta, dtype=np.float64)
    z = np.exp(theta - theta.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def uniform_policy(n_states: int, n_actions: int) -> np.ndarray:
    """pi(a|s) = 1 / n_actions everywhere; shape (n_states, n_actions)."""
    if n_states < 1 or n_actions < 1:
        raise ValueError(f"need n_states >= 1 and n_actions >= 1, got {n_states}, {n_actions}")
    return np.full((n_states, n_actions), 1.0 / n_actions)


def random_policy(
    seed: int | np.random.Generator | np.random.SeedSequence,
    n_states: int,
    n_actions: int,
    *,
    temperature: float = 1.0,
    batch_shape: tuple[int, ...] = (),
) -> np.ndarray:
    """softmax(standard normal logits / temperature); shape batch_shape + (n_states, n_actions).

    Low temperature gives near-deterministic policies (at temperature 0.01 the top action
    typically has probability 1 - 1e-10 or more; some probabilities underflow to 0).
    """
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature = {temperature} must be finite and > 0")
    if n_states < 1 or n_actions < 1:
        raise ValueError(f"need n_states >= 1 and n_actions >= 1, got {n_states}, {n_actions}")
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((*tuple(batch_shape), n_states, n_actions))
    return softmax(logits / temperature)


def validate_policy(
    pi: np.ndarray,
    n_states: int | None = None,
    n_actions: int | None = None,
    *,
    name: str = "pi",
    tol: float = PROB_TOL,
) -> np.ndarray:
    """Return ``pi`` as float64 after checking it is a policy of shape (..., n_states, n_actions).

    Raises ValueError naming the problem and the first offending index, e.g.
    ``"pi[3, :] sums to 0.9, expected 1 (tolerance 1e-08)"``, for a wrong shape, a non-finite or
    negative entry, or a row not summing to 1 within ``tol``. ``None`` sizes are not checked.
    """
    try:
        arr = np.asarray(pi, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of probabilities: {exc}") from None
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (..., S, A), got {arr.shape}")
    expected = (
        n_states if n_states is not None else arr.shape[-2],
        n_actions if n_actions is not None else arr.shape[-1],
    )
    if arr.shape[-2:] != expected or 0 in arr.shape[-2:]:
        raise ValueError(
            f"{name} has shape {arr.shape}, expected (..., {expected[0]}, {expected[1]}) "
            "with S, A >= 1"
        )
    check_distributions(arr, name, tol)
    return arr


def deterministic_policy(actions: np.ndarray, n_actions: int) -> np.ndarray:
    """One-hot policy from an integer array of actions (..., S); shape (..., S, n_actions)."""
    actions = np.asarray(actions)
    if actions.size and (actions.min() < 0 or actions.max() >= n_actions):
        raise ValueError(
            f"actions must lie in [0, {n_actions}), got {actions.min()}..{actions.max()}"
        )
    return (actions[..., None] == np.arange(n_actions)).astype(np.float64)
