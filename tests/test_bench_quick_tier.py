"""Benchmark: the whole quick tier (every claim and its negative control, figures, report).

Target (issue 2, section 6): under 60 s on a 2-core machine. The time is reported by
pytest-benchmark, not asserted (timings belong to the machine). Measure with:

    .venv/bin/pytest tests/test_bench_quick_tier.py -m whole_tier --benchmark-enable

It is not in the default test run (about 6 min on the CI machine; every claim's own test runs
that claim and its control in the default run, and test_claim_tests.py checks that each claim
has one). Without ``--benchmark-enable`` the tier runs once, as a smoke test that every claim
runs to a verdict at the quick tier and every negative control is REFUTED. Claims with no
quick budget (the locomotion-only empirical claims) must come out SKIPPED. The empirical claims'
trainings go to the session's job cache, so their own tests read them instead of training again.
"""

from __future__ import annotations

import pytest

from claims.framework.core import Status
from claims.framework.jobs import Execution
from claims.framework.registry import all_claims
from claims.framework.runner import run_claims


@pytest.mark.whole_tier
@pytest.mark.benchmark_speed
def test_bench_quick_tier(benchmark, tmp_path, quick_job_cache) -> None:
    claims = all_claims()
    result = benchmark.pedantic(
        run_claims,
        kwargs={"claims": claims, "tier": "quick", "seed": 0, "out_dir": tmp_path,
                "jobs": Execution(cache=quick_job_cache, progress=None)},
        rounds=1,
        iterations=1,
    )
    records = result.results["claims"]
    assert [r["id"] for r in records] == [c.id for c in claims]
    for claim, r in zip(claims, records, strict=True):
        if claim.budget("quick") is None:
            assert r["verdict"]["status"] == Status.SKIPPED, r["id"]
            continue
        assert r["verdict"]["status"] not in (Status.ERROR, Status.SKIPPED), r["id"]
        assert r["control"]["verdict"]["status"] == Status.REFUTED, r["id"]
    benchmark.extra_info["n_claims"] = len(records)
    benchmark.extra_info["claims_runtime_s"] = result.results["runtime_s"]
