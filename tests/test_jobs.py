"""claims.framework.jobs: job keys, the on-disk cache, resume after an interruption, and the
executors."""

from __future__ import annotations

import io
import json
import multiprocessing
import os

import pytest

from claims.framework.jobs import (
    Job,
    JobCache,
    ProgressPrinter,
    code_version,
    execute,
    job_key,
    made_by_current_code,
    replay,
    resolve,
    run_jobs,
)

pytestmark = pytest.mark.quick
NOT_CALLABLE = 42


# Job functions must be importable by name from worker processes: they live in this module.
def square(x: int, seed: int = 0) -> dict:
    return {"value": x * x, "seed": seed, "pid": os.getpid()}


def timed_cube(x: int) -> dict:
    return {"value": x**3, "wall_s": float(x)}  # wall_s: a timing field, ignored by replay


def fail_on_three(x: int) -> dict:
    if x == 3:
        raise RuntimeError("job three fails")
    return {"value": x}


def not_a_dict(x: int) -> list:
    return [x]


def jobs_of(fn: str, xs) -> list[Job]:
    return [Job("toy.claim", "task", "algo", seed=x, fn=f"tests.test_jobs:{fn}",
                kwargs={"x": x}) for x in xs]


def test_job_key_depends_on_every_field_and_the_code_version():
    job = Job("c", "t", "a", 0, "m:f", {"x": 1})
    key = job_key(job, "v1")
    assert key == job_key(Job("c", "t", "a", 0, "m:f", {"x": 1}), "v1")  # deterministic
    others = [Job("c2", "t", "a", 0, "m:f", {"x": 1}), Job("c", "t2", "a", 0, "m:f", {"x": 1}),
              Job("c", "t", "a2", 0, "m:f", {"x": 1}), Job("c", "t", "a", 1, "m:f", {"x": 1}),
              Job("c", "t", "a", 0, "m:g", {"x": 1}), Job("c", "t", "a", 0, "m:f", {"x": 2})]
    assert len({key, *(job_key(o, "v1") for o in others), job_key(job, "v2")}) == 8


def test_code_version_hashes_source_contents(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    first = code_version(["pkg"], tmp_path)
    assert first == code_version(["pkg"], tmp_path) and len(first) == 16
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    assert code_version(["pkg"], tmp_path) != first
    assert len(code_version()) == 16  # the real packages


@pytest.mark.parametrize(("fn", "match"), [
    ("no_colon", "must look like"), ("no.such.module:f", "cannot import"),
    ("tests.test_jobs:missing", "has no 'missing'"),
    ("tests.test_jobs:NOT_CALLABLE", "not callable"),
])
def test_resolve_names_the_problem(fn, match):
    with pytest.raises(ValueError, match=match):
        resolve(fn)


def test_execute_requires_a_dict():
    with pytest.raises(TypeError, match="returned list"):
        execute(jobs_of("not_a_dict", [1])[0])


def test_serial_run_returns_results_in_order_and_caches_them(tmp_path):
    cache = JobCache(tmp_path, version="v")
    jobs = jobs_of("square", [3, 1, 2])
    seen = []
    results = run_jobs(jobs, cache, progress=lambda d, n, job, wall: seen.append((d, wall)))
    assert [r["value"] for r in results] == [9, 1, 4]
    assert len(list(tmp_path.glob("*.json"))) == 3 and [d for d, _ in seen] == [1, 2, 3]
    record = json.loads(cache.path(jobs[0]).read_text())
    assert record["job"] == jobs[0].spec() and record["code"] == "v" and record["wall_s"] >= 0
    # a second run takes everything from the cache (progress says so with wall None)
    seen.clear()
    assert run_jobs(jobs, cache, progress=lambda d, n, job, wall: seen.append(wall)) == results
    assert seen == [None, None, None]


def test_a_new_code_version_misses_the_cache(tmp_path):
    jobs = jobs_of("square", [2])
    run_jobs(jobs, JobCache(tmp_path, version="v1"), progress=None)
    assert JobCache(tmp_path, version="v1").get(jobs[0]) is not None
    assert JobCache(tmp_path, version="v2").get(jobs[0]) is None


@pytest.mark.parametrize(("content", "reason"), [
    ('{"job": ', "not valid JSON (Expecting value at line 1, column 9)"),  # half a file
    ("[1, 2]", "not a job record"),
    ('{"job": {}, "code": "v", "wall_s": 1.0, "result": {"value": 1}}', "holds another job"),
    ('{"job": {}, "code": "v"}', "not a job record (needs job, code, wall_s, result)"),
    (b"\xff\xfe\x00", "unreadable"),
])
def test_a_corrupt_cache_file_is_moved_aside_with_its_reason_and_retrained(tmp_path, capsys,
                                                                          content, reason):
    cache = JobCache(tmp_path, version="v")
    job = jobs_of("square", [5])[0]
    path = cache.path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert cache.get(job) is None
    (moved,) = (tmp_path / "corrupt").glob("*.json")
    assert moved.read_bytes() == (content if isinstance(content, bytes) else content.encode())
    assert reason in moved.with_suffix(".reason.txt").read_text()
    assert cache.quarantined[0]["reason"].startswith(reason.split(" (")[0])
    err = capsys.readouterr().err
    assert f"job cache: {path} is corrupt" in err and reason in err and len(err.splitlines()) == 1
    assert run_jobs([job], cache, progress=None)[0]["value"] == 25
    assert cache.get(job)["value"] == 25 and not capsys.readouterr().err


def test_a_record_holds_its_provenance_outside_the_key(tmp_path):
    cache = JobCache(tmp_path, version="v")
    job = jobs_of("square", [2])[0]
    run_jobs([job], cache, progress=None)
    record = cache.record(job)
    assert set(record["provenance"]) == {"commit", "dirty", "host", "cpu_model", "finished_utc"}
    assert record["provenance"]["host"] and record["provenance"]["finished_utc"].endswith("Z")
    assert cache.path(job).name == f"{job_key(job, 'v')}.json"  # the key is unchanged
    assert cache.written == {job_key(job, "v")}
    assert JobCache(tmp_path, version="v").written == set()  # a new run read it, trained nothing


def test_a_failing_job_keeps_the_finished_ones_and_a_rerun_resumes(tmp_path):
    cache = JobCache(tmp_path, version="v")
    jobs = jobs_of("fail_on_three", [1, 2, 3, 4])
    with pytest.raises(RuntimeError, match="job three fails"):
        run_jobs(jobs, cache, progress=None)
    assert [cache.get(j) is not None for j in jobs] == [True, True, False, False]
    ran = []
    fixed = jobs[:2] + jobs_of("square", [3, 4])
    run_jobs(fixed, cache, progress=lambda d, n, job, wall: ran.append(wall is not None))
    assert ran == [False, False, True, True]  # only the unfinished jobs ran


def test_process_pool_gives_the_serial_results(tmp_path):
    jobs = jobs_of("square", range(6))
    serial = run_jobs(jobs, JobCache(tmp_path / "s", version="v"), progress=None)
    pooled = run_jobs(jobs, JobCache(tmp_path / "p", version="v"), executor="process",
                      max_workers=2, progress=None)
    strip = [{k: v for k, v in r.items() if k != "pid"} for r in serial]
    assert [{k: v for k, v in r.items() if k != "pid"} for r in pooled] == strip
    assert {r["pid"] for r in pooled} != {os.getpid()}  # really ran elsewhere


def test_process_pool_failure_is_raised_and_finished_jobs_are_cached(tmp_path):
    cache = JobCache(tmp_path, version="v")
    jobs = jobs_of("fail_on_three", [1, 2, 3])
    with pytest.raises(RuntimeError, match="job three fails"):
        run_jobs(jobs, cache, executor="process", max_workers=2, progress=None)
    assert cache.get(jobs[2]) is None


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"executor": "threads"}, "executor must be one of"), ({"max_workers": 0}, "max_workers"),
])
def test_bad_runner_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_jobs([], **kwargs)


def test_progress_lines_count_and_estimate_time_left(tmp_path, capsys):
    jobs = [Job("c", "t", "a", seed, "tests.test_jobs:square", {"x": seed}) for seed in range(3)]
    cache = JobCache(tmp_path, version="v")
    run_jobs(jobs[:1], cache)
    capsys.readouterr()
    run_jobs(jobs, cache)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "3 trainings: 1 read from the cache, 2 to train"  # one line, not one each
    assert lines[1].startswith("[1/2] c t a seed 1 (") and "left)" in lines[1]
    assert lines[2].startswith("[2/2] c t a seed 2 (") and len(lines) == 3


def test_one_progress_counter_across_the_calls_of_a_run(tmp_path):
    """A run's printer counts every job it trains in one counter; calls that only read the
    cache after the first print nothing (the issue: cached lines repeated with restarting
    counters [1/5], [1/8], [1/5])."""
    stream = io.StringIO()
    printer = ProgressPrinter(stream)
    cache = JobCache(tmp_path, version="v")
    jobs = jobs_of("square", range(4))
    run_jobs(jobs[:2], cache, progress=printer)
    run_jobs(jobs[:2], cache, progress=printer)  # all cached: silent
    run_jobs(jobs, cache, progress=printer)
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["2", "[1/2]", "[2/2]", "4", "[3/4]",
                                                         "[4/4]"]
    assert lines[0] == "2 trainings: 0 read from the cache, 2 to train"
    assert lines[3] == "4 trainings: 2 read from the cache, 2 to train"


def test_job_code_version_covers_trpo_ref_and_the_job_module_only():
    from claims.framework.jobs import SOURCE_PACKAGES, job_code_version

    version = job_code_version("claims.catalogue.training_jobs:train_job")
    assert version == code_version((*SOURCE_PACKAGES, "claims/catalogue/training_jobs.py",
                                    "claims/faults/__init__.py"))  # training_jobs.JOB_SOURCES
    assert version != job_code_version("tests.test_jobs:square")


def test_replay_reproduces_a_cached_job_and_names_a_tampered_field(tmp_path):
    job = jobs_of("timed_cube", [3])[0]
    cache = JobCache(tmp_path)  # the real code version, as scripts/replay_jobs.py checks it
    run_jobs([job], cache, progress=None)
    path = cache.path(job)
    assert made_by_current_code(path)
    outcome = replay(path)
    assert outcome.identical and outcome.label == job.label and outcome.wall_s >= 0
    record = json.loads(path.read_text())
    record["result"]["wall_s"] = 1e9  # a timing: never compared
    record["result"]["value"] = 28
    path.write_text(json.dumps(record))
    assert replay(path).differing == ("value",)
    record["code"] = "other"
    path.write_text(json.dumps(record))
    assert not made_by_current_code(path)


def test_replay_script_names_a_file_that_is_not_a_record_and_exits_2(tmp_path, capsys,
                                                                     load_script):
    (tmp_path / "broken.json").write_text('{"job": ')
    (tmp_path / "other.json").write_text('{"a": 1}')
    assert load_script("replay_jobs").main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"replay_jobs: {tmp_path / 'broken.json'}: not valid JSON")
    assert err[1] == (f"replay_jobs: {tmp_path / 'other.json'}: not a job-cache record "
                      "(needs job, code, wall_s, result)")
    assert err[2] == "2 records, 0 differing, 2 unreadable"


def test_an_interrupt_terminates_the_pool_workers(tmp_path):
    """Ctrl-C while jobs run on the pool: the workers are stopped, not left training."""
    jobs = jobs_of("square", range(4))

    def interrupt(done, total, job, wall_s):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs, JobCache(tmp_path, version="v"), executor="process", max_workers=2,
                 progress=interrupt)
    assert multiprocessing.active_children() == []


def test_a_job_names_its_method_by_its_label_unless_its_function_registered_a_parser(
        monkeypatch):
    from claims.framework import jobs as jobs_module

    monkeypatch.setattr(jobs_module, "_METHODS", {})
    job = Job("c", "task", "sgd@lr=0.1", 0, "tests.test_jobs:square", {"x": 2})
    assert jobs_module.method_of(job) == "sgd@lr=0.1"
    jobs_module.register_methods("tests.test_jobs:square", lambda label: label.split("@")[0])
    assert jobs_module.method_of(job) == "sgd"
