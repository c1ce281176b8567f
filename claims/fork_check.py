"""The fork check: does the suite catch each seeded bug? (issue 5, "proof that it catches bugs")

The clean reference runs the implementation-level claims once and becomes the baseline; then
each seeded-bug fork of trpo_ref (:mod:`claims.forks`) runs the same claims, and
:func:`claims.compare.compare` sets it against the baseline. A bug is *caught* when some claim
comes out ``worse`` (its verdict fell from SUPPORTED, or its samples moved beyond the claim's
declared margin on the bad side); the clean reference, run a second time as a candidate, must
come out with no claim worse. Writes ``OUT/detection.md`` and ``OUT/detection.json``, and each
run's own report under ``OUT/runs/NAME``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from claims import registry
from claims.compare import ClaimComparison, baseline_from_results, compare
from claims.core import DEFAULT_TIER, TIERS, Claim
from claims.forks import BUGS, seeded_bug
from claims.impl import REFERENCE_SPEC, UnderTest, use_implementation
from claims.implementation.sequence import forget_updates
from claims.runner import run_claims
from claims.serialize import write_json_atomic, write_text_atomic

CLEAN = "clean_reference"


def step_claims() -> list[Claim]:
    """The claims that judge any implementation through the step capability (the default set:
    the training-level ones take minutes per fork)."""
    return [c for c in registry.all_claims() if c.requires is not None and "step" in c.requires]


def _run(name: str, claims: list[Claim], tier: str, seed: int, out: Path,
         bug: str | None) -> dict[str, Any]:
    forget_updates()  # every run measures its implementation afresh
    with use_implementation(UnderTest(REFERENCE_SPEC)), seeded_bug(bug):
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
    parser.add_argument("--out", type=Path, default=Path("reports") / "fork-check",
                        help="output directory (default reports/fork-check)")


def handle(args: argparse.Namespace) -> int:
    claims = [registry.get(i) for i in args.claim] if args.claim else None
    report = fork_check(args.tier, args.bug or None, claims, args.seed, args.out,
                        progress=sys.stdout)
    print(f"wrote {args.out / 'detection.md'} and {args.out / 'detection.json'}")
    ok = report["clean_reference_passes"] and report["all_bugs_caught"]
    return 0 if ok else 1
