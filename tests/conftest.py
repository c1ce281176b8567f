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

from claims.framework.jobs import JobCache

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


# --- one line per finished test file when pytest-xdist runs the tests ----------------------------
# xdist's terminal shows only dots; with --dist loadfile each file runs whole on one worker, so the
# controller can say when a file is done, how its tests went and how long it took (issue 18: a
# test run must show progress per file).

_FILE_ITEMS: dict[str, int] = {}
_FILE_DONE: dict[str, dict[str, float]] = {}


def pytest_xdist_node_collection_finished(node, ids):
    if not _FILE_ITEMS:  # every worker collects the same items
        for nodeid in ids:
            path = nodeid.split("::", 1)[0]
            _FILE_ITEMS[path] = _FILE_ITEMS.get(path, 0) + 1


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    if not _FILE_ITEMS or path not in _FILE_ITEMS:
        return  # not the xdist controller (or a test it did not collect)
    done = _FILE_DONE.setdefault(path, {"tests": 0, "failed": 0, "seconds": 0.0})
    done["seconds"] += report.duration
    done["failed"] += report.failed
    if report.when != "teardown":
        return
    done["tests"] += 1
    if done["tests"] == _FILE_ITEMS[path]:
        reporter = _terminal_reporter()
        if reporter is not None:
            failed = f", {int(done['failed'])} FAILED" if done["failed"] else ""
            worker = getattr(report, "node", None)
            where = f" [{worker.gateway.id}]" if worker is not None else ""
            reporter.write("\n")  # after the dots xdist wrote on the current line
            reporter.write_line(f"{path}: {done['tests']} tests{failed} in "
                                f"{done['seconds']:.1f} s{where}")


_CONFIG: list[pytest.Config] = []


def pytest_configure(config):
    _CONFIG.append(config)


def _terminal_reporter():
    return _CONFIG[-1].pluginmanager.get_plugin("terminalreporter") if _CONFIG else None
