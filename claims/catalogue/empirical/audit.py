"""The approximation-gap audit on the Figure 4 TRPO runs: how far the practical algorithm
(section 6) sits from the theory it approximates (sections 3-4).

- ``empirical.kl_full_step``: the quadratic model sets the full step's KL to delta; measured KL at
  the full step (the line search's first candidate) against delta.
- ``empirical.max_vs_mean_kl``: Theorem 1 bounds the *maximum* KL over states; the practical
  algorithm constrains the *mean*. How large is the max over the batch's states at accepted steps?
- ``empirical.surrogate_realized``: the surrogate's improvement, converted to return units, against
  the improvement in true return that fresh rollouts of the new policies actually show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

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


def full_step_log2_error(result: Mapping[str, Any]) -> float:
    """Median over steps of |log2(KL at the full step / delta)|; 0 when the model is exact."""
    kl = np.asarray(result["kl_full_step"], dtype=float)
    kl = kl[np.isfinite(kl) & (kl > 0)] / result["config"]["delta"]
    return float(np.median(np.abs(np.log2(kl)))) if kl.size else math.nan


def max_kl_over_delta(result: Mapping[str, Any]) -> float:
    """Median over accepted steps of (max over the batch's states of KL) / delta."""
    accepted = np.asarray(result["accepted"], dtype=bool)
    kl_max = np.asarray(result["kl_max"], dtype=float)[accepted]
    return float(np.median(kl_max / result["config"]["delta"])) if kl_max.size else math.nan


def predicted_return_gain(result: Mapping[str, Any]) -> np.ndarray:
    """Per step, the surrogate's improvement in episode-return units: the change of the
    normalized surrogate times the raw advantages' std (undoing the normalization) times the mean
    episode length (a per-step advantage summed over an episode). Shape (n_iterations,)."""
    return (np.asarray(result["surrogate_actual"], dtype=float)
            * np.asarray(result["adv_raw_std"], dtype=float)
            * np.asarray(result["ep_len"], dtype=float))


def realized_over_predicted(result: Mapping[str, Any]) -> float:
    """(final return - first batch's return) / sum of the predicted gains of every step."""
    predicted = float(predicted_return_gain(result).sum())
    realized = protocol.final_return(result) - float(result["returns"][0])
    return realized / predicted if predicted > 0 else math.nan


class AuditClaim(EmpiricalClaim[TrainingsBudget]):
    """A per-run statistic of the Figure 4 TRPO runs, judged on the worst task."""

    fault: ClassVar[str]
    worst: ClassVar[str]  # "min" or "max": which task is the worst
    budgets = tier_budgets(lambda tier: protocol.budget(tier).tasks())

    @staticmethod
    def per_run(result: Mapping[str, Any]) -> float:
        raise NotImplementedError

    def jobs(self, tier: str, control: bool = False) -> list[Job]:
        return protocol.runs(tier, "trpo", self.tasks(tier), self.fault if control else None)

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        jobs = self.jobs(tier, control)
        results = protocol.results(jobs)
        values = by_task(jobs, [type(self).per_run(r) for r in results])
        evidence = self.evidence(tier, control, {"per_run": values}, {})
        evidence.summary = {f"{t}: IQM": stats.iqm(v) for t, v in values.items()}
        evidence.summary |= self.extra_summary(jobs, results)
        evidence.artifacts["runs"] = list(zip(jobs, results, strict=True))
        return evidence

    def extra_summary(self, jobs: list[Job], results: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    def samples(self, evidence: Evidence) -> dict[str, float]:
        return {f"{task} #{i}": v for task, values in evidence.data["per_run"].items()
                for i, v in enumerate(values) if np.isfinite(v)}

    def decide(self, evidence: Evidence) -> Verdict:
        values = evidence.data["per_run"]
        tasks = list(values)
        if any(not np.all(np.isfinite(v)) for v in values.values()):
            return Verdict.inconclusive(f"{self.rule.statistic} is undefined on some run: "
                                        f"{values}")
        estimate = worst_task(matrix(values, tasks), tasks, worst=self.worst)
        return judge(self, estimate, n=sum(map(len, values.values())),
                     message=f"IQM per task: {estimate.per_task}")


def _steps(results: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.concatenate([np.asarray(r[key], dtype=float) for r in results])


@register
class KLAtFullStep(AuditClaim):
    id = "empirical.kl_full_step"
    title = "On MuJoCo runs, the full step's KL lands near delta"
    statement = ("The step beta s with beta = sqrt(2 delta / s^T A s) makes the quadratic model "
                 "of the mean KL equal delta (section 6, App. C); the line search then only "
                 "corrects the model's error.")
    source = "TRPO section 6 and Appendix C"
    protocol = ("From every Figure 4 TRPO run of the tier: the mean KL on the full batch at the "
                "full step (the line search's first candidate), per step; per run, the median of "
                "|log2(KL_full / delta)|; per task, the IQM over seeds; the worst task is judged.")
    negative_control = ("A step scale bug (10x beta) whose 100x KL is not caught because the line "
                        "search has no KL test.")
    rule = DecisionRule(
        statistic="max over tasks of IQM median |log2(KL at full step / delta)|",
        comparator="<=", threshold=1.0, alpha=ALPHA,
        description="Within a factor 2 of delta: SUPPORTED when the whole interval is <= 1.")
    fault = "unchecked_big_step"
    worst = "max"
    deviations = COMMON_DEVIATIONS[1:]
    per_run = staticmethod(full_step_log2_error)
    comparison = Comparison(statistic="median |log2(KL at the full step / delta)| per run",
                            better="lower", margin=0.1)

    def extra_summary(self, jobs: list[Job], results: list[dict[str, Any]]) -> dict[str, Any]:
        kl = _steps(results, "kl_full_step")
        delta = results[0]["config"]["delta"]
        return {"steps": int(kl.size), "KL_full / delta, median": float(np.nanmedian(kl / delta)),
                "KL_full / delta, 95th percentile": float(np.nanpercentile(kl / delta, 95))}

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        pairs = evidence.artifacts.get("runs", [])
        kl = {task: _steps([r for j, r in pairs if j.task == task], "kl_full_step")
              for task in sorted({j.task for j, _ in pairs})}
        if not kl:
            return []
        delta = pairs[0][1]["config"]["delta"]
        return [plotting.plot_kl_histogram(kl, delta, out_dir / "kl_full_step.png",
                                           title="mean KL at the full step (before backtracking)")]


MAX_KL_FACTOR = 10.0  # "the max-state KL stays within an order of magnitude of delta"


@register
class MaxVersusMeanKL(AuditClaim):
    id = "empirical.max_vs_mean_kl"
    title = "The mean-KL constraint keeps the max-state KL within 10x delta"
    statement = ("Theorem 1 needs the maximum KL over states; section 6 constrains the mean "
                 "instead, calling it a heuristic approximation. The audit asks whether, at "
                 "accepted steps, the maximum over the batch's states stays within an order of "
                 "magnitude of delta.")
    source = "TRPO section 6 (eq. 12) against Theorem 1 (eq. 9)"
    protocol = ("From every Figure 4 TRPO run of the tier: per accepted step, the largest "
                "per-state KL over the whole batch divided by delta; per run, the median over "
                "steps; per task, the IQM over seeds; the worst task is judged. Also reported: "
                "max/mean ratios and the share of steps whose max-state KL exceeds delta.")
    negative_control = ("A step scale bug (10x beta) with no KL test in the line search: the mean "
                        "KL is ~100 delta and the max with it.")
    rule = DecisionRule(
        statistic="max over tasks of IQM median (max-state KL / delta)", comparator="<=",
        threshold=MAX_KL_FACTOR, alpha=ALPHA,
        description="SUPPORTED when the whole interval is <= 10 (an order of magnitude); "
                    "REFUTED when it is wholly above.")
    fault = "unchecked_big_step"
    worst = "max"
    deviations = (*COMMON_DEVIATIONS[1:],
                  "The threshold (10x delta) is this suite's reading of 'approximation'; the "
                  "paper states no bound on the max-state KL of the practical algorithm.")
    per_run = staticmethod(max_kl_over_delta)
    comparison = Comparison(statistic="median max-state KL / delta per run", better="lower",
                            margin=0.2, relative=True)

    def extra_summary(self, jobs: list[Job], results: list[dict[str, Any]]) -> dict[str, Any]:
        kl_max, kl_mean = _steps(results, "kl_max"), _steps(results, "kl_mean")
        delta = results[0]["config"]["delta"]
        ok = kl_mean > 0
        return {"steps": int(kl_max.size),
                "max/mean KL, median": float(np.median(kl_max[ok] / kl_mean[ok])),
                "share of steps with max-state KL > delta": float(np.mean(kl_max > delta)),
                "max-state KL / delta, largest": float(np.max(kl_max / delta))}

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        pairs = evidence.artifacts.get("runs", [])
        if not pairs:
            return []
        delta = pairs[0][1]["config"]["delta"]
        labels = [j.task for j, r in pairs for _ in r["kl_max"]]
        results = [r for _, r in pairs]
        tasks = sorted(set(labels))
        hist = {f"{t} mean": _steps([r for j, r in pairs if j.task == t], "kl_mean")
                for t in tasks}
        hist |= {f"{t} max": _steps([r for j, r in pairs if j.task == t], "kl_max")
                 for t in tasks}
        return [
            plotting.plot_max_vs_mean_kl(_steps(results, "kl_mean"), _steps(results, "kl_max"),
                                         delta, out_dir / "max_vs_mean_kl.png",
                                         title="per step: max-state KL vs mean KL",
                                         labels=labels),
            plotting.plot_kl_histogram(hist, delta, out_dir / "kl_histogram.png",
                                       title="per-step KL (mean over states, max over states)"),
        ]


@register
class SurrogateRealized(AuditClaim):
    id = "empirical.surrogate_realized"
    title = "The surrogate's predicted improvement is realized in true return"
    statement = ("Maximizing the surrogate L improves the true return eta: L matches eta to first "
                 "order (eq. 4) and eta >= L - C max KL (eq. 9), so the steps TRPO takes on L "
                 "should raise eta.")
    source = "TRPO eq. (4), (9), section 6"
    protocol = ("From every Figure 4 TRPO run of the tier: per step, the surrogate's improvement "
                "on the batch, converted to episode-return units (times the raw advantages' std "
                "and the mean episode length); per run, realized / predicted = (final return - "
                "first batch's return) / (sum of the predicted gains); per task, the IQM over "
                "seeds; the worst task is judged. Per-step predicted gains are plotted against the "
                "next batch's change in mean return.")
    negative_control = ("TRPO with the advantages' sign flipped: its surrogate (as it computes "
                        "it) still improves every step while the true return falls.")
    rule = DecisionRule(
        statistic="min over tasks of IQM realized / predicted improvement", comparator=">",
        threshold=0.0, alpha=ALPHA,
        description="SUPPORTED when the whole interval is > 0 (the predicted gains show up in "
                    "the true return, at whatever fraction); the fraction itself is reported.")
    fault = "flip_advantages"
    worst = "min"
    deviations = (*COMMON_DEVIATIONS[1:],
                  "Predicted gains use the undiscounted sum of per-step advantages over an "
                  "episode; the advantages themselves are GAE(0.99, 0.97) estimates.")
    per_run = staticmethod(realized_over_predicted)
    comparison = Comparison(statistic="realized / predicted improvement per run",
                            better="higher", margin=0.05)

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        pairs = evidence.artifacts.get("runs", [])
        predicted, actual, labels = [], [], []
        for job, result in pairs:
            gain = predicted_return_gain(result)[:-1]
            change = np.diff(np.asarray(result["returns"], dtype=float))
            predicted.append(gain)
            actual.append(change)
            labels += [job.task] * gain.size
        if not predicted:
            return []
        return [plotting.plot_predicted_vs_actual(
            np.concatenate(predicted), np.concatenate(actual), out_dir / "surrogate_realized.png",
            title="per step: surrogate's predicted gain vs next batch's return change",
            xlabel="predicted gain (return units)", ylabel="change in mean return",
            labels=labels)]
