"""The surrogate L_pi matches eta to first order at pi (TRPO section 2, eq. 4).

Two claims share the setting (softmax policies pi_theta on random MDPs, pi_0 = pi_{theta_0}):

* ``theory.surrogate_gradient``: L_{pi_0}(pi_theta) and eta(pi_theta) have equal value and equal
  gradient in theta at theta_0.
* ``theory.surrogate_gap_order``: along a direction d, |eta - L| at theta_0 + eps d shrinks as
  O(eps^2).

Both have the same negative control: a surrogate that weights the advantages with the
*normalized* visitation rho (1 - gamma) (the common confusion of the unnormalized discounted
visitation rho with the state distribution), whose gradient is (1 - gamma) times the true one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from claims.framework.core import (
    Budget,
    Claim,
    Comparison,
    DecisionRule,
    Evidence,
    Kind,
    Verdict,
    per_example,
)
from claims.framework.plotting import pyplot, save_figure
from claims.framework.registry import register
from claims.framework.stats import loglog_slope
from trpo_ref.tabular import (
    MDP,
    Evaluation,
    evaluate,
    policy_gradient,
    random_mdp,
    softmax,
    surrogate,
)

SOURCE = "TRPO section 2, eq. (3)-(4)"


@dataclass(frozen=True)
class MDPGridBudget(Budget):
    """Random tabular MDPs for every (size, discount) pair, with softmax starting policies."""

    sizes: tuple[tuple[int, int], ...]  # (n_states, n_actions) of each MDP batch
    gammas: tuple[float, ...]  # discount factors, crossed with ``sizes``
    n_mdps: int  # random MDPs per (size, gamma) cell
    theta_scale: float  # theta_0 ~ N(0, theta_scale^2) per logit


@dataclass(frozen=True)
class GradientBudget(MDPGridBudget):
    """theory.surrogate_gradient: the MDP grid and the central-difference step."""

    h: float  # central-difference step on the logits


@dataclass(frozen=True)
class GapOrderBudget(MDPGridBudget):
    """theory.surrogate_gap_order: the MDP grid and the log-spaced step sizes eps."""

    eps_min: float  # smallest eps of the log-spaced sweep
    eps_max: float  # largest eps
    n_eps: int  # number of eps values


CONTROL_TEXT = (
    "The surrogate is computed with the normalized discounted state distribution "
    "rho(s)(1 - gamma) in place of the unnormalized visitation rho(s) of eq. (3) (confusing "
    "rho_pi with a probability distribution, e.g. after reading eq. (12)'s expectation over "
    "s ~ rho_old). Its value at pi_0 is still eta(pi_0), but its gradient is (1 - gamma) times "
    "the true one, so the first-order match fails."
)

SurrogateFn = Callable[[MDP, np.ndarray, np.ndarray, Evaluation], np.ndarray]


def _surrogate_exact(
    mdp: MDP, pi_old: np.ndarray, pi_new: np.ndarray, ev_old: Evaluation
) -> np.ndarray:
    """L_{pi_old}(pi_new), eq. (3), from the engine. Shapes: pi (..., S, A) -> (...,)."""
    return surrogate(mdp, pi_old, pi_new, ev_old=ev_old)


def _surrogate_bug_normalized_visitation(
    mdp: MDP, pi_old: np.ndarray, pi_new: np.ndarray, ev_old: Evaluation
) -> np.ndarray:
    """BUG (negative control): eq. (3) with rho(s)(1 - gamma), a distribution, in place of rho(s).

    eta(pi_old) + sum_s (1 - gamma) rho_old(s) sum_a pi_new(a|s) A_old(s, a); shapes as above.
    """
    gamma = np.asarray(mdp.gamma, dtype=float)[..., None]
    state_distribution = (1.0 - gamma) * ev_old.rho
    return ev_old.eta + np.sum(state_distribution * np.sum(pi_new * ev_old.adv, axis=-1), axis=-1)


def _surrogate_fn(control: bool) -> SurrogateFn:
    return _surrogate_bug_normalized_visitation if control else _surrogate_exact


@dataclass(frozen=True)
class _Batch:
    """One cell of the MDP grid: n_mdps random MDPs of one size and discount, and theta_0."""

    n_states: int
    n_actions: int
    gamma: float
    mdp_seed: int
    mdp: MDP
    theta0: np.ndarray  # (n_mdps, S, A)


def _mdp_grid(budget: MDPGridBudget, seed: int, offset: int) -> Iterator[_Batch]:
    """Random MDPs for every (size, gamma) of the budget; theta_0 ~ N(0, theta_scale^2)."""
    k = 0
    for n_states, n_actions in budget.sizes:
        for gamma in budget.gammas:
            mdp_seed = 1_000_000 * seed + 1_000 * offset + k
            mdp = random_mdp(mdp_seed, n_states, n_actions, gamma, n_mdps=budget.n_mdps)
            rng = np.random.default_rng([seed, offset, k])
            theta0 = budget.theta_scale * rng.standard_normal(
                (budget.n_mdps, n_states, n_actions)
            )
            yield _Batch(n_states, n_actions, float(gamma), mdp_seed, mdp, theta0)
            k += 1


def central_difference_gradient(
    f: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, h: float
) -> np.ndarray:
    """Central finite differences of f: (..., S, A) -> (...,), one coordinate at a time.

    theta: (..., S, A). Returns (..., S, A) with entry (s, a) = (f(theta + h e_sa) -
    f(theta - h e_sa)) / (2 h). Error: O(h^2) truncation plus O(u |f| / h) rounding.
    """
    grad = np.empty_like(theta)
    n_states, n_actions = theta.shape[-2:]
    for s in range(n_states):
        for a in range(n_actions):
            step = np.zeros_like(theta)
            step[..., s, a] = h
            grad[..., s, a] = (f(theta + step) - f(theta - step)) / (2.0 * h)
    return grad


def _relative_error(approx: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """||approx - exact|| / ||exact|| over the trailing (S, A) axes: (..., S, A) -> (...,)."""
    num = np.sqrt(np.sum((approx - exact) ** 2, axis=(-2, -1)))
    den = np.sqrt(np.sum(exact**2, axis=(-2, -1)))
    return num / np.maximum(den, np.finfo(float).tiny)


def _return_scale(mdp: MDP) -> np.ndarray:
    """max |r| / (1 - gamma): the largest |eta| any policy can have; shape (...,)."""
    gamma = np.asarray(mdp.gamma, dtype=float)
    return np.max(np.abs(mdp.r), axis=(-2, -1)) / (1.0 - gamma)


def _no_examples(evidence: Evidence, key: str) -> Verdict | None:
    if not evidence.data.get(key):
        return Verdict.inconclusive(
            "the evidence holds no MDPs, so there is nothing to judge",
        )
    return None


# --------------------------------------------------------------------------------------------
# theory.surrogate_gradient
# --------------------------------------------------------------------------------------------


@register
class SurrogateGradient(Claim[GradientBudget]):
    id = "theory.surrogate_gradient"
    comparison = Comparison(
        statistic="max(relative gradient error, relative value error) per MDP",
        better="lower", margin=1e-8)
    title = "The surrogate L matches eta in value and gradient at theta_0"
    statement = (
        "For a parameterized policy, L_{pi_theta0}(pi_theta) and eta(pi_theta) are equal at "
        "theta = theta_0 and have equal gradients there (eq. 4)."
    )
    source = SOURCE
    kind = Kind.EXACT
    protocol = (
        "Random MDPs (Dirichlet transitions) for every size in `sizes` and discount in `gammas` "
        "(n_mdps each), softmax policies with logits theta_0 ~ N(0, theta_scale^2). The gradient "
        "of theta -> L_{pi_0}(softmax(theta)) at theta_0 is taken by central finite differences "
        "(step h) and compared with the engine's exact policy gradient rho(s) pi(a|s) A(s,a). "
        "Per MDP: gradient error ||grad_FD L - grad eta|| / ||grad eta|| and value error "
        "|L_{pi_0}(pi_0) - eta(pi_0)| / (max|r| / (1 - gamma)). Also reported (not judged): the "
        "relative error between the exact policy gradient and central differences of eta itself, "
        "an independent check that policy_gradient is the gradient of eta."
    )
    negative_control = CONTROL_TEXT
    rule = DecisionRule(
        statistic="max over MDPs of max(relative gradient error, relative value error)",
        comparator="<=",
        threshold=1e-6,
        description=(
            "SUPPORTED iff every MDP has relative gradient and value error <= 1e-6. Central "
            "differences with h = 1e-5 err by O(h^2) ~ 1e-10 (L is linear in pi, softmax "
            "curvature O(1)) plus rounding u|L|/h <= 1e-16 * 100 / 1e-5 = 1e-9 at gamma = 0.99, "
            "so 1e-6 leaves a 100x margin; a real first-order mismatch (e.g. a (1 - gamma) "
            "factor) is >= 1e-2."
        ),
    )
    budgets: ClassVar[dict[str, GradientBudget | None]] = {
        "quick": GradientBudget(
            sizes=[[2, 2], [5, 3], [10, 4], [12, 6]],
            gammas=[0.5, 0.9, 0.99],
            n_mdps=6,
            theta_scale=1.0,
            h=1e-5,
        ),
        "standard": GradientBudget(
            sizes=[[2, 2], [5, 3], [10, 4], [12, 6], [20, 5]],
            gammas=[0.0, 0.5, 0.9, 0.97, 0.99],
            n_mdps=20,
            theta_scale=2.0,
            h=1e-5,
        ),
        "full": GradientBudget(
            sizes=[[2, 2], [3, 5], [5, 3], [10, 4], [12, 6], [20, 5], [40, 8]],
            gammas=[0.0, 0.5, 0.9, 0.95, 0.97, 0.99],
            n_mdps=50,
            theta_scale=2.0,
            h=1e-5,
        ),
    }

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.tier_budget(tier)
        surrogate_fn = _surrogate_fn(control)
        h = float(budget.h)
        rows: dict[str, list[Any]] = {
            k: []
            for k in (
                "n_states",
                "n_actions",
                "gamma",
                "mdp_seed",
                "index",
                "grad_rel_error",
                "value_rel_error",
                "policy_gradient_vs_fd_eta",
                "grad_norm",
                "eta",
            )
        }
        for batch in _mdp_grid(budget, seed, offset=1):
            mdp, theta0 = batch.mdp, batch.theta0
            pi0 = softmax(theta0)
            ev0 = evaluate(mdp, pi0)
            exact_grad = policy_gradient(mdp, theta0)
            fd_grad_l = central_difference_gradient(
                lambda th, mdp=mdp, pi0=pi0, ev0=ev0: surrogate_fn(mdp, pi0, softmax(th), ev0),
                theta0,
                h,
            )
            fd_grad_eta = central_difference_gradient(
                lambda th, mdp=mdp: evaluate(mdp, softmax(th)).eta, theta0, h
            )
            value_err = np.abs(surrogate_fn(mdp, pi0, pi0, ev0) - ev0.eta) / _return_scale(mdp)
            n = theta0.shape[0]
            rows["n_states"] += [batch.n_states] * n
            rows["n_actions"] += [batch.n_actions] * n
            rows["gamma"] += [batch.gamma] * n
            rows["mdp_seed"] += [batch.mdp_seed] * n
            rows["index"] += list(range(n))
            rows["grad_rel_error"] += _relative_error(fd_grad_l, exact_grad).tolist()
            rows["value_rel_error"] += value_err.tolist()
            rows["policy_gradient_vs_fd_eta"] += _relative_error(fd_grad_eta, exact_grad).tolist()
            rows["grad_norm"] += np.sqrt(np.sum(exact_grad**2, axis=(-2, -1))).tolist()
            rows["eta"] += np.asarray(ev0.eta).tolist()
        per_mdp = np.maximum(rows["grad_rel_error"], rows["value_rel_error"])
        worst = int(np.argmax(per_mdp))
        summary = {
            "n_mdps": len(per_mdp),
            "max_grad_rel_error": float(np.max(rows["grad_rel_error"])),
            "max_value_rel_error": float(np.max(rows["value_rel_error"])),
            "median_grad_rel_error": float(np.median(rows["grad_rel_error"])),
            "max_policy_gradient_vs_fd_eta": float(np.max(rows["policy_gradient_vs_fd_eta"])),
            "worst_mdp": {
                k: rows[k][worst] for k in ("n_states", "n_actions", "gamma", "mdp_seed", "index")
            },
        }
        config = {"seed": seed, "surrogate": surrogate_fn.__name__, **budget.to_json()}
        return Evidence(self.id, tier, control, config, data=rows, summary=summary)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        d = evidence.data
        return per_example(np.maximum(d.get("grad_rel_error", []), d.get("value_rel_error", [])),
                           prefix="mdp ")

    def decide(self, evidence: Evidence) -> Verdict:
        empty = _no_examples(evidence, "grad_rel_error")
        if empty is not None:
            return empty
        grad = np.asarray(evidence.data["grad_rel_error"])
        value = np.asarray(evidence.data["value_rel_error"])
        statistic = float(np.max(np.maximum(grad, value)))
        return self.rule.judge(
            statistic,
            n=grad.size,
            message=(
                f"over {grad.size} MDPs: max gradient error {np.max(grad):.3g}, max value error "
                f"{np.max(value):.3g}; exact policy gradient vs central differences of eta: "
                f"{evidence.summary['max_policy_gradient_vs_fd_eta']:.3g}"
            ),
        )


# --------------------------------------------------------------------------------------------
# theory.surrogate_gap_order
# --------------------------------------------------------------------------------------------


@register
class SurrogateGapOrder(Claim[GapOrderBudget]):
    id = "theory.surrogate_gap_order"
    comparison = Comparison(
        statistic="log-log slope of |eta - L| in eps, per MDP",
        better="either", margin=0.1)
    title = "|eta - L| shrinks as O(eps^2) along a direction"
    statement = (
        "Since L_{pi_0} matches eta to first order at theta_0 (eq. 4), the gap "
        "|eta(pi_{theta_0 + eps d}) - L_{pi_0}(pi_{theta_0 + eps d})| is O(eps^2)."
    )
    source = SOURCE
    kind = Kind.APPROXIMATION
    protocol = (
        "Random MDPs for every size in `sizes` and discount in `gammas` (n_mdps each), softmax "
        "logits theta_0 ~ N(0, theta_scale^2), one random unit direction d per MDP (Frobenius "
        "norm 1). gap(eps) = |eta(softmax(theta_0 + eps d)) - L_{pi_0}(softmax(theta_0 + eps d))| "
        "at `n_eps` values of eps log-spaced over [eps_min, eps_max] (the smallest keeps the gap "
        "far above float64 cancellation in eta - L: gap ~ 1e-6 c vs noise ~ 1e-13 at "
        "gamma = 0.99); per MDP the least-squares slope of log gap on log eps with its 95% "
        "t-interval (claims.framework.stats.loglog_slope). Reported, not judged: the slope over "
        "the "
        "3 smallest eps only (the asymptotic end). gamma = 0 is left out: there L = eta exactly."
    )
    negative_control = CONTROL_TEXT + " The gap then is first order: slope ~1."
    rule = DecisionRule(
        statistic="min over MDPs of the log-log slope of gap(eps)",
        comparator=">=",
        threshold=1.8,
        description=(
            "SUPPORTED iff the smallest per-MDP slope, with its whole 95% t-interval, is >= 1.8 "
            "(REFUTED if the whole interval is below, INCONCLUSIVE if it straddles). A gap of "
            "order two has slope 2 (or more, if the eps^2 term vanishes); any first-order "
            "mismatch gives slope ~1, so 1.8 separates the two with room for higher-order terms."
        ),
        alpha=0.05,
    )
    budgets: ClassVar[dict[str, GapOrderBudget | None]] = {
        "quick": GapOrderBudget(
            sizes=[[2, 2], [5, 3], [10, 4], [12, 6]],
            gammas=[0.5, 0.9, 0.99],
            n_mdps=6,
            theta_scale=1.0,
            eps_min=1e-3,
            eps_max=1e-1,
            n_eps=9,
        ),
        "standard": GapOrderBudget(
            sizes=[[2, 2], [5, 3], [10, 4], [12, 6], [20, 5]],
            gammas=[0.5, 0.9, 0.97, 0.99],
            n_mdps=20,
            theta_scale=2.0,
            eps_min=1e-3,
            eps_max=1e-1,
            n_eps=13,
        ),
        "full": GapOrderBudget(
            sizes=[[2, 2], [3, 5], [5, 3], [10, 4], [12, 6], [20, 5], [40, 8]],
            gammas=[0.3, 0.5, 0.9, 0.95, 0.97, 0.99],
            n_mdps=25,
            theta_scale=2.0,
            eps_min=1e-3,
            eps_max=1e-1,
            n_eps=17,
        ),
    }

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.tier_budget(tier)
        surrogate_fn = _surrogate_fn(control)
        eps = np.logspace(np.log10(budget.eps_min), np.log10(budget.eps_max), budget.n_eps)
        rows: dict[str, list[Any]] = {
            k: []
            for k in (
                "n_states",
                "n_actions",
                "gamma",
                "mdp_seed",
                "index",
                "slope",
                "slope_ci_low",
                "slope_ci_high",
                "small_eps_slope",
                "gap",
            )
        }
        for batch in _mdp_grid(budget, seed, offset=2):
            mdp, theta0 = batch.mdp, batch.theta0
            rng = np.random.default_rng([seed, 2, batch.mdp_seed])
            direction = rng.standard_normal(theta0.shape)
            direction /= np.sqrt(np.sum(direction**2, axis=(-2, -1), keepdims=True))
            pi0 = softmax(theta0)
            ev0 = evaluate(mdp, pi0)
            gaps = np.empty((theta0.shape[0], eps.size))  # (n_mdps, n_eps)
            for j, e in enumerate(eps):
                pi = softmax(theta0 + e * direction)
                gaps[:, j] = np.abs(evaluate(mdp, pi).eta - surrogate_fn(mdp, pi0, pi, ev0))
            for i, gap in enumerate(gaps):
                slope, ci = _slope_or_nan(eps, gap)
                rows["n_states"].append(batch.n_states)
                rows["n_actions"].append(batch.n_actions)
                rows["gamma"].append(batch.gamma)
                rows["mdp_seed"].append(batch.mdp_seed)
                rows["index"].append(i)
                rows["slope"].append(slope)
                rows["slope_ci_low"].append(ci[0])
                rows["slope_ci_high"].append(ci[1])
                small = _slope_or_nan(eps[:N_SMALL_EPS], gap[:N_SMALL_EPS])[0]
                rows["small_eps_slope"].append(small)
                rows["gap"].append(gap.tolist())
        slopes = np.asarray(rows["slope"])
        worst = int(np.nanargmin(slopes)) if np.any(np.isfinite(slopes)) else 0
        summary = {
            "n_mdps": len(slopes),
            "min_slope": float(np.min(slopes)),
            "min_slope_ci": [rows["slope_ci_low"][worst], rows["slope_ci_high"][worst]],
            "median_slope": float(np.median(slopes)),
            "max_slope": float(np.max(slopes)),
            "n_slopes_below_threshold": int(np.sum(slopes < self.rule.threshold)),
            "min_small_eps_slope": float(np.min(rows["small_eps_slope"])),
            "worst_mdp": {
                k: rows[k][worst] for k in ("n_states", "n_actions", "gamma", "mdp_seed", "index")
            },
        }
        config = {"seed": seed, "surrogate": surrogate_fn.__name__, "eps": eps.tolist(),
                  **budget.to_json()}
        return Evidence(self.id, tier, control, config, data=rows, summary=summary)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        return per_example(evidence.data.get("slope", []), prefix="mdp ")

    def decide(self, evidence: Evidence) -> Verdict:
        empty = _no_examples(evidence, "slope")
        if empty is not None:
            return empty
        slopes = np.asarray(evidence.data["slope"], dtype=float)
        if not np.all(np.isfinite(slopes)):
            bad = int(np.sum(~np.isfinite(slopes)))
            return self.rule.judge(
                float("nan"),
                n=slopes.size,
                message=f"{bad} MDPs had a gap that was not positive at some eps; no slope",
            )
        worst = int(np.argmin(slopes))
        ci = (evidence.data["slope_ci_low"][worst], evidence.data["slope_ci_high"][worst])
        return self.rule.judge(
            float(slopes[worst]),
            n=slopes.size,
            ci=ci,
            message=(
                f"{slopes.size} MDPs: slopes from {slopes.min():.3f} to {slopes.max():.3f} "
                f"(median {np.median(slopes):.3f}); the interval is that of the MDP with the "
                f"smallest slope (gamma = {evidence.data['gamma'][worst]}, "
                f"{evidence.data['n_states'][worst]} states x "
                f"{evidence.data['n_actions'][worst]} actions). Reported, not judged: slope over "
                f"the {N_SMALL_EPS} smallest eps >= "
                f"{np.nanmin(evidence.data['small_eps_slope']):.3f} for every MDP"
            ),
        )

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        plt = pyplot()

        eps = np.asarray(evidence.config["eps"])
        gammas = np.asarray(evidence.data["gamma"])
        n_states = np.asarray(evidence.data["n_states"])
        fig, ax = plt.subplots(figsize=(5.5, 4.0))
        shown = 0
        for g in sorted(set(gammas.tolist())):  # the largest MDP's first instance per gamma
            idx = np.flatnonzero((gammas == g) & (n_states == n_states.max()))
            if idx.size == 0:
                continue
            i = int(idx[0])
            gap = np.asarray(evidence.data["gap"][i])
            label = f"gamma={g:g}, slope {evidence.data['slope'][i]:.2f}"
            ax.loglog(eps, gap, "o-", ms=3, label=label)
            shown += 1
        worst = int(np.nanargmin(evidence.data["slope"]))
        ax.loglog(
            eps,
            evidence.data["gap"][worst],
            "x--",
            ms=4,
            color="tab:red",
            label=f"smallest slope {evidence.data['slope'][worst]:.2f} "
            f"(gamma={evidence.data['gamma'][worst]:g}, {evidence.data['n_states'][worst]}"
            f"x{evidence.data['n_actions'][worst]})",
        )
        all_gaps = np.asarray(evidence.data["gap"], dtype=float)
        anchor = float(np.median(all_gaps[:, -1])) if all_gaps.size else 1.0
        ax.loglog(eps, anchor * (eps / eps[-1]) ** 2, "k--", lw=1, label="eps^2 reference")
        ax.set_xlabel("eps (step along a unit direction in theta)")
        ax.set_ylabel("|eta - L|")
        kind = "negative control" if evidence.control else "real"
        ax.set_title(f"Surrogate gap vs step ({kind}, {evidence.tier})", fontsize=10)
        if shown:
            ax.legend(fontsize=7)
        fig.tight_layout()
        return [save_figure(fig, out_dir, "surrogate_gap_order", control=evidence.control, dpi=110)]


N_SMALL_EPS = 3  # points of the reported (not judged) small-eps slope


def _slope_or_nan(eps: np.ndarray, gap: np.ndarray) -> tuple[float, tuple[float, float]]:
    """Log-log slope of gap on eps with its interval; NaNs when some gap is not positive."""
    if np.any(gap <= 0) or not np.all(np.isfinite(gap)):
        nan = float("nan")
        return nan, (nan, nan)
    return loglog_slope(eps, gap)
