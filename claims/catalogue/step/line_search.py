"""step.line_search_restores: injected bad steps are rejected and theta_old restored bit for bit.

App. C's line search accepts a candidate only if the surrogate improves and the mean KL on the
full batch is <= delta; on failure the exact old parameters must come back (and the log must say
why). Faults are injected on real batches of short-trained policies, into two things under test:

- the line search alone (``line_search_fn``, default trpo_ref.deep.step.line_search), fed a
  faulty full step or a faulty evaluate; the s^T A s faults go through step.step_scale's guard
  (the harness calls the line search only when the guard passes);
- the whole update (trpo_ref.deep.step.update). The faults are the registry's
  (:mod:`claims.faults`: a broken Fisher-vector product, direction, step scale or surrogate),
  applied to the update's hook points (:class:`trpo_ref.deep.step.UpdateStrategies`) for the
  duration of one call, and restored afterwards (:func:`injected`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch

from claims import faults as fault_registry
from claims.catalogue.step.batches import (
    TIER_TASKS,
    WarmupBudget,
    config_dict,
    param_bits,
    surrogate_and_kl,
    task_config,
    trained_batch,
    trpo_full_step,
    trpo_update,
)
from claims.framework.core import (
    Claim,
    Comparison,
    DecisionRule,
    Evidence,
    Kind,
    Verdict,
    per_example,
)
from claims.framework.registry import register
from trpo_ref.deep import step as step_module
from trpo_ref.deep.policies import Policy
from trpo_ref.deep.runtime import torch_threads
from trpo_ref.deep.step import (
    LineSearchResult,
    PolicyBatch,
    fisher_vector_product_fn,
    get_flat_params,
    set_flat_params,
)
from trpo_ref.deep.trpo import TRPOConfig

# the bad steps, by their names in claims.faults
FAULTS = ("reversed_direction", "inflated_beta_x100", "nonfinite_surrogate", "fvp_negative",
          "fvp_zero")
PATHS = ("line_search", "update")
BETA_INFLATION = fault_registry.BETA_INFLATION

LineSearchFn = Callable[..., LineSearchResult]


# --- faults ---------------------------------------------------------------------------------------

def _nan_advantages(batch: PolicyBatch) -> PolicyBatch:
    """The batch with a NaN in the first advantage (used only to evaluate candidates)."""
    adv = batch.adv.clone()
    adv[0] = math.nan
    return dataclasses.replace(batch, adv=adv)


@contextmanager
def injected(**pieces: Any) -> Iterator[None]:
    """Run the body with ``pieces`` of trpo_ref's update replaced (fields of
    :class:`trpo_ref.deep.step.UpdateStrategies`); the strategies in force come back after."""
    with step_module.use_strategies(**pieces):
        yield


def _line_search_bug_no_restore(
    policy: torch.nn.Module,
    theta_old: torch.Tensor,
    full_step: torch.Tensor,
    evaluate: Callable[[], tuple[float, float]],
    surrogate_old: float,
    limit: float,
    backtrack: float = 0.8,
    max_backtracks: int = 10,
) -> LineSearchResult:
    """BUG (negative control): step.line_search without the final restore, so a failed search
    leaves its last (smallest) candidate in the parameters while reporting a rejection."""
    why = "no candidate tried"
    for k in range(max_backtracks):
        fraction = backtrack**k
        set_flat_params(policy, theta_old + fraction * full_step)
        surr, constraint = evaluate()
        if not (math.isfinite(surr) and math.isfinite(constraint)):
            why = f"non-finite surrogate or KL ({surr}, {constraint})"
        elif surr <= surrogate_old:
            why = "surrogate did not improve"
        elif constraint > limit:
            why = f"KL {constraint:.3g} > {limit:.3g}"
        else:
            return LineSearchResult(True, k, fraction, surr, constraint, None)
    return LineSearchResult(False, max_backtracks, 0.0, surrogate_old, math.nan,
                            f"line search failed; last: {why}")


# --- one case -------------------------------------------------------------------------------------

def run_line_search_case(
    fault: str, policy: Policy, batch: PolicyBatch, config: TRPOConfig,
    generator: torch.Generator, line_search_fn: LineSearchFn,
) -> tuple[bool, str | None]:
    """Inject ``fault`` into a line search on ``batch``; returns (rejected, reason). The
    s^T A s faults are stopped by step.step_scale's guard before any line search."""
    fvp = {"fvp_negative": fault_registry.fvp_negative, "fvp_zero": fault_registry.fvp_zero}.get(
        fault, fisher_vector_product_fn)
    step = trpo_full_step(policy, batch, config, generator, fvp_fn=fvp)
    if step.full_step is None:
        return True, step.reason
    full_step, eval_batch = step.full_step, batch
    if fault == "reversed_direction":
        full_step = -full_step
    elif fault == "inflated_beta_x100":
        full_step = BETA_INFLATION * full_step
    elif fault == "nonfinite_surrogate":
        eval_batch = _nan_advantages(batch)
    result = line_search_fn(policy, step.theta_old, full_step,
                            lambda: surrogate_and_kl(policy, eval_batch), step.surrogate_old,
                            config.delta, config.backtrack, config.max_backtracks)
    return not result.accepted, result.reason


def run_update_case(
    fault: str, policy: Policy, batch: PolicyBatch, config: TRPOConfig,
    generator: torch.Generator, line_search_fn: LineSearchFn,
) -> tuple[bool, str | None]:
    """Inject ``fault`` into trpo_ref.deep.step.update (with ``line_search_fn`` as its line
    search); returns (rejected, reason) as the update's log reports them (a rejection must also
    log step_fraction 0)."""
    with injected(line_search=line_search_fn, **fault_registry.FAULTS[fault].pieces()):
        metrics = trpo_update(policy, batch, config, generator)
    rejected = metrics["train/accepted"] is False and metrics["train/step_fraction"] == 0.0
    reason = metrics["train/reject_reason"]
    return rejected, reason if isinstance(reason, str) else None


@register
class LineSearchRestores(Claim[WarmupBudget]):
    id = "step.line_search_restores"
    comparison = Comparison(
        statistic="handled correctly (1) or not (0), per (fault, path, task, seed) case",
        better="higher", margin=0.05)
    title = "The line search rejects bad steps and restores theta_old bit for bit"
    statement = (
        "App. C's backtracking line search accepts a step only if the surrogate improves and "
        "the mean KL on the full batch is <= delta (with beta's guard s^T A s > 0 and finite "
        "before it); a bad step (wrong direction, far too long, non-finite surrogate, "
        "non-positive curvature) is rejected, the exact old parameters are restored and the "
        "log says why."
    )
    source = "TRPO App. C (line search, step length from the quadratic KL model)"
    kind = Kind.EXACT
    protocol = (
        "Per task and seed: a policy trained for `warmup_iters` TRPO iterations "
        "(claims.catalogue.step.batches, 64x64 tanh, delta 0.01, damping 0.1, 10% FVP subsample, "
        "backtrack 0.8 x 10) and its next real batch. Five faults: reversed direction "
        "(-beta s), beta x100 (every candidate, even 0.8^9 of it, is >= 13x the trust region "
        "step), NaN surrogate at evaluation only (a NaN advantage in the batch the candidates "
        "are evaluated on / a surrogate that is NaN without a graph), FVP v -> -v (s^T A s < 0) "
        "and FVP v -> 0 (s^T A s = 0 or not finite). Each is injected (a) into the line search "
        "under test (trpo_ref.deep.step.line_search, the s^T A s faults through "
        "step.step_scale's guard) and (b) into the whole trpo_ref.deep.step.update, by "
        "replacing the step module's attribute the update calls for one call. A case is "
        "handled correctly iff the step is rejected (update: accepted False and step_fraction "
        "0), a non-empty reason is logged and the flat parameters afterwards equal theta_old "
        "as int64 bit patterns."
    )
    negative_control = (
        "A line search that on failure leaves its last candidate in place (the final restore "
        "forgotten), in both paths. step.update sets theta_old again when the search fails, "
        "so its update-path cases may still pass; the line-search-path ones cannot."
    )
    rule = DecisionRule(
        statistic="fraction of (fault, path, task, seed) cases handled correctly",
        comparator=">=",
        threshold=1.0,
        description=(
            "SUPPORTED iff every case is handled correctly: rejection and bit-exact "
            "restoration are deterministic properties of the code, not statistical ones, so a "
            "single failure refutes."
        ),
    )
    budgets: ClassVar[dict[str, WarmupBudget | None]] = {
        "quick": WarmupBudget(
            tasks=TIER_TASKS["quick"],
            warmup_iters=3,
            seeds=[0, 1],
        ),
        "standard": WarmupBudget(
            tasks=TIER_TASKS["standard"],
            warmup_iters=10,
            seeds=[0, 1, 2],
        ),
        "full": WarmupBudget(
            tasks=TIER_TASKS["full"],
            warmup_iters=20,
            seeds=[0, 1, 2, 3, 4],
        ),
    }

    def run(
        self, tier: str, *, control: bool = False, seed: int = 0,
        line_search_fn: LineSearchFn | None = None,
    ) -> Evidence:
        """``line_search_fn`` overrides the line search under test (default step.line_search;
        the control's bug when ``control``)."""
        budget = self.tier_budget(tier)
        if line_search_fn is None:
            line_search_fn = _line_search_bug_no_restore if control else step_module.line_search
        start = time.perf_counter()
        rows: dict[str, list[Any]] = {k: [] for k in (
            "fault", "path", "task", "seed", "rejected", "restored", "reason", "correct")}
        runs = []
        with torch_threads(1):
            for env_id, steps in budget.tasks:
                for run_seed in budget.seeds:
                    config = task_config(env_id, steps, seed + run_seed)
                    runs.append(config_dict(config))
                    item = trained_batch(config, budget.warmup_iters)
                    theta = get_flat_params(item.policy)
                    for fault in FAULTS:
                        for path in PATHS:
                            set_flat_params(item.policy, theta)
                            before = param_bits(item.policy)
                            case = run_line_search_case if path == "line_search" else \
                                run_update_case
                            generator = torch.Generator().manual_seed(config.seed + 2)
                            rejected, reason = case(fault, item.policy, item.batch, config,
                                                    generator, line_search_fn)
                            restored = bool(torch.equal(before, param_bits(item.policy)))
                            logged = bool(reason)
                            for key, value in (("fault", fault), ("path", path),
                                               ("task", env_id), ("seed", config.seed),
                                               ("rejected", bool(rejected)),
                                               ("restored", restored), ("reason", reason),
                                               ("correct", bool(rejected and restored and logged))):
                                rows[key].append(value)
        config_out = {
            "seed": seed,
            **budget.to_json(),
            "faults": list(FAULTS),
            "paths": list(PATHS),
            "beta_inflation": BETA_INFLATION,
            "line_search": getattr(line_search_fn, "__qualname__", repr(line_search_fn)),
            "update": "trpo_ref.deep.step.update (faults applied to its UpdateStrategies)",
            "runs": runs,
        }
        summary = _summarize(rows)
        evidence = Evidence(self.id, tier, control, config_out, rows, summary)
        evidence.runtime_s = time.perf_counter() - start
        return evidence

    def samples(self, evidence: Evidence) -> dict[str, float]:
        return per_example([float(c) for c in evidence.data.get("correct", [])], prefix="case ")

    def decide(self, evidence: Evidence) -> Verdict:
        correct = np.asarray(evidence.data.get("correct", []), dtype=bool)
        if correct.size == 0:
            return Verdict.inconclusive("the evidence holds no fault cases, so nothing to judge")
        s = evidence.summary
        failing = ", ".join(f"{k}: {v}" for k, v in s["failures_by_fault_and_path"].items() if v)
        message = (
            f"{int(correct.sum())}/{correct.size} cases handled correctly; not rejected: "
            f"{s['n_not_rejected']}, not restored bit for bit: {s['n_not_restored']}, no reason "
            f"logged: {s['n_no_reason']}." + (f" Failures by fault/path: {failing}." if failing
                                               else "")
        )
        return self.rule.judge(float(correct.mean()), n=int(correct.size), message=message)


def _summarize(rows: dict[str, list[Any]]) -> dict[str, Any]:
    correct = np.asarray(rows["correct"], dtype=bool)
    failures = {f"{f}/{p}": 0 for f in FAULTS for p in PATHS}
    for f, p, ok in zip(rows["fault"], rows["path"], rows["correct"], strict=True):
        failures[f"{f}/{p}"] += int(not ok)
    return {
        "n_cases": int(correct.size),
        "fraction_correct": float(correct.mean()) if correct.size else float("nan"),
        "n_not_rejected": int(sum(not r for r in rows["rejected"])),
        "n_not_restored": int(sum(not r for r in rows["restored"])),
        "n_no_reason": int(sum(not r for r in rows["reason"])),
        "failures_by_fault_and_path": failures,
    }
