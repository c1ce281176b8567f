"""The claim framework's types: DecisionRule.judge, Verdict JSON, Claim helpers."""

from __future__ import annotations

import json
import math
import operator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from toy_claims import PassingClaim

from claims.framework.core import TIERS, DecisionRule, Evidence, Status, Verdict
from claims.framework.serialize import dumps

COMPARATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


def _rule(comparator: str, threshold: float = 0.0, alpha: float | None = None) -> DecisionRule:
    return DecisionRule("x", comparator, threshold, "x compared with a threshold.", alpha)


@pytest.mark.parametrize("comparator", COMPARATORS)
@given(value=finite, threshold=finite)
def test_point_estimate_supported_iff_comparison_holds(comparator, value, threshold):
    verdict = _rule(comparator, threshold).judge(value, n=5)
    expected = Status.SUPPORTED if COMPARATORS[comparator](value, threshold) else Status.REFUTED
    assert verdict.status == expected
    assert (verdict.value, verdict.threshold, verdict.n) == (value, threshold, 5)
    assert verdict.comparator == comparator and verdict.ci is None


@pytest.mark.parametrize("comparator", COMPARATORS)
@given(ends=st.lists(finite, min_size=2, max_size=2).map(sorted), threshold=finite)
def test_interval_is_judged_on_both_ends(comparator, ends, threshold):
    lo, hi = ends
    passes = [COMPARATORS[comparator](end, threshold) for end in (lo, hi)]
    verdict = _rule(comparator, threshold, alpha=0.05).judge((lo + hi) / 2, n=10, ci=(lo, hi))
    if all(passes):
        assert verdict.status == Status.SUPPORTED
    elif not any(passes):
        assert verdict.status == Status.REFUTED
    else:
        assert verdict.status == Status.INCONCLUSIVE
        assert "straddles" in verdict.message
    assert verdict.ci == (lo, hi)


@pytest.mark.parametrize(
    ("comparator", "value", "status"),
    [
        (">=", 0.0, Status.SUPPORTED),  # the boundary belongs to >= and <=
        (">", 0.0, Status.REFUTED),
        ("<=", 0.0, Status.SUPPORTED),
        ("<", 0.0, Status.REFUTED),
        (">=", -1e-12, Status.REFUTED),
        ("<", -1e-12, Status.SUPPORTED),
    ],
)
def test_boundary_cases(comparator, value, status):
    assert _rule(comparator).judge(value, n=1).status == status


@pytest.mark.parametrize("comparator", COMPARATORS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_statistic_is_refuted(comparator, value):
    verdict = _rule(comparator).judge(value, n=3, message="details")
    assert verdict.status == Status.REFUTED
    assert verdict.message.startswith("statistic is not finite")
    assert verdict.message.endswith("details")


def test_unknown_comparator_is_rejected():
    with pytest.raises(ValueError, match="comparator must be one of"):
        _rule("==")


def _round_trip(verdict: Verdict) -> Verdict:
    return Verdict.from_json(json.loads(dumps(verdict.to_json())))


@pytest.mark.parametrize(
    "verdict",
    [
        _rule(">=").judge(0.5, n=4, message="fine"),
        _rule("<", 1.0, alpha=0.1).judge(0.5, n=9, ci=(0.25, 1.5)),
        Verdict.error("run raised ValueError: boom"),
        Verdict.skipped("no budget at the quick tier"),
    ],
    ids=["point", "interval", "error", "skipped"],
)
def test_verdict_json_round_trip(verdict):
    again = _round_trip(verdict)
    assert again == verdict
    assert isinstance(again.status, Status)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_verdict_json_round_trip_of_non_finite_values(value):
    verdict = _rule(">=").judge(value, n=2)
    data = json.loads(dumps(verdict.to_json()))
    assert isinstance(data["value"], str)  # strict JSON has no NaN or Infinity
    again = Verdict.from_json(data)
    assert math.isnan(again.value) if math.isnan(value) else again.value == value
    assert again.status == Status.REFUTED


def test_claim_budget_per_tier():
    claim = PassingClaim()
    assert [claim.budget(tier).n for tier in TIERS] == [3, 5, 7]
    with pytest.raises(ValueError, match="unknown tier 'huge'"):
        claim.budget("huge")


def test_describe_is_json_ready_and_carries_the_rule():
    description = json.loads(dumps(PassingClaim().describe()))
    assert description["id"] == "toy.pass"
    assert description["kind"] == "exact"
    assert description["rule"]["comparator"] == ">="
    assert set(description["budgets"]) == set(TIERS)


def test_evidence_accessors_read_lists_and_columns_as_float_arrays():
    evidence = Evidence("toy", "quick", False, {}, {"ratio": [1, 2.5], "final": {"a": [3, 4]}})
    assert evidence.values("ratio").dtype == float and evidence.values("ratio").tolist() == [1, 2.5]
    assert evidence.values("missing").shape == (0,)
    columns = evidence.columns("final")
    assert list(columns) == ["a"] and columns["a"].dtype == float
    assert evidence.columns("missing") == {}
