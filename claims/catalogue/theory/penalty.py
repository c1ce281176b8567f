"""The theoretical penalty crawls (TRPO section 4): with C = 4 eps gamma / (1 - gamma)^2 the steps
of Algorithm 1 are very small, which is why the paper switches to a trust region (eq. 11-12).

Measured: rounds to reach 90% of the optimal return with Algorithm 1's penalty step
(trpo_ref.tabular.algorithm1_step, the theory's C) versus the trust-region step
(trpo_ref.tabular.trust_region_step, delta = 0.01), from the same start, on the gridworld and on
random MDPs.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    Status,
    Verdict,
    per_example,
)
from claims.framework.plotting import pyplot, save_figure
from claims.framework.registry import register
from claims.framework.stats import bootstrap_ci
from trpo_ref.tabular import (
    MDP,
    algorithm1_step,
    evaluate,
    gridworld,
    optimal_policy,
    random_mdp,
    trust_region_step,
    uniform_policy,
)
from trpo_ref.tabular.bounds import max_abs_advantage


@dataclass(frozen=True)
class PenaltyBudget(Budget):
    """theory.penalty_crawls: the gridworld and batches of random MDPs, each run to the target."""

    n_mdps: int  # random MDPs per family
    max_rounds: int  # cap on the penalty method's rounds per MDP
    random: tuple[Mapping[str, Any], ...]  # random_mdp's n_states, n_actions, gamma


TARGET = 0.9  # fraction of the achievable improvement (normalized return) to reach
TR_DELTA = 0.01  # the paper's delta
ALPHA = 0.05


def _penalty_bug_no_horizon(mdp: MDP, pi: np.ndarray) -> np.ndarray:
    """BUG (negative control): C = 4 eps gamma, the horizon factor 1 / (1 - gamma)^2 forgotten."""
    return 4.0 * max_abs_advantage(evaluate(mdp, pi)) * np.asarray(mdp.gamma, dtype=float)


def normalized_return(eta: np.ndarray, eta_start: np.ndarray, eta_star: np.ndarray) -> np.ndarray:
    """(eta - eta_start) / (eta* - eta_start): 0 at the start (uniform) policy, 1 at optimal."""
    return (eta - eta_start) / (eta_star - eta_start)


def climb(
    mdp: MDP, method: str, *, max_rounds: int, control: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``method`` ("penalty" or "trust_region") from the uniform policy until every MDP of the
    batch reaches TARGET or ``max_rounds`` rounds pass.

    Returns rounds (...,): the first round whose normalized return is >= TARGET, or
    max_rounds + 1 where never reached (censored); and curves (rounds_run + 1, ...): the
    normalized return after each round (round 0 = start). ``control`` swaps in the
    no-horizon penalty bug (penalty method only).
    """
    S, A = mdp.n_states, mdp.n_actions
    batch = mdp.batch_shape
    pi = np.broadcast_to(uniform_policy(S, A), (*batch, S, A)).copy()
    theta = np.zeros((*batch, S, A))  # softmax(0) = uniform: the same start for both methods
    eta_start = evaluate(mdp, pi).eta
    eta_star = optimal_policy(mdp)[1]
    curves = [np.zeros(batch)]
    rounds = np.full(batch, max_rounds + 1)
    for k in range(1, max_rounds + 1):
        if method == "penalty":
            C = _penalty_bug_no_horizon(mdp, pi) if control else None
            result = algorithm1_step(mdp, pi, C=C)
            pi, eta = result.pi, result.eta_after
        elif method == "trust_region":
            step = trust_region_step(mdp, theta, TR_DELTA)
            theta, eta = step.theta, step.eta_after
        else:
            raise ValueError(f"unknown method {method!r}")
        progress = normalized_return(eta, eta_start, eta_star)
        curves.append(progress)
        rounds = np.where((rounds > max_rounds) & (progress >= TARGET), k, rounds)
        if (rounds <= max_rounds).all():
            break
    return rounds, np.stack(curves)


def _mdps(budget: PenaltyBudget, seed: int) -> list[tuple[str, MDP]]:
    """The gridworld, then one batch per random family."""
    out = [("gridworld", gridworld())]
    for k, fam in enumerate(budget.random):
        out.append(
            (
                f"random {fam['n_states']}x{fam['n_actions']} gamma={fam['gamma']}",
                random_mdp(
                    [seed, 31, k],
                    fam["n_states"],
                    fam["n_actions"],
                    fam["gamma"],
                    n_mdps=budget.n_mdps,
                ),
            )
        )
    return out


@register
class PenaltyCrawls(Claim[PenaltyBudget]):
    id = "theory.penalty_crawls"
    comparison = Comparison(
        statistic="rounds to 90% of optimal, penalty / trust region, per MDP",
        better="either", margin=0.2, relative=True)
    title = "With the theory's penalty C, Algorithm 1 crawls: >= 10x the rounds of a trust region"
    statement = (
        "If we used the penalty coefficient C recommended by the theory (C = 4 eps gamma / "
        "(1 - gamma)^2), the step sizes would be very small; a constraint on the KL (trust "
        "region, delta = 0.01) takes larger steps robustly."
    )
    source = "TRPO section 4 (motivation of eq. 11-12), Algorithm 1 with eq. (9)'s C"
    kind = Kind.APPROXIMATION
    protocol = (
        "The 5x5 gridworld (gamma 0.95) and `n_mdps` random MDPs per family in `random`; both "
        "methods start from the uniform policy (logits 0). Penalty: trpo_ref.tabular."
        "algorithm1_step with C = penalty_coefficient (exact maximization of L - C max KL). "
        "Trust region: trpo_ref.tabular.trust_region_step, delta = 0.01 (natural direction, "
        "exact backtracking). Normalized return (eta - eta_uniform) / (eta* - eta_uniform), "
        "eta_min = the uniform start policy's return, eta* exact (policy iteration). Per MDP: "
        "rounds until the normalized return first reaches 0.9, capped at `max_rounds`; a run "
        "that never reaches it counts as max_rounds + 1 (censored: its ratio is then a lower "
        "bound). Per MDP: rounds_penalty / rounds_trust_region."
    )
    negative_control = (
        "A penalty coefficient missing its horizon factor, C = 4 eps gamma instead of "
        "4 eps gamma / (1 - gamma)^2 (dropping the 1 / (1 - gamma)^2 that turns per-step "
        "into discounted-sum quantities is a plausible slip): steps are (1 - gamma)^-2 times "
        "bolder, so the penalty method should not crawl."
    )
    rule = DecisionRule(
        statistic="median over MDPs of rounds_penalty / rounds_trust_region to 90% of optimal",
        comparator=">=",
        threshold=10.0,
        alpha=ALPHA,
        description=(
            "SUPPORTED iff the whole 95% percentile-bootstrap interval of the median ratio is "
            ">= 10, i.e. the penalty is an order of magnitude slower ('very small steps'); "
            "REFUTED iff it is wholly below 10; INCONCLUSIVE if it straddles. Censored penalty "
            "runs count at the cap, which can only lower the ratio."
        ),
    )
    budgets: ClassVar[dict[str, PenaltyBudget | None]] = {
        "quick": PenaltyBudget(
            n_mdps=8,
            max_rounds=300,
            random=[{"n_states": 8, "n_actions": 4, "gamma": 0.9}],
        ),
        "standard": PenaltyBudget(
            n_mdps=30,
            max_rounds=3_000,
            random=[
                {"n_states": 8, "n_actions": 4, "gamma": 0.9},
                {"n_states": 15, "n_actions": 3, "gamma": 0.95},
            ],
        ),
        "full": PenaltyBudget(
            n_mdps=100,
            max_rounds=20_000,
            random=[
                {"n_states": 8, "n_actions": 4, "gamma": 0.9},
                {"n_states": 15, "n_actions": 3, "gamma": 0.95},
                {"n_states": 30, "n_actions": 4, "gamma": 0.99},
            ],
        ),
    }

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.tier_budget(tier)
        cap = int(budget.max_rounds)
        names: list[str] = []
        rounds: dict[str, list[int]] = {"penalty": [], "trust_region": []}
        curves: dict[str, list[np.ndarray]] = {"penalty": [], "trust_region": []}
        for name, mdp in _mdps(budget, seed):
            for method in rounds:
                r, c = climb(mdp, method, max_rounds=cap, control=control)
                rounds[method].extend(np.atleast_1d(r).tolist())
                curves[method].extend(np.atleast_2d(c.reshape(len(c), -1)).T)
            names.extend([name] * int(np.prod(mdp.batch_shape, dtype=int)))
        pen = np.asarray(rounds["penalty"], dtype=float)
        tr = np.asarray(rounds["trust_region"], dtype=float)
        ratio = pen / tr
        config = {
            "seed": seed,
            **budget.to_json(),
            "target": TARGET,
            "trust_region_delta": TR_DELTA,
            "start_policy": "uniform (logits 0)",
            "normalization": "(eta - eta_uniform) / (eta* - eta_uniform); eta_min = uniform",
            "censoring": f"never reached within max_rounds -> counted as {cap + 1}",
            "penalty_coefficient": "4 eps gamma (control bug)"
            if control
            else "4 eps gamma / (1 - gamma)^2 (algorithm1_step default)",
        }
        data = {
            "mdp": names,
            "rounds_penalty": pen.astype(int).tolist(),
            "rounds_trust_region": tr.astype(int).tolist(),
            "censored_penalty": (pen > cap).tolist(),
            "censored_trust_region": (tr > cap).tolist(),
            "ratio": ratio.tolist(),
        }
        summary = {
            "n_mdps": len(names),
            "median_ratio": float(np.median(ratio)) if ratio.size else float("nan"),
            "gridworld_ratio": float(ratio[0]) if ratio.size else float("nan"),
            "gridworld_rounds": {"penalty": int(pen[0]), "trust_region": int(tr[0])},
            "median_rounds_penalty": float(np.median(pen)),
            "median_rounds_trust_region": float(np.median(tr)),
            "n_censored_penalty": int(np.sum(pen > cap)),
            "n_censored_trust_region": int(np.sum(tr > cap)),
        }
        artifacts = {f"curves_{m}": curves[m] for m in curves}
        return Evidence(self.id, tier, control, config, data, summary, artifacts)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        d = evidence.data
        return per_example(d.get("ratio", []), d.get("mdp"))

    def decide(self, evidence: Evidence) -> Verdict:
        ratio = evidence.values("ratio")
        if ratio.size < 2:
            return Verdict(
                Status.INCONCLUSIVE,
                "",
                None,
                None,
                None,
                None,
                int(ratio.size),
                "fewer than 2 MDPs in the evidence: no median with an interval to judge",
            )
        ci = bootstrap_ci(ratio, np.median, alpha=ALPHA, seed=int(evidence.config["seed"]))
        s = evidence.summary
        cap = evidence.config["max_rounds"]
        message = (
            f"{s['n_mdps']} MDPs; median rounds to 90%: penalty {s['median_rounds_penalty']:g}, "
            f"trust region {s['median_rounds_trust_region']:g}; gridworld "
            f"{s['gridworld_rounds']['penalty']} vs {s['gridworld_rounds']['trust_region']} "
            f"(ratio {s['gridworld_ratio']:.3g}). Censored at the cap of {cap} rounds (counted "
            f"as {cap + 1}): penalty {s['n_censored_penalty']}, trust region "
            f"{s['n_censored_trust_region']}."
        )
        if s["n_censored_trust_region"]:
            message += " Trust-region runs were censored: their ratios are not lower bounds."
        return self.rule.judge(float(np.median(ratio)), n=int(ratio.size), ci=ci, message=message)

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        plt = pyplot()

        if not evidence.artifacts:
            return []
        fig, ax = plt.subplots(figsize=(6.0, 3.6))
        names = evidence.data["mdp"]
        for method, color in (("penalty", "tab:red"), ("trust_region", "tab:blue")):
            for i, curve in enumerate(evidence.artifacts[f"curves_{method}"]):
                grid = names[i] == "gridworld"
                rounds = np.arange(len(curve))
                ax.plot(
                    rounds[1:],
                    np.asarray(curve)[1:],
                    color=color,
                    lw=2.0 if grid else 0.6,
                    alpha=1.0 if grid else 0.5,
                    label=f"{method.replace('_', ' ')}{' (gridworld)' if grid else ''}"
                    if i <= 1
                    else None,
                )
        ax.axhline(TARGET, color="k", ls="--", lw=0.8, label="90% of optimal")
        ax.set_xscale("log")
        ax.set_xlabel("round")
        ax.set_ylabel("(eta - eta_uniform) / (eta* - eta_uniform)")
        ax.legend(fontsize=7)
        kind = "negative control (C = 4 eps gamma)" if evidence.control else "real"
        ax.set_title(f"Penalty (theory's C) vs trust region (delta 0.01): {kind}", fontsize=9)
        fig.tight_layout()
        return [save_figure(fig, out_dir, "penalty_crawls", control=evidence.control, dpi=100)]
