"""Per-state divergences between policies and their mean / max over states (sections 3-4).

KL(p || q) = sum_a p_a log(p_a / q_a), with 0 log 0 = 0 and +inf where q_a = 0 < p_a.
D_TV(p || q) = 1/2 sum_a |p_a - q_a|. The paper's bounds use the max over states (eqs. 8-9:
alpha = max_s D_TV, max_s KL); the practical problem (eq. 12) uses the mean under rho_old.
"""

from __future__ import annotations

import numpy as np

from trpo_ref.tabular.evaluate import Evaluation, check_policy, evaluate_unchecked
from trpo_ref.tabular.mdp import MDP
from trpo_ref.tabular.policy import validate_policy


def kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p[..., s, :] || q[..., s, :]) of already-valid policies; shape (..., S). Unchecked."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = np.log(p / q)  # the accurate form when q ~ p
        overflow = (log_ratio == np.inf) & (q > 0)  # q < p * 1e-308: KL is large but finite
        if overflow.any():
            log_ratio = np.where(overflow, np.log(p) - np.log(q), log_ratio)
        terms = np.where(p > 0, p * log_ratio, 0.0)
    # True KL is >= 0; rounding can leave ~-1e-17 when p == q up to the last bit.
    return np.maximum(terms.sum(axis=-1), 0.0)


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-state KL(p(.|s) || q(.|s)); p, q (..., S, A) policies -> (..., S).

    0 log 0 = 0; +inf where q(a|s) = 0 < p(a|s). Rounding negatives are clipped to 0.
    """
    p = validate_policy(p, name="p")
    q = validate_policy(q, p.shape[-2], p.shape[-1], name="q")
    return kl_rows(p, q)


def kl_max(pi_old: np.ndarray, pi_new: np.ndarray) -> np.ndarray:
    """max_s KL(pi_old(.|s) || pi_new(.|s)), the divergence of eq. (9); shape (...,)."""
    return kl(pi_old, pi_new).max(axis=-1)


def tv_max(pi_old: np.ndarray, pi_new: np.ndarray) -> np.ndarray:
    """alpha = max_s D_TV(pi_old(.|s) || pi_new(.|s)), D_TV = 1/2 L1 (eq. 8); shape (...,)."""
    p = validate_policy(pi_old, name="pi_old")
    q = validate_policy(pi_new, p.shape[-2], p.shape[-1], name="pi_new")
    return tv_rows(p, q).max(axis=-1)


def tv_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """D_TV per state, (..., S), of already-valid policies. Unchecked."""
    return 0.5 * np.abs(p - q).sum(axis=-1)


def state_weights(rho: np.ndarray) -> np.ndarray:
    """rho normalized to a distribution over states: rho / sum(rho), shape (..., S)."""
    return rho / rho.sum(axis=-1, keepdims=True)


def mean_over_states(weights: np.ndarray, per_state: np.ndarray) -> np.ndarray:
    """sum_s weights[s] per_state[s], where a state of weight 0 contributes 0 even if its value
    is +inf (states never visited do not count)."""
    with np.errstate(invalid="ignore"):  # 0 * inf, discarded by the where
        return np.where(weights > 0, weights * per_state, 0.0).sum(axis=-1)


def kl_mean(
    mdp: MDP, pi_old: np.ndarray, pi_new: np.ndarray, *, ev_old: Evaluation | None = None
) -> np.ndarray:
    """E_{s ~ rho_old / sum(rho_old)} KL(pi_old(.|s) || pi_new(.|s)), eq. (12)'s constraint.

    ``ev_old`` (the evaluation of pi_old) is reused when given. Unvisited states (rho = 0)
    contribute nothing, even where their KL is infinite. Shape (...,).
    """
    pi_old = check_policy(mdp, pi_old, "pi_old")
    pi_new = check_policy(mdp, pi_new, "pi_new")
    ev_old = evaluate_unchecked(mdp, pi_old) if ev_old is None else ev_old
    return mean_over_states(state_weights(ev_old.rho), kl_rows(pi_old, pi_new))
