"""The claim framework's types: Claim, Evidence, DecisionRule, Verdict.

A claim states what the paper says, how to test it at each tier's budget, and how to judge the
result, with the judgement (the :class:`DecisionRule`) declared before anything runs. ``run``
returns raw :class:`Evidence`; ``decide`` turns evidence into a :class:`Verdict` using only the
declared rule. Every claim also names a *negative control*: a plausible broken variant (a real bug
someone could write) that ``run(..., control=True)`` executes instead of the correct code, and on
which the same rule must come out REFUTED.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from claims.framework.serialize import to_jsonable

TIERS: tuple[str, ...] = ("quick", "standard", "full")
DEFAULT_TIER = "quick"


class Status(StrEnum):
    SUPPORTED = "SUPPORTED"
    REFUTED = "REFUTED"
    INCONCLUSIVE = "INCONCLUSIVE"
    SKIPPED = "SKIPPED"
    ERROR = "ERROR"


class Kind(StrEnum):
    EXACT = "exact"  # an identity or inequality checked exactly (float64) on finite MDPs
    APPROXIMATION = "approximation"  # holds to a stated order or tolerance
    EMPIRICAL = "empirical"  # a sampled outcome, judged with confidence intervals
    NEGATIVE = "negative"  # the paper says something does NOT work


_COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True)
class DecisionRule:
    """The rule, fixed before the run: SUPPORTED iff ``statistic <comparator> threshold``.

    With a confidence interval the rule is applied to both ends: SUPPORTED when the whole
    interval passes, REFUTED when the whole interval fails, INCONCLUSIVE when it straddles.
    """

    statistic: str  # what is measured, e.g. "min slack over examples"
    comparator: str  # one of >=, >, <=, <
    threshold: float
    description: str  # the rule in words, printed in reports
    alpha: float | None = None  # two-sided level of the interval, when one is used

    def __post_init__(self) -> None:
        if self.comparator not in _COMPARATORS:
            raise ValueError(
                f"comparator must be one of {sorted(_COMPARATORS)}, got {self.comparator!r}"
            )

    def passes(self, value: float) -> bool:
        return bool(math.isfinite(value) and _COMPARATORS[self.comparator](value, self.threshold))

    def judge(
        self,
        value: float,
        *,
        n: int,
        ci: tuple[float, float] | None = None,
        message: str = "",
    ) -> Verdict:
        """Apply the rule to a point estimate (and its interval, when there is one)."""
        if not math.isfinite(value):
            status = Status.REFUTED
            message = f"statistic is not finite ({value}). " + message
        elif ci is None:
            status = Status.SUPPORTED if self.passes(value) else Status.REFUTED
        else:
            lo_ok, hi_ok = self.passes(ci[0]), self.passes(ci[1])
            if lo_ok and hi_ok:
                status = Status.SUPPORTED
            elif not lo_ok and not hi_ok:
                status = Status.REFUTED
            else:
                status = Status.INCONCLUSIVE
                message = "the confidence interval straddles the threshold. " + message
        return Verdict(
            status=status,
            statistic=self.statistic,
            value=float(value),
            comparator=self.comparator,
            threshold=self.threshold,
            ci=None if ci is None else (float(ci[0]), float(ci[1])),
            n=int(n),
            message=message.strip(),
        )


COMPARE_DIRECTIONS = ("higher", "lower", "either")


@dataclass(frozen=True)
class Comparison:
    """How ``trpo-claims compare`` sets two runs of a claim side by side: the per-(task, seed)
    values :meth:`Claim.samples` returns, which direction is better, and the margin within
    which a difference counts as no difference (declared with the claim, before any run)."""

    statistic: str  # the per-sample value, e.g. "median KL / delta per (task, seed)"
    better: str  # "higher", "lower", or "either" (any change beyond the margin is worse)
    margin: float  # equivalence margin on the mean paired difference
    relative: bool = False  # margin as a fraction of the baseline's mean |value|

    def __post_init__(self) -> None:
        if self.better not in COMPARE_DIRECTIONS:
            raise ValueError(f"better must be one of {COMPARE_DIRECTIONS}, got {self.better!r}")
        if not self.margin > 0:
            raise ValueError(f"margin must be > 0, got {self.margin}")


@dataclass
class Verdict:
    status: Status
    statistic: str
    value: float | None
    comparator: str | None
    threshold: float | None
    ci: tuple[float, float] | None
    n: int
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = str(self.status)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Verdict:
        d = dict(d)
        d["status"] = Status(d["status"])
        # results.json stores non-finite floats as the strings "nan", "inf", "-inf"
        for key in ("value", "threshold"):
            if isinstance(d.get(key), str):
                d[key] = float(d[key])
        if d.get("ci") is not None:
            d["ci"] = tuple(float(x) for x in d["ci"])
        return cls(**d)

    @classmethod
    def error(cls, message: str) -> Verdict:
        return cls(Status.ERROR, "", None, None, None, None, 0, message)

    @classmethod
    def inconclusive(cls, message: str) -> Verdict:
        """No statistic could be computed (e.g. the evidence holds no examples)."""
        return cls(Status.INCONCLUSIVE, "", None, None, None, None, 0, message)

    @classmethod
    def skipped(cls, message: str) -> Verdict:
        return cls(Status.SKIPPED, "", None, None, None, None, 0, message)


@dataclass
class Evidence:
    """Raw results of one run of a claim, with the exact configuration that produced them.

    ``data`` holds per-example or per-seed arrays as plain lists (JSON-ready). ``summary`` holds
    the handful of derived numbers the report prints. ``artifacts`` holds named arrays only
    needed for figures; they are kept in memory and not written to results.json.
    """

    claim_id: str
    tier: str
    control: bool
    config: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict, repr=False)
    runtime_s: float = 0.0

    def values(self, key: str) -> np.ndarray:
        """``data[key]``, a per-example (or per-seed) list of numbers, as a float array (n,);
        empty when the run recorded none."""
        return np.asarray(self.data.get(key, []), dtype=float)

    def columns(self, key: str) -> dict[str, np.ndarray]:
        """``data[key]``, per-seed numbers by column ({"CartPole-v1 trpo": [...]}), as
        {column: float array (n_seeds,)}; empty when the run recorded none."""
        return {column: np.asarray(v, dtype=float)
                for column, v in self.data.get(key, {}).items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "tier": self.tier,
            "control": self.control,
            "config": self.config,
            "data": self.data,
            "summary": self.summary,
            "runtime_s": self.runtime_s,
        }


@dataclass(frozen=True)
class Budget:
    """Base of every claim's budget: one tier's settings (sizes, counts, seeds) as a frozen
    dataclass, one subclass per claim family, each field documented where it is declared.
    Lists given to a field are stored as tuples (a budget is fixed before anything runs)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _frozen(getattr(self, f.name)))

    def to_json(self) -> dict[str, Any]:
        """The budget as results.json records it: every field in declaration order (tuples as
        lists), leaving out an optional field (default None) that is left at None."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            out[f.name] = to_jsonable(value)
        return out


B = TypeVar("B", bound=Budget)


def _frozen(value: Any) -> Any:
    """Lists (nested too) as tuples; anything else as it is."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def budget_json(budget: Budget | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A tier's budget as JSON (None: no budget at that tier). A plain mapping, as a claim
    written outside this package may still declare, is copied as it is."""
    if budget is None:
        return None
    if isinstance(budget, Budget):
        return budget.to_json()
    return to_jsonable(dict(budget))


def _budgets_json(budgets: Any) -> Any:
    """Every tier's budget as JSON; anything but a mapping is left for ``budget`` to reject."""
    if not isinstance(budgets, Mapping):
        return budgets
    return {tier: budget_json(b) for tier, b in budgets.items()}


class Claim(Generic[B]):
    """Base class of every claim. Subclasses set the class attributes and implement the methods.

    ``budgets[tier]`` is that tier's :class:`Budget` (a frozen dataclass of the claim family's
    settings); a claim whose tier budget cannot decide anything sets ``budgets[tier] = None`` and
    is SKIPPED there. ``Claim[FooBudget]`` types what :meth:`budget` returns.
    """

    id: ClassVar[str]  # stable id, e.g. "theory.theorem1"
    title: ClassVar[str]
    statement: ClassVar[str]  # what the paper claims, in one or two sentences
    source: ClassVar[str]  # "TRPO section 3, eq. (9)" or "seed explainer: gridworld climb"
    kind: ClassVar[Kind]
    protocol: ClassVar[str]  # how the test runs, in words
    negative_control: ClassVar[str]  # the broken variant and why it is a plausible bug
    rule: ClassVar[DecisionRule]
    budgets: ClassVar[Mapping[str, Any]]  # tier -> a Budget instance, or None (SKIPPED there)
    # where the protocol departs from the paper (budget, env version, network, ...), one line each
    deviations: ClassVar[tuple[str, ...]] = ()
    # capabilities ("step", "train") it needs from an implementation under test
    # (claims.framework.impl); None: it checks trpo_ref's internals or the paper's mathematics, the
    # reference only
    requires: ClassVar[frozenset[str] | None] = None
    # how `trpo-claims compare` judges a change in this claim's samples (None: by verdict only)
    comparison: ClassVar[Comparison | None] = None

    def budget(self, tier: str) -> B | None:
        """The budget at ``tier`` (None: the claim cannot decide anything there)."""
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")
        return self.budgets.get(tier)

    def tier_budget(self, tier: str) -> B:
        """The budget ``run`` works with; ValueError at a tier without one (the runner skips
        such tiers, so only a direct call gets here)."""
        budget = self.budget(tier)
        if budget is None:
            raise ValueError(f"{self.id} has no budget at the {tier} tier")
        return budget

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        """Run the protocol at ``tier``'s budget; ``control=True`` runs the negative control."""
        raise NotImplementedError

    def decide(self, evidence: Evidence) -> Verdict:
        """Turn evidence into a verdict using ``self.rule`` only."""
        raise NotImplementedError

    def samples(self, evidence: Evidence) -> dict[str, float]:
        """Per-(task, seed) values of ``comparison.statistic`` from ``evidence`` (JSON-ready
        data only, so a saved run can be compared); empty when the claim declares none."""
        return {}

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        """Write this claim's figures (PNG) for ``evidence`` under ``out_dir``; optional."""
        return []

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "statement": self.statement,
            "source": self.source,
            "kind": str(self.kind),
            "protocol": self.protocol,
            "negative_control": self.negative_control,
            "rule": asdict(self.rule),
            "budgets": _budgets_json(self.budgets),
            "deviations": list(self.deviations),
            "comparison": None if self.comparison is None else asdict(self.comparison),
        }


def per_example(values: Any, labels: Any = None, prefix: str = "") -> dict[str, float]:
    """``Claim.samples`` from a list of per-example values: {label (or prefix + index): value},
    non-finite and missing values left out (a comparison pairs the keys both runs have)."""
    values = [] if values is None else list(values)
    labels = [f"{prefix}{i}" for i in range(len(values))] if labels is None else list(labels)
    out: dict[str, float] = {}
    for label, value in zip(labels, values, strict=True):
        if value is not None and math.isfinite(float(value)):
            out[str(label)] = float(value)
    return out
