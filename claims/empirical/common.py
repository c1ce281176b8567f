"""What the section-8 claims share: a base class that declares its trainings, and the statistics
that turn per-seed scores into one verdict.

Scores are arranged as ``(n_seeds, n_tasks)`` arrays (rliable's layout); intervals come from the
stratified bootstrap over seeds within each task (:mod:`claims.stats`), so a claim over several
tasks gets one interval for its worst task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from claims import plotting, stats
from claims.core import TIERS, Claim, Evidence, Kind, Verdict
from claims.empirical import protocol
from claims.jobs import Job

ALPHA = 0.05
N_RESAMPLES = 2000


def tier_budgets(tasks_for: Callable[[str], list[str]]) -> dict[str, dict[str, Any] | None]:
    """``Claim.budgets`` from the protocol: for each tier, the tasks this claim judges there (from
    ``tasks_for(tier)``) with their steps and seeds, or None where it judges none."""
    out: dict[str, dict[str, Any] | None] = {}
    for tier in TIERS:
        tasks = tasks_for(tier)
        b = protocol.budget(tier)
        out[tier] = None if not tasks else {
            "tasks": tasks, "steps": {t: b.steps[t] for t in tasks}, "seeds": list(b.seeds),
            "control_seeds": list(b.control_seeds)}
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


class EmpiricalClaim(Claim):
    """A claim judged from :mod:`claims.empirical.protocol` trainings. Subclasses implement
    :meth:`jobs` (what ``run`` reads, so the runner can train everything on one pool first)."""

    kind: ClassVar[Kind] = Kind.EMPIRICAL

    def jobs(self, tier: str, control: bool = False) -> list[Job]:
        raise NotImplementedError

    def tasks(self, tier: str) -> list[str]:
        budget = self.budget(tier)
        return [] if budget is None else list(budget["tasks"])

    def evidence(self, tier: str, control: bool, data: dict[str, Any],
                 summary: dict[str, Any], config: dict[str, Any] | None = None) -> Evidence:
        return Evidence(self.id, tier, control, config or dict(self.budget(tier) or {}),
                        data, summary)


# --- statistics over (n_seeds, n_tasks) ----------------------------------------------------------

def column_iqm(scores: np.ndarray) -> np.ndarray:
    """IQM of every column of ``scores`` (n_seeds, n_tasks) -> (n_tasks,)."""
    return np.array([stats.iqm(scores[:, j]) for j in range(scores.shape[1])])


@dataclass(frozen=True)
class Estimate:
    value: float
    ci: tuple[float, float]
    per_task: dict[str, float]


def worst_task(scores: np.ndarray, tasks: Sequence[str], *, worst: str = "min") -> Estimate:
    """The worst task's IQM over seeds (``worst``: "min" or "max") and its stratified-bootstrap
    interval (the whole min/max over tasks is resampled). scores: (n_seeds, n_tasks)."""
    pick = np.min if worst == "min" else np.max
    x = np.asarray(scores, dtype=float)
    per_task = column_iqm(x)
    value = float(pick(per_task))
    if x.shape[0] < 2:
        return Estimate(value, (value, value), dict(zip(tasks, map(float, per_task), strict=False)))
    ci = stats.stratified_bootstrap_ci(x, lambda r: float(pick(column_iqm(r))), alpha=ALPHA,
                                       n_resamples=N_RESAMPLES)
    return Estimate(value, ci, dict(zip(tasks, map(float, per_task), strict=True)))


def two_arm(a: Mapping[str, Sequence[float]], b: Mapping[str, Sequence[float]],
            statistic: Callable[[np.ndarray, np.ndarray], float], *, worst: str = "min",
            seed: int = 0) -> Estimate:
    """``statistic(a_task, b_task)`` per task (two independent groups of seeds), the worst over
    tasks, and its bootstrap interval (each arm resampled within each task independently)."""
    pick = min if worst == "min" else max
    tasks = list(a)
    arrays = [(np.asarray(a[t], float), np.asarray(b[t], float)) for t in tasks]
    per_task = {t: float(statistic(x, y)) for t, (x, y) in zip(tasks, arrays, strict=True)}
    value = float(pick(per_task.values()))
    if min(min(x.size, y.size) for x, y in arrays) < 2:
        return Estimate(value, (value, value), per_task)
    rng = np.random.default_rng(seed)
    draws = np.empty(N_RESAMPLES)
    for r in range(N_RESAMPLES):
        draws[r] = pick(statistic(x[rng.integers(0, x.size, x.size)],
                                  y[rng.integers(0, y.size, y.size)]) for x, y in arrays)
    lo, hi = np.quantile(draws, [ALPHA / 2, 1 - ALPHA / 2])
    return Estimate(value, (float(lo), float(hi)), per_task)


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
