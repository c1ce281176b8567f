"""Algorithm 1 (TRPO section 3) improves eta by at least what it gains on its own bound, eq. (10).

Each iteration computes the exact advantages of pi_i and sets
pi_{i+1} = argmax_pi M_i(pi), M_i(pi) = L_{pi_i}(pi) - C max_s KL(pi_i(.|s) || pi(.|s)),
C = 4 eps gamma/(1-gamma)^2. Theorem 1 gives eta(pi) >= M_i(pi) with equality at pi_i, hence
eq. (10): eta(pi_{i+1}) - eta(pi_i) >= M_i(pi_{i+1}) - M_i(pi_i) >= 0. Monotonicity alone cannot
tell the bound from any other penalty (with exact advantages even C = 0, policy iteration,
improves monotonically); eq. (10) can: with a penalty smaller than Theorem 1's it may fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from claims.framework.core import Budget, Claim, Comparison, DecisionRule, Evidence, Kind, Verdict
from claims.framework.plotting import pyplot, save_figure
from claims.framework.registry import register
from trpo_ref.tabular import (
    MDP,
    algorithm1_step,
    evaluate,
    gridworld,
    optimal_policy,
    random_mdp,
    softmax,
)
from trpo_ref.tabular.bounds import penalty_from
from trpo_ref.tabular.evaluate import evaluate_unchecked


@dataclass(frozen=True)
class Algorithm1Budget(Budget):
    """theory.algorithm1_monotonic: random-MDP batches and gridworld starts, iterated exactly."""

    sizes: tuple[tuple[int, int], ...]  # (n_states, n_actions) of each random-MDP batch
    gammas: tuple[float, ...]  # discount factors, crossed with ``sizes``
    n_mdps: int  # random MDPs per (size, gamma) batch
    n_gridworld_starts: int  # random starting policies on the gridworld
    theta_scale: float  # starting logits ~ N(0, theta_scale^2)
    n_iterations: int  # Algorithm 1 iterations per run
    sensitivity_iterations: int | None = None  # iterations of the other-penalty check (None: all)


TOLERANCE = -1e-10  # float64 slack on eq. (10) (see the rule's description)

Penalty = Callable[[MDP, Any], np.ndarray]  # (mdp, evaluation of pi_i) -> C, shape (B,)


def theorem1_penalty(mdp: MDP, ev: Any) -> np.ndarray:
    """C = 4 eps gamma / (1 - gamma)^2 (Theorem 1, eq. 9)."""
    return penalty_from(mdp, ev)


def penalty_without_horizon(mdp: MDP, ev: Any) -> np.ndarray:
    """BUG (negative control): C = 4 eps gamma, the horizon factor 1 / (1 - gamma)^2 of
    Theorem 1 dropped (the bound copied from its one-step form): for gamma = 0.9 a penalty 100
    times too small, for 0.99 10^4 times. M_i is then no longer a lower bound on eta."""
    return penalty_from(mdp, ev) * (1.0 - np.asarray(mdp.gamma)) ** 2


# Other penalties the summary measures eq. (10) under (how much room Theorem 1 leaves)
SENSITIVITY: dict[str, Callable[[MDP, Any], np.ndarray]] = {
    "(1 - gamma) for (1 - gamma)^2": lambda m, e: penalty_from(m, e) * (1.0 - np.asarray(m.gamma)),
    "C / 10": lambda m, e: penalty_from(m, e) / 10.0,
    "C = 4 eps gamma (no horizon factor)": penalty_without_horizon,
    "C = 0 (policy iteration)": lambda m, e: 0.0 * penalty_from(m, e),
}


def iterate_algorithm1(
    mdp: MDP, pi0: np.ndarray, n_iterations: int, *, penalty: Penalty = theorem1_penalty
) -> dict[str, np.ndarray]:
    """Run Algorithm 1 for n_iterations from pi0 with penalty coefficient ``penalty(mdp, ev)``.

    mdp: batch of B MDPs (or one); pi0: (..., S, A). Returns arrays with a leading iteration
    axis: "eta" (n_iterations + 1, ...), the true returns; "slack" (n_iterations, ...), eq. (10)'s
    [eta(pi_{i+1}) - eta(pi_i)] - [M_i(pi_{i+1}) - M_i(pi_i)]; "bound_gain" (n_iterations, ...),
    M_i(pi_{i+1}) - M_i(pi_i); "fallback" (n_iterations, ...), where algorithm1_step kept pi_i
    because its solution did not raise M_i in float64.
    """
    pi = pi0
    etas, slack, gain, fallbacks = [evaluate(mdp, pi).eta], [], [], []
    for _ in range(n_iterations):
        step = algorithm1_step(mdp, pi, C=penalty(mdp, evaluate_unchecked(mdp, pi)))
        pi = step.pi
        bound_gain = step.objective_after - step.objective_before
        etas.append(step.eta_after)
        slack.append((step.eta_after - step.eta_before) - bound_gain)
        gain.append(bound_gain)
        fallbacks.append(step.fallback)
    out = {"eta": np.stack(etas)}
    for key, rows in (("slack", slack), ("bound_gain", gain), ("fallback", fallbacks)):
        out[key] = np.stack(rows) if rows else np.zeros((0, *np.shape(etas[0])))
    return out


@register
class Algorithm1Monotonic(Claim[Algorithm1Budget]):
    id = "theory.algorithm1_monotonic"
    title = ("Algorithm 1 (maximize L - C max KL, exact advantages) gains at least its bound's "
             "gain, eq. (10), so eta never falls")
    statement = (
        "Algorithm 1, which at each iteration maximizes M_i(pi) = L_{pi_i}(pi) - C max_s "
        "KL(pi_i(.|s) || pi(.|s)) with exact advantages and C = 4 eps gamma / (1 - gamma)^2, "
        "satisfies eq. (10): eta(pi_{i+1}) - eta(pi_i) >= M_i(pi_{i+1}) - M_i(pi_i) (>= 0), so "
        "it generates a monotonically improving sequence eta(pi_0) <= eta(pi_1) <= ..."
    )
    source = "TRPO section 3, Algorithm 1 and eq. (10) (with Theorem 1, eq. 9)"
    kind = Kind.EXACT
    protocol = (
        "Random MDPs (Dirichlet transitions, rewards uniform on [-1, 1]) for every size in "
        "`sizes` and discount in `gammas` (n_mdps each), plus the 5x5 gridworld (gamma 0.95) "
        "with `n_gridworld_starts` starts; each starts from a softmax policy with logits "
        "N(0, theta_scale^2) and runs `n_iterations` iterations of "
        "trpo_ref.tabular.algorithm1_step with C = 4 eps gamma / (1 - gamma)^2. Per (MDP, "
        "iteration), exactly: eq. (10)'s slack [eta(pi_{i+1}) - eta(pi_i)] - [M_i(pi_{i+1}) - "
        "M_i(pi_i)], and the improvement eta(pi_{i+1}) - eta(pi_i). The summary also gives the "
        "slack under smaller penalties over the first `sensitivity_iterations` iterations "
        "(how much room Theorem 1 leaves)."
    )
    negative_control = (
        "The penalty from a wrong bound: C = 4 eps gamma, Theorem 1's horizon factor "
        "1 / (1 - gamma)^2 dropped (the bound copied from its one-step form). Algorithm 1 then "
        "maximizes an M_i that is no lower bound on eta, so eq. (10), the mechanism the claim "
        "is about, can fail even though eta may still rise (exact advantages make even C = 0 "
        "monotone). The milder (1 - gamma) for (1 - gamma)^2 is measured in the summary; on "
        "the quick family it did not break eq. (10) (Theorem 1's slack absorbs it)."
    )
    rule = DecisionRule(
        statistic="min over (MDP, iteration) of eq. (10)'s slack [eta_{i+1} - eta_i] - "
                  "[M_i(pi_{i+1}) - M_i(pi_i)]",
        comparator=">=",
        threshold=TOLERANCE,
        description=(
            "SUPPORTED iff eq. (10) holds on every (MDP, iteration) up to 1e-10: it is exact by "
            "Theorem 1 (eta(pi) >= M_i(pi), equality at pi_i), and 1e-10 covers float64 error "
            "of the exact evaluations (eta up to ~1e2, errors ~1e-12). Monotonicity (the min "
            "improvement) is reported beside it."
        ),
    )
    comparison = Comparison(
        statistic="min over a run's iterations of eq. (10)'s slack, per (case, start)",
        better="higher", margin=1e-8)
    budgets: ClassVar[dict[str, Algorithm1Budget | None]] = {
        "quick": Algorithm1Budget(
            sizes=[[3, 2], [6, 3], [10, 4]],
            gammas=[0.5, 0.9, 0.99],
            n_mdps=2,
            n_gridworld_starts=2,
            theta_scale=1.0,
            n_iterations=20,
        ),
        "standard": Algorithm1Budget(
            sizes=[[2, 2], [3, 2], [6, 3], [10, 4], [12, 6]],
            gammas=[0.3, 0.5, 0.9, 0.97, 0.99],
            n_mdps=10,
            n_gridworld_starts=10,
            theta_scale=2.0,
            n_iterations=50,
            sensitivity_iterations=20,
        ),
        "full": Algorithm1Budget(
            sizes=[[2, 2], [3, 2], [6, 3], [10, 4], [12, 6], [20, 5]],
            gammas=[0.3, 0.5, 0.9, 0.95, 0.97, 0.99],
            n_mdps=20,
            n_gridworld_starts=20,
            theta_scale=2.0,
            n_iterations=200,
            sensitivity_iterations=20,
        ),
    }

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.tier_budget(tier)
        n_iter = int(budget.n_iterations)
        penalty = penalty_without_horizon if control else theorem1_penalty
        cases = _cases(budget, seed)
        rows: dict[str, list[Any]] = {k: [] for k in (
            "case", "index", "gamma", "eta_first", "eta_last", "eta_star", "min_slack",
            "argmin_iteration", "min_improvement", "n_fallbacks")}
        trajectories, sensitivity = [], {name: [] for name in SENSITIVITY}
        for c, (label, mdp) in enumerate(cases):
            pi0 = _start_policy(mdp, budget, seed, c)
            out = iterate_algorithm1(mdp, pi0, n_iter, penalty=penalty)
            etas, slack = out["eta"], out["slack"]
            eta_star = optimal_policy(mdp)[1]
            gammas = np.broadcast_to(mdp.gamma, mdp.batch_shape)
            steps = np.diff(etas, axis=0)  # (n_iterations, B)
            for i in range(etas.shape[1]):
                rows["case"].append(label)
                rows["index"].append(i)
                rows["gamma"].append(float(gammas[i]))
                rows["eta_first"].append(float(etas[0, i]))
                rows["eta_last"].append(float(etas[-1, i]))
                rows["eta_star"].append(float(eta_star[i]))
                rows["min_slack"].append(float(np.min(slack[:, i])))
                rows["argmin_iteration"].append(int(np.argmin(slack[:, i])))
                rows["min_improvement"].append(float(np.min(steps[:, i])))
                rows["n_fallbacks"].append(int(np.sum(out["fallback"][:, i])))
                trajectories.append(etas[:, i])
            if not control:  # over the first sensitivity_iterations only (cost)
                n_sens = min(n_iter, budget.sensitivity_iterations or n_iter)
                for name, other in SENSITIVITY.items():
                    sensitivity[name].append(
                        iterate_algorithm1(mdp, pi0, n_sens, penalty=other)["slack"].ravel())
        etas_all = np.stack(trajectories)  # (runs, n_iterations + 1)
        summary = _summary(rows, etas_all, n_iter)
        if not control:
            summary["eq10_slack_under_other_penalties"] = {
                name: {"min_slack": float(np.concatenate(v).min()),
                       "share_of_iterations_violating": float(
                           np.mean(np.concatenate(v) < TOLERANCE))}
                for name, v in sensitivity.items()}
        return Evidence(
            self.id, tier, control,
            {"seed": seed, **budget.to_json(),
             "penalty": "C = 4 eps gamma (control: horizon factor dropped)" if control
             else "C = 4 eps gamma / (1 - gamma)^2",
             "data_note": "eta trajectories are kept for the figure only (artifacts['eta']); "
                          "data holds per-run first/last eta, min eq. (10) slack and min "
                          "improvement"},
            data=rows, summary=summary, artifacts={"eta": etas_all})

    def samples(self, evidence: Evidence) -> dict[str, float]:
        d = evidence.data
        return {f"{case} #{i}": float(v)
                for case, i, v in zip(d.get("case", []), d.get("index", []),
                                      d.get("min_slack", []), strict=True)}

    def decide(self, evidence: Evidence) -> Verdict:
        per_run = evidence.data.get("min_slack", [])
        if not per_run or not evidence.config.get("n_iterations"):
            return Verdict.inconclusive(
                "the evidence holds no iterations, so there is nothing to judge",
            )
        n = len(per_run) * int(evidence.config["n_iterations"])
        s = evidence.summary
        return self.rule.judge(
            float(np.min(per_run)),
            n=n,
            message=(
                f"{len(per_run)} runs x {evidence.config['n_iterations']} iterations; "
                f"{s['n_eq10_violations']} runs broke eq. (10) by more than 1e-10; "
                f"min improvement eta_(i+1) - eta_i {s['min_improvement']:.3g} "
                f"({s['n_decreasing_steps']} steps lowered eta by more than 1e-10); "
                f"{s['n_solver_fallbacks']} solver fallbacks (pi kept); mean total "
                f"improvement {s['mean_total_improvement']:.3g} (fraction of the gap to optimal "
                f"closed: median {s['median_fraction_of_gap_closed']:.3g})"
            ),
        )

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        plt = pyplot()

        if "eta" not in evidence.artifacts or not evidence.data.get("eta_star"):
            return []
        etas = np.asarray(evidence.artifacts["eta"], dtype=float)  # (runs, n_iterations + 1)
        eta_star = np.asarray(evidence.data["eta_star"], dtype=float)
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        gap0 = np.maximum(eta_star[:, None] - etas[:, :1], np.finfo(float).tiny)
        fraction = (etas - etas[:, :1]) / gap0
        for row, label in zip(fraction, evidence.data["case"], strict=True):
            ax.plot(row, lw=1, color="tab:green" if label == "gridworld" else "tab:blue", alpha=0.6)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlabel("iteration")
        ax.set_ylabel("(eta_i - eta_0) / (eta* - eta_0)")
        kind = "negative control" if evidence.control else "real"
        ax.set_title(
            f"Algorithm 1 progress ({kind}, {evidence.tier}; green: gridworld)", fontsize=9
        )
        fig.tight_layout()
        return [save_figure(fig, out_dir, "algorithm1_progress", control=evidence.control, dpi=110)]


def _cases(budget: Algorithm1Budget, seed: int) -> list[tuple[str, MDP]]:
    """The budget's random-MDP batches (one per size and gamma) and the gridworld batch."""
    cases: list[tuple[str, MDP]] = []
    k = 0
    for n_states, n_actions in budget.sizes:
        for gamma in budget.gammas:
            mdp_seed = 1_000_000 * seed + 4_000 + k
            mdp = random_mdp(mdp_seed, n_states, n_actions, gamma, n_mdps=budget.n_mdps)
            cases.append((f"random S={n_states} A={n_actions} gamma={gamma} seed={mdp_seed}", mdp))
            k += 1
    grid = gridworld()
    n_grid = int(budget.n_gridworld_starts)
    cases.append(("gridworld", MDP(np.broadcast_to(grid.P, (n_grid, *grid.P.shape)), grid.r,
                                   grid.gamma, grid.mu0)))
    return cases


def _start_policy(mdp: MDP, budget: Algorithm1Budget, seed: int, case: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 4, case])
    theta0 = budget.theta_scale * rng.standard_normal(
        (*mdp.batch_shape, mdp.n_states, mdp.n_actions))
    return softmax(theta0)


def _summary(rows: dict[str, list[Any]], etas: np.ndarray, n_iterations: int) -> dict[str, Any]:
    """etas: (runs, n_iterations + 1) true returns along each run."""
    steps = np.diff(etas, axis=1)
    eta_star = np.asarray(rows["eta_star"])
    total = etas[:, -1] - etas[:, 0]
    gap = eta_star - etas[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(gap > 0, total / gap, np.nan)
    is_grid = np.asarray([c == "gridworld" for c in rows["case"]])
    worst = int(np.argmin(steps.min(axis=1)))
    gammas = np.asarray(rows["gamma"])
    return {
        "n_runs": int(etas.shape[0]),
        "n_iterations": n_iterations,
        "min_improvement": float(steps.min()),
        "argmin": {
            "case": rows["case"][worst],
            "index": rows["index"][worst],
            "iteration": int(np.argmin(steps[worst])),
        },
        "min_eq10_slack": float(np.min(rows["min_slack"])),
        "n_eq10_violations": int(np.sum(np.asarray(rows["min_slack"]) < TOLERANCE)),
        "n_decreasing_steps": int(np.sum(steps < TOLERANCE)),
        "n_solver_fallbacks": int(np.sum(rows["n_fallbacks"])),
        "mean_total_improvement": float(np.mean(total)),
        "median_fraction_of_gap_closed": float(np.nanmedian(fraction)),
        "median_fraction_of_gap_closed_by_gamma": {
            f"{g:g}": float(np.nanmedian(fraction[(gammas == g) & ~is_grid]))
            for g in sorted(set(gammas[~is_grid].tolist()))
        },
        "gridworld_total_improvement": [float(x) for x in total[is_grid]],
        "gridworld_fraction_of_gap_closed": [float(x) for x in fraction[is_grid]],
    }
