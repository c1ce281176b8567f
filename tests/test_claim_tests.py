"""Every registered claim has a test of its own in the default run: a test file other than the
whole-tier smoke test (tests/test_bench_quick_tier.py, opt-in) names its id or its class. The
whole-tier test only repeats, in one place, what these tests check claim by claim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from claims.framework.registry import all_claims

TESTS = Path(__file__).resolve().parent
OPT_IN = {"test_bench_quick_tier.py", Path(__file__).name}
SOURCES = {p.name: p.read_text() for p in sorted(TESTS.glob("test_*.py")) if p.name not in OPT_IN}


@pytest.mark.parametrize("claim", all_claims(), ids=lambda c: c.id)
def test_claim_has_a_test_in_the_default_run(claim):
    name = type(claim).__name__
    named = [f for f, text in SOURCES.items()
             if claim.id in text or re.search(rf"\b{re.escape(name)}\b", text)]
    assert named, f"no test file names {claim.id} or {name}"
