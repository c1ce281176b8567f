"""The fork check: does the suite catch each seeded bug? (issue 5, "proof that it catches bugs")

The clean reference runs the implementation-level claims once and becomes the baseline; then
each seeded-bug fork of trpo_ref (:mod:`claims.faults.forks`) runs the same claims, and
:func:`claims.framework.compare.compare` sets it against the baseline. A bug is *caught* when some
claim comes out ``worse`` (its verdict fell from SUPPORTED, or its samples moved beyond the claim's
declared margin on the bad side); the clean reference, run a second time as a candidate, must
come out with no claim worse. Writes ``OUT/detection.md`` and ``OUT/detection.json``, and each
run's own report under ``OUT/runs/NAME``.

With ``--impl SPEC --mutants`` (issue 13) the same check runs on code this project did not
write: the clean library (SPEC's adapter) is the baseline and runs a second time as a candidate,
then every mutant of its catalogue (:mod:`claims.audit.mutants`) runs swapped into the installed
library. The table says, per mutant, its kind (bug, equivalent, false-alarm probe), whether it
was caught and by what, and "not applicable" with the reason when the installed version lacks
its patch site. Detection is caught / applicable bugs; a flagged probe or equivalent mutant, or
a flagged clean rerun, is a false alarm.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from claims.audit.mutants import Mutant, NotApplicable, applied, catalogue_for
from claims.catalogue.implementation.sequence import forget_updates
from claims.faults.forks import BUGS, seeded_bug
from claims.framework import registry
from claims.framework.compare import ClaimComparison, baseline_from_results, compare
from claims.framework.core import DEFAULT_TIER, TIERS, Claim
from claims.framework.impl import REFERENCE_SPEC, UnderTest, use_implementation
from claims.framework.runner import run_claims
from claims.framework.serialize import write_json_atomic, write_text_atomic
from trpo_ref.deep.runtime import torch_threads

CLEAN = "clean_reference"


def step_claims() -> list[Claim]:
    """The claims that judge any implementation through the step capability (the default set:
    the training-level ones take minutes per fork)."""
    return [c for c in registry.all_claims() if c.requires is not None and "step" in c.requires]


def _run(name: str, claims: list[Claim], tier: str, seed: int, out: Path,
         bug: str | None, spec: str = REFERENCE_SPEC,
         patch: Callable[[], contextlib.AbstractContextManager[Any]] | None = None
         ) -> dict[str, Any]:
    forget_updates()  # every run measures its implementation afresh
    with (use_implementation(UnderTest(spec)), seeded_bug(bug),
          patch() if patch is not None else contextlib.nullcontext()):
        result = run_claims(claims, tier=tier, seed=seed, out_dir=out / "runs" / name,
                            controls=False)
    return baseline_from_results(result.results, name)


def caught_by(rows: list[ClaimComparison]) -> list[ClaimComparison]:
    return [r for r in rows if r.outcome == "worse"]


def fork_check(tier: str = DEFAULT_TIER, bugs: list[str] | None = None,
               claims: list[Claim] | None = None, seed: int = 0,
               out: Path | str = Path("reports") / "fork-check",
               progress: Any = None) -> dict[str, Any]:
    """Run the check; returns (and writes) {"rows": [...], "all_caught": bool, ...}."""
    out = Path(out)
    claims = claims if claims is not None else step_claims()
    names = list(bugs) if bugs is not None else list(BUGS)
    started = time.perf_counter()

    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    say(f"fork check at tier {tier}: {len(claims)} claims, baseline = the clean reference")
    baseline = _run("baseline", claims, tier, seed, out, None)
    rows: list[dict[str, Any]] = []
    for name in [CLEAN, *names]:
        candidate = _run(name, claims, tier, seed, out, None if name == CLEAN else name)
        comparisons = compare(baseline, candidate)
        worse = caught_by(comparisons)
        rows.append({"bug": name, "caught": bool(worse),
                     "caught_by": [asdict(r) | _verdicts(baseline, candidate, r.claim_id)
                                   for r in worse],
                     "comparisons": [asdict(r) for r in comparisons]})
        say(f"  {name}: caught by " + (", ".join(r.claim_id for r in worse) or "nothing"))
    clean_passes = not rows[0]["caught"]
    report = {"tier": tier, "seed": seed, "claims": [c.id for c in claims],
              "runtime_s": time.perf_counter() - started, "clean_reference_passes": clean_passes,
              "all_bugs_caught": all(r["caught"] for r in rows[1:]), "rows": rows,
              "fingerprint": baseline["fingerprint"]}
    write_json_atomic(out / "detection.json", report)
    write_text_atomic(out / "detection.md", detection_markdown(report))
    return report


CLEAN_RERUN = "clean_rerun"


def mutant_check(spec: str, tier: str = DEFAULT_TIER, claims: list[Claim] | None = None,
                 mutants: list[Mutant] | None = None, seed: int = 0,
                 out: Path | str = Path("reports") / "mutants", progress: Any = None
                 ) -> dict[str, Any]:
    """The fork check on an external library: the clean library (``spec``) as the baseline and
    again as a candidate, then every mutant (default: ``spec``'s catalogue) swapped in. Returns
    (and writes) the report; see the module docstring."""
    out = Path(out)
    claims = claims if claims is not None else step_claims()
    mutants = list(mutants) if mutants is not None else catalogue_for(spec)
    started = time.perf_counter()

    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    say(f"mutant check of {spec} at tier {tier}: {len(claims)} claims, {len(mutants)} mutants, "
        "baseline = the clean library")
    rows: list[dict[str, Any]] = []

    def write(baseline: dict[str, Any], complete: bool) -> dict[str, Any]:
        """The report so far (rewritten after every row: an interrupted check keeps what it
        measured, marked incomplete)."""
        report = {"impl": spec, "tier": tier, "seed": seed, "claims": [c.id for c in claims],
                  "complete": complete, "runtime_s": time.perf_counter() - started,
                  "torch_threads": 1, "mutants": [m.name for m in mutants], "rows": rows,
                  "fingerprint": baseline["fingerprint"]} | detection_counts(rows)
        write_json_atomic(out / "detection.json", report)
        write_text_atomic(out / "detection.md", mutant_markdown(report))
        return report

    with torch_threads(1):  # more threads than cores: many times slower on a shared machine
        baseline = _mutant_rows(spec, tier, claims, mutants, seed, out, say, rows,
                                lambda b: write(b, False))
    return write(baseline, True)


def _mutant_rows(spec: str, tier: str, claims: list[Claim], mutants: list[Mutant], seed: int,
                 out: Path, say: Callable[[str], None], rows: list[dict[str, Any]],
                 checkpoint: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    baseline = _run("baseline", claims, tier, seed, out, None, spec)
    for mutant in [None, *mutants]:
        name = CLEAN_RERUN if mutant is None else mutant.name
        row: dict[str, Any] = {
            "bug": name, "kind": "clean" if mutant is None else mutant.kind,
            "bug_class": "the library as installed" if mutant is None else mutant.bug_class,
            "why": "" if mutant is None else mutant.why, "applicable": True,
            "not_applicable": None, "caught": False, "caught_by": [], "comparisons": []}
        run_started = time.perf_counter()
        try:
            candidate = _run(name, claims, tier, seed, out, None, spec,
                             lambda m=mutant: applied(m))
        except NotApplicable as error:
            row |= {"applicable": False, "not_applicable": str(error)}
            rows.append(row)
            checkpoint(baseline)
            say(f"  {name}: not applicable ({error})")
            continue
        comparisons = compare(baseline, candidate)
        worse = caught_by(comparisons)
        row |= {"caught": bool(worse), "runtime_s": time.perf_counter() - run_started,
                "caught_by": [asdict(r) | _verdicts(baseline, candidate, r.claim_id)
                              for r in worse],
                "comparisons": [asdict(r) for r in comparisons]}
        rows.append(row)
        checkpoint(baseline)
        say(f"  {name} ({row['kind']}): caught by "
            + (", ".join(r.claim_id for r in worse) or "nothing")
            + f" ({row['runtime_s']:.0f} s)")
    return baseline


def detection_counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers of a mutant check's rows."""
    bugs = [r for r in rows if r["kind"] == "bug" and r["applicable"]]
    silent = [r for r in rows if r["kind"] in ("clean", "equivalent", "probe")
              and r["applicable"]]
    caught = sum(r["caught"] for r in bugs)
    return {"bugs_applicable": len(bugs), "bugs_caught": caught,
            "detection_rate": caught / len(bugs) if bugs else None,
            "not_applicable": [r["bug"] for r in rows if not r["applicable"]],
            "missed": [r["bug"] for r in bugs if not r["caught"]],
            "false_alarms": [r["bug"] for r in silent if r["caught"]],
            "clean_reference_passes": not any(r["caught"] for r in rows
                                              if r["kind"] == "clean"),
            "all_bugs_caught": bool(bugs) and caught == len(bugs)}


def mutant_markdown(report: dict[str, Any]) -> str:
    rate = report["detection_rate"]
    done = len(report["rows"]) - 1  # the clean rerun is not a mutant
    lines = [f"# Mutant check of `{report['impl']}` (tier {report['tier']}, seed "
             f"{report['seed']})", "",
             *([] if report.get("complete", True) else
               [f"**Incomplete**: {max(done, 0)} of {len(report['mutants'])} mutants run so "
                "far.", ""]),
             f"Claims: {', '.join(report['claims'])}. Baseline: the clean library. Each mutant is "
             "built from the installed source at run time (claims/audit/mutants/); a mutant is "
             "caught when a claim comes out worse than the baseline (verdict fell from SUPPORTED, "
             "or its samples moved beyond the claim's margin on the bad side).", "",
             f"Bugs caught: **{report['bugs_caught']} of {report['bugs_applicable']}**"
             + ("" if rate is None else f" ({100 * rate:.0f}%)")
             + f"; false alarms (clean rerun, equivalent mutants, probes): "
             f"**{len(report['false_alarms'])}**"
             + (f" ({', '.join(report['false_alarms'])})" if report["false_alarms"] else "")
             + f"; clean rerun passes: **{'yes' if report['clean_reference_passes'] else 'NO'}**"
             f"; not applicable: {len(report['not_applicable'])}; runtime "
             f"{report['runtime_s']:.0f} s.", "",
             "| mutant | kind | bug class | caught | claim that caught it | statistic |",
             "|---|---|---|---|---|---|"]
    for row in report["rows"]:
        head = f"| {row['bug']} | {row['kind']} | {row['bug_class']} |"
        if not row["applicable"]:
            lines.append(f"{head} not applicable | | {row['not_applicable']} |")
            continue
        if not row["caught_by"]:
            expected = "no (as it should)" if row["kind"] != "bug" else "**no**"
            lines.append(f"{head} {expected} | | |")
        for i, hit in enumerate(row["caught_by"]):
            flag = "yes" if row["kind"] == "bug" else "**FALSE ALARM**"
            lines.append(f"{head if i == 0 else '| | | |'} {flag if i == 0 else ''} | "
                         f"{hit['claim_id']} | {_statistic(hit)} |")
    notes = [r for r in report["rows"] if r["kind"] in ("equivalent", "probe")]
    if notes:
        lines += ["", "Why the equivalent mutants and probes cannot change the outcome:", ""]
        lines += [f"- `{r['bug']}`: {r['why']}" for r in notes]
    return "\n".join(lines) + "\n"


def _verdicts(baseline: dict[str, Any], candidate: dict[str, Any],
              claim_id: str) -> dict[str, Any]:
    b, c = baseline["claims"][claim_id], candidate["claims"][claim_id]
    return {"verdict_statistic": c.get("statistic"), "baseline_value": b.get("value"),
            "candidate_value": c.get("value")}


def _number(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.3g}"


def _statistic(row: dict[str, Any]) -> str:
    if row["baseline_status"] != row["candidate_status"]:
        return (f"{row['verdict_statistic']}: {_number(row['candidate_value'])} (reference "
                f"{_number(row['baseline_value'])}); verdict {row['baseline_status']} -> "
                f"{row['candidate_status']}")
    lo, hi = row["ci"]
    return (f"{row['message'].split(';')[0]}: mean difference {row['difference']:+.3g} "
            f"[{lo:+.3g}, {hi:+.3g}] vs the reference (margin {row['margin']:g}), "
            f"n = {row['n']}")


def detection_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Fork check (tier {report['tier']}, seed {report['seed']})", "",
             f"Claims: {', '.join(report['claims'])}. Baseline: the clean reference. A bug is "
             "caught when a claim comes out worse than the baseline (verdict fell from "
             "SUPPORTED, or its samples moved beyond the claim's margin on the bad side).", "",
             f"Clean reference passes: **{'yes' if report['clean_reference_passes'] else 'NO'}**"
             f"; every seeded bug caught: **{'yes' if report['all_bugs_caught'] else 'NO'}**; "
             f"runtime {report['runtime_s']:.0f} s.", "",
             "| bug | caught | claim that caught it | statistic |", "|---|---|---|---|"]
    for row in report["rows"]:
        if not row["caught_by"]:
            lines.append(f"| {row['bug']} | {'no' if row['bug'] != CLEAN else 'no (passes)'} "
                         "| | |")
        for i, hit in enumerate(row["caught_by"]):
            lines.append(f"| {row['bug'] if i == 0 else ''} | {'yes' if i == 0 else ''} | "
                         f"{hit['claim_id']} | {_statistic(hit)} |")
    return "\n".join(lines) + "\n"


# --- CLI -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tier", choices=TIERS, default=DEFAULT_TIER,
                        help=f"budget tier of the claims (default {DEFAULT_TIER})")
    parser.add_argument("--bug", metavar="NAME", action="extend", nargs="+", default=[],
                        choices=list(BUGS), help="only these seeded bugs (default: all)")
    parser.add_argument("--claim", metavar="ID", action="extend", nargs="+", default=[],
                        help="claims to judge with (default: every step-level impl.* claim)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default reports/fork-check, or "
                             "reports/mutants/ADAPTER with --mutants)")
    parser.add_argument("--impl", metavar="SPEC", default=REFERENCE_SPEC,
                        help="with --mutants: the adapter of the library to mutate "
                             "('package.module:factory' or a registered name)")
    parser.add_argument("--mutants", action="store_true",
                        help="check the mutants of --impl's library (claims/audit/mutants/) "
                             "instead of trpo_ref's seeded bugs")
    parser.add_argument("--mutant", metavar="NAME", action="extend", nargs="+", default=[],
                        help="with --mutants: only these mutants (default: the catalogue)")


def handle(args: argparse.Namespace) -> int:
    from claims.framework.serialize import UsageError

    claims = [registry.get(i) for i in args.claim] if args.claim else None
    if args.mutants:
        try:
            catalogue = catalogue_for(args.impl)
        except LookupError as error:
            raise UsageError(str(error)) from error
        unknown = sorted(set(args.mutant) - {m.name for m in catalogue})
        if unknown:
            raise UsageError(f"unknown mutant(s) {', '.join(unknown)}; the catalogue has "
                             f"{', '.join(m.name for m in catalogue)}")
        chosen = [m for m in catalogue if not args.mutant or m.name in args.mutant]
        adapter = args.impl.partition(":")[0].rsplit(".", 1)[-1]  # sb3_contrib, tianshou, ...
        out = args.out or Path("reports") / "mutants" / adapter
        report = mutant_check(args.impl, args.tier, claims, chosen, args.seed, out,
                              progress=sys.stdout)
        print(f"wrote {out / 'detection.md'} and {out / 'detection.json'}")
        ok = report["clean_reference_passes"] and not report["false_alarms"]
        return 0 if ok and report["all_bugs_caught"] else 1
    if args.impl != REFERENCE_SPEC:
        raise UsageError("the seeded bugs patch trpo_ref; for another implementation use "
                         "--impl SPEC --mutants")
    args.out = args.out or Path("reports") / "fork-check"
    report = fork_check(args.tier, args.bug or None, claims, args.seed, args.out,
                        progress=sys.stdout)
    print(f"wrote {args.out / 'detection.md'} and {args.out / 'detection.json'}")
    ok = report["clean_reference_passes"] and report["all_bugs_caught"]
    return 0 if ok else 1
