"""The claims package's structure: typed budgets, stable job keys, no import cycles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claims.empirical import protocol
from claims.jobs import job_key

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("tier", ["quick", "standard", "full"])
def test_planned_empirical_job_keys_are_unchanged(tier, monkeypatch):
    """The job cache is keyed on each job's spec: the tier's planned trainings must hash to the
    keys recorded before the configuration strings were typed (tests/data/empirical_job_keys.json,
    recorded at main 8a9455b with the NPG sweep's winner patched to 1/3), or every cached
    training would be trained again."""
    monkeypatch.setattr(protocol, "best_npg_step", lambda tier, env: (3.0**-1, {}))
    recorded = json.loads((DATA / "empirical_job_keys.json").read_text())[tier]
    jobs = [job for stage in protocol.stages(tier) for job in stage()]
    assert sorted(job_key(job, "fixture") for job in jobs) == recorded
