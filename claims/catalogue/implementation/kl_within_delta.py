"""Every update keeps KL(pi_old || pi_new) within delta, measured by the suite (section 6, eq. 12).

The implementation under test runs the suite's step protocol (:mod:`.sequence`) at delta = 0.01;
the suite computes KL(old || new) per state from the returned distributions, summed over action
dimensions and averaged over the batch's states, as the paper defines it, never reading the
implementation's own logs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims.catalogue.implementation.sequence import (
    STEP_PROTOCOL,
    StepSequenceClaim,
    UpdateRecord,
    crash_note,
    records_from_json,
)
from claims.framework.core import Comparison, DecisionRule, Evidence, Verdict
from claims.framework.registry import register

DELTA = 0.01


@register
class KLWithinDelta(StepSequenceClaim):
    id = "impl.kl_within_delta"
    title = "Every update keeps the mean KL(pi_old || pi_new) within delta"
    statement = ("The practical algorithm solves max L s.t. E_s KL(pi_old(.|s) || pi_new(.|s)) "
                 "<= delta (eq. 12): after an update the mean KL over the batch's states, summed "
                 "over action dimensions, is at most delta.")
    source = "TRPO section 6, eq. (12); KL direction and averaging as in section 5"
    deltas = (DELTA,)
    protocol = STEP_PROTOCOL.format(delta=DELTA) + (
        " Statistic: the largest mean KL / delta over all updates of all (task, seed).")
    control_bug = "kl_mean_over_action_dims"
    negative_control = ("trpo_ref with its Gaussian KL averaged over action dimensions, in the "
                        "Fisher and in the line search (sb3-contrib's choice): steps are sized "
                        "for act_dim x delta while its own log says delta.")
    rule = DecisionRule(
        statistic="max over updates of mean KL(old || new) / delta", comparator="<=",
        threshold=1.0,
        description="Every update within the trust region, by the paper's KL; no interval: "
                    "each update is deterministic.")
    comparison = Comparison(
        statistic="median over a (task, seed)'s updates of mean KL / delta: how much of the "
                  "trust region the updates use", better="either", margin=0.1)

    def summarize(self, runs: dict[str, list[UpdateRecord]]) -> dict[str, Any]:
        ratios = [r.kl_mean / DELTA for records in runs.values() for r in records]
        return {"max KL / delta": max(ratios, default=None),
                "median KL / delta": float(np.median(ratios)) if ratios else None,
                "updates": len(ratios)}

    def samples(self, evidence: Evidence) -> dict[str, float]:
        return {key: float(np.median([r.kl_mean for r in records])) / DELTA
                for key, records in records_from_json(evidence.data).items() if records}

    def decide(self, evidence: Evidence) -> Verdict:
        runs = {k: recs for k, recs in records_from_json(evidence.data).items() if recs}
        crashed = crash_note(evidence.data)
        if not runs:
            return Verdict.inconclusive("no update was measured" + crashed)
        worst_key, worst = max(((k, max(r.kl_mean for r in recs)) for k, recs in runs.items()),
                               key=lambda kv: kv[1])
        n = sum(len(recs) for recs in runs.values())
        return self.rule.judge(worst / DELTA, n=n,
                               message=f"largest at {worst_key}: KL = {worst / DELTA:.3g} delta"
                                       + crashed)
