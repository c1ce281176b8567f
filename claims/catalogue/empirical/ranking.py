"""Section 8, Figure 4 as a ranking: per task, how well the measured order of the methods agrees
with the order the paper's text supports.

Figure 4's curves are not available as numbers, so the paper's order is the partial order its
text supports (paper-facts.md): single path and vine above natural gradient on hopper and walker;
both above CEM and CMA on swimmer, hopper and walker; mean KL above max KL on cart-pole (learns
faster). Pairs the text does not order (single path ~ vine, empirical FIM ~ analytic, NPG on the
easy tasks) are not scored. Per task the agreement is Kendall's tau over the scored pairs,
(concordant - discordant) / pairs, measured on the IQM over seeds of the cached Figure 4 runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from claims.catalogue.empirical import protocol
from claims.catalogue.empirical.common import (
    ALPHA,
    N_RESAMPLES,
    EmpiricalClaim,
    TrainingsBudget,
    judge,
    tier_budgets,
    worst_of,
)
from claims.catalogue.empirical.learning import COMMON_DEVIATIONS
from claims.framework import stats
from claims.framework.core import Comparison, DecisionRule, Evidence, Verdict
from claims.framework.jobs import Job
from claims.framework.registry import register

# (higher, lower, measure) per task: the pairs the paper's text orders
PAPER_ORDER: dict[str, tuple[tuple[str, str, str], ...]] = {
    "CartPole-v1": (("trpo", "max-kl", "area"),),
    "Swimmer-v5": tuple((a, b, "final") for a in ("trpo", "vine") for b in ("cem", "cma")),
    "Hopper-v5": tuple((a, b, "final") for a in ("trpo", "vine") for b in ("npg", "cem")),
    "Walker2d-v5": tuple((a, b, "final") for a in ("trpo", "vine") for b in ("npg", "cem")),
}
MEASURES = {"final": protocol.final_return, "area": protocol.mean_return}


def scored_pairs(tier: str, task: str) -> list[tuple[str, str, str]]:
    """The paper's ordered pairs on ``task`` whose two methods both run at ``tier``."""
    methods = protocol.budget(tier).task_methods(task)
    return [p for p in PAPER_ORDER.get(task, ()) if p[0] in methods and p[1] in methods]


def kendall_tau(values: Mapping[str, Mapping[str, float]],
                pairs: Sequence[tuple[str, str, str]], *, ascending: bool = False) -> float:
    """(concordant - discordant) / len(pairs): a pair (higher, lower, measure) is concordant when
    values[measure][higher] > values[measure][lower], discordant when <, 0 on a tie.
    ``ascending``: the measured ranks read with rank 1 = lowest score (BUG, the control)."""
    sign = -1.0 if ascending else 1.0
    score = sum(np.sign(values[m][hi] - values[m][lo]) for hi, lo, m in pairs)
    return float(sign * score / len(pairs))


def _iqms(runs: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    return {m: {method: stats.iqm(v) for method, v in by_method.items()}
            for m, by_method in runs.items()}


@register
class Figure4Ranking(EmpiricalClaim[TrainingsBudget]):
    id = "empirical.figure4_ranking"
    title = "Figure 4's ranking per task: the measured order agrees with the paper's"
    statement = ("Section 8 / Figure 4 order the methods per task: TRPO (single path and vine) "
                 "above the natural gradient on hopping and walking, above CEM and CMA on the "
                 "larger problems, mean KL learning faster than max KL on cart-pole.")
    source = "TRPO section 8, Figure 4 (as a partial order of the text; paper-facts.md)"
    protocol = ("From the cached Figure 4 runs of the tier (5 seeds per method at full): per "
                "task, the IQM over seeds of each method's final return (area under the "
                "learning curve for the cart-pole max-KL pair); Kendall's tau over the paper's "
                "ordered pairs that run at the tier (pairs the text leaves unordered are not "
                "scored); a percentile bootstrap interval per task (seeds resampled within "
                "each method; widened to hold the estimate, tau being discrete); the worst task "
                "is judged (interval: min of the lower ends, min of the upper ends). The paper's "
                "order is read from its text, not its curves.")
    negative_control = ("The measured ranks read in ascending order (rank 1 = the lowest "
                        "return, as sorting scores like costs does), with the paper's order as "
                        "it is. A ranking claim's mechanism is the direction of the order, so "
                        "this mirror is the control that breaks it; a trained mechanism "
                        "control (TRPO without its trust region) is in docs/claims-controls.md.")
    rule = DecisionRule(
        statistic="min over tasks of Kendall's tau between the paper's partial order and the "
                  "measured order", comparator=">", threshold=0.0, alpha=ALPHA,
        description="SUPPORTED when the whole 95% interval of every task's tau is above 0 "
                    "(more of the paper's ordered pairs agree than disagree), REFUTED when "
                    "some task's whole interval is <= 0.")
    budgets: ClassVar[dict[str, TrainingsBudget | None]] = tier_budgets(
        lambda tier: [t for t in protocol.budget(tier).tasks() if scored_pairs(tier, t)])
    comparison = Comparison(statistic="Kendall's tau per task", better="higher", margin=0.1)
    deviations = (*COMMON_DEVIATIONS,
                  "The paper's order is the partial order its text supports; Figure 4's curves "
                  "are not available as numbers.")

    def _method_runs(self, tier: str, task: str) -> dict[str, list[Job]]:
        methods = sorted({m for p in scored_pairs(tier, task) for m in p[:2]})
        return {m: protocol.runs(tier, m, [task]) for m in methods}

    def jobs(self, tier: str, control: bool = False) -> list[Job]:
        out = []
        for task in self.tasks(tier):
            for method in self._method_runs(tier, task).values():
                out += method
        return out

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        data: dict[str, Any] = {"runs": {}, "pairs": {}}
        for task in self.tasks(tier):
            runs = self._method_runs(tier, task)
            per_measure: dict[str, dict[str, list[float]]] = {}
            for method, jobs in runs.items():
                results = protocol.results(jobs)
                for name, fn in MEASURES.items():
                    per_measure.setdefault(name, {})[method] = [fn(r) for r in results]
            data["runs"][task] = per_measure
            data["pairs"][task] = [list(p) for p in scored_pairs(tier, task)]
        evidence = self.evidence(tier, control, data, {})
        for task, runs in data["runs"].items():
            iqms = _iqms({m: {k: np.asarray(v) for k, v in r.items()} for m, r in runs.items()})
            evidence.summary[f"{task}: tau"] = kendall_tau(
                iqms, [tuple(p) for p in data["pairs"][task]], ascending=control)
            evidence.summary[f"{task}: IQM final return"] = iqms["final"]
        return evidence

    def samples(self, evidence: Evidence) -> dict[str, float]:
        return {k.removesuffix(": tau"): float(v) for k, v in evidence.summary.items()
                if k.endswith(": tau")}

    def decide(self, evidence: Evidence) -> Verdict:
        runs, pairs = evidence.data.get("runs", {}), evidence.data.get("pairs", {})
        if not runs:
            return Verdict.inconclusive("the evidence holds no tasks, so there is nothing to "
                                        "judge")
        rng = np.random.default_rng(0)
        per_task, intervals = {}, {}
        for task, by_measure in runs.items():
            arrays = {m: {k: np.asarray(v, float) for k, v in r.items()}
                      for m, r in by_measure.items()}
            task_pairs = [tuple(p) for p in pairs[task]]
            per_task[task] = kendall_tau(_iqms(arrays), task_pairs, ascending=evidence.control)
            draws = np.empty(N_RESAMPLES)
            for i in range(N_RESAMPLES):
                resampled = {m: {k: v[rng.integers(0, v.size, v.size)] for k, v in r.items()}
                             for m, r in arrays.items()}
                draws[i] = kendall_tau(_iqms(resampled), task_pairs, ascending=evidence.control)
            lo, hi = np.quantile(draws, [ALPHA / 2, 1 - ALPHA / 2])
            intervals[task] = (min(float(lo), per_task[task]), max(float(hi), per_task[task]))
        estimate = worst_of(per_task, intervals, "min")
        n = sum(len(v) for r in runs.values() for v in r["final"].values())
        return judge(self, estimate, n=n, message="tau per task [95% CI]: " + "; ".join(
            f"{t}: {v:.2f} [{intervals[t][0]:.2f}, {intervals[t][1]:.2f}] over "
            f"{len(pairs[t])} pairs" for t, v in per_task.items()))
