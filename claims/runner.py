"""Run claims, judge them, and write results.json, report.md and report.html.

For each claim: no budget at the tier -> SKIPPED; otherwise ``run`` then ``decide`` with the
claim's declared rule, then the same for its negative control (``run(..., control=True)``), whose
verdict must come out REFUTED. Anything a claim raises becomes that claim's ERROR (with the
traceback in the results) and the other claims still run. results.json is rewritten after every
claim (``"complete": false`` until the end), so an interrupted run keeps what it measured.

results.json (``schema_version`` 1)::

    schema_version  1
    complete        false while running; true once every claim has been tried
    tier, seed      the tier's name and the seed passed to every run()
    controls        whether negative controls ran
    command         argv list that reproduces the run (``trpo-claims run ...``)
    started_utc, finished_utc, runtime_s
    fingerprint     claims.fingerprint.fingerprint(): versions, CPU, git commit and dirty flag, argv
    implementation  the implementation under test (--impl): spec, name, capabilities, load error
    execution       how trainings ran: cache (directory or null), executor, max_workers, address,
                    train (false: --cached-only, nothing was trained)
    trainings       (at the end) the empirical claims' training jobs per (group, task, method):
                    planned, finished, env_steps, wall_s (one worker's seconds, from the cache)
    claims          list, in run order, of
        id, description   claim.describe(): title, statement, source, kind, protocol,
                          negative_control, rule {statistic, comparator, threshold, description,
                          alpha}, budgets
        budget            the budget dict at this tier (null when SKIPPED)
        verdict           Verdict.to_json(): status, statistic, value, comparator, threshold,
                          ci, n, message
        evidence          Evidence.to_json() (config, data, summary, runtime_s), or null
        error             null, or {phase, type, message, traceback}; phase is one of
                          describe / budget / run / decide
        control           null (not run), or {verdict, evidence, error} of the negative control
        runtime_s         {claim, control, figures, total} in seconds (control null if not run)
        figures           paths relative to the run directory
        figure_errors     messages of exceptions raised while drawing (not fatal)

Non-finite floats are written as the strings "nan", "inf", "-inf" (see claims.serialize).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from claims.core import TIERS, Claim, Evidence, Verdict
from claims.fingerprint import fingerprint
from claims.impl import skip_reason, under_test
from claims.jobs import (
    Execution,
    Job,
    JobsMissing,
    current_execution,
    execution,
    run_in_context,
)
from claims.report import verdict_brief, write_reports
from claims.serialize import read_json, write_json_atomic

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
REPORT_HTML_FILE = "report.html"
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
) -> list[str]:
    """The ``trpo-claims run`` argv that repeats a run (all claims when ``claim_ids`` is None;
    ``impl``: the implementation under test's spec, None for the reference)."""
    command = ["trpo-claims", "run", "--tier", tier, "--seed", str(seed), "--out", str(out_dir)]
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
            budget = claim.budget(tier)
        except Exception as exc:
            error = _error_record("budget", exc)
    not_applicable = (None if error is not None or budget is None
                      else skip_reason(getattr(claim, "requires", None), under_test()))
    if error is not None or budget is None or not_applicable:
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
        say(f"{verdict_brief(verdict.to_json())}\n")
        return entry | {
            "verdict": verdict.to_json(),
            "evidence": None,
            "error": error,
            "control": None,
            "runtime_s": {"claim": 0.0, "control": None, "figures": 0.0, "total": 0.0},
            "figures": [],
            "figure_errors": [],
        }

    main = _judge(claim, tier, seed, control=False)
    say(f"{verdict_brief(main.verdict.to_json())} {main.seconds:.1f}s")
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
    say("\n")
    control_seconds = None if control is None else control.seconds
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
            "total": main.seconds + (control_seconds or 0.0) + figure_seconds,
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


def training_summary(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Per (group, task, method) of ``jobs``: runs planned and finished, env steps and the wall
    seconds the finished ones took when they ran (from the current execution's cache; one
    worker's time each, wherever and whenever it ran)."""
    cache = current_execution().cache
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for job in jobs:
        method = job.algo.split("@")[0] if job.algo.startswith("npg@") else job.algo
        row = rows.setdefault((job.claim_id, job.task, method), {
            "group": job.claim_id, "task": job.task, "method": method, "planned": 0,
            "finished": 0, "env_steps": 0, "wall_s": 0.0})
        row["planned"] += 1
        record = None if cache is None else cache.record(job)
        if record is not None:
            row["finished"] += 1
            row["env_steps"] += int(record["result"]["steps"][-1])
            row["wall_s"] += float(record["wall_s"])
    return list(rows.values())


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
) -> RunResult:
    """Run, judge and report ``claims`` at ``tier``; write results.json, report.md, report.html.

    ``command`` is the argv stored as the way to reproduce the run; by default the
    ``trpo-claims run`` command naming these claims. ``jobs`` says how the empirical claims'
    trainings run (cache, executor, workers); by default the current
    :func:`claims.jobs.current_execution`. They all run first, together, on that executor;
    the claims then read them from the cache.
    """
    with execution(jobs if jobs is not None else current_execution()):
        return _run_claims(claims, tier=tier, seed=seed, out_dir=out_dir, controls=controls,
                           progress=progress, command=command)


def _run_claims(
    claims: Sequence[Claim],
    *,
    tier: str,
    seed: int,
    out_dir: Path | str,
    controls: bool,
    progress: TextIO | None,
    command: Sequence[str] | None,
) -> RunResult:
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        if progress is not None:
            progress.write(text)
            progress.flush()

    if command is None:
        ids = [getattr(c, "id", type(c).__name__) for c in claims]
        command = reproduce_command(
            tier=tier, seed=seed, out_dir=out_dir, claim_ids=ids, controls=controls
        )
    start = time.perf_counter()
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "complete": False,
        "tier": tier,
        "seed": seed,
        "controls": controls,
        "command": list(command),
        "started_utc": _utc_now(),
        "finished_utc": None,
        "runtime_s": None,
        "fingerprint": fingerprint(),
        "execution": execution_record(current_execution()),
        "implementation": under_test().record(),
        "claims": [],
    }
    results_path = out_dir / RESULTS_FILE
    say(f"running {len(claims)} claims at the {tier} tier (seed {seed}) into {out_dir}\n")
    planned = claim_jobs(claims, tier, controls)
    trainings = planned if current_execution().train else []
    if trainings:
        say(f"training {len(trainings)} jobs first (cached ones are read, not rerun)\n")
        try:
            run_in_context(trainings)
        except Exception as exc:  # each claim that needs the failed job reports the error
            say(f"a training job failed ({type(exc).__name__}: {exc}); continuing\n")
    for i, claim in enumerate(claims, start=1):
        say(f"[{i}/{len(claims)}] {getattr(claim, 'id', type(claim).__name__)} ... ")
        doc["claims"].append(
            run_one(claim, tier=tier, seed=seed, out_dir=out_dir, controls=controls, say=say)
        )
        write_json_atomic(results_path, doc)
    doc["trainings"] = training_summary(planned)
    doc |= {"complete": True, "finished_utc": _utc_now(), "runtime_s": time.perf_counter() - start}
    write_json_atomic(results_path, doc)
    # render from what was written, so `trpo-claims report` reproduces this file exactly
    results = read_json(results_path)
    write_reports(out_dir, results)
    return RunResult(results=results, out_dir=out_dir)


def load_results(run_dir: Path | str) -> dict[str, Any]:
    """The results document of a run directory (raises FileNotFoundError naming the file)."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {RESULTS_FILE} in {run_dir} (expected {path})")
    return read_json(path)


def rerender_report(run_dir: Path | str) -> Path:
    """Rewrite ``run_dir``/report.md and report.html from ``run_dir``/results.json; returns the
    path of report.md."""
    return write_reports(run_dir)[0]


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
