"""``trpo-claims audit``: the implementation claims on every installed TRPO adapter at a tier,
one comparative report (issue 13, item 6).

For each library in :data:`LIBRARIES` whose adapter imports (trpo_ref first: the paper-faithful
reference at the same tier, so a verdict the reference gets too reads as the claim's, not the
library's), the claims that judge any
implementation (those with a ``requires``: the step claims, and the training claims where the
adapter can train) run at the tier into ``OUT/LIBRARY/`` (results.json, report.md), without the
negative controls (they patch trpo_ref and are the same for every library: ``trpo-claims run``
shows them). ``OUT/README.md`` and ``OUT/audit.json`` then set the libraries side by side:

- each claim's verdict and value;
- the KL overshoot by task and action dimension: the largest mean KL(old || new) of an update
  over delta, from the kl_within_delta evidence (where a library sizes its step by a KL
  averaged over action dimensions, the overshoot grows with them);
- restore and crash behaviour: impl.rejected_update_restores' verdict, and every cell in which
  the implementation raised, hung, died or returned something malformed (update index, kind,
  message, the state the suite measured it left the policy in), from the step claims' evidence;
- mutant detection: ``reports/mutants/LIBRARY/detection.json`` where
  ``trpo-claims fork-check --impl SPEC --mutants`` wrote one.

Libraries whose adapter cannot be imported are listed with the import error; those known not to
install beside this project's torch are listed with the measured reason (:data:`NOT_INSTALLABLE`).

A standard-tier audit takes hours, so it is resumable at three grains: the trainings go to a job
cache (``OUT/jobs`` by default: an interrupted training run loses only the job in progress), a
library's interrupted run resumes claim by claim (:func:`claims.framework.runner.run_claims`), and
a library whose ``OUT/LIBRARY/results.json`` is a complete run of the same plan (tier, seed,
claims, adapter) is kept, not rerun (``--restart`` reruns it). ``audit.json`` keeps the lines of
the libraries not rerun, so ``--library`` adds to an audit instead of replacing it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from claims.catalogue.implementation.sequence import forget_updates
from claims.framework import registry
from claims.framework.core import DEFAULT_TIER, TIERS, Claim
from claims.framework.impl import (
    REFERENCE_SPEC,
    ImplementationError,
    UnderTest,
    capabilities,
    load_implementation,
    use_implementation,
)
from claims.framework.jobs import Execution, JobCache, current_execution, execution
from claims.framework.runner import previous_run, run_claims, run_plan
from claims.framework.serialize import write_json_atomic, write_text_atomic
from trpo_ref.deep.runtime import torch_threads

LIBRARIES = {  # report name -> adapter spec; the reference first, as the column to read against
    "trpo_ref": REFERENCE_SPEC,
    "sb3_contrib": "claims.adapters.sb3_contrib:factory",
    "tianshou": "claims.adapters.tianshou:factory",
    "pfrl": "claims.adapters.pfrl:factory",
    "skrl": "claims.adapters.skrl:factory",
}
NOT_INSTALLABLE = {  # measured with `pip install --dry-run` (see docs/audit.md)
    "mushroom_rl": "mushroom-rl 1.10.2 (the newest) requires torch==2.5.1 and numpy==1.24.4 "
                   "(Requires-Dist pins); installing it would replace this project's torch "
                   "2.13.0 and numpy 2.x",
}
MUTANTS_DIR = Path("reports") / "mutants"


def audit_claims() -> list[Claim]:
    """The claims that judge any implementation (those declaring a ``requires``)."""
    return [c for c in registry.all_claims() if c.requires is not None]


def kl_overshoot(claim: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (task, seed): the largest mean KL of an update over delta, with the task's action
    dimension, from a kl_within_delta record of results.json."""
    import gymnasium as gym

    evidence = claim.get("evidence") or {}
    delta = (evidence.get("config") or {}).get("deltas", [None])[0]
    rows = []
    for key, kls in ((evidence.get("data") or {}).get("kl_mean") or {}).items():
        env_id = key.split(" seed ")[0]
        env = gym.make(env_id)
        space = env.action_space
        env.close()
        dims = int(space.shape[0]) if space.shape else 1
        finite = [k for k in kls if k is not None]
        rows.append({"cell": key, "action_dims": dims, "delta": delta,
                     "max_kl_over_delta": max(finite) / delta if finite and delta else None})
    return rows


def crashed_cells(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cell, over the step claims of a results.json, in which the implementation crashed
    (raised, hung, died or returned malformed output): claim, cell, update index, kind, error
    and the state the suite measured the policy in afterwards. A cell shared by several claims
    is listed once, under the first claim that reports it."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, Any]] = set()
    for claim in results.get("claims", []):
        data = (claim.get("evidence") or {}).get("data") or {}
        for cell, crash in sorted((data.get("crashes") or {}).items()):
            if crash is None or (cell, crash.get("update")) in seen:
                continue
            seen.add((cell, crash.get("update")))
            rows.append({"claim": claim["id"], "cell": cell, "update": crash.get("update"),
                         "kind": crash.get("kind"), "error": crash.get("error"),
                         "state": crash.get("state")})
    return rows


def summarize(name: str, spec: str, results: dict[str, Any],
              mutants_dir: Path = MUTANTS_DIR) -> dict[str, Any]:
    """One library's line of the audit, from its results.json (and mutant check, if any)."""
    claims = {c["id"]: c for c in results["claims"]}
    verdicts = {i: {"status": (c.get("verdict") or {}).get("status", "ERROR"),
                    "value": (c.get("verdict") or {}).get("value"),
                    "message": (c.get("verdict") or {}).get("message")
                    or (c.get("error") or {}).get("message")}
                for i, c in claims.items()}
    restore = claims.get("impl.rejected_update_restores", {})
    mutants = None
    detection = mutants_dir / name / "detection.json"
    if detection.is_file():
        d = json.loads(detection.read_text())
        mutants = {k: d.get(k) for k in ("bugs_caught", "bugs_applicable", "false_alarms",
                                         "clean_reference_passes", "not_applicable", "missed",
                                         "complete", "tier")}
    git = (results.get("fingerprint") or {}).get("git") or {}
    return {"library": name, "spec": spec, "implementation": results.get("implementation"),
            "commit": git.get("commit"), "dirty": git.get("dirty"),
            "finished_utc": results.get("finished_utc"), "runtime_s": results.get("runtime_s"),
            "verdicts": verdicts,
            "kl_overshoot": kl_overshoot(claims.get("impl.kl_within_delta", {})),
            "restore": {"status": verdicts.get("impl.rejected_update_restores", {}).get("status"),
                        "crash": (restore.get("error") or {}).get("message")},
            "crashes": crashed_cells(results),
            "mutants": mutants}


def finished_run(out_dir: Path, *, tier: str, seed: int, ids: list[str],
                 spec: str) -> dict[str, Any] | None:
    """``out_dir``'s results.json when it is a complete run of this plan, else None."""
    try:
        earlier = previous_run(out_dir)
    except Exception:  # unreadable: run_claims reports it and replaces it
        return None
    if earlier is None or not earlier.get("complete"):
        return None
    plan = run_plan(tier=tier, seed=seed, controls=False, claim_ids=ids, impl=spec)
    theirs = run_plan(tier=earlier.get("tier"), seed=earlier.get("seed"),
                      controls=earlier.get("controls"), claim_ids=earlier.get("planned_claims"),
                      impl=(earlier.get("implementation") or {}).get("spec"))
    return earlier if theirs == plan else None


def earlier_lines(out: Path, tier: str, seed: int) -> list[dict[str, Any]]:
    """The library lines of ``out``'s audit.json when it is an audit at the same tier and seed
    (so a run of some libraries adds to it), else []."""
    path = out / "audit.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(doc, dict) or doc.get("tier") != tier or doc.get("seed") != seed:
        return []
    return [line for line in doc.get("libraries", []) if isinstance(line, dict)]


def audit(tier: str = DEFAULT_TIER, libraries: dict[str, str] | None = None, seed: int = 0,
          out: Path | str = Path("reports") / "audit", progress: Any = None,
          cache: Path | str | None = None, restart: bool = False) -> dict[str, Any]:
    """Run the audit; returns (and writes) {"libraries": [...], "unavailable": {...}}.
    ``cache``: the trainings' job cache (default ``OUT/jobs``); ``restart``: rerun libraries
    whose complete run of the same plan is already in ``OUT``."""
    out = Path(out)
    libraries = dict(LIBRARIES if libraries is None else libraries)
    lines = [line for line in earlier_lines(out, tier, seed) if line["library"] not in libraries]
    unavailable = dict(NOT_INSTALLABLE)
    settings = Execution(**{**vars(current_execution()),
                            "cache": JobCache(Path(cache) if cache else out / "jobs")})

    def write() -> dict[str, Any]:
        order = list(LIBRARIES)
        lines.sort(key=lambda line: order.index(line["library"])
                   if line["library"] in order else len(order))
        report = {"tier": tier, "seed": seed, "libraries": lines, "unavailable": unavailable}
        write_json_atomic(out / "audit.json", report)  # after every library: nothing lost
        write_text_atomic(out / "README.md", audit_markdown(report))
        return report

    for name, spec in libraries.items():
        try:
            offered = capabilities(load_implementation(spec))
        except ImplementationError as error:
            unavailable[name] = str(error)
            if progress is not None:
                print(f"{name}: not available ({error})", file=progress, flush=True)
            continue
        claims = [c for c in audit_claims() if c.requires <= offered]
        ids = [c.id for c in claims]
        done = None if restart else finished_run(out / name, tier=tier, seed=seed, ids=ids,
                                                 spec=spec)
        if done is not None:
            if progress is not None:
                print(f"{name}: kept the complete run in {out / name} (finished "
                      f"{done.get('finished_utc')}; --restart reruns it)", file=progress,
                      flush=True)
            lines.append(summarize(name, spec, done))
            write()
            continue
        if progress is not None:
            print(f"{name}: {len(claims)} claims at tier {tier}", file=progress, flush=True)
        forget_updates()
        with use_implementation(UnderTest(spec)), torch_threads(1), execution(settings):
            result = run_claims(claims, tier=tier, seed=seed, out_dir=out / name,
                                controls=False, progress=progress, restart=restart)
        lines.append(summarize(name, spec, result.results))
        write()
    return write()


def rebuild(tier: str = DEFAULT_TIER, seed: int = 0,
            out: Path | str = Path("reports") / "audit") -> dict[str, Any]:
    """Rewrite ``OUT/audit.json`` and ``OUT/README.md`` from the libraries' results.json files
    already in ``OUT`` (complete or not) at ``tier`` and ``seed``, with the current mutant
    detection reports; nothing runs. The unavailable list is kept from the earlier audit.json."""
    out = Path(out)
    try:
        earlier = json.loads((out / "audit.json").read_text())
    except (OSError, ValueError):
        earlier = {}
    unavailable = dict(NOT_INSTALLABLE) | dict(earlier.get("unavailable") or {})
    lines = []
    for name, spec in LIBRARIES.items():
        try:
            results = previous_run(out / name)
        except Exception:
            results = None
        if results is not None and results.get("tier") == tier and results.get("seed") == seed:
            lines.append(summarize(name, spec, results))
            unavailable.pop(name, None)
    report = {"tier": tier, "seed": seed, "libraries": lines, "unavailable": unavailable}
    write_json_atomic(out / "audit.json", report)
    write_text_atomic(out / "README.md", audit_markdown(report))
    return report


def _value(v: Any) -> str:
    try:
        return f"{float(v):.3g}"
    except (TypeError, ValueError):
        return ""


def _cell_text(text: Any, width: int = 160) -> str:
    """``text`` on one line, fit for a Markdown table cell."""
    return " ".join(str(text or "").split()).replace("|", "/")[:width]


def audit_markdown(report: dict[str, Any]) -> str:
    libs = report["libraries"]
    ids = list(dict.fromkeys(i for lib in libs for i in lib["verdicts"]))
    lines = [f"# Audit of the PyTorch TRPOs (tier {report['tier']}, seed {report['seed']})", "",
             "Reproduce: `trpo-claims audit --tier " + str(report["tier"]) + " --seed "
             + str(report["seed"]) + "` (resumes: finished libraries and trainings are kept).",
             "",
             "| library | implementation | suite commit | finished | runtime |",
             "|---|---|---|---|---|",
             *[f"| {lib['library']} | {(lib.get('implementation') or {}).get('name', '')} | "
               f"`{(lib.get('commit') or '?')[:7]}`{' (dirty)' if lib.get('dirty') else ''} | "
               f"{lib.get('finished_utc') or ''} | "
               f"{_value((lib.get('runtime_s') or 0) / 60)} min |" for lib in libs],
             "",
             "Each library's own update, driven through its adapter (claims/adapters/), judged "
             "by the implementation claims; negative controls are not rerun here (they patch "
             "trpo_ref: `trpo-claims run`). Per-library reports: `LIBRARY/report.md`.", "",
             "## Verdicts", "",
             "| claim | " + " | ".join(lib["library"] for lib in libs) + " |",
             "|---|" + "---|" * len(libs)]
    for i in ids:
        cells = []
        for lib in libs:
            v = lib["verdicts"].get(i)
            cells.append("" if v is None else f"{v['status']} {_value(v['value'])}".strip())
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    lines += ["", "## KL overshoot by action dimension (largest mean KL of an update / delta)",
              "", "| library | cell | action dims | max KL / delta |", "|---|---|---|---|"]
    for lib in libs:
        for row in lib["kl_overshoot"]:
            lines.append(f"| {lib['library']} | {row['cell']} | {row['action_dims']} | "
                         f"{_value(row['max_kl_over_delta'])} |")
    lines += ["", "## Restore and crash behaviour", "",
              "Every cell in which the implementation raised, hung, died or returned malformed "
              "output; *state* is what the suite measured the policy to be afterwards "
              "(unchanged, changed, non-finite, unknown). A crash that leaves the policy changed "
              "or non-finite counts against restore.", "",
              "| library | impl.rejected_update_restores | cell | update | kind | state | error |",
              "|---|---|---|---|---|---|---|"]
    for lib in libs:
        status = lib["restore"]["status"]
        crashes = lib.get("crashes") or []
        if not crashes:
            error = _cell_text(lib["restore"]["crash"] or "none")
            lines.append(f"| {lib['library']} | {status} | | | | | {error} |")
        for row in crashes:
            lines.append(f"| {lib['library']} | {status} | {row['cell']} | {row['update']} | "
                         f"{row['kind']} | {row['state']} | {_cell_text(row['error'])} |")
    lines += ["", "## Mutant detection (`trpo-claims fork-check --impl SPEC --mutants`)", "",
              "| library | bugs caught | false alarms | clean rerun passes | missed |",
              "|---|---|---|---|---|"]
    for lib in libs:
        m = lib["mutants"]
        if m is None:
            lines.append(f"| {lib['library']} | no catalogue run | | | |")
            continue
        lines.append(f"| {lib['library']} | {m['bugs_caught']} of {m['bugs_applicable']} "
                     f"(tier {m['tier']}{'' if m['complete'] else ', incomplete'}) | "
                     f"{len(m['false_alarms'] or [])} | "
                     f"{'yes' if m['clean_reference_passes'] else 'NO'} | "
                     f"{', '.join(m['missed'] or [])} |")
    pending = [name for name in LIBRARIES
               if name not in {lib["library"] for lib in libs} | set(report["unavailable"])]
    if pending:
        lines += ["", "## Not yet run at this tier", "",
                  f"{', '.join(pending)}: the same command resumes the audit and runs them "
                  "(finished libraries and trainings are kept)."]
    if report["unavailable"]:
        lines += ["", "## Not audited", ""]
        lines += [f"- {name}: {why}" for name, why in report["unavailable"].items()]
    return "\n".join(lines) + "\n"


# --- CLI -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tier", choices=TIERS, default=DEFAULT_TIER,
                        help=f"budget tier of the claims (default {DEFAULT_TIER})")
    parser.add_argument("--library", metavar="NAME", action="extend", nargs="+", default=[],
                        choices=list(LIBRARIES), help="only these libraries (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument("--out", type=Path, default=Path("reports") / "audit",
                        help="output directory (default reports/audit)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="job cache of the trainings (default OUT/jobs)")
    parser.add_argument("--restart", action="store_true",
                        help="rerun libraries whose complete run of the same plan is in OUT")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite OUT/audit.json and OUT/README.md from the results already "
                             "in OUT (and the current mutant reports); run nothing")


def handle(args: argparse.Namespace) -> int:
    if args.report_only:
        rebuild(args.tier, args.seed, args.out)
        print(f"wrote {args.out / 'README.md'} and {args.out / 'audit.json'}")
        return 0
    chosen = {n: s for n, s in LIBRARIES.items() if not args.library or n in args.library}
    audit(args.tier, chosen, args.seed, args.out, progress=sys.stdout, cache=args.cache,
          restart=args.restart)
    print(f"wrote {args.out / 'README.md'} and {args.out / 'audit.json'}")
    return 0
