"""The trust-region step is a natural-gradient step (TRPO section 6, App. C), in two claims.

- theory.tr_direction: the solution of max L(theta) s.t. kl_mean <= delta (eq. 12), solved
  numerically, points along the natural gradient pinv(F) g as delta -> 0.
- theory.beta_kl: the step length beta = sqrt(2 delta / s^T F s) (App. C) lands the natural step
  at exact mean KL close to delta, the ratio KL(beta s) / delta tending to 1 as delta -> 0.

F is the Fisher matrix of the softmax policy under rho_old (the Hessian of the mean KL, App. C),
computed exactly by trpo_ref.tabular.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize

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
    evaluate,
    gridworld,
    kl_mean,
    natural_gradient,
    policy_gradient,
    random_mdp,
    softmax,
    surrogate,
    trust_region_step,
)
from trpo_ref.tabular.divergence import state_weights
from trpo_ref.tabular.gradients import fisher_quadratic_from, gradient_from


@dataclass(frozen=True)
class BetaBudget(Budget):
    """theory.beta_kl: random MDPs of one family (plus the gridworld) with random policies."""

    n_mdps: int  # random MDPs (one random softmax policy each)
    random: Mapping[str, Any]  # their family: random_mdp's n_states, n_actions, gamma, sparsity


@dataclass(frozen=True)
class DirectionBudget(Budget):
    """theory.tr_direction: as :class:`BetaBudget`, with the constrained solver's iterations."""

    n_mdps: int  # random MDPs (one random softmax policy each)
    max_iter: int  # iterations of the KL-constrained solver per MDP
    random: Mapping[str, Any]  # their family: random_mdp's n_states, n_actions, gamma, sparsity


DIRECTION_DELTA = 1e-4
BETA_DELTAS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)


def _mdp_set(budget: BetaBudget | DirectionBudget, seed: int,
             offset: int) -> list[tuple[str, MDP, np.ndarray]]:
    """(name, MDP, theta) triples: random MDPs with random softmax policies (logits N(0, 1)),
    then the gridworld at the uniform policy (logits 0)."""
    out = []
    fam = budget.random
    mdps = random_mdp(
        [seed, offset],
        fam["n_states"],
        fam["n_actions"],
        fam["gamma"],
        n_mdps=budget.n_mdps,
        sparsity=fam["sparsity"],
    )
    thetas = np.random.default_rng([seed, offset, 1]).standard_normal(
        (budget.n_mdps, fam["n_states"], fam["n_actions"])
    )
    name = f"random {fam['n_states']}x{fam['n_actions']} gamma={fam['gamma']}"
    for i in range(budget.n_mdps):
        out.append((f"{name} #{i}", mdps[i], thetas[i]))
    grid = gridworld()
    out.append(("gridworld (uniform policy)", grid, np.zeros((grid.n_states, grid.n_actions))))
    return out


# --------------------------------------------------------------------------------------------
# theory.tr_direction
# --------------------------------------------------------------------------------------------


def remove_state_shifts(x: np.ndarray) -> np.ndarray:
    """x minus its per-state mean over actions: the component of a logit change that moves the
    policy (softmax is invariant to adding a constant per state); shape kept (..., S, A)."""
    return x - x.mean(axis=-1, keepdims=True)


def cosine(x: np.ndarray, y: np.ndarray) -> float:
    """cos of the angle between two logit changes after removing per-state shifts."""
    a, b = remove_state_shifts(x).ravel(), remove_state_shifts(y).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _kl_mean_gradient(weights: np.ndarray, pi_old: np.ndarray, pi_new: np.ndarray) -> np.ndarray:
    """d kl_mean(pi_old, softmax(theta')) / d theta' = w(s) (pi_new(a|s) - pi_old(a|s))."""
    return weights[..., None] * (pi_new - pi_old)


def solve_trust_region(
    mdp: MDP, theta: np.ndarray, delta: float, *, max_iter: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """max_{theta'} L_{pi_old}(softmax(theta')) s.t. kl_mean(pi_old, softmax(theta')) <= delta.

    Solved with scipy SLSQP on the logits (one MDP), with analytic gradients (L's is the
    policy-gradient formula at pi_new with pi_old's rho and A; kl_mean's is w (pi_new - pi_old)).
    Variables are scaled, theta' = theta + sqrt(delta) u, so objective and constraint are O(1).
    Starts from the vanilla gradient scaled to half the KL budget (so the solver has to turn
    away from it). Returns theta' - theta and diagnostics.
    """
    S, A = theta.shape
    pi_old = softmax(theta)
    ev_old = evaluate(mdp, pi_old)
    weights = state_weights(ev_old.rho)
    scale = np.sqrt(delta)

    def policy(u: np.ndarray) -> np.ndarray:
        return softmax(theta + scale * u.reshape(S, A))

    def objective(u: np.ndarray) -> tuple[float, np.ndarray]:
        pi_new = policy(u)
        value = (surrogate(mdp, pi_old, pi_new, ev_old=ev_old) - ev_old.eta) / scale
        return -float(value), -gradient_from(ev_old.rho, pi_new, ev_old.adv).ravel()

    def constraint(u: np.ndarray) -> float:
        return 1.0 - float(kl_mean(mdp, pi_old, policy(u), ev_old=ev_old)) / delta

    def constraint_jac(u: np.ndarray) -> np.ndarray:
        return -_kl_mean_gradient(weights, pi_old, policy(u)).ravel() * scale / delta

    g = policy_gradient(mdp, theta)
    u0 = g / np.sqrt(fisher_quadratic_from(weights, pi_old, g))  # quadratic KL model: delta/2
    res = minimize(
        objective,
        u0.ravel(),
        jac=True,
        method="SLSQP",
        constraints=[{"type": "ineq", "fun": constraint, "jac": constraint_jac}],
        options={"maxiter": max_iter, "ftol": 1e-15},
    )
    dtheta = scale * res.x.reshape(S, A)
    info = {
        "success": bool(res.success),
        "n_iterations": int(res.nit),
        "message": str(res.message),
        "kl_over_delta": 1.0 - constraint(res.x),
        "surrogate_gain": -float(res.fun) * float(scale),
    }
    return dtheta, info


def _direction_exact(mdp: MDP, theta: np.ndarray) -> np.ndarray:
    """The direction TRPO steps along: the natural gradient pinv(F) g."""
    return natural_gradient(mdp, theta)


def _direction_bug_vanilla(mdp: MDP, theta: np.ndarray) -> np.ndarray:
    """BUG (negative control): the Fisher forgotten, the vanilla gradient g used as the step
    direction (e.g. conjugate gradient run with the identity instead of the FVP)."""
    return policy_gradient(mdp, theta)


@register
class TrustRegionDirection(Claim[DirectionBudget]):
    id = "theory.tr_direction"
    comparison = Comparison(
        statistic="cos(exact trust-region step, natural gradient) per MDP",
        better="higher", margin=1e-3)
    title = "The trust-region step (max L s.t. mean KL <= delta) points along the natural gradient"
    statement = (
        "For small delta, the solution of max_theta L(theta) s.t. mean KL <= delta (eq. 12) is "
        "a step along the natural gradient A^{-1} g, A the Fisher (the Hessian of the mean KL), "
        "which is how TRPO computes its search direction (section 6, App. C)."
    )
    source = "TRPO section 6 and App. C (linear model of L, quadratic model of the KL)"
    kind = Kind.APPROXIMATION
    protocol = (
        "`n_mdps` random MDPs (`random` family; pi_old = softmax(N(0, 1) logits)) and the "
        "gridworld at the uniform policy. Per MDP: solve max L s.t. exact kl_mean <= delta = 1e-4 "
        "with scipy SLSQP over all softmax logits (analytic gradients, start at the vanilla "
        "gradient), then the cosine between the solution's logit change and "
        "trpo_ref.tabular.natural_gradient, both with per-state shifts removed (softmax is "
        "invariant to them)."
    )
    negative_control = (
        "The vanilla gradient as the direction (the Fisher forgotten, e.g. conjugate gradient "
        "fed the identity instead of the Fisher-vector product), compared with the same SLSQP "
        "solution."
    )
    rule = DecisionRule(
        statistic="min over MDPs of cos(exact trust-region step, direction) at delta = 1e-4",
        comparator=">=",
        threshold=0.99,
        description=(
            "SUPPORTED iff every MDP's cosine is >= 0.99 (angle <= 8 degrees). The exact "
            "solution departs from the natural direction only through the cubic KL and "
            "curved-L terms, a relative O(|step|) = O(sqrt(delta)) ~ 1e-2 effect, so 1 - cos "
            "should be ~1e-4; 0.99 leaves a factor ~100 for problem constants, while a "
            "direction that ignores the Fisher is tens of degrees off."
        ),
    )
    budgets: ClassVar[dict[str, DirectionBudget | None]] = {
        "quick": DirectionBudget(
            n_mdps=10,
            max_iter=300,
            random={"n_states": 6, "n_actions": 3, "gamma": 0.9, "sparsity": 0.0},
        ),
        "standard": DirectionBudget(
            n_mdps=100,
            max_iter=1_000,
            random={"n_states": 10, "n_actions": 4, "gamma": 0.95, "sparsity": 0.5},
        ),
        "full": DirectionBudget(
            n_mdps=500,
            max_iter=2_000,
            random={"n_states": 15, "n_actions": 4, "gamma": 0.99, "sparsity": 0.5},
        ),
    }

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.tier_budget(tier)
        direction_fn = _direction_bug_vanilla if control else _direction_exact
        names, cosines, infos = [], [], []
        for name, mdp, theta in _mdp_set(budget, seed, 41):
            dtheta, info = solve_trust_region(
                mdp, theta, DIRECTION_DELTA, max_iter=int(budget.max_iter)
            )
            names.append(name)
            cosines.append(cosine(dtheta, direction_fn(mdp, theta)))
            infos.append(info)
        config = {
            "seed": seed,
            **budget.to_json(),
            "delta": DIRECTION_DELTA,
            "direction": "vanilla gradient (control bug)"
            if control
            else "natural gradient (trpo_ref.tabular.natural_gradient)",
            "solver": "scipy SLSQP, ftol 1e-15, scaled logits, analytic gradients",
        }
        data = {"mdp": names, "cosine": cosines, "solver": infos}
        cos = np.asarray(cosines)
        summary = {
            "n_mdps": len(names),
            "min_cosine": float(cos.min()) if cos.size else float("nan"),
            "median_cosine": float(np.median(cos)) if cos.size else float("nan"),
            "gridworld_cosine": float(cos[-1]) if cos.size else float("nan"),
            "max_angle_degrees": float(np.degrees(np.arccos(np.clip(cos.min(), -1, 1))))
            if cos.size
            else float("nan"),
            "n_solver_failures": int(sum(not i["success"] for i in infos)),
            "kl_over_delta_range": [
                float(min(i["kl_over_delta"] for i in infos)),
                float(max(i["kl_over_delta"] for i in infos)),
            ]
            if infos
            else [],
        }
        return Evidence(self.id, tier, control, config, data, summary)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        d = evidence.data
        return per_example(d.get("cosine", []), d.get("mdp"))

    def decide(self, evidence: Evidence) -> Verdict:
        cos = evidence.values("cosine")
        if cos.size == 0:
            return Verdict.inconclusive("the evidence holds no MDPs, so there is nothing to judge")
        s = evidence.summary
        message = (
            f"{cos.size} MDPs at delta = {DIRECTION_DELTA:g}; cosine min {cos.min():.6f} "
            f"(angle {s['max_angle_degrees']:.3g} deg), median {np.median(cos):.6f}, gridworld "
            f"{s['gridworld_cosine']:.6f}; SLSQP failures: {s['n_solver_failures']}; KL of the "
            f"solution / delta in [{s['kl_over_delta_range'][0]:.4f}, "
            f"{s['kl_over_delta_range'][1]:.4f}]."
        )
        return self.rule.judge(float(cos.min()), n=int(cos.size), message=message)


# --------------------------------------------------------------------------------------------
# theory.beta_kl
# --------------------------------------------------------------------------------------------


def _beta_bug_missing_two(delta: float, sAs: np.ndarray) -> np.ndarray:
    """BUG (negative control): beta = sqrt(delta / s^T F s), the 2 of 1/2 s^T F s = delta lost."""
    return np.sqrt(delta / sAs)


def beta_kl_ratios(
    mdp: MDP, theta: np.ndarray, deltas: tuple[float, ...], *, control: bool
) -> tuple[np.ndarray, np.ndarray]:
    """kl_mean(pi, softmax(theta + beta s)) / delta for each delta; and the betas; (n_deltas,).

    s = natural_gradient; beta and s^T F s come from trpo_ref.tabular.trust_region_step (so its
    implementation is what is measured), except under ``control``, where the bug's beta is
    computed from the step's s^T F s.
    """
    pi = softmax(theta)
    ev = evaluate(mdp, pi)
    s = natural_gradient(mdp, theta)
    ratios, betas = [], []
    for delta in deltas:
        step = trust_region_step(mdp, theta, delta, max_backtracks=0)
        beta = _beta_bug_missing_two(delta, step.sAs) if control else step.beta
        ratios.append(float(kl_mean(mdp, pi, softmax(theta + beta * s), ev_old=ev)) / delta)
        betas.append(float(beta))
    return np.asarray(ratios), np.asarray(betas)


@register
class BetaLandsOnDelta(Claim[BetaBudget]):
    id = "theory.beta_kl"
    comparison = Comparison(
        statistic="|KL(beta s) / delta - 1| at the smallest delta, per MDP",
        better="lower", margin=1e-3)
    title = "beta = sqrt(2 delta / s^T A s) lands the step at mean KL ~ delta, ratio -> 1"
    statement = (
        "The maximal step length beta = sqrt(2 delta / s^T A s), from the quadratic model "
        "1/2 (beta s)^T A (beta s) = delta of the mean KL, gives a step whose exact mean KL is "
        "close to delta, the ratio KL / delta tending to 1 as delta -> 0."
    )
    source = "TRPO App. C (step length from the quadratic KL model; A = Fisher)"
    kind = Kind.APPROXIMATION
    protocol = (
        "`n_mdps` random MDPs (`random` family; pi = softmax(N(0, 1) logits)) and the gridworld "
        "at the uniform policy. Per MDP and delta in 1e-1 .. 1e-5: s = natural_gradient, beta "
        "and s^T F s from trpo_ref.tabular.trust_region_step, then the exact mean KL of "
        "theta + beta s divided by delta. Also reported: per MDP the log-log slope of "
        "|ratio - 1| against delta (expected ~0.5: the model error is O(sqrt(delta)))."
    )
    negative_control = (
        "beta = sqrt(delta / s^T A s), the factor 2 of the quadratic model dropped: the step is "
        "1/sqrt(2) too short and lands at KL ~ delta / 2."
    )
    rule = DecisionRule(
        statistic="max over MDPs of |KL(beta s) / delta - 1| at delta = 1e-5",
        comparator="<=",
        threshold=0.01,
        description=(
            "SUPPORTED iff every MDP's ratio is within 1% of 1 at the smallest delta. The "
            "quadratic model's relative error is the cubic KL term, ~ skewness * |beta s| / 3 "
            "= O(sqrt(delta)) ~ 3e-3 at delta = 1e-5 for O(1) problem constants; 1% allows "
            "constants up to ~3, while a wrong constant in beta is off by 50% or more."
        ),
    )
    budgets: ClassVar[dict[str, BetaBudget | None]] = {
        "quick": BetaBudget(
            n_mdps=20,
            random={"n_states": 10, "n_actions": 4, "gamma": 0.9, "sparsity": 0.0},
        ),
        "standard": BetaBudget(
            n_mdps=200,
            random={"n_states": 10, "n_actions": 4, "gamma": 0.95, "sparsity": 0.5},
        ),
        "full": BetaBudget(
            n_mdps=1_000,
            random={"n_states": 20, "n_actions": 4, "gamma": 0.99, "sparsity": 0.5},
        ),
    }

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.tier_budget(tier)
        names, ratios, betas = [], [], []
        for name, mdp, theta in _mdp_set(budget, seed, 43):
            r, b = beta_kl_ratios(mdp, theta, BETA_DELTAS, control=control)
            names.append(name)
            ratios.append(r.tolist())
            betas.append(b.tolist())
        config = {
            "seed": seed,
            **budget.to_json(),
            "deltas": list(BETA_DELTAS),
            "beta": "sqrt(delta / sAs) (control bug)"
            if control
            else "sqrt(2 delta / sAs) (trpo_ref.tabular.trust_region_step)",
        }
        data = {"mdp": names, "ratio": ratios, "beta": betas}
        summary: dict[str, Any] = {"n_mdps": len(names)}
        if ratios:
            err = np.abs(np.asarray(ratios) - 1.0)  # (n_mdps, n_deltas)
            slopes = [_slope(np.asarray(BETA_DELTAS), e) for e in err]
            summary.update(
                {
                    "max_abs_error_by_delta": {
                        str(d): float(err[:, j].max()) for j, d in enumerate(BETA_DELTAS)
                    },
                    "median_ratio_by_delta": {
                        str(d): float(np.median(np.asarray(ratios)[:, j]))
                        for j, d in enumerate(BETA_DELTAS)
                    },
                    "median_loglog_slope": float(np.nanmedian(slopes)),
                    "loglog_slope_range": [float(np.nanmin(slopes)), float(np.nanmax(slopes))],
                    "gridworld_ratio_smallest_delta": float(ratios[-1][-1]),
                }
            )
        return Evidence(self.id, tier, control, config, data, summary)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        d = evidence.data
        ratios = np.asarray(d.get("ratio", []), dtype=float)
        if ratios.size == 0:
            return {}
        j = int(np.argmin(evidence.config["deltas"]))
        return per_example(np.abs(ratios[:, j] - 1.0), d.get("mdp"))

    def decide(self, evidence: Evidence) -> Verdict:
        ratios = evidence.values("ratio")
        if ratios.size == 0:
            return Verdict.inconclusive("the evidence holds no MDPs, so there is nothing to judge")
        deltas = evidence.config["deltas"]
        j = int(np.argmin(deltas))
        err = np.abs(ratios[:, j] - 1.0)
        s = evidence.summary
        trend = ", ".join(f"{d:g}: {s['max_abs_error_by_delta'][str(d)]:.2g}" for d in deltas)
        message = (
            f"{len(err)} MDPs; max |ratio - 1| by delta: {trend}; median ratio at "
            f"{deltas[j]:g}: {np.median(ratios[:, j]):.5f}; log-log slope of |ratio - 1| vs "
            f"delta: median {s['median_loglog_slope']:.3f} (expected ~0.5)."
        )
        return self.rule.judge(float(err.max()), n=len(err), message=message)

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        plt = pyplot()

        ratios = evidence.values("ratio")
        if ratios.size == 0:
            return []
        deltas = np.asarray(evidence.config["deltas"])
        fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4))
        for i, name in enumerate(evidence.data["mdp"]):
            grid = name.startswith("gridworld")
            style = (
                {"color": "k", "lw": 2.0, "label": "gridworld"}
                if grid
                else {
                    "color": "tab:blue",
                    "lw": 0.6,
                    "alpha": 0.6,
                    "label": "random MDPs" if i == 0 else None,
                }
            )
            axes[0].plot(deltas, ratios[i], marker=".", **style)
            axes[1].plot(deltas, np.abs(ratios[i] - 1.0), marker=".", **style)
        axes[0].axhline(1.0, color="r", ls="--", lw=0.8)
        axes[0].set_ylabel("exact mean KL(beta s) / delta")
        axes[1].plot(deltas, 0.5 * np.sqrt(deltas), "r:", label="slope 1/2")
        axes[1].set_yscale("log")
        axes[1].set_ylabel("|ratio - 1|")
        for ax in axes:
            ax.set_xscale("log")
            ax.set_xlabel("delta")
            ax.legend(fontsize=7)
        kind = "negative control (beta without the 2)" if evidence.control else "real"
        fig.suptitle(f"beta = sqrt(2 delta / sAs): landing KL / delta ({kind})", fontsize=9)
        fig.tight_layout()
        return [save_figure(fig, out_dir, "beta_kl", control=evidence.control, dpi=100)]


def _slope(deltas: np.ndarray, err: np.ndarray) -> float:
    """log-log slope of |ratio - 1| on delta (NaN if some error is exactly 0)."""
    if np.any(err <= 0):
        return float("nan")
    return loglog_slope(deltas, err)[0]
