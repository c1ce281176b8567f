"""What the section-8 claims share: a base class that declares its trainings, and the statistics
that turn per-seed scores into one verdict.

Scores are arranged as ``(n_seeds, n_tasks)`` arrays (rliable's layout); each task gets a
percentile bootstrap interval over its seeds, and a claim over several tasks is judged on the
interval of its worst task's statistic (:func:`worst_of`: min of the lower ends, min of the upper
ends), not on a bootstrap of the min itself, which is biased and can exclude its own estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from claims.catalogue.empirical import protocol
from claims.framework import plotting, stats
from claims.framework.core import TIERS, B, Budget, Claim, Evidence, Kind, Verdict, budget_json
from claims.framework.jobs import Job

ALPHA = 0.05
N_RESAMPLES = 2000


@dataclass(frozen=True)
class TrainingsBudget(Budget):
    """The protocol's trainings a section-8 claim reads at a tier (:mod:`.protocol` runs them)."""

    tasks: tuple[str, ...]  # the tasks this claim judges at the tier
    steps: Mapping[str, int]  # env steps per run, per task
    seeds: tuple[int, ...]  # Figure 4 seeds
    control_seeds: tuple[int, ...]  # seeds of the negative-control trainings


def tier_budgets(tasks_for: Callable[[str], list[str]]) -> dict[str, TrainingsBudget | None]:
    """``Claim.budgets`` from the protocol: for each tier, the tasks this claim judges there (from
    ``tasks_for(tier)``) with their steps and seeds, or None where it judges none."""
    out: dict[str, TrainingsBudget | None] = {}
    for tier in TIERS:
        tasks = tasks_for(tier)
        b = protocol.budget(tier)
        out[tier] = None if not tasks else TrainingsBudget(
            tasks=tasks, steps={t: b.steps[t] for t in tasks}, seeds=b.seeds,
            control_seeds=b.control_seeds)
    return out


def threshold_tasks(tier: str, methods: Sequence[str] = ("trpo",),
                    only: Sequence[str] | None = None) -> list[str]:
    """The tier's tasks where a published threshold applies (locomotion thresholds are 1M-step
    scores, so those tasks need at least 1M steps) and every method in ``methods`` runs."""
    b = protocol.budget(tier)
    return [t for t in b.tasks()
            if (only is None or t in only)
            and all(m in b.task_methods(t) for m in methods)
            and (not protocol.TASKS[t].locomotion or b.steps[t] >= 1_000_000)]


class EmpiricalClaim(Claim[B]):
    """A claim judged from :mod:`claims.catalogue.empirical.protocol` trainings. Subclasses
    implement
    :meth:`jobs` (what ``run`` reads, so the runner can train everything on one pool first)."""

    kind: ClassVar[Kind] = Kind.EMPIRICAL

    def jobs(self, tier: str, control: bool = False) -> list[Job]:
        raise NotImplementedError

    def tasks(self, tier: str) -> list[str]:
        budget = self.budget(tier)
        return [] if budget is None else list(budget.tasks)

    def evidence(self, tier: str, control: bool, data: dict[str, Any],
                 summary: dict[str, Any], config: dict[str, Any] | None = None) -> Evidence:
        return Evidence(self.id, tier, control, config or budget_json(self.budget(tier)) or {},
                        data, summary)


# --- statistics over (n_seeds, n_tasks) ----------------------------------------------------------

def column_iqm(scores: np.ndarray) -> np.ndarray:
    """IQM of every column of ``scores`` (n_seeds, n_tasks) -> (n_tasks,)."""
    return np.array([stats.iqm(scores[:, j]) for j in range(scores.shape[1])])


@dataclass(frozen=True)
class Estimate:
    """A worst-over-tasks statistic with its interval, and every task's value and interval."""

    value: float  # the worst task's value
    ci: tuple[float, float]  # interval of the worst task's statistic
    per_task: dict[str, float]  # each task's value
    per_task_ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # each task's


def iqm_interval(x: np.ndarray, *, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the IQM of one task's per-seed values x (n,)."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return float(stats.iqm(x)), float(stats.iqm(x))
    lo, hi = stats.percentile_bootstrap(
        [x], lambda xs: stats.trimmed_mean(xs, 0.25, axis=1), alpha=ALPHA,
        n_resamples=N_RESAMPLES, rng=np.random.default_rng(seed))
    return float(lo), float(hi)


def worst_of(per_task: Mapping[str, float], intervals: Mapping[str, tuple[float, float]],
             worst: str) -> Estimate:
    """The worst task's value and the interval of "the worst task's statistic": the image of
    the per-task intervals under min (or max), i.e. (min of lower ends, min of upper ends).
    A rule on the worst task then passes iff every task's interval passes and fails iff some
    task's interval fails wholly. (A percentile bootstrap of the min itself is biased: it can
    exclude its own estimate.)"""
    pick = min if worst == "min" else max
    value = float(pick(per_task.values()))
    lo = float(pick(intervals[t][0] for t in per_task))
    hi = float(pick(intervals[t][1] for t in per_task))
    return Estimate(value, (lo, hi), dict(per_task), dict(intervals))


def worst_task(scores: np.ndarray, tasks: Sequence[str], *, worst: str = "min") -> Estimate:
    """The worst task's IQM over seeds (``worst``: "min" or "max") with the interval of
    :func:`worst_of` from each task's bootstrap interval of its IQM. scores: (n_seeds, n_tasks)."""
    x = np.asarray(scores, dtype=float)
    per_task = dict(zip(tasks, map(float, column_iqm(x)), strict=True))
    intervals = {t: iqm_interval(x[:, j], seed=j) for j, t in enumerate(tasks)}
    return worst_of(per_task, intervals, worst)


def two_arm(a: Mapping[str, Sequence[float]], b: Mapping[str, Sequence[float]],
            statistic: Callable[[np.ndarray, np.ndarray], float], *, worst: str = "min",
            seed: int = 0) -> Estimate:
    """``statistic(a_task, b_task)`` per task (two independent groups of seeds), the worst over
    tasks, and the interval of :func:`worst_of` from each task's percentile bootstrap interval
    (the two arms resampled independently)."""
    tasks = list(a)
    per_task, intervals = {}, {}
    rng = np.random.default_rng(seed)
    for t in tasks:
        x, y = np.asarray(a[t], float), np.asarray(b[t], float)
        per_task[t] = float(statistic(x, y))
        if min(x.size, y.size) < 2:
            intervals[t] = (per_task[t], per_task[t])
            continue
        lo, hi = stats.percentile_bootstrap(
            [x, y], lambda xs, ys: [statistic(a, b) for a, b in zip(xs, ys, strict=True)],
            alpha=ALPHA, n_resamples=N_RESAMPLES, rng=rng)
        intervals[t] = (float(lo), float(hi))
    return worst_of(per_task, intervals, worst)


def iqm_ratio(x: np.ndarray, y: np.ndarray) -> float:
    """IQM(x) / IQM(y); NaN when IQM(y) <= 0 (a ratio to a non-positive score means nothing)."""
    denominator = stats.iqm(y)
    return stats.iqm(x) / denominator if denominator > 0 else float("nan")


def judge(claim: Claim, estimate: Estimate, n: int, message: str = "") -> Verdict:
    if not np.isfinite(estimate.value) or not np.all(np.isfinite(estimate.ci)):
        return Verdict.inconclusive(
            f"{claim.rule.statistic} is not defined on this evidence ({estimate.value}). {message}")
    return claim.rule.judge(estimate.value, n=n, ci=estimate.ci, message=message)


def by_task(jobs: Sequence[Job], values: Sequence[float]) -> dict[str, list[float]]:
    """Group per-job values by task, in job order."""
    out: dict[str, list[float]] = {}
    for job, value in zip(jobs, values, strict=True):
        out.setdefault(job.task, []).append(float(value))
    return out


def matrix(grouped: Mapping[str, Sequence[float]], tasks: Sequence[str]) -> np.ndarray:
    """(n_seeds, n_tasks) from per-task lists of equal length."""
    return np.array([grouped[t] for t in tasks], dtype=float).T


def curves_figure(runs: Mapping[str, Sequence[tuple[Job, Mapping[str, Any]]]], task: str,
                  out_dir: Path, name: str, threshold: float | None = None, *,
                  ylabel: str = "mean episode return") -> Path:
    """Curves (mean and bootstrap band over seeds) of every labelled group of runs on ``task``,
    ``returns`` against ``steps``, with ``threshold`` as a dashed line."""
    curves = {label: [(r["steps"], r["returns"]) for job, r in pairs if job.task == task]
              for label, pairs in runs.items()}
    curves = {label: c for label, c in curves.items() if c}
    return plotting.plot_curves_with_bands(
        curves, out_dir / f"{name}-{task}.png", title=task, ylabel=ylabel, threshold=threshold,
        threshold_label=None if threshold is None else f"threshold {threshold:g}")
