"""Section 8 / abstract: TRPO 'tends to give monotonic improvement, with little tuning of
hyperparameters'. Measured per task as the share of iterations whose true return (the next batch's
mean episode return, from fresh rollouts of the updated policy) does not fall, and how that share
moves as delta goes from 0.003 to 0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from claims.catalogue.empirical import protocol
from claims.catalogue.empirical.common import (
    ALPHA,
    EmpiricalClaim,
    TrainingsBudget,
    by_task,
    judge,
    matrix,
    tier_budgets,
    worst_task,
)
from claims.catalogue.empirical.learning import COMMON_DEVIATIONS
from claims.framework import plotting, stats
from claims.framework.core import Comparison, DecisionRule, Evidence, Verdict
from claims.framework.jobs import Job
from claims.framework.registry import register


def non_decreasing_share(returns: Any) -> float:
    """Share of iterations i >= 1 with return_i >= return_{i-1}; returns: (n_iterations,)."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        raise ValueError("need at least two iterations")
    return float(np.mean(r[1:] >= r[:-1]))


@register
class MonotonicInPractice(EmpiricalClaim[TrainingsBudget]):
    id = "empirical.monotonic"
    title = "TRPO improves monotonically in practice"
    statement = ("TRPO 'tends to give monotonic improvement, with little tuning of "
                 "hyperparameters' (abstract; section 8), as its theory (Algorithm 1) guarantees "
                 "for the penalized, exact version.")
    source = "TRPO abstract and section 8; Algorithm 1 (section 3)"
    protocol = ("Single-path TRPO (delta 0.01, the Figure 4 runs) on every task of the tier. "
                "Per run, the share of iterations whose batch mean return is >= the previous "
                "batch's (each batch is sampled fresh from the updated policy); per task, its IQM "
                "over seeds; the worst task is judged. Where returns are not capped (CartPole's "
                "are, at 500), sampling noise alone keeps the share below 1, so the rule asks for "
                "improvement more often than not. The summary gives the share for delta in "
                "{0.003, 0.01, 0.03, 0.1} (delta-sweep seeds) and Spearman's correlation of share "
                "with delta.")
    negative_control = "TRPO with the advantages' sign flipped (every step descends)."
    rule = DecisionRule(
        statistic="min over tasks of IQM share of non-decreasing iterations", comparator=">",
        threshold=0.5, alpha=ALPHA,
        description="SUPPORTED when the whole interval is above 0.5 on every task.")
    budgets = tier_budgets(lambda tier: protocol.budget(tier).tasks())
    comparison = Comparison(statistic="share of non-decreasing iterations per (task, seed)",
                            better="higher", margin=0.05)
    deviations = (*COMMON_DEVIATIONS,
                  "'True return' is the next training batch's mean episode return, not separate "
                  "evaluation rollouts (the batch is fresh on-policy data from the new policy).")

    def _delta_jobs(self, tier: str) -> list[tuple[float, Job]]:
        b = protocol.budget(tier)
        return [(d, protocol.delta_run(tier, t, d, s)) for t in self.tasks(tier)
                for d in protocol.DELTAS for s in b.delta_seeds]

    def jobs(self, tier: str, control: bool = False) -> list[Job]:
        fault = "flip_advantages" if control else None
        main = protocol.runs(tier, "trpo", self.tasks(tier), fault)
        return main if control else main + [job for _, job in self._delta_jobs(tier)]

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        fault = "flip_advantages" if control else None
        jobs = protocol.runs(tier, "trpo", self.tasks(tier), fault)
        results = protocol.results(jobs)
        shares = by_task(jobs, [non_decreasing_share(r["returns"]) for r in results])
        evidence = self.evidence(tier, control, {"share": shares}, {})
        evidence.summary = {f"{t}: IQM share (delta 0.01)": stats.iqm(v)
                            for t, v in shares.items()}
        if not control:
            sweep = self._delta_jobs(tier)
            sweep_results = protocol.results([job for _, job in sweep])
            by_delta: dict[str, dict[str, list[float]]] = {}
            for (delta, job), result in zip(sweep, sweep_results, strict=True):
                by_delta.setdefault(job.task, {}).setdefault(f"{delta:g}", []).append(
                    non_decreasing_share(result["returns"]))
            evidence.data["share_by_delta"] = by_delta
            for task, table in by_delta.items():
                xs = [float(d) for d, v in table.items() for _ in v]
                ys = [s for v in table.values() for s in v]
                rho = sps.spearmanr(xs, ys).statistic if len(set(ys)) > 1 else float("nan")
                evidence.summary[f"{task}: mean share by delta"] = {
                    d: float(np.mean(v)) for d, v in table.items()}
                evidence.summary[f"{task}: Spearman(delta, share)"] = float(rho)
        return evidence

    def samples(self, evidence: Evidence) -> dict[str, float]:
        return {f"{task} #{i}": v for task, values in evidence.data["share"].items()
                for i, v in enumerate(values)}

    def decide(self, evidence: Evidence) -> Verdict:
        shares = evidence.data["share"]
        tasks = list(shares)
        estimate = worst_task(matrix(shares, tasks), tasks)
        return judge(self, estimate, n=sum(map(len, shares.values())),
                     message=f"IQM share per task: {estimate.per_task}")

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        by_delta = evidence.data.get("share_by_delta")
        if not by_delta:
            return []
        series = {task: ([float(d) for d in table], [float(np.mean(v)) for v in table.values()])
                  for task, table in by_delta.items()}
        return [plotting.plot_series(series, out_dir / "monotonic-share-by-delta.png",
                                     title="share of non-decreasing iterations vs delta",
                                     xlabel="delta (KL bound)", ylabel="share", logx=True,
                                     hline=0.5)]
