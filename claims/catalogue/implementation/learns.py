"""The implementation learns each task past a published TRPO score (section 8, Figure 4).

Training level: the implementation under test trains on each task for the tier's budget with
each seed and returns every finished episode's true return and length; the suite takes the
final return (mean over the episodes that end in the last 10% of the run's steps) and divides
it by the task's published threshold (:data:`claims.catalogue.empirical.protocol.TASKS`, from
published TRPO results, not from our runs). Each training is a cached job
(:mod:`claims.framework.jobs`; the job function is :func:`.training.train_episodes`), keyed by
the implementation's spec and version, so a long run resumes and runs on ``--jobs`` workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import metadata
from typing import ClassVar

import numpy as np

from claims.catalogue.empirical import protocol
from claims.catalogue.empirical.common import ALPHA, EmpiricalClaim, judge, matrix, worst_task
from claims.catalogue.implementation.training import train_episodes
from claims.framework.core import Budget, Comparison, DecisionRule, Evidence, Verdict
from claims.framework.impl import REFERENCE_SPEC, load_implementation, under_test
from claims.framework.jobs import Job, run_in_context
from claims.framework.registry import register

FINAL_FRACTION = 0.1
CONTROL_BUG = "flip_advantages"
TRAIN_EPISODES = f"{train_episodes.__module__}:{train_episodes.__name__}"  # the job function


@dataclass(frozen=True)
class LearnsBudget(Budget):
    """The trainings impl.learns asks of the implementation under test at a tier."""

    tasks: tuple[tuple[str, int], ...]  # (task, env steps per training), in report order
    seeds: tuple[int, ...]  # one training per task and seed; the control trains the first only


def implementation_version(spec: str) -> str:
    """What version of the implementation ``spec`` trains (part of the job's cache key: an
    upgraded library is a new implementation): the adapter's ``version`` if it has one, else
    the installed version of the distribution that provides the spec's module."""
    version = getattr(load_implementation(spec), "version", None)
    if version:
        return str(version)
    top = spec.partition(":")[0].split(".")[0]
    for name in (top, top.replace("_", "-")):
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return f"{top} (version unknown)"


def final_return(returns: list[float], lengths: list[int]) -> float:
    """Mean return of the episodes that end in the last 10% of the run's recorded steps (at
    least the last episode); NaN when no episode finished."""
    if not returns:
        return math.nan
    ends = np.cumsum(lengths)
    last = ends >= (1.0 - FINAL_FRACTION) * ends[-1]
    return float(np.asarray(returns, dtype=float)[last].mean())


@register
class ImplementationLearns(EmpiricalClaim):
    id = "impl.learns"
    title = "Trained with its defaults, the implementation passes a published TRPO score"
    statement = ("With one hyperparameter setting (delta = 0.01), TRPO learns cart-pole and the "
                 "MuJoCo locomotion tasks (Figure 4); an implementation of it should reach what "
                 "published TRPO runs reach at the same budget.")
    source = "TRPO section 8, Figure 4; thresholds from published TRPO results (see protocol)"
    requires: ClassVar[frozenset[str] | None] = frozenset({"train"})
    protocol = ("For each task and seed: the implementation under test trains with its own "
                "defaults for the tier's steps; the suite takes the mean return of the episodes "
                "that end in the last 10% of the steps, divided by the task's published "
                "threshold. Statistic: the worst task's IQM over seeds of that ratio, with a "
                "95% stratified-bootstrap interval.")
    negative_control = ("trpo_ref with the advantages' sign flipped (a sign error in the "
                        "surrogate or the advantage estimator), first seed of each task.")
    rule = DecisionRule(
        statistic="min over tasks of IQM final return / published threshold", comparator=">=",
        threshold=1.0, alpha=ALPHA,
        description="SUPPORTED when the whole interval of the worst task is >= 1, REFUTED when "
                    "it is wholly below.")
    comparison = Comparison(statistic="final return / published threshold per (task, seed)",
                            better="higher", margin=0.1)
    budgets: ClassVar[dict[str, LearnsBudget | None]] = {
        "quick": LearnsBudget(tasks=[["CartPole-v1", 75_000]], seeds=[0, 1]),
        "standard": LearnsBudget(tasks=[["CartPole-v1", 250_000], ["Hopper-v5", 1_000_000]],
                                 seeds=[0, 1, 2]),
        "full": LearnsBudget(tasks=[["CartPole-v1", 250_000], ["Swimmer-v5", 1_000_000],
                                    ["Hopper-v5", 1_000_000], ["Walker2d-v5", 1_000_000]],
                             seeds=[0, 1, 2, 3, 4]),
    }
    deviations = (
        "The implementation trains with its own defaults (network, batch size, GAE, damping); "
        "thresholds are published TRPO scores on older task versions (see protocol).",
    )

    def jobs(self, tier: str, control: bool = False) -> list[Job]:
        budget: LearnsBudget | None = self.budget(tier)
        if budget is None:
            return []
        spec = REFERENCE_SPEC if control else under_test().spec
        seeds = budget.seeds[:1] if control else budget.seeds
        version = implementation_version(spec)
        return [Job(self.id, env_id, "control" if control else "impl", s, TRAIN_EPISODES,
                    {"spec": spec, "env_id": env_id, "seed": s, "total_steps": steps,
                     "bug": CONTROL_BUG if control else None, "version": version})
                for env_id, steps in budget.tasks for s in seeds]

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        if not control:
            under_test().load()  # a spec that does not load is this claim's ERROR
        jobs = self.jobs(tier, control)
        results = run_in_context(jobs)
        finals: dict[str, list[float]] = {}
        episodes: dict[str, int] = {}
        for job, result in zip(jobs, results, strict=True):
            key = f"{job.task} seed {job.seed}"
            finals.setdefault(job.task, []).append(
                final_return(result["episode_returns"], result["episode_lengths"]))
            episodes[key] = len(result["episode_returns"])
        thresholds = {t: protocol.TASKS[t].threshold for t in finals}
        data = {"final_return": finals, "threshold": thresholds, "episodes": episodes,
                "seeds": sorted({job.seed for job in jobs}),
                "implementation_version": results[0]["implementation_version"] if results
                else None}
        summary = {f"{t}: mean final return": float(np.mean(v)) for t, v in finals.items()}
        budget = self.budget(tier)
        config = (budget.to_json() if budget is not None else {}) | {
            "impl": jobs[0].kwargs["spec"] if jobs else None, "seed": seed}
        return self.evidence(tier, control, data, summary, config)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        d = evidence.data
        return {f"{task} seed {s}": value / d["threshold"][task]
                for task, values in d["final_return"].items()
                for s, value in zip(d["seeds"], values, strict=False)}

    def decide(self, evidence: Evidence) -> Verdict:
        finals, thresholds = evidence.data["final_return"], evidence.data["threshold"]
        tasks = list(finals)
        ratios = {t: np.asarray(finals[t], dtype=float) / thresholds[t] for t in tasks}
        estimate = worst_task(matrix(ratios, tasks), tasks)
        worst = min(estimate.per_task, key=lambda t: estimate.per_task[t])
        return judge(self, estimate, n=sum(len(v) for v in finals.values()),
                     message=f"worst task: {worst} ({estimate.per_task[worst]:.3g} of its "
                             f"threshold {thresholds[worst]:g})")
