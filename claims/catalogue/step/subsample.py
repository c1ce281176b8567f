"""step.subsampled_direction: App. C computes the Fisher-vector products on 10% of the batch; the
step it gives should be about as good as the full batch's, per unit of KL it spends.

On real batches (claims.catalogue.step.batches) the full step beta s of TRPO (g, CG, beta, App. C)
is computed twice: with every FVP on the full batch, and with the FVPs on a random 10% subsample
(``fvp_subsample = 0.1``, the configuration trpo_ref trains with), for several subsample draws.
Both steps are scored on the full batch by the line search's own measure: the surrogate's gain
per unit of mean KL, (L(theta + beta s) - L(theta)) / KL(theta, theta + beta s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from claims.catalogue.empirical.common import worst_of
from claims.catalogue.step.batches import (
    TIER_TASKS,
    surrogate_and_kl,
    task_config,
    trained_batch,
    trpo_full_step,
)
from claims.framework import stats
from claims.framework.core import Budget, Claim, Comparison, DecisionRule, Evidence, Kind, Verdict
from claims.framework.registry import register
from trpo_ref.deep import step
from trpo_ref.deep.runtime import torch_threads


@dataclass(frozen=True)
class SubsampleBudget(Budget):
    """step.subsampled_direction: warmed-up batches, each stepped on random state subsamples."""

    tasks: tuple[tuple[str, int], ...]  # (env id, env steps per batch) per task
    seeds: tuple[int, ...]  # training seeds (offset by the run's seed)
    warmup_iters: int  # training iterations before the probe
    n_subsamples: int  # random FVP subsamples drawn per batch
    fvp_subsample: float  # fraction of the batch's states each subsample keeps


THRESHOLD = 0.8  # the subsample may cost at most 20% of the full batch's gain per unit KL


def _fvp_bug_full_batch_normalizer(fraction: float):
    """BUG (negative control): the subsample's KL Hessian divided by the full batch size N
    instead of the subsample's k (a sum over the subsample over N: mean over N of a sum over
    fewer rows), so A = fraction * H + damping I; the step scale beta then overshoots."""

    def build(policy, obs, old_params, damping, index=None):
        h_v = step.fisher_vector_product_fn(policy, obs, old_params, 0.0, index)
        return lambda v: fraction * h_v(v) + damping * v

    return build


def _score(policy, batch, full_step) -> tuple[float, float, float]:
    """(surrogate gain, mean KL, gain per KL) of theta_old + full_step on the full batch;
    the parameters are restored."""
    theta = step.get_flat_params(policy).clone()
    l_old, _ = surrogate_and_kl(policy, batch)
    step.set_flat_params(policy, theta + full_step)
    l_new, kl = surrogate_and_kl(policy, batch)
    step.set_flat_params(policy, theta)
    gain = l_new - l_old
    return gain, kl, gain / kl if kl > 0 else float("nan")


@register
class SubsampledDirection(Claim[SubsampleBudget]):
    id = "step.subsampled_direction"
    title = "A 10% FVP subsample gives about the full batch's step: >= 0.8 of its gain per KL"
    statement = ("App. C computes the Fisher-vector products on 10% of the batch to make the "
                 "natural-gradient step cost about one gradient; the step it yields should be "
                 "about as good as the full-batch one (only its cost is measured by "
                 "step.appendix_c_cost).")
    source = "TRPO App. C (Fisher-vector products on a 10% subsample)"
    kind = Kind.EMPIRICAL
    protocol = ("Per task of the tier (claims.catalogue.step.batches.TIER_TASKS) and seed: a "
                "policy "
                "trained `warmup_iters` TRPO iterations and its next real batch. The full step "
                "beta s (g, 10 CG iterations, damping 0.1, beta = sqrt(2 delta / s^T A s), "
                "delta 0.01) with FVPs on the full batch, and with FVPs on `n_subsamples` random "
                "10% subsamples. Each scored on the full batch: gain per KL = (L(theta + beta s)"
                " - L(theta)) / mean KL(theta, theta + beta s). Per (task, seed): the median "
                "over subsamples of gain per KL (subsample) / gain per KL (full batch), with a "
                "percentile bootstrap interval over subsamples; the worst (task, seed) is judged "
                "(interval: min of the lower ends, min of the upper ends). Reported beside it: "
                "the cosine between the subsampled and the full-batch step.")
    negative_control = ("The subsample's KL Hessian normalized by the full batch size (a sum "
                        "over the subsampled rows divided by N instead of by their count k), so "
                        "A = 0.1 H + damping I: the subsample no longer estimates the Fisher, "
                        "beta overshoots about sqrt(10)-fold and the step spends ~10x the KL "
                        "for ~3x the gain.")
    rule = DecisionRule(
        statistic="min over (task, seed) of the median over subsamples of gain per KL, "
                  "10% subsample / full batch",
        comparator=">=", threshold=THRESHOLD, alpha=0.05,
        description="SUPPORTED iff the whole 95% interval is >= 0.8 (the subsample costs at "
                    "most 20% of the full batch's surrogate gain per unit KL), REFUTED iff it is "
                    "wholly below.")
    comparison = Comparison(statistic="gain per KL, subsample / full batch, per (task, seed, "
                                      "subsample)", better="higher", margin=0.05)
    budgets: ClassVar[dict[str, SubsampleBudget | None]] = {
        "quick": SubsampleBudget(tasks=[TIER_TASKS["quick"][0], TIER_TASKS["quick"][2]],
                                 seeds=[0], warmup_iters=2, n_subsamples=10, fvp_subsample=0.1),
        "standard": SubsampleBudget(tasks=TIER_TASKS["standard"], seeds=[0], warmup_iters=5,
                                    n_subsamples=20, fvp_subsample=0.1),
        "full": SubsampleBudget(tasks=TIER_TASKS["full"], seeds=[0, 1], warmup_iters=10,
                                n_subsamples=30, fvp_subsample=0.1),
    }

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.tier_budget(tier)
        fraction = float(budget.fvp_subsample)
        rows: dict[str, list[Any]] = {k: [] for k in (
            "task", "seed", "ratio", "cosine", "kl_sub", "kl_full", "gain_sub", "gain_full")}
        with torch_threads(1):
            for env_id, steps_per_iter in budget.tasks:
                for s in budget.seeds:
                    config = task_config(env_id, steps_per_iter, seed * 1000 + s)
                    item = trained_batch(config, int(budget.warmup_iters))
                    full_config = task_config(env_id, steps_per_iter, seed * 1000 + s,
                                              fvp_subsample=1.0)
                    full = trpo_full_step(item.policy, item.batch, full_config, None)
                    if full.full_step is None:
                        continue
                    gain_f, kl_f, per_kl_f = _score(item.policy, item.batch, full.full_step)
                    sub_config = task_config(env_id, steps_per_iter, seed * 1000 + s,
                                             fvp_subsample=fraction)
                    gen = torch.Generator().manual_seed(seed * 7919 + s)
                    fvp = (_fvp_bug_full_batch_normalizer(fraction) if control
                           else step.fisher_vector_product_fn)
                    for _ in range(int(budget.n_subsamples)):
                        sub = trpo_full_step(item.policy, item.batch, sub_config, gen, fvp)
                        if sub.full_step is None:
                            continue
                        gain_s, kl_s, per_kl_s = _score(item.policy, item.batch, sub.full_step)
                        cos = float(torch.nn.functional.cosine_similarity(
                            sub.full_step, full.full_step, dim=0))
                        for key, value in (("task", env_id), ("seed", s),
                                           ("ratio", per_kl_s / per_kl_f), ("cosine", cos),
                                           ("kl_sub", kl_s), ("kl_full", kl_f),
                                           ("gain_sub", gain_s), ("gain_full", gain_f)):
                            rows[key].append(value)
        cos = np.asarray(rows["cosine"])
        summary = {"median_ratio": float(np.median(rows["ratio"])) if rows["ratio"] else None,
                   "median_cosine": float(np.median(cos)) if cos.size else None,
                   "min_cosine": float(cos.min()) if cos.size else None,
                   "median_kl_sub_over_delta": float(np.median(rows["kl_sub"]) / 0.01)
                   if rows["kl_sub"] else None,
                   "median_kl_full_over_delta": float(np.median(rows["kl_full"]) / 0.01)
                   if rows["kl_full"] else None}
        return Evidence(self.id, tier, control, {"seed": seed, **budget.to_json()}, rows, summary)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        d, count = evidence.data, {}
        out = {}
        for task, s, r in zip(d.get("task", []), d.get("seed", []), d.get("ratio", []),
                              strict=True):
            k = count[(task, s)] = count.get((task, s), -1) + 1
            out[f"{task} seed {s} #{k}"] = float(r)
        return out

    def decide(self, evidence: Evidence) -> Verdict:
        d = evidence.data
        groups: dict[str, list[float]] = {}
        for task, s, r in zip(d.get("task", []), d.get("seed", []), d.get("ratio", []),
                              strict=True):
            groups.setdefault(f"{task} seed {s}", []).append(float(r))
        if not groups:
            return Verdict.inconclusive("the evidence holds no steps, so there is nothing to "
                                        "judge")
        per_task = {k: float(np.median(v)) for k, v in groups.items()}
        intervals = {k: stats.bootstrap_ci(np.asarray(v), np.median, alpha=0.05)
                     if len(v) >= 2 else (per_task[k], per_task[k]) for k, v in groups.items()}
        estimate = worst_of(per_task, intervals, "min")
        cos = np.asarray(d["cosine"])
        return self.rule.judge(
            estimate.value, n=sum(map(len, groups.values())), ci=estimate.ci,
            message="median ratio per (task, seed): " + "; ".join(
                f"{k}: {v:.3g} [{intervals[k][0]:.3g}, {intervals[k][1]:.3g}]"
                for k, v in per_task.items())
            + f". Cosine(subsampled step, full step): median {np.median(cos):.3g}, min "
              f"{cos.min():.3g}.")
