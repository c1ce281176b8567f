"""Jobs: the unit of work of the empirical claims, run on a pool and cached on disk.

An empirical claim is many independent (claim, task, algorithm, seed) trainings. Each is a
:class:`Job`: a function named by an import path (``"package.module:function"``, so a job pickles
to a process pool or a Ray worker as a few strings) and the JSON-ready keyword arguments it is
called with. The function returns a JSON-ready dict (per-seed evidence: learning curve, KL
statistics, ...).

:class:`JobCache` stores each finished job's result as one small JSON file, written atomically,
under a key that hashes the job and its *code version* (:func:`job_code_version`: a hash of the
source of ``trpo_ref``'s deep-RL half (:data:`SOURCE_PACKAGES`), of the job function's module
and of any paths that module lists in ``JOB_SOURCES``, or in ``JOB_SOURCES_WHEN`` for an
argument the job sets; an edit to any of them invalidates the
cached results, committed or not, while
an edit to a claim's judgement or to the report does not, so a long run survives those).
:func:`run_jobs` skips jobs already in the cache, runs the rest serially or
on a process pool or a Ray cluster (the optional ``distributed`` extra), and stores each
result the moment it arrives: killing a run loses at most the jobs in flight, and running it
again resumes. A job's result does not depend on the executor that ran it (jobs are seeded).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from claims.framework.serialize import (
    InputError,
    load_json,
    to_jsonable,
    write_json_atomic,
    write_text_atomic,
)

EXECUTORS = ("serial", "process", "ray")
# what every job's result may depend on: trpo_ref's deep-RL half (trainings never import
# trpo_ref.tabular; tests/test_structure.py checks that every trpo_ref module a job loads is here)
SOURCE_PACKAGES = ("trpo_ref/__init__.py", "trpo_ref/atomic.py", "trpo_ref/deep")
_REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Job:
    """One unit of work. ``fn``: "module:function"; ``kwargs``: JSON-ready arguments (they and
    the four labels determine the result); the labels also name the job in progress lines."""

    claim_id: str
    task: str
    algo: str
    seed: int
    fn: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.claim_id} {self.task} {self.algo} seed {self.seed}"

    def spec(self) -> dict[str, Any]:
        """The job as plain JSON (what its cache key hashes)."""
        return to_jsonable({"claim_id": self.claim_id, "task": self.task, "algo": self.algo,
                            "seed": self.seed, "fn": self.fn, "kwargs": dict(self.kwargs)})


# job function -> how its jobs' labels (``Job.algo``) name their training method: a family of
# jobs whose labels carry settings ("npg@0.333333") registers its parser here (the catalogue's
# empirical protocol does); any other label is a method of its own
_METHODS: dict[str, Callable[[str], str]] = {}


def register_methods(fn: str, method: Callable[[str], str]) -> None:
    """Name the training method of each job of ``fn`` (``"module:function"``) by
    ``method(job.algo)`` (the run's trainings table groups by it)."""
    _METHODS[fn] = method


def method_of(job: Job) -> str:
    """The training method ``job`` runs (see :func:`register_methods`); its label by default."""
    return _METHODS.get(job.fn, str)(job.algo)


def resolve(fn: str) -> Callable[..., Any]:
    """Import "package.module:function"; ValueError naming the problem if that fails."""
    module_name, sep, attr = fn.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"job function must look like 'package.module:function', got {fn!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"job function {fn!r}: cannot import {module_name!r}: {error}") from error
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"job function {fn!r}: {module_name!r} has no {attr!r}") from None
    if not callable(target):
        raise ValueError(f"job function {fn!r} is not callable")
    return target


def execute(job: Job) -> dict[str, Any]:
    """Run one job in this process; its result as plain JSON (what the cache stores)."""
    result = resolve(job.fn)(**job.kwargs)
    if not isinstance(result, Mapping):
        raise TypeError(f"job {job.label}: {job.fn} returned {type(result).__name__}, not a dict")
    return to_jsonable(dict(result))


def code_version(packages: Sequence[str] = SOURCE_PACKAGES, root: Path = _REPO) -> str:
    """sha256 (16 hex digits) over the path and bytes of every .py file in ``packages``
    (each a directory, searched recursively, or a single file; relative to ``root``)."""
    digest = hashlib.sha256()
    for package in packages:
        target = root / package
        paths = [target] if target.is_file() else sorted(target.rglob("*.py"))
        for path in paths:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def job_sources(fn: str, kwargs: Mapping[str, Any] | None = None,
                root: Path = _REPO) -> tuple[str, ...]:
    """The repo paths a job calling ``fn`` with ``kwargs`` may depend on: :data:`SOURCE_PACKAGES`,
    the module defining ``fn``, the paths in that module's ``JOB_SOURCES`` (if any), and, for
    each argument named in its ``JOB_SOURCES_WHEN`` (``{argument: paths}``) that is set (not
    None) in ``kwargs``, those paths. So the deliberately broken variants' code (a negative
    control's fault) keys only the jobs that run one: adding a fault re-keys no clean training."""
    module = importlib.import_module(fn.partition(":")[0])
    module_file = Path(module.__file__ or "").resolve()
    own = [module_file.relative_to(root).as_posix()] if module_file.is_relative_to(root) else []
    when: Mapping[str, Sequence[str]] = getattr(module, "JOB_SOURCES_WHEN", {})
    conditional = [path for argument, paths in sorted(when.items())
                   if (kwargs or {}).get(argument) is not None for path in paths]
    return (*SOURCE_PACKAGES, *own, *getattr(module, "JOB_SOURCES", ()), *conditional)


def job_code_version(fn: str, root: Path = _REPO,
                     kwargs: Mapping[str, Any] | None = None) -> str:
    """The code version of a job calling ``fn`` with ``kwargs``: :func:`code_version` of its
    :func:`job_sources`."""
    return code_version(job_sources(fn, kwargs, root), root)


def job_key(job: Job, version: str) -> str:
    """The cache key: sha256 of the job's spec and the code version (24 hex digits)."""
    text = json.dumps({"job": job.spec(), "code": version}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


RECORD_FIELDS = ("job", "code", "wall_s", "result")  # what every cache record must hold
CORRUPT_DIR = "corrupt"  # where JobCache moves records it cannot use, each with a .reason.txt


def provenance() -> dict[str, Any]:
    """Where and when a record was made (stored with it, outside its key): the git commit and
    dirty flag of this checkout, the host name, CPU model and UTC time."""
    from claims.framework.fingerprint import cpu_model, git_state  # imported late: it runs git

    git = git_state()
    return {"commit": git["commit"], "dirty": git["dirty"], "host": platform.node() or None,
            "cpu_model": cpu_model(),
            "finished_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


class JobCache:
    """Finished jobs under ``root``: one ``<key>.json`` each, holding the job spec, the code
    version, the wall time, the result and its :func:`provenance` (where and when it was
    trained; not part of the key). Files appear atomically (never half written).
    ``version`` fixes the code version of every job; by default each job gets
    :func:`job_code_version` of its function.

    A file that cannot be a record of its key (not JSON, fields missing, written for another
    job or code version) is *corrupt*: it is moved to ``root/corrupt/`` beside a
    ``.reason.txt`` saying what was wrong, a one-line warning goes to stderr, and the job counts
    as missing (so it is trained again). :attr:`written` holds the keys this object stored, so
    a run can tell what it trained from what it read."""

    def __init__(self, root: str | Path, version: str | None = None) -> None:
        self.root = Path(root)
        self._version = version
        self._versions: dict[tuple[str, ...], str] = {}  # by job_sources()
        self._provenance: dict[str, Any] | None = None
        self.written: set[str] = set()  # keys put by this object (trained in this run)
        self.quarantined: list[dict[str, str]] = []  # {file, moved_to, reason} per corrupt file

    def version(self, job: Job) -> str:
        if self._version is not None:
            return self._version
        sources = job_sources(job.fn, job.kwargs)
        if sources not in self._versions:
            self._versions[sources] = code_version(sources)
        return self._versions[sources]

    def key(self, job: Job) -> str:
        return job_key(job, self.version(job))

    def path(self, job: Job) -> Path:
        return self.root / f"{self.key(job)}.json"

    def record(self, job: Job) -> dict[str, Any] | None:
        """The whole cached record (job, code, wall_s, result, provenance), or None when there
        is none. A corrupt file is moved aside (see the class doc) and counts as missing."""
        path = self.path(job)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            return self._quarantine(path, f"unreadable: {error}")
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            return self._quarantine(path, f"not valid JSON ({error.msg} at line {error.lineno}, "
                                          f"column {error.colno})")
        if not isinstance(record, dict) or any(f not in record for f in RECORD_FIELDS):
            return self._quarantine(path, f"not a job record (needs {', '.join(RECORD_FIELDS)})")
        if record["job"] != job.spec() or record["code"] != self.version(job):
            return self._quarantine(path, "holds another job or code version than its name says")
        if not isinstance(record["result"], dict):
            return self._quarantine(path, "its result is not a JSON object")
        return record

    def _quarantine(self, path: Path, reason: str) -> None:
        """Move a corrupt ``path`` into root/corrupt/ with a .reason.txt, and say so."""
        target_dir = self.root / CORRUPT_DIR
        target_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = target_dir / f"{path.stem}.{stamp}.json"
        os.replace(path, target)
        write_text_atomic(target.with_suffix(".reason.txt"), f"{path.name}: {reason}\n")
        self.quarantined.append({"file": str(path), "moved_to": str(target), "reason": reason})
        print(f"job cache: {path} is corrupt ({reason}); moved to {target}, the job will be "
              "trained again", file=sys.stderr, flush=True)
        return None

    def get(self, job: Job) -> dict[str, Any] | None:
        """The cached result, or None (see :meth:`record`)."""
        record = self.record(job)
        return None if record is None else record["result"]

    def put(self, job: Job, result: Mapping[str, Any], wall_s: float) -> None:
        if self._provenance is None:  # one git call per cache, not per job
            self._provenance = provenance()
        made = self._provenance | {"finished_utc": datetime.now(UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")}
        write_json_atomic(self.path(job), {"job": job.spec(), "code": self.version(job),
                                           "wall_s": wall_s, "result": dict(result),
                                           "provenance": made})
        self.written.add(self.key(job))


TIMING_FIELDS = frozenset({"wall_s"})  # result fields that measure time, not behaviour


@dataclass(frozen=True)
class Replay:
    """A cached job run again in this process, and whether it gave the cached result."""

    label: str
    differing: tuple[str, ...]  # result fields (timings aside) that are not bit-identical
    wall_s: float  # this run's wall time
    cached_wall_s: float  # the wall time stored with the record

    @property
    def identical(self) -> bool:
        return not self.differing


def made_by_current_code(path: str | Path) -> bool:
    """Whether the cache file ``path`` was written by the code now checked out (its job's
    :func:`job_code_version`); a replay of any other record may differ without a bug."""
    record = _load_record(path)
    return bool(record["code"] == job_code_version(record["job"]["fn"],
                                                   kwargs=record["job"]["kwargs"]))


def _load_record(path: str | Path) -> dict[str, Any]:
    """A cache record read from ``path``; InputError naming the file when it is not one."""
    record = load_json(path, "a job-cache record")
    if not isinstance(record, dict) or any(f not in record for f in RECORD_FIELDS) or not (
            isinstance(record["job"], dict) and "fn" in record["job"]):
        raise InputError(f"{path}: not a job-cache record (needs {', '.join(RECORD_FIELDS)})")
    return record


def replay(path: str | Path) -> Replay:
    """Run the job stored in the cache file ``path`` again and compare results field by field,
    as JSON (what the cache stores), skipping :data:`TIMING_FIELDS`. Jobs are seeded, so on the
    same machine and code (see :func:`made_by_current_code`) every field must be identical: the
    determinism audit of a cache."""
    record = _load_record(path)
    job = Job(**record["job"])
    result, wall_s = _timed(job)
    fresh = json.loads(json.dumps(result))
    cached = record["result"]
    fields = sorted((set(fresh) | set(cached)) - TIMING_FIELDS)
    return Replay(job.label, tuple(f for f in fields if fresh.get(f) != cached.get(f)), wall_s,
                  float(record["wall_s"]))


def _timed(job: Job) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    result = execute(job)
    return result, time.perf_counter() - start


class ProgressPrinter:
    """Default progress, on stderr: one line per job trained, ``[k/N] label (wall time; elapsed,
    about T left)``, with one counter for everything this printer sees (N grows when a later
    :func:`run_jobs` call brings jobs to train), and the jobs read from the cache summarized in
    one line (``26 trainings: 23 read from the cache, 3 to train``) per call that trains (and
    on the first call), never one line each. The time left
    is the remaining jobs at the rate jobs have been finishing since the first one started."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream  # None: sys.stderr at the time of printing (pytest swaps it)
        self.calls, self.trained, self.to_train = 0, 0, 0
        self.started: float | None = None

    def _say(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)

    def begin(self, total: int, cached: int) -> None:
        """Called by :func:`run_jobs` once per call: ``total`` jobs, ``cached`` of them read."""
        pending = total - cached
        if total and (pending or self.calls == 0):
            self._say(f"{total} trainings: {cached} read from the cache, {pending} to train")
        self.calls += 1
        self.to_train += pending
        if pending and self.started is None:
            self.started = time.perf_counter()

    def __call__(self, done: int, total: int, job: Job, wall_s: float | None) -> None:
        if wall_s is None:  # read from the cache: summarized by begin()
            return
        self.trained += 1
        elapsed = time.perf_counter() - (self.started or time.perf_counter())
        left = (self.to_train - self.trained) * elapsed / self.trained
        self._say(f"[{self.trained}/{self.to_train}] {job.label} ({wall_s:.1f} s; elapsed "
                  f"{_clock(elapsed)}, about {_clock(left)} left)")


def _clock(seconds: float) -> str:
    """``1h05m`` or ``4m07s``."""
    minutes = int(seconds // 60)
    if minutes >= 60:
        return f"{minutes // 60}h{minutes % 60:02d}m"
    return f"{minutes}m{int(seconds) % 60:02d}s"


# the default of run_jobs (and Execution): a fresh ProgressPrinter per call; a run passes its own
# printer, so that one counter covers all of its trainings
print_progress = ProgressPrinter()


def run_jobs(
    jobs: Iterable[Job],
    cache: JobCache | None = None,
    *,
    executor: str = "serial",
    max_workers: int = 1,
    address: str | None = None,
    progress: Callable[[int, int, Job, float | None], None] | None = print_progress,
) -> list[dict[str, Any]]:
    """Results of ``jobs``, in order. Cached jobs are not run again; each new result is cached
    as soon as it arrives. ``executor``: "serial" (in this process), "process" (a pool of
    ``max_workers`` processes) or "ray" (tasks on the Ray cluster at ``address``, e.g.
    "10.0.0.5:6379" or "auto"; None starts a local instance with ``max_workers`` CPUs). A job
    that raises stops the run with its exception once the jobs in flight have finished (and been
    cached)."""
    jobs = list(jobs)
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    if progress is print_progress:  # the library default: a fresh counter for this call
        progress = ProgressPrinter()
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    pending, done = [], 0
    for i, job in enumerate(jobs):
        cached = cache.get(job) if cache is not None else None
        if cached is None:
            pending.append(i)
        else:
            results[i], done = cached, done + 1
    begin = getattr(progress, "begin", None)
    if begin is not None:  # a ProgressPrinter: one summary line for the cached jobs
        begin(len(jobs), done)
    elif progress is not None:  # a plain callable: each cached job, with wall_s None
        cached_jobs = [job for i, job in enumerate(jobs) if results[i] is not None]
        for k, job in enumerate(cached_jobs, start=1):
            progress(k, len(jobs), job, None)

    def finish(i: int, result: dict[str, Any], wall_s: float) -> None:
        nonlocal done
        if cache is not None:
            cache.put(jobs[i], result, wall_s)
        results[i], done = result, done + 1
        if progress is not None:
            progress(done, len(jobs), jobs[i], wall_s)

    if executor == "serial" or not pending:
        for i in pending:
            finish(i, *_timed(jobs[i]))
    elif executor == "ray":
        _run_on_ray(jobs, pending, finish, address, max_workers)
    else:
        pool = ProcessPoolExecutor(max_workers=max_workers, initializer=_ignore_interrupts)
        try:
            running: dict[Future, int] = {pool.submit(_timed, jobs[i]): i for i in pending}
            failure: BaseException | None = None
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    i = running.pop(future)
                    if future.exception() is not None:
                        if failure is None:
                            failure = future.exception()
                            for other in running:  # don't start what has not started
                                other.cancel()
                        continue
                    finish(i, *future.result())
                running = {f: i for f, i in running.items() if not f.cancelled()}
        except BaseException:  # Ctrl-C, SIGTERM: stop the workers now, losing only jobs in flight
            _stop_pool(pool)
            raise
        pool.shutdown()
        if failure is not None:
            raise failure
    return [r for r in results if r is not None]


def _ignore_interrupts() -> None:
    """Pool workers ignore Ctrl-C: the terminal sends SIGINT to the whole process group, and
    the parent alone decides what stops (it terminates the workers, see :func:`_stop_pool`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the workers (jobs in flight are lost; every
    finished one is already cached)."""
    # private attributes: no API in 3.11. The dict itself, not a copy: the executor's manager
    # thread adds any worker it starts while we stop to this same dict
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
    manager = getattr(pool, "_executor_manager_thread", None)
    seen = dict(processes)
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in seen.values():  # first, so the manager sees a broken pool and exits
        worker.terminate()
    if manager is not None:
        manager.join(timeout=5)  # after this, it starts no worker
    for worker in (seen | dict(processes)).values():
        worker.terminate()
        worker.join(timeout=5)


def _run_on_ray(
    jobs: list[Job],
    pending: list[int],
    finish: Callable[[int, dict[str, Any], float], None],
    address: str | None,
    max_workers: int,
) -> None:
    """Run ``jobs[i]`` for i in ``pending`` as Ray tasks (one CPU each), finishing each as it
    arrives. Connects to ``address`` or starts (and afterwards stops) a local instance. Workers
    get this process's sys.path, so job functions import there as they do here."""
    try:
        import ray
    except ImportError as error:
        raise ValueError("executor 'ray' needs the ray package: "
                         "pip install -e '.[distributed]'") from error
    started_here = not ray.is_initialized()
    if started_here:
        pythonpath = os.pathsep.join(p for p in sys.path if p)
        ray.init(address=address, num_cpus=None if address else max_workers,
                 include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_timed)
        running = {remote.remote(jobs[i]): i for i in pending}
        failure: BaseException | None = None
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                i = running.pop(ref)
                try:
                    result, wall_s = ray.get(ref)
                except ray.exceptions.RayTaskError as error:
                    if failure is None:  # the job's own exception, as the other executors raise
                        failure = error.as_instanceof_cause()
                    continue
                finish(i, result, wall_s)
        if failure is not None:
            raise failure
    finally:
        if started_here:
            ray.shutdown()


# --- the execution context: how claims' jobs run -------------------------------------------------

@dataclass(frozen=True)
class Execution:
    """How :func:`run_in_context` runs jobs: the cache (None: no cache) and :func:`run_jobs`'s
    executor settings. The runner sets it from ``trpo-claims run --jobs --executor --address``."""

    cache: JobCache | None = None
    executor: str = "serial"
    max_workers: int = 1
    address: str | None = None
    progress: Callable[[int, int, Job, float | None], None] | None = print_progress
    train: bool = True  # False: read the cache only; missing jobs raise JobsMissing


class JobsMissing(RuntimeError):
    """A cache-only execution (``train=False``) was asked for jobs that have not finished."""

    def __init__(self, missing: Sequence[Job], total: int) -> None:
        self.missing, self.total = list(missing), total
        shown = "; ".join(job.label for job in self.missing[:3])
        more = f" and {len(self.missing) - 3} more" if len(self.missing) > 3 else ""
        super().__init__(f"{len(self.missing)} of {total} trainings have not finished "
                         f"(cache-only run): {shown}{more}")


_EXECUTION: list[Execution] = [Execution()]


@contextlib.contextmanager
def execution(settings: Execution) -> Iterator[Execution]:
    """Run the body's :func:`run_in_context` calls with ``settings`` (restored afterwards)."""
    _EXECUTION.append(settings)
    try:
        yield settings
    finally:
        _EXECUTION.pop()


def current_execution() -> Execution:
    return _EXECUTION[-1]


def run_in_context(jobs: Iterable[Job]) -> list[dict[str, Any]]:
    """:func:`run_jobs` with the current :class:`Execution`'s cache and executor; with
    ``train=False``, the cached results or :class:`JobsMissing` naming what is not there."""
    e = current_execution()
    jobs = list(jobs)
    if not e.train:
        missing = [job for job in jobs if e.cache is None or e.cache.get(job) is None]
        if missing:
            raise JobsMissing(missing, len(jobs))
    return run_jobs(jobs, e.cache, executor=e.executor, max_workers=e.max_workers,
                    address=e.address, progress=e.progress)
