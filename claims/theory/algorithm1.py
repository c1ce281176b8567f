"""Algorithm 1 (TRPO section 3) improves eta monotonically.

Each iteration computes the exact advantages of pi_i and sets
pi_{i+1} = argmax_pi [L_{pi_i}(pi) - C max_s KL(pi_i(.|s) || pi(.|s))], C = 4 eps gamma/(1-gamma)^2.
By Theorem 1, eta(pi_{i+1}) >= M_i(pi_{i+1}) >= M_i(pi_i) = eta(pi_i): the sequence never falls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from claims.core import Claim, DecisionRule, Evidence, Kind, Verdict
from claims.plotting import pyplot, save_figure
from claims.registry import register
from trpo_ref.tabular import (
    MDP,
    algorithm1_step,
    evaluate,
    gridworld,
    optimal_policy,
    random_mdp,
    softmax,
)

TOLERANCE = -1e-10  # float64 slack on eta_{i+1} - eta_i (see the rule's description)


def _mdp_with_flipped_advantages(mdp: MDP) -> MDP:
    """BUG (negative control): the MDP whose exact advantages are V - Q instead of Q - V.

    Negating the rewards negates V, Q and hence A = Q - V exactly, while rho, the KL terms and
    eps = max|A| (so C) are unchanged; algorithm1_step on this MDP is therefore exactly the
    maximization of L - C max KL fed with the wrong-sign advantage V - Q.
    """
    return MDP(mdp.P, -mdp.r, mdp.gamma, mdp.mu0)


def iterate_algorithm1(
    mdp: MDP, pi0: np.ndarray, n_iterations: int, *, control: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run Algorithm 1 for n_iterations from pi0.

    mdp: batch of B MDPs (or one); pi0: (..., S, A). Returns the true etas (n_iterations + 1,
    ...), the final policy (..., S, A) and the solver's fallback flags (n_iterations, ...): True
    where algorithm1_step returned pi unchanged because its solution did not raise the
    objective. ``control=True`` runs the wrong-sign-advantage bug; eta is always that of ``mdp``.
    """
    step_mdp = _mdp_with_flipped_advantages(mdp) if control else mdp
    pi = pi0
    etas, fallbacks = [evaluate(mdp, pi).eta], []
    for _ in range(n_iterations):
        step = algorithm1_step(step_mdp, pi)
        pi = step.pi
        etas.append(evaluate(mdp, pi).eta)
        fallbacks.append(step.fallback)
    return np.stack(etas), pi, np.stack(fallbacks) if fallbacks else np.zeros((0,), bool)


@register
class Algorithm1Monotonic(Claim):
    id = "theory.algorithm1_monotonic"
    title = "Algorithm 1 (maximize L - C max KL, exact advantages) improves eta monotonically"
    statement = (
        "Algorithm 1, which at each iteration maximizes L_{pi_i}(pi) - C max_s KL(pi_i(.|s) || "
        "pi(.|s)) with exact advantages and C = 4 eps gamma / (1 - gamma)^2, generates a "
        "monotonically improving sequence of policies: eta(pi_0) <= eta(pi_1) <= ..."
    )
    source = "TRPO section 3, Algorithm 1 (with Theorem 1, eq. 9)"
    kind = Kind.EXACT
    protocol = (
        "Random MDPs (Dirichlet transitions, rewards uniform on [-1, 1]) for every size in "
        "`sizes` and discount in `gammas` (n_mdps each), plus the 5x5 gridworld (gamma 0.95) "
        "with `n_gridworld_starts` starts; each starts from a softmax policy with logits "
        "N(0, theta_scale^2) and runs `n_iterations` iterations of "
        "trpo_ref.tabular.algorithm1_step (C = penalty_coefficient, the theoretical constant). "
        "Per (MDP, iteration): the exact improvement eta_{i+1} - eta_i."
    )
    negative_control = (
        "The advantage with the wrong sign, A = V - Q instead of Q - V, fed to the same "
        "maximization (same C, same max-KL penalty): run as algorithm1_step on the MDP with "
        "negated rewards, which has exactly these advantages, with eta measured on the true MDP."
    )
    rule = DecisionRule(
        statistic="min over (MDP, iteration) of eta_{i+1} - eta_i",
        comparator=">=",
        threshold=TOLERANCE,
        description=(
            "SUPPORTED iff no iteration lowers eta by more than 1e-10: monotonicity is exact by "
            "Theorem 1 (eta(pi_{i+1}) >= M_i(pi_{i+1}) >= M_i(pi_i) = eta(pi_i)), and 1e-10 "
            "covers float64 error of the exact evaluations (eta up to ~1e2, errors ~1e-12)."
        ),
    )
    budgets: ClassVar[dict[str, dict[str, Any] | None]] = {
        "quick": {
            "sizes": [[3, 2], [6, 3], [10, 4]],
            "gammas": [0.5, 0.9, 0.99],
            "n_mdps": 2,
            "n_gridworld_starts": 2,
            "theta_scale": 1.0,
            "n_iterations": 20,
        },
        "standard": {
            "sizes": [[2, 2], [3, 2], [6, 3], [10, 4], [12, 6]],
            "gammas": [0.3, 0.5, 0.9, 0.97, 0.99],
            "n_mdps": 10,
            "n_gridworld_starts": 10,
            "theta_scale": 2.0,
            "n_iterations": 50,
        },
        "full": {
            "sizes": [[2, 2], [3, 2], [6, 3], [10, 4], [12, 6], [20, 5]],
            "gammas": [0.3, 0.5, 0.9, 0.95, 0.97, 0.99],
            "n_mdps": 20,
            "n_gridworld_starts": 20,
            "theta_scale": 2.0,
            "n_iterations": 200,
        },
    }

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.budget(tier)
        assert budget is not None
        n_iter = int(budget["n_iterations"])
        cases: list[tuple[str, MDP]] = []
        k = 0
        for n_states, n_actions in budget["sizes"]:
            for gamma in budget["gammas"]:
                mdp_seed = 1_000_000 * seed + 4_000 + k
                mdp = random_mdp(mdp_seed, n_states, n_actions, gamma, n_mdps=budget["n_mdps"])
                cases.append(
                    (f"random S={n_states} A={n_actions} gamma={gamma} seed={mdp_seed}", mdp)
                )
                k += 1
        grid = gridworld()
        n_grid = int(budget["n_gridworld_starts"])
        grid_batch = MDP(
            np.broadcast_to(grid.P, (n_grid, *grid.P.shape)), grid.r, grid.gamma, grid.mu0
        )
        cases.append(("gridworld", grid_batch))

        rows: dict[str, list[Any]] = {
            k: []
            for k in (
                "case",
                "index",
                "gamma",
                "eta_first",
                "eta_last",
                "eta_star",
                "min_improvement",
                "argmin_iteration",
                "n_fallbacks",
            )
        }
        trajectories: list[np.ndarray] = []
        for c, (label, mdp) in enumerate(cases):
            rng = np.random.default_rng([seed, 4, c])
            theta0 = budget["theta_scale"] * rng.standard_normal(
                (*mdp.batch_shape, mdp.n_states, mdp.n_actions)
            )
            etas, _, fallbacks = iterate_algorithm1(mdp, softmax(theta0), n_iter, control=control)
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
                rows["min_improvement"].append(float(np.min(steps[:, i])))
                rows["argmin_iteration"].append(int(np.argmin(steps[:, i])))
                rows["n_fallbacks"].append(int(np.sum(fallbacks[:, i])))
                trajectories.append(etas[:, i])
        etas_all = np.stack(trajectories)  # (runs, n_iterations + 1)
        return Evidence(
            self.id,
            tier,
            control,
            {
                "seed": seed,
                **budget,
                "data_note": "eta trajectories are kept for the figure "
                "only (artifacts['eta']); data holds per-run first/last eta and min improvement",
            },
            data=rows,
            summary=_summary(rows, etas_all, n_iter),
            artifacts={"eta": etas_all},
        )

    def decide(self, evidence: Evidence) -> Verdict:
        per_run = evidence.data.get("min_improvement", [])
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
                f"{s['n_decreasing_steps']} steps lowered eta by more than 1e-10; "
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
