"""The surrogate L (eq. 3) and the lower bounds of Theorem 1 (eqs. 8, 9), exact and batched.

    L_pi(pi~) = eta(pi) + sum_s rho_pi(s) sum_a pi~(a|s) A_pi(s, a)                   (eq. 3)
    eps = max_{s,a} |A_pi(s, a)|,   C = 4 eps gamma / (1 - gamma)^2
    eta(pi~) >= L_pi(pi~) - C alpha^2,   alpha = max_s D_TV(pi(.|s) || pi~(.|s))      (eq. 8)
    eta(pi~) >= L_pi(pi~) - C max_s KL(pi(.|s) || pi~(.|s))                          (eq. 9)
    |eta(pi~) - L_pi(pi~)| <= 4 alpha^2 gamma eps / ((1 - gamma)(1 - gamma (1 - alpha)))  (App. A)

eps is the max over all states and actions, visited or not, as in the paper. Every function
takes an optional ``ev_old`` (the :class:`Evaluation` of pi_old) so that callers evaluating many
new policies against one old one solve for it once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trpo_ref.tabular.divergence import kl_rows, tv_rows
from trpo_ref.tabular.evaluate import (
    Evaluation,
    broadcast_gamma,
    check_policy,
    evaluate_unchecked,
    state_values,
)
from trpo_ref.tabular.mdp import MDP

FORMS = ("tv", "kl")


def _old(mdp: MDP, pi_old: np.ndarray, ev_old: Evaluation | None) -> tuple[np.ndarray, Evaluation]:
    pi_old = check_policy(mdp, pi_old, "pi_old")
    return pi_old, evaluate_unchecked(mdp, pi_old) if ev_old is None else ev_old


def surrogate_from(ev_old: Evaluation, pi_new: np.ndarray) -> np.ndarray:
    """eq. (3) from an existing evaluation of pi_old; ``pi_new`` unchecked."""
    return ev_old.eta + (ev_old.rho * (pi_new * ev_old.adv).sum(axis=-1)).sum(axis=-1)


def max_abs_advantage(ev_old: Evaluation) -> np.ndarray:
    """eps = max_{s,a} |A_pi_old(s, a)|; shape (...,)."""
    return np.abs(ev_old.adv).max(axis=(-2, -1))


def _penalty(gamma: np.ndarray, eps: np.ndarray) -> np.ndarray:
    return 4.0 * eps * gamma / (1.0 - gamma) ** 2


def _gap_bound(gamma: np.ndarray, eps: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return 4.0 * alpha**2 * gamma * eps / ((1.0 - gamma) * (1.0 - gamma * (1.0 - alpha)))


def penalty_from(mdp: MDP, ev_old: Evaluation) -> np.ndarray:
    """C = 4 eps gamma / (1 - gamma)^2 from an existing evaluation; shape (...,)."""
    return _penalty(broadcast_gamma(mdp, 0), max_abs_advantage(ev_old))


def penalized(C: np.ndarray, divergence: np.ndarray) -> np.ndarray:
    """C * divergence, with 0 where C == 0 (even if the divergence is +inf: then the bound is
    exact, e.g. gamma = 0 or all advantages 0, and eta(pi~) = L_pi(pi~))."""
    with np.errstate(invalid="ignore"):
        return np.where(C > 0, C * divergence, 0.0)


def surrogate(
    mdp: MDP, pi_old: np.ndarray, pi_new: np.ndarray, *, ev_old: Evaluation | None = None
) -> np.ndarray:
    """L_{pi_old}(pi_new) = eta(pi_old) + sum_s rho_old(s) sum_a pi_new(a|s) A_old(s, a), eq. (3).

    Shape (...,). Equals eta(pi_old) at pi_new = pi_old and matches eta's gradient there (eq. 4).
    """
    _, ev_old = _old(mdp, pi_old, ev_old)
    return surrogate_from(ev_old, check_policy(mdp, pi_new, "pi_new"))


def penalty_coefficient(
    mdp: MDP, pi_old: np.ndarray, *, ev_old: Evaluation | None = None
) -> np.ndarray:
    """C = 4 eps gamma / (1 - gamma)^2 with eps = max_{s,a} |A_pi_old(s, a)| (Theorem 1)."""
    _, ev_old = _old(mdp, pi_old, ev_old)
    return penalty_from(mdp, ev_old)


def theorem1_bound(
    mdp: MDP,
    pi_old: np.ndarray,
    pi_new: np.ndarray,
    form: str = "tv",
    *,
    ev_old: Evaluation | None = None,
) -> np.ndarray:
    """Right-hand side of Theorem 1, a lower bound on eta(pi_new); shape (...,).

    form "tv": L - C alpha^2, alpha = max_s D_TV (eq. 8).
    form "kl": L - C max_s KL(pi_old || pi_new) (eq. 9); -inf where that KL is infinite.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    pi_old, ev_old = _old(mdp, pi_old, ev_old)
    pi_new = check_policy(mdp, pi_new, "pi_new")
    if form == "tv":
        divergence = tv_rows(pi_old, pi_new).max(axis=-1) ** 2
    else:
        divergence = kl_rows(pi_old, pi_new).max(axis=-1)
    return surrogate_from(ev_old, pi_new) - penalized(penalty_from(mdp, ev_old), divergence)


def surrogate_error_bound(
    mdp: MDP, pi_old: np.ndarray, pi_new: np.ndarray, *, ev_old: Evaluation | None = None
) -> np.ndarray:
    """App. A's two-sided bound on |eta(pi_new) - L_{pi_old}(pi_new)|; shape (...,).

    4 alpha^2 gamma eps / ((1 - gamma)(1 - gamma (1 - alpha))), alpha = max_s D_TV.
    """
    pi_old, ev_old = _old(mdp, pi_old, ev_old)
    pi_new = check_policy(mdp, pi_new, "pi_new")
    alpha = tv_rows(pi_old, pi_new).max(axis=-1)
    return _gap_bound(broadcast_gamma(mdp, 0), max_abs_advantage(ev_old), alpha)


@dataclass(frozen=True, eq=False)
class Theorem1Check:
    """Everything a Theorem-1 check needs for (batches of) pairs (pi_old, pi_new); all (...,).

    slack_tv = eta_new - bound_tv and slack_kl = eta_new - bound_kl: Theorem 1 says both are
    >= 0. gap_bound is App. A's bound on |eta_new - surrogate|.
    """

    eta_old: np.ndarray
    eta_new: np.ndarray
    surrogate: np.ndarray
    eps: np.ndarray
    penalty: np.ndarray  # C
    tv_max: np.ndarray  # alpha
    kl_max: np.ndarray
    bound_tv: np.ndarray
    bound_kl: np.ndarray
    slack_tv: np.ndarray
    slack_kl: np.ndarray
    gap_bound: np.ndarray


def theorem1_check(
    mdp: MDP, pi_old: np.ndarray, pi_new: np.ndarray, *, ev_old: Evaluation | None = None
) -> Theorem1Check:
    """Evaluate pi_old and pi_new exactly and compute both bounds of Theorem 1 and their slack.

    The same arithmetic as :func:`theorem1_bound` (both forms) plus eta(pi_new), sharing the
    evaluation of pi_old and needing only one linear solve for pi_new; batched, this is the
    path the Theorem-1 speed benchmark measures.
    """
    pi_old, ev_old = _old(mdp, pi_old, ev_old)
    pi_new = check_policy(mdp, pi_new, "pi_new")
    eta_new = (mdp.mu0 * state_values(mdp, pi_new)).sum(axis=-1)
    L = surrogate_from(ev_old, pi_new)
    eps = max_abs_advantage(ev_old)
    gamma = broadcast_gamma(mdp, 0)
    C = _penalty(gamma, eps)
    alpha = tv_rows(pi_old, pi_new).max(axis=-1)
    kl_max = kl_rows(pi_old, pi_new).max(axis=-1)
    bound_tv = L - penalized(C, alpha**2)
    bound_kl = L - penalized(C, kl_max)
    return Theorem1Check(
        eta_old=ev_old.eta,
        eta_new=eta_new,
        surrogate=L,
        eps=eps,
        penalty=C,
        tv_max=alpha,
        kl_max=kl_max,
        bound_tv=bound_tv,
        bound_kl=bound_kl,
        slack_tv=eta_new - bound_tv,
        slack_kl=eta_new - bound_kl,
        gap_bound=_gap_bound(gamma, eps, alpha),
    )
