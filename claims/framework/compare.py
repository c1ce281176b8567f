"""Saved baselines and the statistical comparison of two runs (``run --save``, ``compare``).

A *baseline* is a run's per-claim verdicts and raw per-(task, seed) samples (each claim's
:meth:`~claims.framework.core.Claim.samples`), with the machine and commit that produced them.
Comparing a candidate with a baseline decides, per claim, from a bootstrap interval of the mean
paired difference candidate - baseline (pairs: the same task and seed):

- ``equivalent``: the whole interval lies within the claim's declared margin;
- ``better`` / ``worse``: the whole interval lies beyond the margin on that side (for a claim
  whose ``better`` is "either", any change beyond the margin is ``worse``);
- ``inconclusive``: the interval straddles an edge of the margin, or nothing is comparable.

A verdict that falls from SUPPORTED to REFUTED or ERROR is ``worse`` whatever the samples say.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from claims.framework import registry, stats
from claims.framework.core import Comparison, Evidence
from claims.framework.serialize import (
    InputError,
    MissingInputError,
    load_json,
    write_json_atomic,
    write_text_atomic,
)

BASELINE_DIR = Path(".trpo-claims") / "baselines"
BASELINE_SCHEMA = 1
OUTCOMES = ("equivalent", "better", "worse", "inconclusive")
# fingerprint fields that make timings and floating-point results machine-specific
MACHINE_FIELDS = ("machine", "cpu_model", "cpu_count", "platform", "python")
_FAILED = {"REFUTED", "ERROR"}


def _evidence(record: Mapping[str, Any]) -> Evidence:
    return Evidence(record["claim_id"], record["tier"], record["control"], record["config"],
                    record.get("data", {}), record.get("summary", {}))


def baseline_from_results(results: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A baseline (JSON-ready) from a run's results.json: per claim its verdict status, its
    comparison rule and its samples, plus the run's fingerprint, implementation and command."""
    claims: dict[str, Any] = {}
    for entry in results["claims"]:
        samples: dict[str, float] = {}
        comparison = None
        try:
            claim = registry.get(entry["id"])
        except KeyError:
            claim = None
        if claim is not None and entry.get("evidence") is not None:
            samples = claim.samples(_evidence(entry["evidence"]))
            comparison = None if claim.comparison is None else asdict(claim.comparison)
        verdict = entry["verdict"]
        claims[entry["id"]] = {"status": verdict["status"], "statistic": verdict["statistic"],
                               "value": verdict["value"], "samples": samples,
                               "comparison": comparison}
    return {"schema": BASELINE_SCHEMA, "name": name,
            "saved_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tier": results.get("tier"), "seed": results.get("seed"),
            "implementation": results.get("implementation"), "command": results.get("command"),
            "fingerprint": results.get("fingerprint", {}), "claims": claims}


def save_baseline(results: Mapping[str, Any], name: str,
                  directory: Path | str = BASELINE_DIR) -> Path:
    """Write ``results`` as the baseline ``name`` (``directory/name.json``)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"a baseline name is a plain file name, got {name!r}")
    path = Path(directory) / f"{name}.json"
    write_json_atomic(path, baseline_from_results(results, name))
    return path


def load_side(spec: str, directory: Path | str = BASELINE_DIR) -> dict[str, Any]:
    """A baseline from ``spec``: a saved name (``directory/NAME.json``), a baseline JSON file,
    or a run directory (its results.json). InputError (one line naming the file and the
    problem) when it is none of these, or is not JSON, or lacks the fields a comparison reads."""
    path = Path(spec)
    candidates = [Path(directory) / f"{spec}.json", path, path / "results.json"]
    for candidate in candidates:
        if candidate.is_file():
            return _checked_side(load_json(candidate, "a baseline or a results.json"), candidate,
                                 spec)
    if path.is_dir():
        raise InputError(f"{path}: a directory without results.json, so not a run directory "
                         "(nor a baseline)")
    raise MissingInputError(f"{spec!r} is neither a saved baseline in {directory}, a baseline "
                            "JSON file, nor a run directory with results.json")


def _checked_side(data: Any, path: Path, spec: str) -> dict[str, Any]:
    """A baseline from the parsed file ``path``: a results.json (converted) or a baseline whose
    ``claims`` maps ids to entries with a status; InputError naming what is missing."""
    kind = "neither a baseline nor a results.json"
    if not isinstance(data, dict):
        raise InputError(f"{path}: {kind} (a JSON {type(data).__name__}, not an object)")
    claims = data.get("claims")
    if isinstance(claims, list):  # a results.json
        for i, entry in enumerate(claims):
            verdict = entry.get("verdict") if isinstance(entry, dict) else None
            if not (isinstance(verdict, dict) and "id" in entry
                    and all(k in verdict for k in ("status", "statistic", "value"))):
                raise InputError(f"{path}: a results.json whose claim entry {i} has no id or "
                                 "verdict (status, statistic, value)")
        return baseline_from_results(data, spec)
    if not isinstance(claims, dict):
        raise InputError(f"{path}: {kind} (no 'claims' field)" if claims is None else
                         f"{path}: {kind} ('claims' is a {type(claims).__name__})")
    if data.get("schema", BASELINE_SCHEMA) != BASELINE_SCHEMA:
        raise InputError(f"{path}: baseline schema {data['schema']!r}; this trpo-claims reads "
                         f"schema {BASELINE_SCHEMA}")
    for cid, entry in claims.items():
        if not isinstance(entry, dict) or "status" not in entry:
            raise InputError(f"{path}: baseline entry {cid!r} has no status")
        if entry.get("comparison") is not None and not isinstance(entry.get("samples"), dict):
            raise InputError(f"{path}: baseline entry {cid!r} declares a comparison but holds "
                             "no samples")
    return {"name": spec} | data


@dataclass(frozen=True)
class ClaimComparison:
    claim_id: str
    outcome: str  # one of OUTCOMES
    baseline_status: str | None
    candidate_status: str | None
    difference: float | None  # mean paired difference, candidate - baseline (scaled if relative)
    ci: tuple[float, float] | None
    margin: float | None
    n: int  # paired samples
    message: str


def paired_differences(baseline: Mapping[str, float], candidate: Mapping[str, float],
                       rule: Comparison) -> np.ndarray:
    """candidate - baseline over the keys both have, divided by the baseline's mean |value|
    when the margin is relative; shape (n,)."""
    keys = [k for k in baseline if k in candidate]
    base = np.array([baseline[k] for k in keys], dtype=float)
    diff = np.array([candidate[k] for k in keys], dtype=float) - base
    if rule.relative and keys:
        scale = float(np.mean(np.abs(base)))
        diff = diff / scale if scale > 0 else diff
    return diff


def decide_difference(ci: tuple[float, float], rule: Comparison) -> str:
    """The outcome of a difference's interval under ``rule`` (see the module docstring)."""
    lo, hi = ci
    m = rule.margin
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if -m <= lo and hi <= m:
        return "equivalent"
    if rule.better == "either":
        return "worse" if hi < -m or lo > m else "inconclusive"
    good_lo, good_hi = (lo, hi) if rule.better == "higher" else (-hi, -lo)
    if good_lo > m:
        return "better"
    if good_hi < -m:
        return "worse"
    return "inconclusive"


def compare_claim(claim_id: str, baseline: Mapping[str, Any] | None,
                  candidate: Mapping[str, Any] | None) -> ClaimComparison:
    """One claim's comparison (either side may lack it)."""
    b_status = None if baseline is None else baseline["status"]
    c_status = None if candidate is None else candidate["status"]
    if baseline is None or candidate is None:
        side = "baseline" if baseline is None else "candidate"
        return ClaimComparison(claim_id, "inconclusive", b_status, c_status, None, None, None,
                               0, f"not in the {side}")
    regression = b_status == "SUPPORTED" and c_status in _FAILED
    rule_json = candidate.get("comparison") or baseline.get("comparison")
    if rule_json is None:
        outcome = ("worse" if regression else "equivalent" if b_status == c_status
                   else "better" if b_status in _FAILED and c_status == "SUPPORTED"
                   else "inconclusive")
        return ClaimComparison(claim_id, outcome, b_status, c_status, None, None, None, 0,
                               "by verdict (the claim declares no samples to compare)")
    rule = Comparison(**rule_json)
    diff = paired_differences(baseline["samples"], candidate["samples"], rule)
    if diff.size == 0:
        outcome, mean, ci = "inconclusive", None, None
        message = "no (task, seed) sample in common"
    else:
        mean = float(diff.mean())
        ci = stats.bootstrap_ci(diff) if diff.size >= 2 else (mean, mean)
        outcome = decide_difference(ci, rule)
        message = f"{rule.statistic}; margin {rule.margin:g}" + (
            " (relative)" if rule.relative else "")
    unpaired = sorted(set(baseline["samples"]) ^ set(candidate["samples"]))
    if unpaired:  # cells are paired by key (task, seed, delta, batch); say which are missing
        message += (f"; {len(unpaired)} cell(s) on one side only, not compared (e.g. a crash "
                    f"before any measured update): {', '.join(unpaired[:3])}"
                    + (", ..." if len(unpaired) > 3 else ""))
    if regression:
        outcome = "worse"
        message = f"verdict fell from {b_status} to {c_status}; " + message
    return ClaimComparison(claim_id, outcome, b_status, c_status, mean, ci, rule.margin,
                           int(diff.size), message)


def machine_differences(baseline: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[str]:
    """Fingerprint fields (machine, packages) that differ between the two sides."""
    fb, fc = baseline.get("fingerprint", {}), candidate.get("fingerprint", {})
    out = [f"{k}: {fb.get(k)!r} vs {fc.get(k)!r}" for k in MACHINE_FIELDS
           if fb.get(k) != fc.get(k)]
    pb, pc = fb.get("packages", {}), fc.get("packages", {})
    out += [f"{p}: {pb.get(p)!r} vs {pc.get(p)!r}" for p in sorted(set(pb) | set(pc))
            if pb.get(p) != pc.get(p)]
    return out


def compare(baseline: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[ClaimComparison]:
    """Every claim of either side, in the baseline's order, then the candidate's new ones."""
    ids = list(dict.fromkeys([*baseline["claims"], *candidate["claims"]]))
    return [compare_claim(i, baseline["claims"].get(i), candidate["claims"].get(i))
            for i in ids]


def comparison_table(rows: list[ClaimComparison]) -> str:
    """Markdown table of the comparisons."""
    lines = ["| claim | outcome | baseline | candidate | mean difference [95% CI] | n | rule |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = "" if r.difference is None else f"{r.difference:+.3g}"
        if r.ci is not None:
            diff += f" [{r.ci[0]:+.3g}, {r.ci[1]:+.3g}]"
        lines.append(f"| {r.claim_id} | {r.outcome} | {r.baseline_status} | "
                     f"{r.candidate_status} | {diff} | {r.n} | {r.message} |")
    return "\n".join(lines)


# --- CLI: trpo-claims compare ----------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", metavar="BASELINE",
                        help="a name saved with `run --save`, a baseline JSON, or a run directory")
    parser.add_argument("candidate", metavar="CANDIDATE", help="the same kinds as BASELINE")
    parser.add_argument("--baseline-dir", type=Path, default=BASELINE_DIR,
                        help=f"where saved baselines live (default {BASELINE_DIR})")
    parser.add_argument("--markdown", type=Path, metavar="FILE", default=None,
                        help="also write the table to FILE")


def handle(args: argparse.Namespace) -> int:
    """Print the comparison; exit 1 when any claim is worse (a regression)."""
    base = load_side(args.baseline, args.baseline_dir)
    cand = load_side(args.candidate, args.baseline_dir)
    for difference in machine_differences(base, cand):
        print(f"WARNING: the runs come from different machines or packages ({difference}); "
              "differences may not be the implementation's", file=sys.stderr)
    for key in ("tier", "seed"):
        if base.get(key) != cand.get(key):
            print(f"WARNING: {key} differs: {base.get(key)!r} vs {cand.get(key)!r}",
                  file=sys.stderr)
    rows = compare(base, cand)
    table = comparison_table(rows)
    print(f"baseline {base['name']} ({_impl_name(base)}), candidate {cand['name']} "
          f"({_impl_name(cand)})")
    print(table)
    if args.markdown is not None:
        write_text_atomic(args.markdown, table + "\n")
    counts = {o: sum(r.outcome == o for r in rows) for o in OUTCOMES}
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if counts["worse"] else 0


def _impl_name(side: Mapping[str, Any]) -> str:
    record = side.get("implementation") or {}
    return str(record.get("name") or record.get("spec") or "trpo_ref")
