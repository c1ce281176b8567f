"""Exact policy gradient, Fisher matrix and natural gradient of a tabular softmax policy.

With pi = softmax(theta) per state, rho the unnormalized visitation of pi and w = rho / sum(rho):

    d eta / d theta[s, a] = rho(s) pi(a|s) A(s, a)                     (policy gradient theorem)
    F = E_{s ~ w}[diag(pi_s) - pi_s pi_s^T]   (block diagonal, (S*A, S*A))

F is the Hessian of theta' -> kl_mean(pi_theta, pi_theta') at theta' = theta (the paper's A in
s^T A s, App. C: "the analytic Hessian of the mean KL"). Each block is singular along the constant
shift of that state's logits, so the natural gradient is the minimum-norm solution pinv(F) g, in
closed form: for visited states (rho > 0) x[s] = sum(rho) * (A[s] - mean_K A[s]) on the support K
of pi(.|s) and 0 off it; 0 in unvisited states (Kakade 2002: the natural gradient is A / (1-gamma)
up to per-state constants, since sum(rho) = 1 / (1 - gamma)).

Every function accepts ``adv`` to replace the true advantage by an estimate. With an estimate
the gradient is the expected score-function estimate rho(s) pi(a|s) (A^(s, a) - sum_b pi(b|s)
A^(s, b)), which equals the formula above when sum_a pi A^ = 0 (true advantages).
"""

from __future__ import annotations

import numpy as np

from trpo_ref.tabular.divergence import state_weights
from trpo_ref.tabular.evaluate import Evaluation, evaluate_unchecked
from trpo_ref.tabular.mdp import MDP
from trpo_ref.tabular.policy import softmax


def check_logits(mdp: MDP, theta: np.ndarray, name: str = "theta") -> np.ndarray:
    """theta as float64 (..., S, A) logits; ValueError on a wrong shape or non-finite entry."""
    try:
        arr = np.asarray(theta, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real logits: {exc}") from None
    expected = (mdp.n_states, mdp.n_actions)
    if arr.ndim < 2 or arr.shape[-2:] != expected:
        raise ValueError(
            f"{name} has shape {arr.shape}, expected (..., {expected[0]}, {expected[1]})"
        )
    if not np.isfinite(arr).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name}{list(idx)} = {arr[idx]} is not finite")
    return arr


def check_advantage(adv: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An advantage table (estimate) broadcastable to ``shape``; finite; float64."""
    arr = np.asarray(adv, dtype=np.float64)
    try:
        np.broadcast_shapes(arr.shape, shape)
    except ValueError:
        raise ValueError(
            f"adv has shape {arr.shape}, which does not broadcast to {shape}"
        ) from None
    if arr.shape[-2:] != shape[-2:]:
        raise ValueError(f"adv has shape {arr.shape}, expected (..., {shape[-2]}, {shape[-1]})")
    if not np.isfinite(arr).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"adv{list(idx)} = {arr[idx]} is not finite")
    return arr


def _setup(
    mdp: MDP, theta: np.ndarray, adv: np.ndarray | None
) -> tuple[np.ndarray, Evaluation, np.ndarray]:
    pi = softmax(check_logits(mdp, theta))
    ev = evaluate_unchecked(mdp, pi)
    adv = ev.adv if adv is None else check_advantage(adv, ev.adv.shape)
    return pi, ev, adv


def gradient_from(rho: np.ndarray, pi: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """rho(s) pi(a|s) (adv(s, a) - sum_b pi(b|s) adv(s, b)); shape (..., S, A)."""
    centred = adv - (pi * adv).sum(axis=-1, keepdims=True)
    return rho[..., None] * pi * centred


def fisher_vector_from(weights: np.ndarray, pi: np.ndarray, x: np.ndarray) -> np.ndarray:
    """F x for F = blockdiag(w_s (diag(pi_s) - pi_s pi_s^T)); x and result (..., S, A)."""
    return weights[..., None] * pi * (x - (pi * x).sum(axis=-1, keepdims=True))


def fisher_quadratic_from(weights: np.ndarray, pi: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x^T F x = sum_s w_s Var_{a ~ pi_s}(x[s, a]) (>= 0 by construction); shape (...,)."""
    centred = x - (pi * x).sum(axis=-1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):  # huge x: inf, caught by the callers
        return (weights * (pi * centred**2).sum(axis=-1)).sum(axis=-1)


def natural_from(rho: np.ndarray, pi: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """pinv(F) g in closed form (see module docstring); shape (..., S, A).

    Per visited state, the minimum-norm solution of w_s B_s x = rho_s B_s adv with
    B_s = diag(pi_s) - pi_s pi_s^T: sum(rho) times the projection of adv onto the range of
    B_s, i.e. adv centred by its plain mean over the support K of pi_s, zero off K.
    """
    support = pi > 0
    n_support = support.sum(axis=-1, keepdims=True)
    mean_on_support = np.where(support, adv, 0.0).sum(axis=-1, keepdims=True) / n_support
    scale = np.where(rho > 0, rho.sum(axis=-1, keepdims=True), 0.0)
    return scale[..., None] * np.where(support, adv - mean_on_support, 0.0)


def policy_gradient(mdp: MDP, theta: np.ndarray, *, adv: np.ndarray | None = None) -> np.ndarray:
    """d eta / d theta = rho(s) pi(a|s) A(s, a) for pi = softmax(theta); shape (..., S, A).

    With ``adv``: the gradient of the surrogate built on that advantage estimate.
    """
    pi, ev, adv = _setup(mdp, theta, adv)
    return gradient_from(ev.rho, pi, adv)


def fisher_matrix(mdp: MDP, theta: np.ndarray) -> np.ndarray:
    """F = E_{s ~ rho/sum(rho)}[diag(pi_s) - pi_s pi_s^T], block diagonal, (..., S*A, S*A).

    Index s * A + a. Equals the Hessian of kl_mean(pi_theta, pi_theta') at theta' = theta.
    """
    pi = softmax(check_logits(mdp, theta))
    weights = state_weights(evaluate_unchecked(mdp, pi).rho)
    S, A = mdp.n_states, mdp.n_actions
    blocks = weights[..., None, None] * (
        pi[..., :, None] * np.eye(A) - pi[..., :, None] * pi[..., None, :]
    )  # (..., S, A, A)
    F = np.einsum("...sab,st->...satb", blocks, np.eye(S))
    return F.reshape((*F.shape[:-4], S * A, S * A))


def fisher_vector_product(mdp: MDP, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """F x without forming F; x and result (..., S, A)."""
    pi = softmax(check_logits(mdp, theta))
    x = check_logits(mdp, x, "x")
    return fisher_vector_from(state_weights(evaluate_unchecked(mdp, pi).rho), pi, x)


def natural_gradient(mdp: MDP, theta: np.ndarray, *, adv: np.ndarray | None = None) -> np.ndarray:
    """pinv(F) g, the minimum-norm natural gradient; shape (..., S, A).

    Satisfies F x = g exactly; in visited states x = (A - per-state constant) * sum(rho), with
    sum(rho) = 1 / (1 - gamma) (Kakade's natural policy gradient for softmax policies).
    """
    pi, ev, adv = _setup(mdp, theta, adv)
    return natural_from(ev.rho, pi, adv)
