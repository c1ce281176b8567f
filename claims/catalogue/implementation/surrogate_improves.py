"""Every update that moves the policy improves the surrogate, measured by the suite (App. C).

"We use a line search to ensure improvement of the surrogate objective and satisfaction of the
KL divergence constraint" (Appendix C). On the suite's step protocol (:mod:`.sequence`) at
delta = 0.01 the suite recomputes L(pi_new) - L(pi_old) = mean_n (r_n - 1) A_n (eq. 14) from
the returned distributions and the batch's standardized advantages.
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
class SurrogateImproves(StepSequenceClaim):
    id = "impl.surrogate_improves"
    title = "Every update that moves the policy improves the surrogate"
    statement = ("The line search accepts a step only if it improves the surrogate L_theta_old "
                 "(eq. 14) and satisfies the KL constraint; a rejected step leaves the policy "
                 "as it was. So every update that changes the policy improves L.")
    source = "TRPO Appendix C (line search); surrogate of eq. (14)"
    deltas = (DELTA,)
    protocol = STEP_PROTOCOL.format(delta=DELTA) + (
        " Statistic: the number of updates that changed the policy without improving the "
        "surrogate. INCONCLUSIVE when no update changed the policy.")
    control_bug = "flip_advantages"
    negative_control = ("trpo_ref with the advantages' sign flipped before the update (a sign "
                        "error in the surrogate or the advantage estimator): every step "
                        "climbs the wrong way.")
    rule = DecisionRule(
        statistic="updates that changed the policy with L(new) - L(old) <= 0", comparator="<=",
        threshold=0.0,
        description="SUPPORTED when every update that moved the policy improved the surrogate, "
                    "as measured by the suite.")
    comparison = Comparison(
        statistic="median over a (task, seed)'s updates of the surrogate gained per unit of "
                  "trust region, (L(new) - L(old)) / sqrt(2 KL): the natural direction "
                  "maximizes it to first order", better="higher", margin=0.1, relative=True)

    def summarize(self, runs: dict[str, list[UpdateRecord]]) -> dict[str, Any]:
        moved = [r for records in runs.values() for r in records if not r.unchanged]
        return {"updates": sum(len(records) for records in runs.values()),
                "updates that moved the policy": len(moved),
                "min surrogate gain": min((r.surrogate_gain for r in moved), default=None),
                "median gain / sqrt(2 KL)": float(np.median([r.efficiency for r in moved]))
                if moved else None}

    def samples(self, evidence: Evidence) -> dict[str, float]:
        out = {}
        for key, records in records_from_json(evidence.data).items():
            values = [r.efficiency for r in records if not r.unchanged]
            if values:
                out[key] = float(np.median(values))
        return out

    def decide(self, evidence: Evidence) -> Verdict:
        runs = records_from_json(evidence.data)
        moved = [(k, r) for k, recs in runs.items() for r in recs if not r.unchanged]
        crashed = crash_note(evidence.data)
        if not moved:
            return Verdict.inconclusive("no update changed the policy, so nothing shows the "
                                        "surrogate improving" + crashed)
        bad = [(k, r) for k, r in moved if not r.surrogate_gain > 0]
        worst_key, worst = min(moved, key=lambda kr: kr[1].surrogate_gain)
        return self.rule.judge(float(len(bad)), n=len(moved),
                               message=f"{len(bad)} of {len(moved)} updates that moved the "
                                       f"policy lowered the surrogate; smallest change "
                                       f"{worst.surrogate_gain:.3g} at {worst_key}" + crashed)
