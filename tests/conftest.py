"""Shared pytest configuration: hypothesis profiles for development and CI.

`dev` (default) keeps property tests fast; `ci` is derandomized so a CI run is reproducible.
Select with HYPOTHESIS_PROFILE=ci (set by .ci/run) or HYPOTHESIS_PROFILE=thorough for a long run.
"""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from claims.jobs import JobCache

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=50, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


COMMITTED_QUICK_JOBS = Path(__file__).resolve().parents[1] / "reports" / "quick" / "jobs"


@pytest.fixture(scope="session")
def quick_job_cache(tmp_path_factory):
    """One job cache for the whole test session, seeded with a copy of the committed quick-tier
    report's trainings (reports/quick/jobs): a record made by the current code is read, not
    trained again (minutes of CPU); one made by other code never matches a key, so that training
    runs once, whichever test needs it first. tests/test_committed_quick_cache.py says when the
    committed records are stale."""
    root = tmp_path_factory.mktemp("quick-jobs")
    for record in COMMITTED_QUICK_JOBS.glob("*.json"):
        shutil.copy2(record, root / record.name)
    return JobCache(root)


@pytest.fixture
def load_script():
    """Import ``scripts/<name>.py`` as a module (``scripts/`` is not a package)."""
    scripts = Path(__file__).resolve().parents[1] / "scripts"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, scripts / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
