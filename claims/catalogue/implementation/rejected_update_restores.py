"""A rejected update leaves the policy exactly as it was (Appendix C's line search).

The suite's step protocol (:mod:`.sequence`) is run at large KL bounds (delta = 1, 10, 100: the
real batch's rungs of the line-search claims' ladder, :mod:`.line_search`, whose cells it
shares), where the quadratic model of the KL is poor and the line search must often give up.
Whatever the implementation does inside, each update must either improve the surrogate within
the trust region or leave the action distributions bit for bit as they were; a crash inside an
update that leaves the policy changed or non-finite counts against it.
"""

from __future__ import annotations

from typing import Any

from claims.catalogue.implementation.line_search import (
    LS_BUDGETS,
    LS_PROTOCOL,
    LineSearchBudget,
    line_search_plan,
)
from claims.catalogue.implementation.sequence import (
    CellSpec,
    StepSequenceClaim,
    UpdateRecord,
    crash_note,
    crashes_from_json,
    records_from_json,
)
from claims.framework.core import Comparison, DecisionRule, Evidence, Verdict
from claims.framework.registry import register

DELTAS = (1.0, 10.0, 100.0)


def violates(record: UpdateRecord, delta: float) -> bool:
    """The update moved the policy without improving the surrogate within the trust region."""
    return not record.unchanged and not (record.surrogate_gain > 0 and record.kl_mean <= delta)


@register
class RejectedUpdateRestores(StepSequenceClaim):
    id = "impl.rejected_update_restores"
    title = "An update the line search rejects leaves the policy exactly as it was"
    statement = ("The line search accepts a step only if the surrogate improves and the KL is "
                 "within delta; when no backtracked step qualifies, the policy keeps its old "
                 "parameters. So every update either improves L within the trust region or "
                 "changes nothing.")
    source = "TRPO Appendix C (line search)"
    budgets = LS_BUDGETS
    protocol = LS_PROTOCOL + " This claim judges the real batch's rungs 1, 10 and 100." + (
        " Statistic: the number of updates that moved the policy without improving the "
        "surrogate within delta, plus the crashes that left the policy changed or non-finite "
        "(an exception inside the update that was not undone). INCONCLUSIVE when no update "
        "was rejected and none violated (the restore was never exercised).")
    control_bug = "no_restore_on_failure"
    negative_control = ("trpo_ref whose failed line search leaves the last, rejected candidate "
                        "in place (a missing restore after the backtracking loop).")
    rule = DecisionRule(
        statistic="updates that moved the policy without improving L within delta",
        comparator="<=", threshold=0.0,
        description="SUPPORTED when every update improved the surrogate within the trust "
                    "region or left the policy bit for bit unchanged.")
    comparison = Comparison(statistic="such updates per (task, seed, delta)", better="lower",
                            margin=0.5)

    def plan(self, budget: LineSearchBudget, seed: int) -> list[CellSpec]:  # type: ignore[override]
        # the ladder's rungs 1, 10 and 100 on the real batch (shared with the line-search
        # claims): the deltas declared for this claim before the ladder existed
        return [s for s in line_search_plan(budget, seed)
                if s.batch == "real" and s.delta in DELTAS]

    def counts(self, evidence: Evidence) -> tuple[dict[str, int], int]:
        """Violations per (task, seed, delta), a crash that left the policy changed or
        non-finite counting as one; and the number of rejected updates (a crash that left the
        policy exactly as it was counts as a rejection)."""
        runs = records_from_json(evidence.data)
        crashes = crashes_from_json(evidence.data)
        violations = {k: sum(violates(r, self.delta_of(k, evidence.config)) for r in recs)
                      + int(k in crashes and crashes[k].left_policy_broken)
                      for k, recs in runs.items()}
        rejected = sum(r.unchanged for recs in runs.values() for r in recs) + sum(
            c.state == "unchanged" for c in crashes.values())
        return violations, rejected

    def summarize(self, runs: dict[str, list[UpdateRecord]]) -> dict[str, Any]:
        return {"updates": sum(len(recs) for recs in runs.values()),
                "rejected (unchanged) updates": sum(r.unchanged for recs in runs.values()
                                                    for r in recs)}

    def samples(self, evidence: Evidence) -> dict[str, float]:
        return {k: float(v) for k, v in self.counts(evidence)[0].items()}

    def decide(self, evidence: Evidence) -> Verdict:
        violations, rejected = self.counts(evidence)
        total = sum(violations.values())
        crashes = crashes_from_json(evidence.data)
        n = sum(len(v) for v in evidence.data["unchanged"].values()) + len(crashes)
        if total == 0 and rejected == 0:
            return Verdict.inconclusive(f"none of {n} updates was rejected, so the restore "
                                        "was never exercised" + crash_note(evidence.data))
        where = ", ".join(f"{k}: {v}" for k, v in violations.items() if v)
        broken = [k for k, c in crashes.items() if c.left_policy_broken]
        return self.rule.judge(float(total), n=n,
                               message=f"{rejected} of {n} updates rejected"
                                       + (f"; violations at {where}" if where else "")
                                       + (f"; {len(broken)} crash(es) left the policy changed "
                                          f"or non-finite ({', '.join(broken)})" if broken
                                          else "") + crash_note(evidence.data))
