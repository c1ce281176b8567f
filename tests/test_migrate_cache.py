"""scripts/migrate_cache.py: a stale cache is carried over to the current code only after its
sampled replays are bit-identical; a replay that differs stops the migration."""

from __future__ import annotations

import dataclasses
import json

import pytest

from claims.framework.jobs import Job, JobCache, job_code_version, job_key


def cube(x: int) -> dict:
    """A job function (importable by name, as the cache's replay needs)."""
    return {"value": x**3, "wall_s": 0.0}


def stale_cache(root, xs, code="old-code-version"):
    """A cache of ``cube`` jobs whose records claim an older code version."""
    cache = JobCache(root, version=code)
    jobs = [Job("toy.claim", "task", "algo", seed=x, fn="tests.test_migrate_cache:cube",
                kwargs={"x": x}) for x in xs]
    for job in jobs:
        cache.put(job, cube(**job.kwargs), wall_s=0.5)
    return jobs


def test_dry_run_audits_and_writes_nothing(tmp_path, load_script, capsys):
    stale_cache(tmp_path, [1, 2, 3])
    before = sorted(p.name for p in tmp_path.glob("*.json"))
    assert load_script("migrate_cache").main([str(tmp_path), "--sample", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count(": identical") == 2 and "would migrate (dry run" in out
    assert sorted(p.name for p in tmp_path.glob("*.json")) == before


def test_identical_replays_rekey_every_stale_record_and_keep_its_history(tmp_path, load_script):
    jobs = stale_cache(tmp_path, [1, 2, 3])
    assert load_script("migrate_cache").main([str(tmp_path), "--sample", "1", "--write"]) == 0
    current = job_code_version("tests.test_migrate_cache:cube")
    cache = JobCache(tmp_path)  # the current code version: every job is now found
    for job in jobs:
        record = cache.record(job)
        assert record is not None and record["result"]["value"] == job.kwargs["x"] ** 3
        assert record["migrated"][0]["from_code"] == "old-code-version"
        assert len(record["migrated"][0]["replayed"]) == 1
        assert cache.path(job).name == f"{job_key(job, current)}.json"
    assert len(list(tmp_path.glob("*.json"))) == len(jobs)  # the old files are gone


def test_a_differing_replay_stops_the_migration(tmp_path, load_script, capsys):
    jobs = stale_cache(tmp_path, [2])
    path = JobCache(tmp_path, version="old-code-version").path(jobs[0])
    record = json.loads(path.read_text())
    record["result"]["value"] += 1  # what the old code computed differs from the current code
    path.write_text(json.dumps(record))
    assert load_script("migrate_cache").main([str(tmp_path), "--write"]) == 1
    assert "DIFFERS in value" in capsys.readouterr().out
    assert json.loads(path.read_text())["code"] == "old-code-version"  # nothing migrated


def test_no_affordable_record_to_replay_is_a_usage_error(tmp_path, load_script):
    stale_cache(tmp_path, [1])  # cached in 0.5 s, above the 0.1 s allowed
    assert load_script("migrate_cache").main([str(tmp_path), "--max-wall", "0.1", "--write"]) == 2


def test_paired_audit_refuses_a_revision_that_did_not_make_the_records(tmp_path, load_script,
                                                                       capsys):
    """--paired-with REV replays by REV's code in a temporary worktree; REV must be the code
    that made the records (its code version equals theirs), else nothing is migrated."""
    jobs = stale_cache(tmp_path, [2])
    path = JobCache(tmp_path, version="old-code-version").path(jobs[0])
    script = load_script("migrate_cache")
    assert script.main([str(tmp_path), "--paired-with", "HEAD", "--write"]) == 1
    assert "choose the revision that made the records" in capsys.readouterr().err
    assert json.loads(path.read_text())["code"] == "old-code-version"  # nothing migrated


def test_paired_audit_compares_results_without_timing(load_script):
    differing = load_script("migrate_cache").differing_fields
    assert differing({"value": 8, "wall_s": 1.0}, {"value": 8, "wall_s": 2.0}) == ()
    assert differing({"value": 8, "x": [1.0]}, {"value": 9, "x": [1.0]}) == ("value",)
    assert differing({"value": float("nan")}, {"value": float("nan")}) == ()  # as JSON


def test_a_moved_job_function_is_rekeyed_under_its_new_name(tmp_path, load_script):
    """--rename-fn OLD=NEW: records of a job function that moved (OLD no longer imports) are
    replayed as jobs of NEW and re-keyed under it, the old name kept in their history."""
    old_fn, new_fn = "tests.gone_module:cube", "tests.test_migrate_cache:cube"
    cache = JobCache(tmp_path, version="old-code-version")
    old_jobs = [Job("toy.claim", "task", "algo", seed=x, fn=old_fn, kwargs={"x": x})
                for x in (1, 2)]
    for job in old_jobs:
        cache.put(job, cube(**job.kwargs), wall_s=0.5)
    script = load_script("migrate_cache")
    assert script.main([str(tmp_path), "--sample", "1", "--write",
                        "--rename-fn", f"{old_fn}={new_fn}"]) == 0
    current = JobCache(tmp_path)
    for job in old_jobs:
        moved = dataclasses.replace(job, fn=new_fn)
        record = current.record(moved)
        assert record is not None and record["job"]["fn"] == new_fn
        assert "from_fn" not in record  # kept in the history only
        assert record["migrated"][-1]["from_fn"] == old_fn
        assert record["migrated"][-1]["from_code"] == "old-code-version"
    assert len(list(tmp_path.glob("*.json"))) == len(old_jobs)


def test_a_rename_whose_new_function_computes_otherwise_migrates_nothing(tmp_path, load_script,
                                                                         capsys):
    cache = JobCache(tmp_path, version="old-code-version")
    job = Job("toy.claim", "task", "algo", seed=2, fn="tests.gone_module:square", kwargs={"x": 2})
    cache.put(job, {"value": 4, "wall_s": 0.0}, wall_s=0.5)  # x**2, not cube's x**3
    before = sorted(p.name for p in tmp_path.glob("*.json"))
    assert load_script("migrate_cache").main([
        str(tmp_path), "--write",
        "--rename-fn", "tests.gone_module:square=tests.test_migrate_cache:cube"]) == 1
    assert "DIFFERS in value" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.glob("*.json")) == before


@pytest.mark.parametrize("pair", ["no_equals_sign", "a=b", "mod:f=", "=mod:f"])
def test_a_malformed_rename_is_a_usage_error(tmp_path, load_script, pair):
    stale_cache(tmp_path, [1])
    assert load_script("migrate_cache").main([str(tmp_path), "--rename-fn", pair]) == 2
