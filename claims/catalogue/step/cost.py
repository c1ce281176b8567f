"""App. C's cost statement: with the Fisher-vector products on a 10% subsample, computing the
natural-gradient step costs about as much as computing the gradient (step.appendix_c_cost).

Measured here, on real Hopper-v5 batches, as wall-time ratios on this machine (machine info in
the evidence): the step's work after g is known (FVP setup on the subsample, 10 CG iterations,
s^T A s, beta) over one surrogate gradient on the full batch (forward + backward). The line
search's cost is reported separately. Timings are interleaved per repeat and summarized by
medians, so that contention on a shared machine hits numerator and denominator alike.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from claims.catalogue.step.batches import task_config, trained_batch
from claims.framework.core import (
    Budget,
    Claim,
    Comparison,
    DecisionRule,
    Evidence,
    Kind,
    Verdict,
    per_example,
)
from claims.framework.registry import register
from claims.framework.stats import bootstrap_ci
from trpo_ref.deep import step
from trpo_ref.deep.policies import Policy
from trpo_ref.deep.runtime import torch_threads

# (policy, batch, g, fvp_subsample, generator) -> the full step beta * s (None if rejected)
NaturalStepFn = Callable[
    [Policy, step.PolicyBatch, torch.Tensor, float, torch.Generator], torch.Tensor | None
]

DELTA, DAMPING, CG_ITERS = 0.01, 0.1, 10


def surrogate_gradient(policy: Policy, batch: step.PolicyBatch) -> torch.Tensor:
    """g = grad L(theta_old) on the full batch: one forward and one backward pass (eq. 14)."""
    return step.flat_grad(step.surrogate(policy, batch), policy)


def natural_step(
    policy: Policy,
    batch: step.PolicyBatch,
    g: torch.Tensor,
    fvp_subsample: float,
    generator: torch.Generator,
) -> torch.Tensor | None:
    """What step.update computes after g (App. C): the FVP on a ``fvp_subsample`` fraction of
    the states, s = CG(A, g) in 10 iterations, s^T A s, beta = sqrt(2 delta / s^T A s); the
    full step beta * s, or None when the guard rejects it."""
    index = step.subsample_index(len(batch), fvp_subsample, generator)
    a_v = step.fisher_vector_product_fn(policy, batch.obs, batch.old_params, DAMPING, index)
    s, _ = step.conjugate_gradient(a_v, g, CG_ITERS)
    beta, reason = step.step_scale(float(s @ a_v(s)), DELTA)
    return None if reason is not None else beta * s


def machine_info() -> dict[str, Any]:
    """Where the timings were taken: they are only meaningful together with this."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def time_step_parts(
    policy: Policy,
    batch: step.PolicyBatch,
    subsamples: tuple[float, ...],
    repeats: int,
    seed: int,
    step_fn: NaturalStepFn = natural_step,
) -> dict[str, list[float]]:
    """Interleaved wall times (s) per repeat: the gradient, the step at each subsample fraction,
    and the line search (step.line_search with step.update's evaluate) from the first
    fraction's full step; the parameters are restored after every line search. One untimed
    round first warms caches and allocators."""
    theta_old = step.get_flat_params(policy)
    generator = torch.Generator().manual_seed(seed)
    surrogate_old = float(step.surrogate(policy, batch).detach())

    def evaluate() -> tuple[float, float]:
        with torch.no_grad():
            return float(step.surrogate(policy, batch)), float(
                step.kl_per_state(policy, batch).mean()
            )

    times: dict[str, list[float]] = {"gradient": [], "line_search": [], "backtracks": []}
    for frac in subsamples:
        times[f"step_{frac:g}"] = []
    for r in range(repeats + 1):
        gc.collect()
        t_grad, g = _timed(lambda: surrogate_gradient(policy, batch))
        full_steps = {}
        for frac in subsamples:
            t, full_steps[frac] = _timed(
                lambda f=frac, g=g: step_fn(policy, batch, g, f, generator)
            )
            if r:
                times[f"step_{frac:g}"].append(t)
        full = full_steps[subsamples[0]]
        if full is None:
            t_ls, backtracks = math.nan, -1
        else:
            t_ls, result = _timed(lambda s=full: step.line_search(
                policy, theta_old, s, evaluate, surrogate_old, DELTA))
            backtracks = result.backtracks
        step.set_flat_params(policy, theta_old)
        if r:
            times["gradient"].append(t_grad)
            times["line_search"].append(t_ls)
            times["backtracks"].append(float(backtracks))
    return times


def median_ratio(numerator: np.ndarray, denominator: np.ndarray) -> float:
    """Median over repeats of the per-repeat (interleaved, paired) time ratios."""
    return float(np.median(np.asarray(numerator) / np.asarray(denominator)))


@dataclass(frozen=True)
class CostBudget(Budget):
    """step.appendix_c_cost: timed steps on one task's warmed-up batch."""

    env_id: str  # the task timed
    batch_states: int  # states in the batch (env steps per iteration)
    warmup_iters: int  # training iterations before timing
    repeats: int  # timed repetitions (each: one gradient, one full step)
    n_resamples: int  # bootstrap resamples of the median ratio's interval


@register
class AppendixCCost(Claim[CostBudget]):
    id = "step.appendix_c_cost"
    comparison = Comparison(
        statistic="time(natural step after g) / time(gradient) per repeat",
        better="lower", margin=0.2, relative=True)
    title = "With a 10% FVP subsample the natural-gradient step costs about one gradient"
    statement = (
        "Computing the Fisher-vector products on 10% of the data, the natural-gradient "
        "direction and step cost about the same as computing the gradient (App. C)."
    )
    source = "TRPO App. C (subsampled Fisher-vector products)"
    kind = Kind.EMPIRICAL
    protocol = (
        "A 64x64 Gaussian policy after `warmup_iters` TRPO iterations on Hopper-v5 and its next "
        "batch of >= `batch_states` states (claims.catalogue.step.batches), one torch thread. "
        "Per repeat, "
        "interleaved: one surrogate gradient on the full batch (forward + backward); the step "
        "after g (FVP setup on a `fvp_subsample` fraction of the states, 10 CG iterations from "
        "0, s^T A s, beta; damping 0.1, delta 0.01) at fractions 0.1 and 1.0; the line search "
        "(step.line_search with step.update's evaluate) from the 0.1 step, parameters restored "
        "after. `repeats` timed repeats after one untimed round (time.perf_counter). Statistic: "
        "the median over repeats of time(step at the claim's fraction) / time(gradient), with a "
        "percentile bootstrap interval of that median."
    )
    negative_control = (
        "The same step without subsampling (fvp_subsample = 1.0, which is step.update's own "
        "default: a caller who forgets TRPOConfig's 0.1 gets it): every FVP runs on the full "
        "batch, so 11 products cost ~10+ gradients."
    )
    rule = DecisionRule(
        statistic="median over repeats of time(natural step after g) / time(gradient)",
        comparator="<=",
        threshold=2.0,
        alpha=0.05,
        description=(
            "SUPPORTED iff the 95% bootstrap interval of the median ratio lies at or below 2: "
            "'about the same' read as within a factor of 2 of one gradient. Declared before "
            "measuring; timings are machine-dependent (machine info in the config)."
        ),
    )
    budgets: ClassVar[dict[str, CostBudget | None]] = {
        "quick": CostBudget(env_id="Hopper-v5", batch_states=5_000, warmup_iters=1,
                            repeats=15, n_resamples=2000),
        "standard": CostBudget(env_id="Hopper-v5", batch_states=25_000, warmup_iters=2,
                               repeats=21, n_resamples=2000),
        "full": CostBudget(env_id="Hopper-v5", batch_states=50_000, warmup_iters=5,
                           repeats=31, n_resamples=2000),
    }

    def run(
        self,
        tier: str,
        *,
        control: bool = False,
        seed: int = 0,
        step_fn: NaturalStepFn = natural_step,
    ) -> Evidence:
        budget = self.tier_budget(tier)
        fraction = 1.0 if control else 0.1
        subsamples = (0.1, 1.0)  # both measured in either run; ``fraction``'s is judged
        with torch_threads(1):
            config = task_config(budget.env_id, budget.batch_states, seed)
            item = trained_batch(config, budget.warmup_iters)
            machine = machine_info()
            times = time_step_parts(
                item.policy, item.batch, subsamples, budget.repeats, seed, step_fn
            )
        grad = np.asarray(times["gradient"])
        judged = np.asarray(times[f"step_{fraction:g}"])
        ratios = judged / grad
        ci = bootstrap_ci(ratios, np.median, alpha=self.rule.alpha or 0.05,
                          n_resamples=budget.n_resamples, seed=seed)
        ls = np.asarray(times["line_search"])
        data = {k: [float(x) for x in v] for k, v in times.items()}
        data["ratio"] = ratios.tolist()
        summary = {
            "ratio": float(np.median(ratios)),
            "ci": list(ci),
            "ratio_fvp_subsample_0.1": median_ratio(np.asarray(times["step_0.1"]), grad),
            "ratio_fvp_subsample_1": median_ratio(np.asarray(times["step_1"]), grad),
            "ratio_line_search": median_ratio(ls, grad),
            "ratio_step_0.1_plus_line_search": median_ratio(np.asarray(times["step_0.1"]) + ls,
                                                            grad),
            "median_gradient_s": float(np.median(grad)),
            "median_backtracks": float(np.median(times["backtracks"])),
        }
        evidence_config = {
            "seed": seed,
            **budget.to_json(),
            "fvp_subsample": fraction,
            "batch_size": len(item.batch),
            "fvp_states": math.ceil(fraction * len(item.batch)),
            "delta": DELTA,
            "damping": DAMPING,
            "cg_iters": CG_ITERS,
            "step_fn": getattr(step_fn, "__qualname__", repr(step_fn)),
            "machine": machine,
        }
        return Evidence(self.id, tier, control, evidence_config, data, summary)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        return per_example(evidence.data.get("ratio", []), prefix="repeat ")

    def decide(self, evidence: Evidence) -> Verdict:
        ratios = np.asarray(evidence.data.get("ratio", []), dtype=float)
        if ratios.size == 0:
            return Verdict.inconclusive("the evidence holds no timings, so there is nothing "
                                        "to judge")
        s, c = evidence.summary, evidence.config
        message = (
            f"fvp_subsample {c['fvp_subsample']:g} on {c['batch_size']} states: step / gradient "
            f"median {s['ratio']:.3g} [{s['ci'][0]:.3g}, {s['ci'][1]:.3g}] over {ratios.size} "
            f"repeats (gradient {1e3 * s['median_gradient_s']:.3g} ms); at subsample 0.1: "
            f"{s['ratio_fvp_subsample_0.1']:.3g}, at 1.0: {s['ratio_fvp_subsample_1']:.3g}; line "
            f"search {s['ratio_line_search']:.3g} gradients (median backtracks "
            f"{s['median_backtracks']:g}); {c['machine']['cpu_count']} CPUs, "
            f"{c['machine']['torch_threads']} torch thread."
        )
        return self.rule.judge(float(np.median(ratios)), n=int(ratios.size),
                               ci=(s["ci"][0], s["ci"][1]), message=message)
