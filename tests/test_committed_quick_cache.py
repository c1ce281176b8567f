"""The committed quick-tier job cache (reports/quick/jobs) holds, made by the code checked out,
every training the quick tier plans: the default test run seeds its session cache with it
(tests/conftest.py), so the claims' tests read those trainings instead of training for minutes.
When trpo_ref or a job's code changes, this test fails until the cache is regenerated
(``scripts/regenerate_reports.py --tier quick``) or migrated after a replay audit
(``scripts/migrate_cache.py reports/quick/jobs --write``); without it the claims' tests still
pass, only slower (a stale record never matches a key, so its training runs again)."""

from __future__ import annotations

import json

from conftest import COMMITTED_QUICK_JOBS

from claims.framework.jobs import Execution, JobCache, execution, job_code_version
from claims.framework.registry import all_claims
from claims.framework.runner import claim_jobs


def test_every_committed_quick_record_was_made_by_the_current_code():
    records = sorted(COMMITTED_QUICK_JOBS.glob("*.json"))
    assert records, f"no records in {COMMITTED_QUICK_JOBS}"
    versions: dict[str, str] = {}  # one hash of the sources per job function, not per record
    stale = []
    for path in records:
        record = json.loads(path.read_text())
        fn = record["job"]["fn"]
        if record["code"] != versions.setdefault(fn, job_code_version(fn)):
            stale.append(path.name)
    assert not stale, f"{len(stale)} of {len(records)} records made by other code: {stale[:3]}"


def test_the_committed_quick_cache_covers_every_planned_training():
    cache = JobCache(COMMITTED_QUICK_JOBS)
    with execution(Execution(cache=cache, train=False, progress=None)):
        planned = claim_jobs(all_claims(), "quick", controls=True)
    missing = [job.label for job in planned if not cache.path(job).exists()]
    assert planned and not missing, f"{len(missing)} of {len(planned)} missing: {missing[:3]}"
