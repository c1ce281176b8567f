"""Small Claim subclasses with known outcomes, for the runner and CLI tests (no real claims).

Each toy's statistic is the minimum of ``n`` numbers around a base value, judged by the rule
"statistic >= 0"; the control run uses another base value. The outcomes are fixed by design:

========================  ============  =================
id                        verdict       negative control
========================  ============  =================
toy.pass                  SUPPORTED     REFUTED
toy.fail                  REFUTED       REFUTED           (figures() raises)
toy.raise                 ERROR         ERROR
toy.nobudget              SKIPPED       (not run)
toy.leaky                 SUPPORTED     SUPPORTED         (a control that cannot fail)
toy.inconclusive          INCONCLUSIVE  REFUTED
toy.nonfinite             REFUTED       REFUTED           (statistic is nan)
========================  ============  =================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from claims.framework.core import Budget, Claim, DecisionRule, Evidence, Kind, Verdict

TOY_RULE = DecisionRule(
    statistic="min margin",
    comparator=">=",
    threshold=0.0,
    description="Every toy margin is non-negative.",
)
TOY_CI_RULE = DecisionRule(
    statistic="mean margin",
    comparator=">=",
    threshold=0.0,
    description="The mean toy margin is non-negative.",
    alpha=0.05,
)


@dataclass(frozen=True)
class ToyBudget(Budget):
    """A toy claim's budget."""

    n: int  # margins taken


class ToyClaim(Claim[ToyBudget]):
    title = "A toy claim"
    statement = "Toy margins are non-negative."
    source = "tests/toy_claims.py"
    kind = Kind.EXACT
    protocol = "Take n margins around a base value; the statistic is their minimum."
    negative_control = "Shift the base value below zero."
    rule = TOY_RULE
    budgets: ClassVar[dict[str, ToyBudget | None]] = {
        "quick": ToyBudget(n=3),
        "standard": ToyBudget(n=5),
        "full": ToyBudget(n=7),
    }
    base: ClassVar[float] = 1.0
    control_base: ClassVar[float] = -1.0

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        n = self.tier_budget(tier).n
        base = self.control_base if control else self.base
        margins = base + 0.01 * np.arange(n)  # numpy values on purpose: JSON must cope
        return Evidence(
            claim_id=self.id,
            tier=tier,
            control=control,
            config={"n": n, "seed": seed, "base": base},
            data={"margins": margins},
            summary={"min margin": margins.min(), "n": np.int64(n), "bases": (base, base)},
        )

    def decide(self, evidence: Evidence) -> Verdict:
        margins = np.asarray(evidence.data["margins"])
        return self.rule.judge(float(margins.min()), n=margins.size, message="toy verdict")


class PassingClaim(ToyClaim):
    id = "toy.pass"
    title = "A toy claim that holds"

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        path = out_dir / "toy.pass.png"
        path.write_bytes(b"not really a png")
        return [path]


class FailingClaim(ToyClaim):
    id = "toy.fail"
    title = "A toy claim that fails"
    base = -1.0

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        raise RuntimeError("toy plotting bug")


class RaisingClaim(ToyClaim):
    id = "toy.raise"
    title = "A toy claim whose check crashes"

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        raise ValueError("toy failure inside run")


class NoBudgetClaim(ToyClaim):
    id = "toy.nobudget"
    title = "A toy claim without a quick budget"
    budgets: ClassVar[dict[str, ToyBudget | None]] = {
        "quick": None,
        "standard": None,
        "full": ToyBudget(n=100),
    }


class LeakyControlClaim(ToyClaim):
    id = "toy.leaky"
    title = "A toy claim whose control is not refuted"
    control_base = 1.0


class InconclusiveClaim(ToyClaim):
    id = "toy.inconclusive"
    title = "A toy claim whose interval straddles the threshold"
    rule = TOY_CI_RULE

    def decide(self, evidence: Evidence) -> Verdict:
        margins = np.asarray(evidence.data["margins"])
        mean = float(margins.mean())
        half_width = 1.5 if not evidence.control else 0.1
        return self.rule.judge(mean, n=margins.size, ci=(mean - half_width, mean + half_width))


class NonFiniteClaim(ToyClaim):
    id = "toy.nonfinite"
    title = "A toy claim whose statistic is not finite"
    base = float("nan")
    control_base = float("-inf")


ALL_TOYS: tuple[type[ToyClaim], ...] = (
    PassingClaim,
    FailingClaim,
    RaisingClaim,
    NoBudgetClaim,
    LeakyControlClaim,
    InconclusiveClaim,
    NonFiniteClaim,
)
EXPECTED: dict[str, tuple[str, str | None]] = {
    "toy.pass": ("SUPPORTED", "REFUTED"),
    "toy.fail": ("REFUTED", "REFUTED"),
    "toy.raise": ("ERROR", "ERROR"),
    "toy.nobudget": ("SKIPPED", None),
    "toy.leaky": ("SUPPORTED", "SUPPORTED"),
    "toy.inconclusive": ("INCONCLUSIVE", "REFUTED"),
    "toy.nonfinite": ("REFUTED", "REFUTED"),
}


def toy_claims(*ids: str) -> list[Claim]:
    """Fresh instances of the toys named (all of them when none is named), in table order."""
    return [cls() for cls in ALL_TOYS if not ids or cls.id in ids]
