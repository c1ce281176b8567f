"""Exact policy evaluation by linear solves (paper section 2), batched over MDPs and policies.

With P_pi[s, s'] = sum_a pi(a|s) P[s, a, s'] and r_pi[s] = sum_a pi(a|s) r[s, a]:

    V_pi  = (I - gamma P_pi)^{-1} r_pi
    Q_pi  = r + gamma P V_pi,      A_pi = Q_pi - V_pi
    rho_pi^T = mu0^T (I - gamma P_pi)^{-1}    (rho_pi(s) = sum_t gamma^t P(s_t = s), unnormalized:
                                               it sums to 1 / (1 - gamma))
    eta(pi) = mu0 . V_pi  (= rho_pi . r_pi)

Both solves use the same matrix (rho through its transpose), via ``np.linalg.solve`` on
(..., S, S), which loops over the batch in compiled code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trpo_ref.tabular.mdp import MDP
from trpo_ref.tabular.policy import deterministic_policy, validate_policy


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Exact quantities of one policy on one MDP (or of a batch; leading dims shared).

    v (..., S); q (..., S, A); adv (..., S, A) = q - v; rho (..., S): unnormalized discounted
    visitation, sums to 1 / (1 - gamma); eta (...,): expected discounted return from mu0.
    """

    v: np.ndarray
    q: np.ndarray
    adv: np.ndarray
    rho: np.ndarray
    eta: np.ndarray


def check_policy(mdp: MDP, pi: np.ndarray, name: str = "pi") -> np.ndarray:
    """validate_policy against the MDP's (S, A); returns the float64 array."""
    return validate_policy(pi, mdp.n_states, mdp.n_actions, name=name)


def broadcast_gamma(mdp: MDP, n_trailing: int) -> np.ndarray:
    """gamma reshaped to broadcast against arrays with ``n_trailing`` non-batch dims."""
    return mdp.gamma.reshape(mdp.gamma.shape + (1,) * n_trailing)


def bellman_matrix(mdp: MDP, pi: np.ndarray) -> np.ndarray:
    """I - gamma P_pi, shape (..., S, S). Unchecked: ``pi`` must already be a valid policy."""
    P_pi = np.einsum("...sa,...sat->...st", pi, mdp.P)
    return np.eye(mdp.n_states) - broadcast_gamma(mdp, 2) * P_pi


def action_values(mdp: MDP, v: np.ndarray) -> np.ndarray:
    """Q[s, a] = r[s, a] + gamma sum_s' P[s, a, s'] v[s'], shape (..., S, A)."""
    S, A = mdp.n_states, mdp.n_actions
    P_flat = mdp.P.reshape((*mdp.batch_shape, S * A, S))
    Pv = (P_flat @ v[..., None]).reshape((*v.shape[:-1], S, A))
    return mdp.r + broadcast_gamma(mdp, 2) * Pv


def state_values(mdp: MDP, pi: np.ndarray, M: np.ndarray | None = None) -> np.ndarray:
    """V_pi = (I - gamma P_pi)^{-1} r_pi, shape (..., S); ``M`` = bellman_matrix if known.
    Unchecked: ``pi`` must already be a valid policy."""
    M = bellman_matrix(mdp, pi) if M is None else M
    r_pi = (pi * mdp.r).sum(axis=-1)
    return np.linalg.solve(M, r_pi[..., None])[..., 0]


def evaluate_unchecked(mdp: MDP, pi: np.ndarray) -> Evaluation:
    """:func:`evaluate` without validating ``pi``: for internal paths whose policies are valid
    by construction (softmax outputs, already-checked inputs). Not part of the public API."""
    M = bellman_matrix(mdp, pi)
    v = state_values(mdp, pi, M)
    rho = np.linalg.solve(np.swapaxes(M, -1, -2), np.broadcast_to(mdp.mu0, v.shape)[..., None])
    q = action_values(mdp, v)
    return Evaluation(
        v=v, q=q, adv=q - v[..., None], rho=rho[..., 0], eta=(mdp.mu0 * v).sum(axis=-1)
    )


def evaluate(mdp: MDP, pi: np.ndarray) -> Evaluation:
    """Exact V, Q, A, rho and eta of policy ``pi`` (..., S, A) on ``mdp`` (section 2).

    Batch dims of ``mdp`` and ``pi`` broadcast (a batch of policies on one MDP works too).
    Raises ValueError if ``pi`` is not a policy of the MDP's shape.
    """
    return evaluate_unchecked(mdp, check_policy(mdp, pi))


def expected_return(mdp: MDP, pi: np.ndarray) -> np.ndarray:
    """eta(pi) = mu0 . (I - gamma P_pi)^{-1} r_pi alone (one solve; cheaper than evaluate)."""
    pi = check_policy(mdp, pi)
    return (mdp.mu0 * state_values(mdp, pi)).sum(axis=-1)


def optimal_policy(mdp: MDP, *, max_iter: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic optimal policy and its return: (pi_star (..., S, A), eta_star (...,)).

    Exact policy iteration, batched: start greedy in r, evaluate exactly, switch an action only
    where another is better by more than 1e-12 * max(1, max|Q|) (so ties cannot cycle), stop
    when no state switches. The result is optimal in every state up to that tolerance over
    (1 - gamma), i.e. to ~1e-10 relative for gamma <= 0.99; ties go to the lowest action index.
    """
    A = mdp.n_actions
    actions = np.broadcast_to(mdp.r.argmax(axis=-1), (*mdp.batch_shape, mdp.n_states)).copy()
    for _ in range(max_iter):
        pi = deterministic_policy(actions, A)
        v = state_values(mdp, pi)
        q = action_values(mdp, v)
        q_current = np.take_along_axis(q, actions[..., None], axis=-1)[..., 0]
        tol = 1e-12 * max(1.0, float(np.abs(q).max()))
        improve = q.max(axis=-1) > q_current + tol
        if not improve.any():
            return pi, (mdp.mu0 * v).sum(axis=-1)
        actions = np.where(improve, q.argmax(axis=-1), actions)
    raise RuntimeError(f"policy iteration did not converge in {max_iter} iterations")
