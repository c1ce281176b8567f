"""The pytest plugin (claims.pytest_plugin): `pytest --trpo-impl=SPEC` in an empty directory runs
the claims against SPEC as test items, with the verdict in the report and in --junitxml.

Every pytest run goes to a subprocess (about 4 s each with --trpo-impl, which imports the
claims): an in-process pytester run unloads the modules it imported when it ends, and numpy's C
extensions, imported lazily by a claim, cannot be loaded a second time in one process."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from glob import escape

import pytest

from claims.framework.core import Status, Verdict
from claims.framework.registry import all_claims, get
from claims.pytest_plugin import item_outcome, select_claims

pytest_plugins = ["pytester"]

REFERENCE = "claims.adapters.trpo_ref:factory"
KL_CLAIM = "impl.kl_within_delta"

# an implementation with a plausible units bug: it hands trpo_ref ten times the KL bound it got
TEN_DELTA_ADAPTER = """
from claims.adapters.trpo_ref import TrpoRef


class TenDelta(TrpoRef):
    name = "ten-delta"

    def policy_step(self, batch, delta):
        return super().policy_step(batch, 10 * delta)


def factory():
    return TenDelta()
"""


# loaded here, at collection: modules first imported inside a test that uses the pytester fixture
# are unloaded at its end, and numpy's C extensions cannot be loaded twice in one process
ALL_CLAIMS = all_claims()
IMPLEMENTATION_CLAIM_IDS = [c.id for c in ALL_CLAIMS if c.requires is not None]


def test_without_trpo_impl_the_plugin_adds_nothing(pytester: pytest.Pytester):
    result = pytester.runpytest_subprocess("--claims-tier=quick", "--claims-controls", "--co")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.no_fnmatch_line("trpo-claims:*")  # neither the header line nor an item


def test_reference_passes_with_the_header_line(pytester: pytest.Pytester):
    result = pytester.runpytest_subprocess(f"--trpo-impl={REFERENCE}", "--claims-tier=quick",
                                           f"--claims-select={KL_CLAIM}", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        f"trpo-claims: implementation trpo_ref ({REFERENCE}), tier quick, seed 0, 1 claim",
        f"trpo-claims::{KL_CLAIM} PASSED*",
    ])


def test_a_spec_that_does_not_import_fails_every_item_with_the_import_error(
        pytester: pytest.Pytester):
    result = pytester.runpytest_subprocess("--trpo-impl=no_such_package_xyz:factory")
    result.assert_outcomes(failed=len(IMPLEMENTATION_CLAIM_IDS))
    result.stdout.fnmatch_lines([
        "trpo-claims: the implementation did not load: *cannot import 'no_such_package_xyz'*",
        "ERROR (run raised ImplementationError: *No module named 'no_such_package_xyz')",
    ])


def test_a_ten_delta_step_is_refuted_and_the_verdict_reaches_junitxml(
        pytester: pytest.Pytester):
    pytester.makepyfile(ten_delta_adapter=TEN_DELTA_ADAPTER)  # the subprocess imports it from cwd
    xml = pytester.path / "claims.xml"
    result = pytester.runpytest_subprocess("--trpo-impl=ten_delta_adapter:factory",
                                           f"--claims-select={KL_CLAIM}", f"--junitxml={xml}")
    result.assert_outcomes(failed=1)
    claim = get(KL_CLAIM)
    rule = claim.rule
    result.stdout.fnmatch_lines([
        escape(f"REFUTED ({rule.statistic} = ") + "*" + escape(f"; rule {rule.comparator} ")
        + "*)",
        escape(f"  statistic: {rule.statistic}"),
        escape(f"  rule: statistic {rule.comparator} ") + "*",
        "  value: *, CI: *, n: *",
        "  message: *",
        "implementation ten-delta (ten_delta_adapter:factory), tier quick, seed 0",
    ])
    (case,) = ET.parse(xml).getroot().iter("testcase")
    assert (case.get("classname"), case.get("name")) == ("trpo-claims", KL_CLAIM)
    assert case.find("failure") is not None
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["claim_id"] == KL_CLAIM
    assert properties["verdict"] == "REFUTED"
    assert properties["statistic"] == rule.statistic
    assert properties["comparator"] == rule.comparator
    assert float(properties["threshold"]) == rule.threshold
    assert not rule.passes(float(properties["value"]))
    assert properties["implementation"] == "ten_delta_adapter:factory"
    assert (properties["tier"], properties["seed"]) == ("quick", "0")
    assert properties["budget_seeds"] == json.dumps(claim.budget("quick").to_json().get("seeds"))


def test_selection_defaults_to_the_implementation_claims():
    assert [c.id for c in select_claims([])] == IMPLEMENTATION_CLAIM_IDS
    assert KL_CLAIM in IMPLEMENTATION_CLAIM_IDS
    assert select_claims(["all"]) == ALL_CLAIMS
    assert [c.id for c in select_claims([KL_CLAIM, "theory.theorem1", KL_CLAIM])] == [
        KL_CLAIM, "theory.theorem1"]
    with pytest.raises(KeyError, match=r"no claim with id 'no\.such\.claim'"):
        select_claims(["no.such.claim"])


def entry(status: Status, control: Status | None = None) -> dict:
    """A results.json entry with a verdict of ``status`` (and a control of ``control``)."""
    def verdict(s: Status) -> dict:
        if s in (Status.SUPPORTED, Status.REFUTED):
            return Verdict(s, "x", 2.0, "<=", 1.0, None, 3, "why").to_json()
        return Verdict(s, "", None, None, None, None, 0, f"{s} because").to_json()

    return {"id": "toy.claim", "verdict": verdict(status),
            "control": None if control is None else {"verdict": verdict(control)}}


@pytest.mark.parametrize(("status", "control", "strict", "controls", "expected"), [
    (Status.SUPPORTED, None, False, False, "passed"),
    (Status.SKIPPED, None, False, False, "skipped"),
    (Status.INCONCLUSIVE, None, False, False, "skipped"),
    (Status.INCONCLUSIVE, None, True, False, "failed"),
    (Status.REFUTED, None, False, False, "failed"),
    (Status.ERROR, None, False, False, "failed"),
    (Status.SUPPORTED, Status.REFUTED, False, True, "passed"),
    (Status.SUPPORTED, Status.SUPPORTED, False, True, "failed"),
    (Status.SUPPORTED, Status.ERROR, False, True, "failed"),
    (Status.SUPPORTED, Status.SUPPORTED, False, False, "passed"),  # control not asked for
])
def test_item_outcome(status, control, strict, controls, expected):
    outcome, reason = item_outcome(entry(status, control), strict=strict, controls=controls)
    assert outcome == expected
    if expected == "failed" and status in (Status.REFUTED, Status.ERROR, Status.INCONCLUSIVE):
        assert reason.startswith(str(status))
    if expected == "failed" and control is not None:
        assert "negative control, which must be REFUTED" in reason
    if expected == "skipped":
        assert f"{status} because" in reason
