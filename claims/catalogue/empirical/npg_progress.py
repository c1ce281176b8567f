"""Section 8: the natural gradient with a fixed step made no forward progress on hopping and
walking, while TRPO did. Forward progress is measured directly: the mean of the environment's
``info["x_velocity"]`` over each batch's steps (logged as ``rollout/x_velocity_mean``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from claims.catalogue.empirical import protocol
from claims.catalogue.empirical.common import (
    ALPHA,
    EmpiricalClaim,
    TrainingsBudget,
    by_task,
    curves_figure,
    judge,
    threshold_tasks,
    tier_budgets,
    two_arm,
)
from claims.catalogue.empirical.learning import COMMON_DEVIATIONS
from claims.framework import stats
from claims.framework.core import Comparison, DecisionRule, Evidence, Verdict
from claims.framework.jobs import Job
from claims.framework.registry import register

PROGRESS_SPEED = 0.25  # m/s: "forward progress" = a final mean forward velocity above this


def progress_margin(trpo: np.ndarray, npg: np.ndarray) -> float:
    """min(IQM(trpo) - v0, v0 - IQM(npg)), v0 = PROGRESS_SPEED: positive iff TRPO moves forward
    faster than v0 and NPG slower; in m/s."""
    return min(stats.iqm(trpo) - PROGRESS_SPEED, PROGRESS_SPEED - stats.iqm(npg))


@register
class NaturalGradientNoForwardProgress(EmpiricalClaim[TrainingsBudget]):
    id = "empirical.npg_no_forward_progress"
    title = "Natural gradient makes no forward progress on Hopper and Walker; TRPO does"
    statement = ("The natural gradient with a fixed step, swept and the best kept, 'was unable "
                 "to generate hopping and walking gaits that made forward progress' (section 8), "
                 "where TRPO learned both.")
    source = "TRPO section 8, Figure 4 (hopper and walker panels)"
    protocol = (f"NPG at the step size that won the sweep (3^-3..3, seeds 100-101, 30% of the "
                f"budget, best mean final return) and single-path TRPO, 5 seeds x 1M steps each, "
                f"on Hopper-v5 and Walker2d-v5. Final forward velocity = mean of "
                f"info['x_velocity'] over the last 10% of iterations. Margin per task = "
                f"min(IQM TRPO - v0, v0 - IQM NPG) with v0 = {PROGRESS_SPEED} m/s; the worse "
                f"task is judged. P(TRPO > NPG) in final velocity is reported beside it.")
    negative_control = ("Single-path TRPO with the advantages' sign flipped in place of TRPO: it "
                        "learns no gait either, so the claim that TRPO does must fail.")
    rule = DecisionRule(
        statistic=f"min over tasks of progress margin around v0 = {PROGRESS_SPEED} m/s",
        comparator=">", threshold=0.0, alpha=ALPHA,
        description="SUPPORTED when the whole interval is > 0 on both tasks: TRPO's IQM final "
                    "velocity above v0 and NPG's below it.")
    budgets = tier_budgets(lambda tier: threshold_tasks(
        tier, ("trpo", "npg"), ("Hopper-v5", "Walker2d-v5")))
    comparison = Comparison(statistic="final forward velocity (m/s) per (method, task, seed)",
                            better="either", margin=0.1)
    deviations = (*COMMON_DEVIATIONS,
                  f"'Forward progress' is operationalized as a mean forward velocity above "
                  f"{PROGRESS_SPEED} m/s; the paper judged gaits by eye from videos.")

    def jobs(self, tier: str, control: bool = False) -> list[Job]:
        tasks = self.tasks(tier)
        trpo = protocol.runs(tier, "trpo", tasks, "flip_advantages" if control else None)
        return protocol.npg_sweep_jobs(tier, tasks) + trpo + protocol.runs(tier, "npg", tasks)

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        tasks = self.tasks(tier)
        trpo_jobs = protocol.runs(tier, "trpo", tasks, "flip_advantages" if control else None)
        npg_jobs = protocol.runs(tier, "npg", tasks)
        trpo_results, npg_results = protocol.results(trpo_jobs), protocol.results(npg_jobs)
        data = {
            "trpo_velocity": by_task(trpo_jobs, map(protocol.final_velocity, trpo_results)),
            "npg_velocity": by_task(npg_jobs, map(protocol.final_velocity, npg_results)),
            "trpo_return": by_task(trpo_jobs, map(protocol.final_return, trpo_results)),
            "npg_return": by_task(npg_jobs, map(protocol.final_return, npg_results)),
        }
        evidence = self.evidence(tier, control, data, {})
        for task in tasks:
            step, sweep = protocol.best_npg_step(tier, task)
            p, ci = stats.probability_of_improvement_ci(
                np.asarray(data["trpo_velocity"][task]), np.asarray(data["npg_velocity"][task]))
            evidence.summary |= {
                f"{task}: IQM final velocity, TRPO (m/s)": stats.iqm(data["trpo_velocity"][task]),
                f"{task}: IQM final velocity, NPG (m/s)": stats.iqm(data["npg_velocity"][task]),
                f"{task}: IQM final return, TRPO": stats.iqm(data["trpo_return"][task]),
                f"{task}: IQM final return, NPG": stats.iqm(data["npg_return"][task]),
                f"{task}: P(TRPO > NPG) in final velocity [95% CI]": [p, *ci],
                f"{task}: NPG step (sweep's best)": step,
                f"{task}: sweep mean final return by step": sweep,
            }
        label = "trpo (sign flipped)" if control else "trpo"
        evidence.artifacts["runs"] = {label: list(zip(trpo_jobs, trpo_results, strict=True)),
                                      "npg": list(zip(npg_jobs, npg_results, strict=True))}
        return evidence

    def samples(self, evidence: Evidence) -> dict[str, float]:
        d = evidence.data
        return {f"{arm} {task} #{i}": v for arm in ("trpo", "npg")
                for task, values in d[f"{arm}_velocity"].items()
                for i, v in enumerate(values) if np.isfinite(v)}

    def decide(self, evidence: Evidence) -> Verdict:
        estimate = two_arm(evidence.data["trpo_velocity"], evidence.data["npg_velocity"],
                           progress_margin)
        return judge(self, estimate, n=sum(map(len, evidence.data["trpo_velocity"].values())),
                     message=f"margin per task (m/s): {estimate.per_task}")

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        runs: dict[str, Any] = evidence.artifacts.get("runs", {})
        tasks = sorted({job.task for pairs in runs.values() for job, _ in pairs})
        velocity = {label: [(job, {"steps": r["steps"], "returns": r["x_velocity"]})
                            for job, r in pairs] for label, pairs in runs.items()}
        out = [curves_figure(runs, t, out_dir, "npg_return", protocol.TASKS[t].threshold)
               for t in tasks]
        out += [curves_figure(velocity, t, out_dir, "npg_velocity", PROGRESS_SPEED,
                              ylabel="mean forward velocity (m/s)") for t in tasks]
        return out
