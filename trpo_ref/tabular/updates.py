"""Policy update rules on tabular MDPs, exact: the ones the theory claims and the gridworld compare.

- :func:`trust_region_step`: TRPO's step (section 6, App. C) with exact quantities: natural
  direction s, beta = sqrt(2 delta / s^T F s), backtracking until the exact surrogate improves and
  the exact mean KL (eq. 12) is <= delta; if no step passes, theta comes back unchanged.
- :func:`kl_penalty_step`: maximize L(pi') - C * kl_mean(pi, pi'), solved exactly.
- :func:`gradient_step`: vanilla policy gradient step, no KL check.
- :func:`algorithm1_step`: one iteration of Algorithm 1, pi' = argmax L_pi(pi') - C max_s KL,
  solved to machine precision, with M(pi') >= M(pi) guaranteed.

All are batched over leading dims of the MDP and of theta / pi.

The KL-regularised per-state problems have a closed form up to one scalar. For a state with old
policy p (support K) and advantages a centred so that sum_a p_a a_a = 0, the maximizer of
q.a - lam KL(p || q) over the simplex (and of q.a subject to KL(p || q) <= t, lam then being the
Lagrange multiplier) is, from the stationarity condition a_a + lam p_a / q_a = nu,

    q_a = lam p_a / (nu - a_a) on K,   lam = 1 / sum_K p_a / (nu - a_a),   nu > max_K a,

one scalar nu per state: nu -> inf is q = p, nu -> max_K a concentrates q on the best actions.
When an action b outside K is better than all of K (only possible if p has zeros), KL does not
charge for mass moved to b: once nu reaches a_b the solution keeps nu = a_b and moves the share
1 - exp(-(t - t_switch)) (budget form) or 1 - lam / lam_switch (penalty form) to b. The scalar is
found by safeguarded Newton steps on y = -log(nu - a_top), which keeps both ends accurate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trpo_ref.tabular.bounds import penalized, penalty_from, surrogate_from
from trpo_ref.tabular.divergence import kl_rows, mean_over_states, state_weights
from trpo_ref.tabular.evaluate import (
    Evaluation,
    check_policy,
    evaluate_unchecked,
    state_values,
)
from trpo_ref.tabular.gradients import (
    check_advantage,
    check_logits,
    fisher_quadratic_from,
    gradient_from,
    natural_from,
)
from trpo_ref.tabular.mdp import MDP
from trpo_ref.tabular.policy import softmax

# Root solves stop at |log F - log target| below this (relative accuracy of KL, lam, sum rho lam).
_SOLVE_TOL = 1e-13
_MAX_NEWTON = 300
# Log-scale search variables stay within +-_LOG_LIMIT (beyond, float64 cannot represent the step).
_LOG_LIMIT = 690.0
# Smallest probability the KL-regularised solvers leave on an action in the support of p.
_Q_FLOOR = 1e-300


@dataclass(frozen=True, eq=False)
class StepResult:
    """Outcome of one update from theta; fields (...,) unless noted.

    theta, pi (..., S, A): the new logits and policy (the old ones, bit for bit, when not
    accepted). eta_before / eta_after: exact returns. surrogate_gain: the predicted gain
    L(pi_new) - eta(pi_old) = sum_s rho(s) sum_a (pi_new - pi_old)(a|s) A^(s, a) with the
    advantage the step used (true or estimated). kl_mean (eq. 12, weights rho_old normalized),
    kl_max: exact, of the returned policy against the old one. The step taken is
    theta_new - theta = beta * (n_backtracks-th shrink of) s, for the direction s of the rule;
    sAs = s^T F s. step_norm = ||theta_new - theta||_2 over (S, A).
    """

    theta: np.ndarray
    pi: np.ndarray
    eta_before: np.ndarray
    eta_after: np.ndarray
    surrogate_gain: np.ndarray
    kl_mean: np.ndarray
    kl_max: np.ndarray
    beta: np.ndarray
    sAs: np.ndarray
    n_backtracks: np.ndarray
    accepted: np.ndarray
    step_norm: np.ndarray


@dataclass(frozen=True, eq=False)
class Algorithm1Result:
    """Outcome of one iteration of Algorithm 1; fields (...,) unless noted.

    pi (..., S, A): the new policy. objective_* = M(.) = L_pi(.) - C max_s KL(pi || .), with
    objective_after >= objective_before guaranteed (Theorem 1 then gives eta_after >=
    eta_before). fallback: True where the solver's policy scored below pi once recomputed in
    float64 and pi was kept instead; this happens only when the best possible gain is below
    rounding (e.g. nearly deterministic policies, where moving 1e-13 of probability is the
    optimum), and is reported so a claim can count it.
    """

    pi: np.ndarray
    eta_before: np.ndarray
    eta_after: np.ndarray
    surrogate: np.ndarray
    objective_before: np.ndarray
    objective_after: np.ndarray
    kl_max: np.ndarray
    kl_mean: np.ndarray
    penalty: np.ndarray
    fallback: np.ndarray


# --------------------------------------------------------------------------------------------
# Per-state KL-regularised maximization (see module docstring)
# --------------------------------------------------------------------------------------------


class _StateProblems:
    """max_q q.adv - lam KL(p || q), or max_q q.adv s.t. KL(p || q) <= t, for all states at once.

    p, adv (..., S, A); ``active`` (..., S) marks the states to solve (others keep q = p);
    ``allow_outside`` lets q put mass on actions outside the support of p. The family of
    solutions is parameterized by nu = a_top + g (module docstring), searched over
    y = -log g, so that both ends (q ~ p: g huge; q concentrated: g tiny) stay accurate.
    """

    def __init__(
        self, p: np.ndarray, adv: np.ndarray, active: np.ndarray, allow_outside: bool
    ) -> None:
        self.p = p
        self.support = p > 0
        # a_a = adv_a - sum_b p_b adv_b, computed as sum_b p_b (adv_a - adv_b): accurate to the
        # last bit even when p is nearly deterministic and a_a is tiny.
        self.diff = adv[..., :, None] - adv[..., None, :]  # (..., S, A, A): adv_a - adv_b
        a = (p[..., None, :] * self.diff).sum(axis=-1)
        self.a = np.where(self.support, a, 0.0)
        a_in_max = np.where(self.support, a, -np.inf).max(axis=-1)
        if allow_outside:
            outside = np.where(self.support, -np.inf, a)
            a_out, self.out_index = outside.max(axis=-1), outside.argmax(axis=-1)
        else:
            a_out = np.full(a_in_max.shape, -np.inf)
            self.out_index = np.zeros(a_in_max.shape, dtype=int)
        # States whose best gain is below 1e-12 of the MDP's largest |advantage| are left alone.
        threshold = 1e-12 * np.abs(adv).max(axis=(-2, -1))[..., None]
        self.active = active & (np.maximum(a_in_max, a_out) > threshold)
        self.has_out = self.active & (a_out > a_in_max)
        self.a_top = np.where(self.active, np.where(self.has_out, a_out, a_in_max), 0.0)
        self.gap = np.where(self.support, self.a_top[..., None] - self.a, 1.0)  # >= 0 on K
        self.abs_max = np.abs(self.a).max(axis=-1)
        self.m1_abs = (self.p * np.abs(self.a)).sum(axis=-1)
        pa2 = self.p * self.a**2
        self.m2 = pa2.sum(axis=-1)
        self.m3 = (pa2 * self.a).sum(axis=-1)
        self.m4 = (pa2 * self.a**2).sum(axis=-1)
        # The switch point nu = a_out (g = 0) of states with a better action outside K, where
        # d = gap > 0 on K: q, KL and lam there.
        with np.errstate(divide="ignore", invalid="ignore"):
            p_d = np.where(self.support & self.has_out[..., None], self.p / self.gap, 0.0)
            S1 = p_d.sum(axis=-1)
            self.q_switch = p_d / S1[..., None]
            log_ratio = np.log(np.where(self.support, self.gap, 1.0) * S1[..., None])
            kl_sw = np.where(self.support, self.p * log_ratio, 0.0).sum(axis=-1)
        self.kl_switch = np.where(self.has_out, np.maximum(kl_sw, 0.0), np.inf)
        self.lam_switch = np.where(self.has_out, 1.0 / np.where(self.has_out, S1, 1.0), 0.0)

    def terms(self, g: np.ndarray) -> tuple[np.ndarray, ...]:
        """(q, KL, dKL/dy, lam, dlam/dy) at nu = a_top + g, y = -log g; g (..., S).

        Written with h_a = g / d_a in (0, 1] (d_a = nu - a_a = g + gap_a) so that nothing
        overflows however close g gets to 0: S1 = sum p / d = H / g with H = sum p h.
        """
        nu = self.a_top + g
        d = g[..., None] + self.gap  # nu - a, exact for small g
        h = np.where(self.support, g[..., None] / d, 0.0)
        ph = self.p * h
        H = ph.sum(axis=-1)
        q = ph / H[..., None]
        lam = g / H  # 1 / S1
        # p_a / q_a = d_a S1 = 1 - r_a with r_a = sum_b p_b (a_a - a_b) / d_b (from differences,
        # accurate when q_a ~ p_a, where d_a S1 would round); the direct form elsewhere.
        r = (ph[..., None, :] * self.diff).sum(axis=-1) / g[..., None]
        log_ratio = np.where(np.abs(r) < 0.5, np.log1p(-r), np.log(H[..., None] / h))
        kl = np.where(self.support, self.p * log_ratio, 0.0).sum(axis=-1)
        # dKL/dy = -g dKL/dnu = g Var_p(1/d) / S1, with 1/d_a - S1 = -r_a / d_a (no cancellation)
        dkl_dy = np.where(self.support, self.p * (r * h) ** 2, 0.0).sum(axis=-1) / H
        # Near q = p the direct forms lose ~1e-16 sum_a p|a| / (z m2) relatively; the Taylor
        # series in z = 1/nu loses ~(z max|a|)^3. Take whichever is more accurate.
        z = 1.0 / nu
        c4 = 0.75 * self.m4 - 0.5 * self.m2**2
        with np.errstate(divide="ignore", invalid="ignore"):
            small = (z * self.abs_max) ** 3 * z * self.m2 < 1e-16 * self.m1_abs
        kl = np.where(small, z**2 * (0.5 * self.m2 + z * (2.0 / 3.0 * self.m3 + z * c4)), kl)
        dkl_dy = np.where(small, g * z**3 * (self.m2 + z * (2.0 * self.m3 + z * 4.0 * c4)),
                          dkl_dy)
        dlam_dy = -g * (ph * h).sum(axis=-1) / H**2  # -g S2 / S1^2
        return q, kl, dkl_dy, lam, dlam_dy

    def _floored(self, q: np.ndarray) -> np.ndarray:
        """q with probabilities on the support of p raised to at least _Q_FLOOR: the exact
        optimum can put e.g. 1e-330 there, which float64 rounds to 0 (making KL infinite)."""
        return np.where(self.support, np.maximum(q, _Q_FLOOR), q)

    def _with_outside(self, q_in: np.ndarray, share: np.ndarray, case2: np.ndarray):
        """q_in scaled by (1 - share), ``share`` moved to the best outside action (case 2)."""
        onehot = np.arange(self.p.shape[-1]) == self.out_index[..., None]
        moved = q_in * (1.0 - share[..., None]) + share[..., None] * onehot
        return np.where(case2[..., None], moved, q_in)

    def solve_budget(self, t: np.ndarray, y0: np.ndarray):
        """Per state: argmax q.a s.t. KL(p || q) <= t; t (...,) is shared by the states.

        Returns q (..., S, A); lam and dlam/dt (..., S), 0 for inactive states; y (warm start).
        """
        t_s = np.broadcast_to(t[..., None], self.a_top.shape)
        case2 = self.has_out & (t_s >= self.kl_switch)
        todo = self.active & ~case2
        log_t = np.log(t_s)

        def residual(y):
            _, kl, dkl, _, _ = self.terms(np.exp(-y))
            return np.log(kl) - log_t, dkl / kl

        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            y = _increasing_root(residual, y0, todo, -_LOG_LIMIT, _LOG_LIMIT)
            q, kl, dkl, lam, dlam = self.terms(np.exp(-y))
            share = np.where(case2, -np.expm1(-(t_s - self.kl_switch)), 0.0)
            lam2 = self.lam_switch * (1.0 - share)
            lam = np.where(case2, lam2, lam)
            # a budget beyond what float64 can spend (q would underflow): lam ~ 0, flat in t
            saturated = (y >= _LOG_LIMIT) & (kl < t_s)
            dlam_dt = np.where(case2, -lam2, np.where(saturated, 0.0, dlam / dkl))
        q = self._with_outside(np.where(case2[..., None], self.q_switch, q), share, case2)
        q = np.where(self.active[..., None], self._floored(q), self.p)
        return q, np.where(self.active, lam, 0.0), np.where(self.active, dlam_dt, 0.0), y

    def solve_penalty(self, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per state: argmax q.a - lam KL(p || q); lam (...,) is shared by the states.

        Returns q (..., S, A) and log(q / p) up to a per-state constant on the support
        (..., S, A; 0 off the support and in inactive states, which keep q = p).
        """
        lam_s = np.broadcast_to(lam[..., None], self.a_top.shape)
        case2 = self.has_out & (lam_s <= self.lam_switch)
        todo = self.active & ~case2
        log_lam = np.log(lam_s)

        def residual(y):  # log(1 / lam(y)) - log(1 / lam) = log S1 + log lam, S1 = H / g
            g = np.exp(-y)
            ph = np.where(self.support, self.p * g[..., None] / (g[..., None] + self.gap), 0.0)
            H = ph.sum(axis=-1)
            return np.log(H) + y + log_lam, (ph * ph / np.where(self.support, self.p, 1.0)).sum(
                axis=-1
            ) / H

        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            y0 = -np.log(np.maximum(lam_s, 1e-300))  # small steps: lam ~ nu ~ g
            y = _increasing_root(residual, y0, todo, -_LOG_LIMIT, _LOG_LIMIT)
            g = np.exp(-y)
            q = np.where(case2[..., None], self.q_switch, self.terms(g)[0])
            share = np.where(case2, 1.0 - lam_s / np.where(case2, self.lam_switch, 1.0), 0.0)
            # (case 2 never arises here: kl_penalty_step keeps to the support)
            log_ratio = np.where(self.support, -np.log(g[..., None] + self.gap), 0.0)
        q = self._with_outside(q, share, case2)
        active = self.active[..., None]
        return np.where(active, self._floored(q), self.p), np.where(active, log_ratio, 0.0)

    def greedy(self) -> np.ndarray:
        """The t -> inf (lam -> 0) limit: all mass on the best outside action if it beats the
        support, else on the support's best actions in proportion to p; inactive states keep p."""
        on_best = np.where(self.support & (self.gap <= 0), self.p, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):  # states without: replaced below
            q = on_best / on_best.sum(axis=-1, keepdims=True)
        onehot = np.arange(self.p.shape[-1]) == self.out_index[..., None]
        q = np.where(self.has_out[..., None], onehot, q)
        return np.where(self.active[..., None], q, self.p)


def _increasing_root(residual, x0: np.ndarray, todo: np.ndarray, x_min: float, x_max: float):
    """Vectorized root of increasing functions ``residual(x) -> (F, dF/dx)`` on [x_min, x_max],
    for the ``todo`` entries: Newton steps (at most 10 long), bisection whenever a step would
    leave the bracket known so far. An entry stops when |F| <= _SOLVE_TOL, when its bracket is
    down to rounding, or at x_min / x_max if the root lies beyond (not representable)."""
    lo = np.full(x0.shape, -np.inf)
    hi = np.full(x0.shape, np.inf)
    x = np.clip(np.where(np.isfinite(x0), x0, 0.0), x_min, x_max)
    previous = np.full(x0.shape, np.inf)
    for _ in range(_MAX_NEWTON):
        F, dF = residual(x)
        hi = np.where(todo & (F > 0), x, hi)
        lo = np.where(todo & ~(F > 0), x, lo)
        at_limit = ((x >= x_max) & (F < 0)) | ((x <= x_min) & (F > 0))
        tight = hi - lo <= 1e-15 * np.maximum(1.0, np.abs(x))
        done = ~todo | (np.abs(F) <= _SOLVE_TOL) | tight | at_limit
        if done.all():
            return x
        newton = x + np.clip(-F / dF, -10.0, 10.0)
        # a Newton step below the resolution of x: F is as small as float64 can make it
        done |= (np.abs(newton - x) <= 1e-15 * np.maximum(1.0, np.abs(x))) & (dF > 0) & (
            dF < np.inf
        )
        if done.all():
            return x
        bracketed = np.isfinite(lo) & np.isfinite(hi)
        # bisect (or, unbracketed, jump by 10) when Newton would leave the bracket or has
        # stopped halving |F| (rounding, or a derivative that misleads far from the root)
        use_newton = (newton > lo) & (newton < hi) & ~(np.abs(F) > 0.5 * previous)
        fallback = np.where(bracketed, 0.5 * (lo + hi), np.where(np.isfinite(lo), lo + 10.0,
                                                                  hi - 10.0))
        previous = np.abs(F)
        x = np.where(done, x, np.clip(np.where(use_newton, newton, fallback), x_min, x_max))
    raise RuntimeError("KL-regularised solve did not converge")


def _algorithm1_policy(
    p: np.ndarray, adv: np.ndarray, rho: np.ndarray, C: np.ndarray
) -> np.ndarray:
    """argmax_q sum_s rho(s) q_s.adv_s - C max_s KL(p_s || q_s), batched; see algorithm1_step.

    For a KL budget t shared by all states, each state solves max q.a s.t. KL <= t; the value
    M(t) is concave in t with M'(t) = sum_s rho(s) lam_s(t) - C, so t* solves
    sum_s rho(s) lam_s(t) = C (or is 0 when M'(0+) <= 0): Newton on log t, warm-starting the
    per-state solves.
    """
    problems = _StateProblems(p, adv, rho > 0, allow_outside=True)
    batch = problems.a_top.shape[:-1]
    C = np.broadcast_to(C, batch)
    weight = np.where(problems.active, rho, 0.0)
    # lam_s(0+) is infinite unless the state's only gain is moving mass outside the support of p
    # (then lam_s(0+) = lam_switch); if M'(0+) <= 0, t* = 0 and pi is kept.
    finite_at_zero = problems.has_out & (problems.kl_switch <= 0)
    slope_at_zero = np.where(
        (problems.active & ~finite_at_zero).any(axis=-1),
        np.inf,
        np.where(finite_at_zero, weight * problems.lam_switch, 0.0).sum(axis=-1),
    )
    solve = problems.active.any(axis=-1) & (C > 0) & (slope_at_zero > C)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_C = np.log(np.where(solve, C, 1.0))
        # Small-step guess: lam_s ~ sqrt(m2_s / (2 t)) gives t0 = (sum rho sqrt(m2))^2 / (2 C^2).
        spread = (weight * np.sqrt(problems.m2)).sum(axis=-1)
        t0 = np.where(solve & (spread > 0), spread**2 / (2.0 * np.where(solve, C, 1.0) ** 2), 1e-3)
        t0 = np.clip(t0, 1e-300, _LOG_LIMIT)
        nu0 = np.sqrt(problems.m2 / (2.0 * t0[..., None]))  # the same guess per state
    y_warm = np.where(problems.active, -np.log(nu0 + 1e-300), 0.0)

    def residual(u):  # increasing in u = log t: log C - log sum_s rho lam_s(t)
        nonlocal y_warm
        _, lam, dlam_dt, y_warm = problems.solve_budget(np.exp(u), y_warm)
        total = (weight * lam).sum(axis=-1)
        return log_C - np.log(total), -np.exp(u) * (weight * dlam_dt).sum(axis=-1) / total

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        u = _increasing_root(residual, np.log(t0), solve, -_LOG_LIMIT, np.log(_LOG_LIMIT))
        q = problems.solve_budget(np.exp(u), y_warm)[0]
    q = np.where(((C <= 0) & problems.active.any(axis=-1))[..., None, None], problems.greedy(), q)
    keep = ~(solve | (C <= 0))
    return np.where(keep[..., None, None], p, q)


def algorithm1_step(
    mdp: MDP, pi: np.ndarray, *, C: float | np.ndarray | None = None
) -> Algorithm1Result:
    """One iteration of Algorithm 1: pi' = argmax_{pi'} L_pi(pi') - C max_s KL(pi(.|s) || pi'(.|s)).

    C defaults to the theoretical penalty_coefficient(mdp, pi) = 4 eps gamma / (1 - gamma)^2.
    Solver (exact, see module docstring): for a shared KL budget t every visited state solves
    max_q q.A_s s.t. KL(pi_s || q) <= t in closed form up to one scalar; the optimal t* is the
    root of sum_s rho(s) lam_s(t) = C (lam_s the budget's multiplier), found by safeguarded
    Newton steps to relative accuracy ~1e-13. Unvisited states (rho = 0) and states with
    nothing to gain keep pi. With C = 0 the step is the greedy policy-iteration step. Where the
    exact optimum needs a probability below float64's range (a tiny pi(a|s) pushed down by
    exp(-t / pi(a|s))), the solver stops at 1e-300 (see _Q_FLOOR); the value lost is < 1e-290.

    Guarantee: objective_after >= objective_before exactly, where M(.) = L_pi(.) - C max_s KL is
    recomputed directly from the returned policy. If the solver's policy fails that in float64
    (only when the best gain is within rounding of M, e.g. nearly deterministic pi), pi itself
    is returned (M(pi) = L_pi(pi)) and ``fallback`` is set. Theorem 1 then gives
    eta_after >= objective_after >= objective_before = eta_before.
    """
    pi = check_policy(mdp, pi)
    ev = evaluate_unchecked(mdp, pi)
    if C is None:
        C = penalty_from(mdp, ev)
    else:
        C = np.asarray(C, dtype=np.float64)
        if not (np.isfinite(C).all() and (C >= 0).all()):
            raise ValueError(f"C must be finite and >= 0, got {C}")
    C = np.broadcast_to(C, ev.eta.shape)
    pi_new = _algorithm1_policy(pi, ev.adv, ev.rho, C)

    def objective(policy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        L = surrogate_from(ev, policy)
        kl_max = kl_rows(pi, policy).max(axis=-1)
        return L - penalized(C, kl_max), L, kl_max

    objective_before = objective(pi)[0]
    objective_after = objective(pi_new)[0]
    fallback = ~(objective_after >= objective_before)
    pi_new = np.where(fallback[..., None, None], pi, pi_new)
    objective_after, L, kl_max = objective(pi_new)
    return Algorithm1Result(
        pi=pi_new,
        eta_before=ev.eta,
        eta_after=(mdp.mu0 * state_values(mdp, pi_new)).sum(axis=-1),
        surrogate=L,
        objective_before=objective_before,
        objective_after=objective_after,
        kl_max=kl_max,
        kl_mean=mean_over_states(state_weights(ev.rho), kl_rows(pi, pi_new)),
        penalty=C,
        fallback=fallback,
    )


# --------------------------------------------------------------------------------------------
# Steps on softmax logits
# --------------------------------------------------------------------------------------------


def _start(
    mdp: MDP, theta: np.ndarray, adv: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, Evaluation, np.ndarray]:
    theta = check_logits(mdp, theta)
    pi = softmax(theta)
    ev = evaluate_unchecked(mdp, pi)
    adv_used = ev.adv if adv is None else check_advantage(adv, ev.adv.shape)
    return theta, pi, ev, adv_used


def _predicted_gain(ev: Evaluation, pi: np.ndarray, pi_new: np.ndarray, adv: np.ndarray):
    return (ev.rho * ((pi_new - pi) * adv).sum(axis=-1)).sum(axis=-1)


def _result(
    mdp: MDP,
    theta: np.ndarray,
    theta_new: np.ndarray,
    pi: np.ndarray,
    ev: Evaluation,
    adv: np.ndarray,
    *,
    beta: np.ndarray,
    sAs: np.ndarray,
    n_backtracks: np.ndarray,
    accepted: np.ndarray,
) -> StepResult:
    pi_new = softmax(theta_new)
    kl_per_state = kl_rows(pi, pi_new)
    eta_new = (mdp.mu0 * state_values(mdp, pi_new)).sum(axis=-1)
    return StepResult(
        theta=theta_new,
        pi=pi_new,
        eta_before=ev.eta,
        eta_after=np.where(accepted, eta_new, ev.eta),
        surrogate_gain=_predicted_gain(ev, pi, pi_new, adv),
        kl_mean=mean_over_states(state_weights(ev.rho), kl_per_state),
        kl_max=kl_per_state.max(axis=-1),
        beta=beta,
        sAs=sAs,
        n_backtracks=n_backtracks,
        accepted=accepted,
        step_norm=np.sqrt(((theta_new - theta) ** 2).sum(axis=(-2, -1))),
    )


def trust_region_step(
    mdp: MDP,
    theta: np.ndarray,
    delta: float,
    *,
    direction: np.ndarray | None = None,
    backtrack: float = 0.5,
    max_backtracks: int = 20,
    adv: np.ndarray | None = None,
) -> StepResult:
    """TRPO's update with exact quantities: max L s.t. kl_mean <= delta (eq. 12), App. C style.

    s = natural_gradient (pinv(F) g) unless ``direction`` is given; beta = sqrt(2 delta / s^T F s)
    (the step on which the quadratic model of kl_mean equals delta); try theta + backtrack^k beta s
    for k = 0, 1, ..., max_backtracks and accept the first whose exact predicted gain
    sum_s rho sum_a (pi_new - pi) A^ is > 0 and whose exact kl_mean is <= delta. If none passes,
    or s^T F s is not finite and > 0 (e.g. s = 0 at an optimum), theta is returned unchanged (bit
    for bit) with accepted = False (n_backtracks = max_backtracks, or 0 and beta = nan for the
    s^T F s guard). ``adv`` replaces the true advantage in the direction and the gain test (an
    estimate); eta_after is always the true return.
    """
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta = {delta} must be finite and > 0")
    if not 0.0 < backtrack < 1.0:
        raise ValueError(f"backtrack = {backtrack} must lie in (0, 1)")
    if int(max_backtracks) < 0:
        raise ValueError(f"max_backtracks = {max_backtracks} must be >= 0")
    theta, pi, ev, adv_used = _start(mdp, theta, adv)
    weights = state_weights(ev.rho)
    if direction is None:
        s = natural_from(ev.rho, pi, adv_used)
    else:
        s = check_logits(mdp, direction, "direction")
    sAs = fisher_quadratic_from(weights, pi, s)
    valid = np.isfinite(sAs) & (sAs > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(valid, np.sqrt(2.0 * delta / np.where(valid, sAs, 1.0)), np.nan)
    batch = sAs.shape
    theta_b = np.broadcast_to(theta, batch + theta.shape[-2:])
    theta_new = theta_b.copy()
    accepted = np.zeros(batch, dtype=bool)
    n_backtracks = np.where(valid, int(max_backtracks), 0)
    for k in range(int(max_backtracks) + 1):
        pending = valid & ~accepted
        if not pending.any():
            break
        scale = np.where(pending, beta * backtrack**k, 0.0)
        candidate = theta_b + scale[..., None, None] * s
        pi_c = softmax(candidate)
        gain = _predicted_gain(ev, pi, pi_c, adv_used)
        kl_c = mean_over_states(weights, kl_rows(pi, pi_c))
        ok = pending & (gain > 0) & (kl_c <= delta)
        theta_new = np.where(ok[..., None, None], candidate, theta_new)
        n_backtracks = np.where(ok, k, n_backtracks)
        accepted |= ok
    return _result(
        mdp, theta_b, theta_new, pi, ev, adv_used,
        beta=beta, sAs=sAs, n_backtracks=n_backtracks, accepted=accepted,
    )


def gradient_step(
    mdp: MDP, theta: np.ndarray, lr: float, *, adv: np.ndarray | None = None
) -> StepResult:
    """Vanilla policy gradient ascent: theta + lr * g, g = d eta / d theta (or the gradient of
    the surrogate on ``adv``); no KL check, always accepted. beta = lr, sAs = g^T F g."""
    if not np.isfinite(lr):
        raise ValueError(f"lr = {lr} must be finite")
    theta, pi, ev, adv_used = _start(mdp, theta, adv)
    g = gradient_from(ev.rho, pi, adv_used)
    sAs = fisher_quadratic_from(state_weights(ev.rho), pi, g)
    theta_new = theta + lr * g
    batch = sAs.shape
    return _result(
        mdp, theta, theta_new, pi, ev, adv_used,
        beta=np.full(batch, float(lr)), sAs=sAs,
        n_backtracks=np.zeros(batch, dtype=int), accepted=np.ones(batch, dtype=bool),
    )


def kl_penalty_step(
    mdp: MDP, theta: np.ndarray, C: float | np.ndarray, *, adv: np.ndarray | None = None
) -> StepResult:
    """theta' maximizing L(pi') - C * kl_mean(pi, pi'), the MEAN KL of eq. (12) under rho_old.

    Solved exactly rather than by an inner gradient loop: the objective splits over states into
    rho(s) [q.A^_s - (C / sum rho) KL(pi_s || q)], whose maximizer is q ∝ pi_s / (nu_s - A^_s)
    (one scalar nu_s per state, found by Newton; see the module docstring). theta' = theta -
    log(nu_s - A^_s) reproduces it. Unvisited states keep theta; actions whose probability
    underflowed to 0 stay at 0. Always accepted; beta = 1 and sAs = d^T F d for the step d.
    """
    C = np.asarray(C, dtype=np.float64)
    if not (np.isfinite(C).all() and (C > 0).all()):
        raise ValueError(f"C must be finite and > 0, got {C}")
    theta, pi, ev, adv_used = _start(mdp, theta, adv)
    problems = _StateProblems(pi, adv_used, ev.rho > 0, allow_outside=False)
    lam = np.broadcast_to(C, ev.eta.shape) / ev.rho.sum(axis=-1)
    _, shift = problems.solve_penalty(lam)
    theta_new = theta + shift
    weights = state_weights(ev.rho)
    batch = ev.eta.shape
    return _result(
        mdp, theta, theta_new, pi, ev, adv_used,
        beta=np.ones(batch), sAs=fisher_quadratic_from(weights, pi, shift),
        n_backtracks=np.zeros(batch, dtype=int), accepted=np.ones(batch, dtype=bool),
    )
