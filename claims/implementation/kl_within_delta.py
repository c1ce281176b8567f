"""One update keeps KL(pi_old || pi_new) within delta, measured by the suite (section 6, eq. 12).

The batches are real: states, actions and standardized GAE advantages from a short trpo_ref
training on each task (:func:`claims.step.batches.trained_batch`). The implementation under
test gets a fresh policy for the task, performs ONE update on the batch with delta = 0.01, and
returns its action distributions before and after; the suite computes KL(old || new) per state,
summed over action dimensions and averaged over the batch's states, as the paper defines it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from claims.core import Claim, DecisionRule, Evidence, Kind, Verdict
from claims.forks import seeded_bug
from claims.impl import REFERENCE_SPEC, StepBatch, StepOutcome, UnderTest, under_test
from claims.registry import register
from claims.step.batches import task_config, trained_batch
from trpo_ref.deep.runtime import torch_threads

DELTA = 0.01
CONTROL_BUG = "kl_mean_over_action_dims"


def suite_batch(env_id: str, steps: int, seed: int, warmup_iters: int) -> StepBatch:
    """The batch of iteration ``warmup_iters`` of a trpo_ref training on ``env_id``."""
    with torch_threads(1):
        item = trained_batch(task_config(env_id, steps, seed), warmup_iters)
    b = item.batch
    return StepBatch(env_id, b.obs.numpy().copy(), b.act.numpy().copy(), b.adv.numpy().copy())


def measured_kl(outcome: StepOutcome, n: int) -> float:
    """Mean over states of KL(old || new), validating the distributions first."""
    outcome.old.validate(n, "old distributions")
    outcome.new.validate(n, "new distributions")
    return float(outcome.old.kl_to(outcome.new).mean())


@register
class KLWithinDelta(Claim):
    id = "impl.kl_within_delta"
    title = "One update keeps the mean KL(pi_old || pi_new) within delta"
    statement = ("The practical algorithm solves max L s.t. E_s KL(pi_old(.|s) || pi_new(.|s)) "
                 "<= delta (eq. 12): after an update the mean KL over the batch's states, summed "
                 "over action dimensions, is at most delta.")
    source = "TRPO section 6, eq. (12); KL direction and averaging as in section 5"
    kind = Kind.EXACT
    requires: ClassVar[frozenset[str] | None] = frozenset({"step"})
    protocol = ("For each task and seed: a trpo_ref training of `warmup` iterations gives a real "
                "batch (states, actions, standardized GAE advantages); the implementation under "
                "test makes a fresh policy for the task (same seed) and performs ONE update on "
                "that batch with delta = 0.01; the suite computes KL(old || new) from the "
                "returned distributions. Statistic: the largest mean KL / delta over (task, "
                "seed).")
    negative_control = ("trpo_ref with its Gaussian KL averaged over action dimensions, in the "
                        "Fisher and in the line search (sb3-contrib's choice): steps are sized "
                        "for act_dim x delta while its own log says delta.")
    rule = DecisionRule(
        statistic="max over (task, seed) of mean KL(old || new) / delta", comparator="<=",
        threshold=1.0,
        description="Every update within the trust region, by the paper's KL; no interval: "
                    "each (task, seed) is one deterministic update.")
    budgets: ClassVar[dict[str, dict[str, Any] | None]] = {
        "quick": {"tasks": [["CartPole-v1", 1000], ["Hopper-v5", 1000]], "seeds": [0, 1],
                  "warmup": 2},
        "standard": {"tasks": [["CartPole-v1", 2000], ["Hopper-v5", 5000],
                               ["Swimmer-v5", 5000], ["Walker2d-v5", 5000]],
                     "seeds": [0, 1, 2], "warmup": 5},
        "full": {"tasks": [["CartPole-v1", 5000], ["Hopper-v5", 10000],
                           ["Swimmer-v5", 10000], ["Walker2d-v5", 10000]],
                 "seeds": [0, 1, 2, 3, 4], "warmup": 10},
    }

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.budget(tier) or {}
        target = UnderTest(REFERENCE_SPEC) if control else under_test()
        impl = target.load()
        ratios: dict[str, float] = {}
        with seeded_bug(CONTROL_BUG if control else None):
            for env_id, steps in budget["tasks"]:
                for s in budget["seeds"]:
                    batch = suite_batch(env_id, steps, seed + s, budget["warmup"])
                    impl.new_policy(env_id, seed + s)
                    outcome = impl.policy_step(batch, DELTA)
                    ratios[f"{env_id} seed {seed + s}"] = measured_kl(outcome,
                                                                      len(batch.adv)) / DELTA
        config = {"impl": target.spec, "delta": DELTA, "seed": seed} | budget
        summary = {"max KL / delta": max(ratios.values()),
                   "median KL / delta": float(np.median(list(ratios.values())))}
        return Evidence(self.id, tier, control, config, {"kl_over_delta": ratios}, summary)

    def decide(self, evidence: Evidence) -> Verdict:
        ratios = evidence.data["kl_over_delta"]
        worst = max(ratios, key=lambda k: ratios[k])
        return self.rule.judge(ratios[worst], n=len(ratios),
                               message=f"largest at {worst}: KL = {ratios[worst]:.3g} delta")
