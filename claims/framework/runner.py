"""Run claims, judge them, and write results.json, report.md and report.html.

For each claim: no budget at the tier -> SKIPPED; otherwise ``run`` then ``decide`` with the
claim's declared rule, then the same for its negative control (``run(..., control=True)``), whose
verdict must come out REFUTED. Anything a claim raises becomes that claim's ERROR (with the
traceback in the results) and the other claims still run. results.json is written before any
work and after every claim (``"complete": false`` until the end), so an interrupted run keeps what
it measured and nobody mistakes it, or an earlier run in the same directory, for a finished one.
Ctrl-C and SIGTERM stop the run cleanly (``interrupted``); running it again resumes.

results.json (``schema_version`` 1)::

    schema_version  1
    complete        false while running; true once every claim has been tried
    interrupted     null, or "SIGINT" / "SIGTERM": the signal that stopped the run
    tier, seed      the tier's name and the seed passed to every run()
    controls        whether negative controls ran
    command         argv list that reproduces the run (``trpo-claims run ...``)
    planned_claims  the claim ids the run was asked for, in order (a rerun with the same plan
                    resumes an interrupted run)
    started_utc, finished_utc, runtime_s   (runtime_s sums the attempts)
    attempts        one per start of this run: started_utc, finished_utc, outcome ("complete",
                    "interrupted (SIGINT)", "running"), runtime_s
    fingerprint     claims.framework.fingerprint.fingerprint(): versions, CPU, git commit and dirty
    flag, argv implementation  the implementation under test (--impl): spec, name, capabilities,
    load error execution       how trainings ran: cache (directory or null), executor, max_workers,
    address,
                    train (false: --cached-only, nothing was trained)
    trainings       (at the end) the empirical claims' training jobs per (group, task, method):
                    planned, finished, trained_here, from_cache, env_steps, wall_s (one
                    worker's seconds, from the cache), runs: per job algo, seed, source ("this
                    run", "cache" or "missing"), wall_s and provenance (commit, dirty, host,
                    cpu_model, finished_utc; null for records older than provenance)
    corrupt_cache_files  (at the end) {file, moved_to, reason} per job-cache file moved aside
    claims          list, in run order, of
        id, description   claim.describe(): title, statement, source, kind, protocol,
                          negative_control, rule {statistic, comparator, threshold, description,
                          alpha}, budgets
        budget            the claim's Budget at this tier as a dict (null when SKIPPED)
        verdict           Verdict.to_json(): status, statistic, value, comparator, threshold,
                          ci, n, message
        evidence          Evidence.to_json() (config, data, summary, runtime_s), or null
        error             null, or {phase, type, message, traceback}; phase is one of
                          describe / budget / run / decide
        control           null (not run), or {verdict, evidence, error} of the negative control
        runtime_s         {claim, control, figures, total} in seconds (control null if not run)
        figures           paths relative to the run directory
        figure_errors     messages of exceptions raised while drawing (not fatal)

Non-finite floats are written as the strings "nan", "inf", "-inf" (see claims.framework.serialize).
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from claims.framework.core import TIERS, Claim, Evidence, Verdict, budget_json
from claims.framework.fingerprint import fingerprint
from claims.framework.impl import skip_reason, under_test
from claims.framework.jobs import (
    Execution,
    Job,
    JobsMissing,
    current_execution,
    execution,
    method_of,
    run_in_context,
)
from claims.framework.report import (
    REPORT_FILE,
    fmt_seconds,
    verdict_brief,
    write_reports,
)
from claims.framework.serialize import (
    InputError,
    MissingInputError,
    load_json,
    read_json,
    write_json_atomic,
)

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
FIGURES_DIR = "figures"
FAIL_ON_CHOICES: tuple[str, ...] = ("refuted", "inconclusive", "control")


class ClaimContractError(RuntimeError):
    """A claim broke the framework's contract (e.g. run() ignored ``control=True``)."""


@dataclass(frozen=True)
class RunResult:
    results: dict[str, Any]  # the document written to results.json
    out_dir: Path

    @property
    def results_path(self) -> Path:
        return self.out_dir / RESULTS_FILE

    @property
    def report_path(self) -> Path:
        return self.out_dir / REPORT_FILE


@dataclass
class _Side:
    """One judged run of a claim: the real check or its negative control."""

    evidence: Evidence | None
    verdict: Verdict
    error: dict[str, str] | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.to_json(),
            "evidence": None if self.evidence is None else self.evidence.to_json(),
            "error": self.error,
        }


def _error_record(phase: str, exc: BaseException) -> dict[str, str]:
    return {
        "phase": phase,
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


def _error_verdict(error: dict[str, str]) -> Verdict:
    return Verdict.error(f"{error['phase']} raised {error['type']}: {error['message']}")


def _check_evidence(claim: Claim, evidence: Any, tier: str, control: bool) -> None:
    if not isinstance(evidence, Evidence):
        raise ClaimContractError(f"run() returned {type(evidence).__name__}, not Evidence")
    expected = {"claim_id": claim.id, "tier": tier, "control": control}
    got = {key: getattr(evidence, key) for key in expected}
    if got != expected:
        raise ClaimContractError(f"run() returned evidence labelled {got}, expected {expected}")


def _judge(claim: Claim, tier: str, seed: int, control: bool) -> _Side:
    start = time.perf_counter()
    evidence, phase = None, "run"
    try:
        evidence = claim.run(tier, control=control, seed=seed)
        _check_evidence(claim, evidence, tier, control)
        if not evidence.runtime_s:
            evidence.runtime_s = time.perf_counter() - start
        phase = "decide"
        verdict = claim.decide(evidence)
        if not isinstance(verdict, Verdict):
            raise ClaimContractError(f"decide() returned {type(verdict).__name__}, not Verdict")
    except JobsMissing as missing:  # a cache-only run of a long tier that has not finished
        return _Side(None, Verdict.skipped(f"not judged: {missing}"), None,
                     time.perf_counter() - start)
    except Exception as exc:  # a failing claim must not stop the others
        error = _error_record(phase, exc)
        evidence = evidence if isinstance(evidence, Evidence) else None
        return _Side(evidence, _error_verdict(error), error, time.perf_counter() - start)
    return _Side(evidence, verdict, None, time.perf_counter() - start)


def _figures(claim: Claim, evidence: Evidence, out_dir: Path) -> tuple[list[str], list[str]]:
    figures_dir = out_dir / FIGURES_DIR
    figures_dir.mkdir(parents=True, exist_ok=True)
    try:
        paths = claim.figures(evidence, figures_dir)
    except Exception as exc:  # a broken plot must not cost the run its results
        return [], [f"{type(exc).__name__}: {exc}"]
    root = out_dir.resolve()
    # report.md links figures relative to the run directory, so the directory can be moved
    resolved = [Path(p).resolve() for p in paths]
    return [(p.relative_to(root) if p.is_relative_to(root) else p).as_posix() for p in resolved], []


def reproduce_command(
    *,
    tier: str,
    seed: int,
    out_dir: Path | str,
    claim_ids: Sequence[str] | None = None,
    controls: bool = True,
    impl: str | None = None,
    cache: Path | str | None = None,
) -> list[str]:
    """The ``trpo-claims run`` argv that repeats a run (all claims when ``claim_ids`` is None;
    ``impl``: the implementation under test's spec, None for the reference; ``cache``: the job
    cache named with ``--cache``, None for the default OUT/jobs)."""
    command = ["trpo-claims", "run", "--tier", tier, "--seed", str(seed), "--out", str(out_dir)]
    if cache is not None:
        command += ["--cache", str(cache)]
    if impl is not None:
        command += ["--impl", impl]
    if claim_ids:
        command += ["--claim", *claim_ids]
    if not controls:
        command.append("--no-controls")
    return command


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(claim: Claim) -> tuple[str, dict[str, Any], dict[str, str] | None]:
    try:
        return claim.id, claim.describe(), None
    except Exception as exc:
        cid = getattr(claim, "id", type(claim).__name__)
        return cid, {"id": cid, "title": type(claim).__name__}, _error_record("describe", exc)


def _not_run(claim: Claim, tier: str, error: dict[str, Any] | None,
             not_applicable: str | None, say: Any) -> dict[str, Any]:
    """The results.json fields of a claim that did not run: its describe or budget raised
    (``error``), the implementation under test lacks what it needs (``not_applicable``: why),
    or it has no budget at ``tier``."""
    if error is not None:
        verdict = _error_verdict(error)
    elif not_applicable:
        verdict = Verdict.skipped(not_applicable)
    else:
        with_budget = [t for t in TIERS if claim.budgets.get(t) is not None]
        verdict = Verdict.skipped(
            f"no budget at the {tier} tier, where the claim cannot decide anything; "
            f"tiers with a budget: {', '.join(with_budget) or 'none'}"
        )
    say(f"{verdict_brief(verdict.to_json())} | {fmt_seconds(0.0)}\n")
    return {
        "verdict": verdict.to_json(),
        "evidence": None,
        "error": error,
        "control": None,
        "runtime_s": {"claim": 0.0, "control": None, "figures": 0.0, "total": 0.0},
        "figures": [],
        "figure_errors": [],
    }


def run_one(
    claim: Claim, *, tier: str, seed: int, out_dir: Path, controls: bool, say: Any
) -> dict[str, Any]:
    """Run, judge (and with ``controls`` run and judge the control of) one claim under the
    current implementation and execution; its results.json entry. Never raises for the claim's
    own failures: those become its ERROR verdict."""
    cid, description, error = _describe(claim)
    entry: dict[str, Any] = {"id": cid, "description": description, "budget": None}
    budget = None
    if error is None:
        try:
            budget = budget_json(claim.budget(tier))
        except Exception as exc:
            error = _error_record("budget", exc)
    not_applicable = (None if error is not None or budget is None
                      else skip_reason(getattr(claim, "requires", None), under_test()))
    if error is not None or budget is None or not_applicable:
        return entry | _not_run(claim, tier, error, not_applicable, say)

    main = _judge(claim, tier, seed, control=False)
    say(verdict_brief(main.verdict.to_json()))
    figures, figure_errors, figure_seconds = [], [], 0.0
    if main.evidence is not None:
        start = time.perf_counter()
        figures, figure_errors = _figures(claim, main.evidence, out_dir)
        figure_seconds = time.perf_counter() - start
        if figure_errors:
            say(f" | figures failed: {figure_errors[0]}")
    control = None
    if controls:
        control = _judge(claim, tier, seed, control=True)
        status = control.verdict.status
        say(f" | control: {status}" + ("" if status == "REFUTED" else " (must be REFUTED!)"))
    control_seconds = None if control is None else control.seconds
    total = main.seconds + (control_seconds or 0.0) + figure_seconds
    say(f" | {fmt_seconds(total)}\n")  # the report's runtime, claim + control + figures
    return entry | {
        "budget": budget,
        "verdict": main.verdict.to_json(),
        "evidence": None if main.evidence is None else main.evidence.to_json(),
        "error": main.error,
        "control": None if control is None else control.to_json(),
        "runtime_s": {
            "claim": main.seconds,
            "control": control_seconds,
            "figures": figure_seconds,
            "total": total,
        },
        "figures": figures,
        "figure_errors": figure_errors,
    }


def claim_jobs(claims: Sequence[Claim], tier: str, controls: bool) -> list[Job]:
    """Every training job the ``claims`` (those with a ``jobs(tier, control)`` method and a
    budget at ``tier``) will read, without repeats. Planning may itself run jobs (NPG's step
    sweep) in the current execution. A claim whose planning fails is left to fail in its run."""
    planned: dict[str, Job] = {}
    for claim in claims:
        plan = getattr(claim, "jobs", None)
        if plan is None:
            continue
        try:
            if claim.budget(tier) is None or skip_reason(claim.requires, under_test()):
                continue
            jobs = plan(tier, False) + (plan(tier, True) if controls else [])
        except Exception:  # reported, with its traceback, when the claim itself runs
            continue
        for job in jobs:
            planned.setdefault(repr(job.spec()), job)
    return list(planned.values())


def execution_record(settings: Execution) -> dict[str, Any]:
    """How the run's trainings ran (for results.json): job cache, executor, workers, and
    whether it could train (false for a --cached-only run)."""
    return {"cache": None if settings.cache is None else str(settings.cache.root),
            "executor": settings.executor, "max_workers": settings.max_workers,
            "address": settings.address, "train": settings.train}


def _source(record: dict[str, Any] | None, key: str, cache: Any) -> dict[str, Any]:
    """Where one planned job's result came from: ``{"source": "this run" | "cache" | "missing",
    "wall_s", "provenance"}`` (provenance: commit, host, CPU, time; null for records made before
    it was stored)."""
    if record is None:
        return {"source": "missing", "wall_s": None, "provenance": None}
    trained_here = cache is not None and key in cache.written
    return {"source": "this run" if trained_here else "cache",
            "wall_s": float(record["wall_s"]), "provenance": record.get("provenance")}


def training_summary(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Per (group, task, method) of ``jobs`` (:func:`~claims.framework.jobs.method_of`): runs
    planned and finished, how many of those were trained in this run and how many read from the
    cache, env steps, the wall seconds the finished ones took when they ran (one worker's time each,
    wherever and whenever it ran), and per job (``runs``) its seed, source and provenance (from the
    current execution's cache)."""
    cache = current_execution().cache
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for job in jobs:
        method = method_of(job)
        row = rows.setdefault((job.claim_id, job.task, method), {
            "group": job.claim_id, "task": job.task, "method": method, "planned": 0,
            "finished": 0, "trained_here": 0, "from_cache": 0, "env_steps": 0, "wall_s": 0.0,
            "runs": []})
        row["planned"] += 1
        record = None if cache is None else cache.record(job)
        source = _source(record, "" if cache is None else cache.key(job), cache)
        row["runs"].append({"algo": job.algo, "seed": job.seed} | source)
        if record is not None:
            row["finished"] += 1
            row["trained_here" if source["source"] == "this run" else "from_cache"] += 1
            row["env_steps"] += int(record["result"]["steps"][-1])
            row["wall_s"] += float(record["wall_s"])
    return list(rows.values())


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean stop handles it
    (and no ``except Exception`` in a claim swallows it)."""


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM after writing what it had (results.json with
    ``complete: false``). ``signal_name``: "SIGINT" or "SIGTERM"; ``exit_status``: 128 + the
    signal's number, as a shell reports a process killed by it."""

    def __init__(self, result: RunResult, signal_name: str, finished: int, planned: int) -> None:
        self.result, self.signal_name = result, signal_name
        self.finished, self.planned = finished, planned
        self.exit_status = 128 + int(getattr(signal, signal_name))
        super().__init__(f"interrupted ({signal_name}) after {finished} of {planned} claims")


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Within the body, SIGTERM raises :class:`Terminated` (in the main thread only: elsewhere
    Python cannot install signal handlers, and SIGTERM keeps its default)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Within the body (the final writes of an interrupted run), a second Ctrl-C or SIGTERM
    waits: results.json and the reports are written whole."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_claims(
    claims: Sequence[Claim],
    *,
    tier: str,
    seed: int,
    out_dir: Path | str,
    controls: bool = True,
    progress: TextIO | None = None,
    command: Sequence[str] | None = None,
    jobs: Execution | None = None,
    restart: bool = False,
) -> RunResult:
    """Run, judge and report ``claims`` at ``tier``; write results.json, report.md, report.html.

    ``command`` is the argv stored as the way to reproduce the run; by default the
    ``trpo-claims run`` command naming these claims. ``jobs`` says how the empirical claims'
    trainings run (cache, executor, workers); by default the current
    :func:`claims.framework.jobs.current_execution`. They all run first, together, on that executor;
    the claims then read them from the cache.

    Before any work, results.json is written with ``complete: false`` (the run directory is
    marked as in progress; an earlier run's results.json there is replaced, never left looking
    current). When ``out_dir`` holds an interrupted run of the same plan (tier, seed, controls,
    implementation, claims), the run resumes it: its finished claims are kept, not rerun
    (``restart=True`` starts over instead). Ctrl-C or SIGTERM stops the run cleanly: what was
    judged is written (``interrupted`` says by what) and :class:`RunInterrupted` is raised.
    """
    with execution(jobs if jobs is not None else current_execution()), _sigterm_interrupts():
        return _run_claims(claims, tier=tier, seed=seed, out_dir=out_dir, controls=controls,
                           progress=progress, command=command, restart=restart)


def _plan(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two runs the same run (so one may resume the other)."""
    return run_plan(tier=doc.get("tier"), seed=doc.get("seed"), controls=doc.get("controls"),
                    claim_ids=doc.get("planned_claims"),
                    impl=(doc.get("implementation") or {}).get("spec"))


def run_plan(*, tier: Any, seed: Any, controls: Any, claim_ids: Any, impl: Any) -> dict[str, Any]:
    """The plan of a run, as :func:`resumable` compares it (``impl``: the spec under test)."""
    return {"tier": tier, "seed": seed, "controls": controls,
            "claims": None if claim_ids is None else list(claim_ids), "implementation": impl}


def running_elsewhere(doc: Mapping[str, Any]) -> int | None:
    """The pid of another live process on this host still writing the run ``doc``, else None."""
    attempts = doc.get("attempts") or []
    last = attempts[-1] if attempts else {}
    pid = last.get("pid")
    if last.get("outcome") != "running" or last.get("host") != platform.node() or not pid:
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return int(pid)
    return int(pid)


def resumable(doc: Mapping[str, Any], plan: Mapping[str, Any]) -> bool:
    """Whether the results document ``doc`` is an unfinished run of ``plan`` that no live
    process is still writing (so a run of that plan may resume it)."""
    return (not doc.get("complete") and _plan(doc) == dict(plan)
            and running_elsewhere(doc) is None)


def previous_run(out_dir: Path) -> dict[str, Any] | None:
    """The results document already in ``out_dir`` (None when there is none); InputError
    naming the file when it is there but unreadable or not a results document."""
    path = out_dir / RESULTS_FILE
    if not path.exists():
        return None
    return check_results(load_json(path, f"a {RESULTS_FILE} written by trpo-claims run"), path)


def check_results(doc: Any, path: Path | str) -> dict[str, Any]:
    """``doc`` if it looks like a results document (a JSON object with a tier and a list of
    claim entries, each with an id and a verdict status), else InputError naming ``path``."""
    what = f"not a trpo-claims {RESULTS_FILE}"
    if not isinstance(doc, dict):
        raise InputError(f"{path}: {what} (a JSON {type(doc).__name__}, not an object)")
    missing = [key for key in ("tier", "claims") if key not in doc]
    if missing:
        raise InputError(f"{path}: {what} (no {' or '.join(repr(k) for k in missing)} field)")
    if not isinstance(doc["claims"], list):
        raise InputError(f"{path}: {what} ('claims' is not a list)")
    for i, entry in enumerate(doc["claims"]):
        ok = isinstance(entry, dict) and "id" in entry and isinstance(entry.get("verdict"), dict)
        if not ok or "status" not in entry["verdict"]:
            raise InputError(f"{path}: {what} (claim entry {i} has no id or verdict status)")
    if doc.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise InputError(f"{path}: schema_version {doc['schema_version']!r}; this trpo-claims "
                         f"reads version {SCHEMA_VERSION}")
    return doc


def _run_claims(
    claims: Sequence[Claim],
    *,
    tier: str,
    seed: int,
    out_dir: Path | str,
    controls: bool,
    progress: TextIO | None,
    command: Sequence[str] | None,
    restart: bool,
) -> RunResult:
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")
    out_dir = _run_directory(out_dir)
    say = _printer(progress)
    ids = [getattr(c, "id", type(c).__name__) for c in claims]
    if command is None:
        command = reproduce_command(
            tier=tier, seed=seed, out_dir=out_dir, claim_ids=ids, controls=controls
        )
    start = time.perf_counter()
    doc = _new_results(tier=tier, seed=seed, controls=controls, command=command, ids=ids)
    kept = _kept_from_earlier_run(out_dir, doc, ids, restart=restart, say=say)
    doc["claims"] = [kept[cid] for cid in ids if cid in kept]
    attempt = {"started_utc": _utc_now(), "finished_utc": None, "outcome": "running",
               "runtime_s": None, "host": platform.node(), "pid": os.getpid()}
    doc["attempts"].append(attempt)
    earlier_runtime = sum(a.get("runtime_s") or 0.0 for a in doc["attempts"][:-1])
    # mark the directory as in progress before any work: never an earlier run's results
    write_json_atomic(out_dir / RESULTS_FILE, doc)
    write_reports(out_dir, doc)
    say(f"running {len(claims)} claims at the {tier} tier (seed {seed}) into {out_dir}\n")
    planned: list[Job] = []  # filled before any claim runs, so an interrupt reports it
    try:
        _judge_claims(claims, ids, kept, doc, planned, tier=tier, seed=seed, out_dir=out_dir,
                      controls=controls, say=say)
    except KeyboardInterrupt as stop:
        name = "SIGTERM" if isinstance(stop, Terminated) else "SIGINT"
        with _no_interrupts():
            say("\n")
            runtime = time.perf_counter() - start
            attempt |= {"finished_utc": _utc_now(), "outcome": f"interrupted ({name})",
                        "runtime_s": runtime}
            doc |= {"interrupted": name, "runtime_s": earlier_runtime + runtime,
                    "finished_utc": attempt["finished_utc"],
                    "trainings": training_summary(planned)}
            results = _write_final(out_dir, doc)
        raise RunInterrupted(RunResult(results, out_dir), name, len(doc["claims"]),
                             len(ids)) from None
    runtime = time.perf_counter() - start
    attempt |= {"finished_utc": _utc_now(), "outcome": "complete", "runtime_s": runtime}
    doc["trainings"] = training_summary(claim_jobs(claims, tier, controls) if kept else planned)
    doc["corrupt_cache_files"] = _quarantined()
    doc |= {"complete": True, "finished_utc": _utc_now(),
            "runtime_s": earlier_runtime + runtime}
    return RunResult(results=_write_final(out_dir, doc), out_dir=out_dir)


def _printer(progress: TextIO | None) -> Callable[[str], None]:
    """Write progress text to ``progress`` at once (nothing when it is None)."""

    def say(text: str) -> None:
        if progress is not None:
            progress.write(text)
            progress.flush()

    return say


def _run_directory(out_dir: Path | str) -> Path:
    """``out_dir``, created if missing; InputError when it exists and is not a directory."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a directory, so it cannot be a run "
                         "directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _new_results(*, tier: str, seed: int, controls: bool, command: Sequence[str],
                 ids: list[str]) -> dict[str, Any]:
    """The results document of a run that has not judged anything yet."""
    return {
        "schema_version": SCHEMA_VERSION,
        "complete": False,
        "interrupted": None,
        "tier": tier,
        "seed": seed,
        "controls": controls,
        "command": list(command),
        "planned_claims": ids,
        "started_utc": _utc_now(),
        "finished_utc": None,
        "runtime_s": None,
        "attempts": [],
        "fingerprint": fingerprint(),
        "execution": execution_record(current_execution()),
        "implementation": under_test().record(),
        "claims": [],
    }


def _kept_from_earlier_run(out_dir: Path, doc: dict[str, Any], ids: list[str], *,
                           restart: bool, say: Any) -> dict[str, dict[str, Any]]:
    """The entries to keep from ``out_dir``'s earlier run: those of an interrupted run of the
    same plan (whose attempts and start time ``doc`` takes over), unless ``restart``; any other
    earlier run is replaced (its figures removed). InputError when the directory holds
    something else (without ``restart``) or another process is writing into it."""
    results_path = out_dir / RESULTS_FILE
    try:
        earlier = previous_run(out_dir)
    except InputError as problem:
        if not restart:
            raise InputError(f"{problem}; the run directory holds something else, so nothing "
                             "was run (choose another --out, or replace it with --restart)"
                             ) from None
        say(f"{out_dir}: replacing an unreadable {RESULTS_FILE} ({problem})\n")
        return {}
    if earlier is None:
        return {}
    if (pid := running_elsewhere(earlier)) is not None:
        raise InputError(f"{results_path}: another run (process {pid}) is writing into "
                         f"{out_dir}; choose another --out")
    same_plan = not earlier.get("complete") and _plan(earlier) == _plan(doc)
    if same_plan and not restart:
        kept = {e["id"]: e for e in earlier["claims"] if e["id"] in ids}
        doc["attempts"] = list(earlier.get("attempts") or [])
        doc["started_utc"] = earlier.get("started_utc", doc["started_utc"])
        say(f"resuming the interrupted run in {out_dir}: {len(kept)} of {len(ids)} claims "
            "already judged\n")
        return kept
    what = ("a complete run" if earlier.get("complete") else "an unfinished run"
            + ("" if same_plan else " of another plan"))
    say(f"{out_dir} holds {what} (started {earlier.get('started_utc', '?')}); replacing it\n")
    _remove_figures(out_dir, earlier)
    return {}


def _judge_claims(claims: Sequence[Claim], ids: list[str], kept: Mapping[str, Any],
                  doc: dict[str, Any], planned: list[Job], *, tier: str, seed: int,
                  out_dir: Path, controls: bool, say: Any) -> None:
    """Train what the claims not yet judged read (all together first), then judge them one by
    one, writing results.json after each. ``planned`` receives the trainings."""
    todo = [claim for claim, cid in zip(claims, ids, strict=True) if cid not in kept]
    planned.extend(claim_jobs(todo, tier, controls))
    trainings = planned if current_execution().train else []
    if trainings:  # first, all together (the progress printer says how many are cached)
        try:
            run_in_context(trainings)
        except Exception as exc:  # each claim that needs the failed job reports the error
            say(f"a training job failed ({type(exc).__name__}: {exc}); continuing\n")
    for i, (claim, cid) in enumerate(zip(claims, ids, strict=True), start=1):
        if cid in kept:
            continue
        say(f"[{i}/{len(claims)}] {cid} ... ")
        entry = run_one(claim, tier=tier, seed=seed, out_dir=out_dir, controls=controls,
                        say=say)
        doc["claims"] = [*doc["claims"], entry]
        doc["claims"].sort(key=lambda e: ids.index(e["id"]))
        write_json_atomic(out_dir / RESULTS_FILE, doc)


def _write_final(out_dir: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Write results.json, then the reports rendered from what was written (so `trpo-claims
    report` reproduces them exactly); the results as read back."""
    write_json_atomic(out_dir / RESULTS_FILE, doc)
    results = read_json(out_dir / RESULTS_FILE)
    write_reports(out_dir, results)
    return results


def _quarantined() -> list[dict[str, str]]:
    cache = current_execution().cache
    return list(getattr(cache, "quarantined", []))


def _remove_figures(out_dir: Path, earlier: Mapping[str, Any]) -> None:
    """Delete the figures an earlier run in ``out_dir`` listed (so none is shown as this run's);
    nothing else in the directory is touched."""
    root = out_dir.resolve()
    for entry in earlier.get("claims", []):
        for figure in entry.get("figures") or []:
            path = (out_dir / figure).resolve()
            if path.is_relative_to(root) and path.is_file():
                path.unlink()


def load_results(run_dir: Path | str) -> dict[str, Any]:
    """The results document of a run directory; InputError (a ValueError) naming the file and
    the problem when the directory or its results.json is missing, unreadable or not one."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise MissingInputError(f"{run_dir}: no such directory (expected a run directory with "
                                f"{RESULTS_FILE})")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory (expected a run directory with "
                         f"{RESULTS_FILE})")
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        listing = "it is empty" if not any(run_dir.iterdir()) else f"no {RESULTS_FILE} in it"
        raise MissingInputError(f"{run_dir}: not a run directory ({listing}; expected {path})")
    return check_results(load_json(path, f"a {RESULTS_FILE} written by trpo-claims run"), path)


def rerender_report(run_dir: Path | str) -> Path:
    """Rewrite ``run_dir``/report.md and report.html from ``run_dir``/results.json; returns the
    path of report.md."""
    return write_reports(run_dir, load_results(run_dir))[0]


def failure_reasons(results: dict[str, Any], fail_on: Collection[str] = ()) -> list[str]:
    """Why a run should exit nonzero: any ERROR, plus the outcomes named in ``fail_on``.

    ``fail_on`` holds names from FAIL_ON_CHOICES: "refuted" and "inconclusive" fail on claims with
    that verdict; "control" fails on any negative control that ran and did not come out REFUTED.
    """
    unknown = set(fail_on) - set(FAIL_ON_CHOICES)
    if unknown:
        raise ValueError(
            f"unknown fail-on value(s) {sorted(unknown)}; choose from {FAIL_ON_CHOICES}"
        )
    reasons = []
    for entry in results["claims"]:
        cid, status = entry["id"], entry["verdict"]["status"]
        control = entry.get("control")
        control_status = None if control is None else control["verdict"]["status"]
        if status == "ERROR":
            reasons.append(f"{cid}: ERROR")
        if control_status == "ERROR":
            reasons.append(f"{cid}: negative control ERROR")
        if status.lower() in fail_on:
            reasons.append(f"{cid}: {status}")
        if "control" in fail_on and control_status not in (None, "REFUTED", "ERROR"):
            reasons.append(f"{cid}: negative control {control_status}, not REFUTED")
    return reasons
