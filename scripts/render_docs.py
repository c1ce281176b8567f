"""Render every number and verdict table of README.md and docs/*.md from the committed reports.

The documents hold *rendered regions*::

    <!-- BEGIN rendered:NAME -->
    ... generated text, never edited by hand ...
    <!-- END rendered:NAME -->

NAME is ``KIND`` or ``KIND:ARG:ARG...``; :data:`RENDERERS` maps each kind to the function that
writes the region from the committed ``reports/**/results.json`` (and fork-check ``detection.json``)
and the claim registry (:func:`claims.framework.registry.all_claims`). What a region shows is read,
never typed, so a rerun of a report or a new claim changes the docs by rerunning this script:

    python scripts/render_docs.py            # rewrite the regions in place
    python scripts/render_docs.py --check    # exit 1 and print a diff if the committed text differs

A registry claim missing from a report shows as "not in this report"; a claim of a report that
is no longer in the registry is listed after the others. Equations in rendered text are written
as "eq. (n)" (:func:`normalize_equations`), the one spelling the docs use.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python scripts/render_docs.py` from anywhere
    sys.path.insert(0, str(ROOT))

from claims.audit.fork_check import detection_markdown, mutant_markdown  # noqa: E402
from claims.cli.audit import LIBRARIES, audit_markdown  # noqa: E402
from claims.framework.core import TIERS  # noqa: E402
from claims.framework.registry import all_claims  # noqa: E402
from claims.framework.report import (  # noqa: E402
    DASH,
    STATUS_ORDER,
    control_status,
    fmt_ci,
    fmt_seconds,
    fmt_value,
    rule_text,
    verdict_detail,
)

REGION = re.compile(
    r"(?P<begin><!-- BEGIN rendered:(?P<name>[a-z][^\s>]*) -->\n)(?P<body>.*?)"
    r"(?P<end><!-- END rendered:(?P=name) -->)",
    re.S,
)
NOT_IN_REPORT = "not in this report"
NOT_IN_REGISTRY = "(no longer in the registry)"
STALE_RULE = "stale: rule changed since"  # the report judged the claim by a rule no longer declared
FORK_CHECK_RUNS = "reports/fork-check/runs"  # the fork check's own runs, not reports of the suite
REFERENCE_SPECS = (None, "claims.adapters.trpo_ref:factory")  # runs of trpo_ref itself


class Context(NamedTuple):
    """Where a region is rendered (a NamedTuple, so the script imports without a package)."""

    root: Path  # the repository root: report paths are relative to it
    doc: Path  # the document being rendered: links are relative to its folder


# --- helpers ---------------------------------------------------------------------------------


@cache
def _load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def load_results(ctx: Context, run_dir: str) -> dict[str, Any]:
    path = ctx.root / run_dir / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results.json in {run_dir!r} (looked for {path})")
    return _load_json(path)


@cache
def registry() -> tuple[dict[str, Any], ...]:
    """Every registered claim's description, in registry order."""
    return tuple(claim.describe() for claim in all_claims())


def relpath(ctx: Context, target: str) -> str:
    """``target`` (a path relative to the repository root) as seen from ``ctx.doc``."""
    return os.path.relpath(ctx.root / target, ctx.doc.parent).replace(os.sep, "/")


def link(ctx: Context, target: str, text: str | None = None) -> str:
    """A Markdown link from ``ctx.doc`` to ``target``."""
    return f"[{text or target}]({relpath(ctx, target)})"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def counts(statuses: Iterable[str | None]) -> str:
    c = Counter(s for s in statuses if s is not None)
    return ", ".join(f"{c[s]} {s}" for s in STATUS_ORDER if c[s]) or DASH


def estimate(verdict: Mapping[str, Any]) -> str:
    if verdict.get("value") is None:
        return DASH
    ci = verdict.get("ci")
    return fmt_value(verdict["value"]) + ("" if ci is None else f" {fmt_ci(ci)}")


def fmt_any(x: Any) -> str:
    """A summary value for prose: numbers to 4 significant digits, containers inline."""
    if isinstance(x, Mapping):
        return "; ".join(f"{k}: {fmt_any(v)}" for k, v in x.items())
    if isinstance(x, list | tuple):
        return "[" + ", ".join(fmt_any(v) for v in x) + "]"
    return fmt_value(x)


def _consecutive_join(a: str, b: str) -> str:
    word = "and" if int(b) == int(a) + 1 else "to"
    return f"eq. ({a}) {word} eq. ({b})"


def normalize_equations(text: str) -> str:
    """Write every equation reference as "eq. (n)": "Eq. 9" -> "eq. (9)", "eq. (3)-(4)" ->
    "eq. (3) and eq. (4)", "eq. (4), (9) and (12)" -> "eq. (4), eq. (9) and eq. (12)",
    "equation 2" -> "eq. (2)"."""
    text = re.sub(r"\b(?:[Ee]quations?|[Ee]qns?\.?|[Ee]qs?\.)\s*", "eq. ", text)
    text = re.sub(r"\beq\. (\d+)\b", r"eq. (\1)", text)
    text = re.sub(r"eq\. \((\d+)\)\s*[-–]\s*(?:\((\d+)\)|(\d+)\b)",
                  lambda m: _consecutive_join(m[1], m[2] or m[3]), text)
    while re.search(r"eq\. \(\d+\)(?:,\s*|,?\s+and\s+)\(\d+\)", text):  # lists
        text = re.sub(r"(eq\. \(\d+\))(,\s*|,?\s+and\s+)\((\d+)\)", r"\1\2eq. (\3)", text)
    return text


def _is_reference(results: Mapping[str, Any]) -> bool:
    impl = results.get("implementation") or {}
    return impl.get("spec") in REFERENCE_SPECS


def committed_runs(root: Path) -> list[str]:
    """Every committed run directory (one with a results.json), the fork check's runs aside."""
    found = sorted(p.parent for p in (root / "reports").rglob("results.json"))
    rel = [p.relative_to(root).as_posix() for p in found]
    return [r for r in rel if not r.startswith(FORK_CHECK_RUNS)]


def _commit(results: Mapping[str, Any]) -> str:
    git = (results.get("fingerprint") or {}).get("git") or {}
    return (git.get("commit") or "unknown")[:7]


def provenance(ctx: Context, run_dir: str) -> str:
    r = load_results(ctx, run_dir)
    git = (r.get("fingerprint") or {}).get("git") or {}
    commit = _commit(r)
    tree = "dirty tree" if git.get("dirty") else "clean tree"
    impl = (r.get("implementation") or {}).get("name", "trpo_ref")
    cores = (r.get("fingerprint") or {}).get("cpu_count")
    report = link(ctx, run_dir + "/report.md", "report")
    return (f"From {link(ctx, run_dir + '/results.json')} ({report}): "
            f"`{' '.join(r['command'])}` at commit `{commit}` ({tree}); implementation {impl}, "
            f"tier {r['tier']}, seed {r['seed']}; {len(r['claims'])} claims in "
            f"{fmt_seconds(r.get('runtime_s'))} on a {cores}-core CPU"
            f"{'' if r.get('complete', True) else '; the run did NOT finish'}.")


# --- renderers -------------------------------------------------------------------------------


def render_verdicts(ctx: Context, args: Sequence[str]) -> str:
    """``verdicts:RUN_DIR[:PREFIX,PREFIX]``: the run's provenance and its verdict table, one row
    per registry claim (those whose id starts with a PREFIX, when given)."""
    run_dir, prefixes = args[0], tuple(args[1].split(",")) if len(args) > 1 else ("",)
    r = load_results(ctx, run_dir)
    entries = {e["id"]: e for e in r["claims"]}
    ids = [d["id"] for d in registry() if d["id"].startswith(prefixes)]
    ids += [cid for cid in entries if cid not in ids and cid.startswith(prefixes)]
    known = {d["id"] for d in registry()}
    rows = []
    for cid in ids:
        name = f"`{cid}`" + ("" if cid in known else f" {NOT_IN_REGISTRY}")
        e = entries.get(cid)
        if e is None:
            rows.append([name, DASH, DASH, DASH, NOT_IN_REPORT, DASH])
            continue
        rule = e["description"].get("rule", {})
        rows.append([name, rule.get("statistic", ""), rule_text(rule), estimate(e["verdict"]),
                     f"**{e['verdict']['status']}**", control_status(e) or DASH])
    header = ["Claim", "Statistic", "Rule", "Estimate [95% CI]", "Verdict", "Control"]
    controls = counts(control_status(e) for e in r["claims"])
    return "\n".join([provenance(ctx, run_dir), "",
                      *table(header, rows), "",
                      f"Verdicts: {counts(e['verdict']['status'] for e in r['claims'])}. "
                      f"Negative controls: {controls}."])


def render_run(ctx: Context, args: Sequence[str]) -> str:
    """``run:RUN_DIR``: one sentence of provenance (command, commit, runtime)."""
    return provenance(ctx, args[0])


def _tier_sources(ctx: Context) -> dict[str, list[str]]:
    """The reference runs (trpo_ref, seed 0, controls on) of each tier, newest first."""
    by_tier: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for run_dir in committed_runs(ctx.root):
        r = load_results(ctx, run_dir)
        if _is_reference(r) and r.get("seed") == 0 and r.get("controls", True):
            by_tier[r["tier"]].append((r.get("finished_utc") or "", run_dir))
    return {t: [d for _, d in sorted(runs, reverse=True)] for t, runs in by_tier.items()}


def render_matrix(ctx: Context, args: Sequence[str]) -> str:
    """``matrix``: every registry claim's verdict at each tier, from the newest reference run of
    that tier that holds the claim; a control that is not REFUTED is flagged in the cell."""
    sources = _tier_sources(ctx)
    rows = []
    for d in registry():
        cells = [f"[`{d['id']}`]({relpath(ctx, 'docs/claims.md')}#{d['id']})"]
        for tier in TIERS:
            entry = next((e for run in sources.get(tier, [])
                          for e in load_results(ctx, run)["claims"] if e["id"] == d["id"]), None)
            if entry is None:
                cells.append(NOT_IN_REPORT)
                continue
            if not same_rule(entry, d):
                cells.append(STALE_RULE)
                continue
            status, ctl = entry["verdict"]["status"], control_status(entry)
            flag = "" if ctl in (None, "REFUTED", "SKIPPED") else f" (control **{ctl}**)"
            cells.append(f"{status}{flag}")
        rows.append(cells)
    def report_links(tier: str) -> str:
        return ", ".join(link(ctx, run + "/report.md", run.removeprefix("reports/"))
                         + f" (`{_commit(load_results(ctx, run))}`)"
                         for run in sources.get(tier, [])) or "none"

    used = "; ".join(f"{tier}: {report_links(tier)}" for tier in TIERS)
    note = ("Reports read (trpo_ref, seed 0, controls on; the newest wins), with the commit each "
            f"ran at: {used}.")
    return "\n".join([*table(["Claim", *TIERS], rows), "", note])


def same_rule(entry: Mapping[str, Any], described: Mapping[str, Any]) -> bool:
    """Whether a report's claim was judged by the decision rule the registry declares now (a
    report made before a rule changed must not pass for a verdict of the current claim)."""
    then = (entry.get("description") or {}).get("rule")
    return then is None or json.dumps(then, sort_keys=True) == json.dumps(
        json.loads(json.dumps(described["rule"])), sort_keys=True)


def render_summary(ctx: Context, args: Sequence[str]) -> str:
    """``summary:RUN_DIR:CLAIM_ID[:control]``: the verdict and the evidence summary of one claim
    (or of its negative control) in a run."""
    run_dir, cid = args[0], args[1]
    which = args[2] if len(args) > 2 else "claim"
    entry = next((e for e in load_results(ctx, run_dir)["claims"] if e["id"] == cid), None)
    if entry is None:
        return f"`{cid}`: {NOT_IN_REPORT} ({link(ctx, run_dir + '/results.json')})."
    part = entry if which == "claim" else entry.get("control") or {}
    verdict = part.get("verdict")
    if verdict is None:
        return f"`{cid}` ({which}): not run in {link(ctx, run_dir + '/results.json')}."
    label = "" if which == "claim" else " negative control"
    detail = verdict_detail(verdict)
    lines = [f"`{cid}`{label} in {link(ctx, run_dir + '/results.json')}: "
             f"**{verdict['status']}**" + (f" ({detail})" if detail else "") + "."]
    message = (verdict.get("message") or "").strip().splitlines()
    if message and message[0] != detail:
        lines += ["", f"> {message[0]}", ""]
    summary = (part.get("evidence") or {}).get("summary") or {}
    lines += [f"- {k}: {fmt_any(v)}" for k, v in summary.items()]
    return "\n".join(lines)


def render_runs(ctx: Context, args: Sequence[str]) -> str:
    """``runs``: every committed run, with what it ran, where, how long, and what it found."""
    rows = []
    for run_dir in committed_runs(ctx.root):
        r = load_results(ctx, run_dir)
        git = (r.get("fingerprint") or {}).get("git") or {}
        commit = f"`{_commit(r)}`" + (" (dirty)" if git.get("dirty") else "")
        controls = (counts(control_status(e) for e in r["claims"])
                    if r.get("controls", True) else "not run")
        rows.append([
            link(ctx, run_dir + "/report.md", run_dir.removeprefix("reports/")),
            r["tier"], r["seed"], (r.get("implementation") or {}).get("name", "trpo_ref"),
            len(r["claims"]), commit, fmt_seconds(r.get("runtime_s")),
            counts(e["verdict"]["status"] for e in r["claims"]), controls,
        ])
    header = ["Report", "Tier", "Seed", "Implementation", "Claims", "Commit", "Runtime",
              "Verdicts", "Controls"]
    return "\n".join(table(header, rows))


def render_trainings(ctx: Context, args: Sequence[str]) -> str:
    """``trainings:RUN_DIR``: the run's trainings per task: runs, env steps, one-worker time."""
    r = load_results(ctx, args[0])
    by_task: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for t in r.get("trainings") or []:
        by_task[t["task"]].append(t)
    rows = [[task, sum(t["finished"] for t in ts), sum(t["planned"] for t in ts),
             f"{sum(t['env_steps'] for t in ts):,}", fmt_seconds(sum(t["wall_s"] for t in ts))]
            for task, ts in by_task.items()]
    every = r.get("trainings") or []
    rows.append(["total", sum(t["finished"] for t in every), sum(t["planned"] for t in every),
                 f"{sum(t['env_steps'] for t in every):,}",
                 fmt_seconds(sum(t["wall_s"] for t in every))])
    header = ["Task", "Finished", "Planned", "Env steps", "One-worker time"]
    return "\n".join([f"Trainings read by {link(ctx, args[0] + '/results.json')}, whenever they "
                      "ran (one-worker wall time as recorded in the job cache):", "",
                      *table(header, rows)])


def render_test_run(ctx: Context, args: Sequence[str]) -> str:
    """``test-run[:FILE]``: the default test run's measured wall time (scripts/time_tests.py;
    default FILE reports/test-run/timing.json)."""
    rel = args[0] if args else "reports/test-run/timing.json"
    if not (ctx.root / rel).is_file():
        return f"Not measured at this commit: `python scripts/time_tests.py` writes `{rel}`."
    t = _load_json(ctx.root / rel)
    outcome = "passed" if t["exit_status"] == 0 else f"FAILED (exit {t['exit_status']})"
    tree = " (dirty tree)" if t.get("dirty") else ""
    return (f"Measured ({link(ctx, rel)}, by `python scripts/time_tests.py`): "
            f"`{t['command']}` took {fmt_seconds(t['wall_s'])} and {outcome} on a "
            f"{t['cpu_count']}-core machine at commit `{t['commit'][:7]}`{tree} "
            f"(pytest: {t['pytest_summary']}).")


def render_perf(ctx: Context, args: Sequence[str]) -> str:
    """``perf[:DIR]``: the committed speed and memory measurements of issue 16 (default DIR
    reports/perf): the Hopper bench's ratios in one run (wall clock and per CPU second) and the
    Atari update's peak memory per batch size."""
    rel = args[0] if args else "reports/perf"
    bench_rel, memory_rel = f"{rel}/bench-hopper-50k-seed0.json", f"{rel}/atari-update-memory.json"
    lines = []
    if (ctx.root / bench_rel).is_file():
        b = _load_json(ctx.root / bench_rel)
        git, load = b["machine"]["git"], b["load_average"]
        commit = (git.get("commit") or "unknown")[:7]
        commit += " (dirty tree)" if git.get("dirty") else ""
        limits = [("raw gymnasium", b["raw_env"]),
                  ("unwrapped env.step", b.get("unwrapped_env")),
                  ("bare mujoco.mj_step", b.get("raw_mujoco")),
                  ("trpo_ref training", b["trpo_ref"])]
        lines += [f"{b['config']['env_id']}, {b['config']['steps']:,} steps, batch "
                  f"{b['config']['steps_per_iter']:,}, one run ({link(ctx, bench_rel)}, "
                  f"`trpo-claims bench`, commit `{commit}`, load average "
                  f"{load['before'][0]:.1f} before): update + value fit "
                  f"{b['trpo_ref']['update_share']:.1%} of iteration time.", "",
                  *table(["rate", "env-steps/s (wall)", "env-steps per CPU second"],
                         [(name, f"{r['steps_per_s']:,.0f}",
                           f"{r['steps_per_cpu_s']:,.0f}" if "steps_per_cpu_s" in r else "-")
                          for name, r in limits if r is not None])]
    if (ctx.root / memory_rel).is_file():
        m = _load_json(ctx.root / memory_rel)
        lines += ["", f"Atari update peak resident memory ({link(ctx, memory_rel)}, "
                  f"`{m['command']}`; passes over more than {m['chunk_above']:,} rows run in "
                  f"chunks of {m['chunk_rows']:,}):", "",
                  *table(["batch (agent steps)", "peak MiB", "seconds"],
                         [(f"{r['steps']:,}", f"{max(r['peak_mib'].values()):,.0f}",
                           f"{r['seconds']:,.0f}") for r in m["runs"]])]
    return "\n".join(lines).strip() or f"Not measured at this commit: nothing in `{rel}`."


def render_fork_check(ctx: Context, args: Sequence[str]) -> str:
    """``fork-check:DIR``: the detection table of ``DIR/detection.json``."""
    report = _load_json(ctx.root / args[0] / "detection.json")
    lines = detection_markdown(report).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| bug"))
    baseline = ctx.root / args[0] / "runs" / "baseline" / "results.json"
    commit = ((_load_json(baseline).get("fingerprint") or {}).get("git") or {}).get("commit", "?")
    return "\n".join([
        f"From {link(ctx, args[0] + '/detection.json')}: tier {report['tier']}, seed "
        f"{report['seed']}, claims {', '.join(f'`{c}`' for c in report['claims'])}; runs at commit "
        f"`{commit[:7]}`, {fmt_seconds(report['runtime_s'])} in all. Clean reference passes: "
        f"**{'yes' if report['clean_reference_passes'] else 'NO'}**; every seeded bug caught: "
        f"**{'yes' if report['all_bugs_caught'] else 'NO'}**.", "", *lines[start:]])


def render_mutants(ctx: Context, args: Sequence[str]) -> str:
    """``mutants:DIR``: the headline of a mutant check's ``DIR/detection.json`` (detection, false
    alarms, wall time, commit), or its whole table with ``mutants:DIR:table``."""
    report = _load_json(ctx.root / args[0] / "detection.json")
    lines = mutant_markdown(report).splitlines()
    if args[1:] == ["table"]:
        start = next(i for i, line in enumerate(lines) if line.startswith("| mutant"))
        end = next((i for i, line in enumerate(lines[start:], start) if not line), len(lines))
        return "\n".join(lines[start:end])
    baseline = ctx.root / args[0] / "runs" / "baseline" / "results.json"
    commit = ((_load_json(baseline).get("fingerprint") or {}).get("git") or {}).get("commit", "?")
    rate = report["detection_rate"]
    source = link(ctx, args[0] + "/detection.md")
    return (f"`{report['impl']}`, tier {report['tier']} (from {source}, commit "
            f"`{commit[:7]}`): bugs caught **{report['bugs_caught']} of "
            f"{report['bugs_applicable']}**" + ("" if rate is None else f" ({100 * rate:.0f}%)")
            + f"; false alarms **{len(report['false_alarms'])}**; clean rerun passes: "
            f"**{'yes' if report['clean_reference_passes'] else 'NO'}**; wall time "
            f"{fmt_seconds(report['runtime_s'])}"
            + ("" if not report["missed"] else f"; missed: {', '.join(report['missed'])}")
            + ".")


def render_audit(ctx: Context, args: Sequence[str]) -> str:
    """``audit:DIR``: the verdict table (claim x library) of ``DIR/audit.json``, with the tier,
    each library's suite commit and run time, and the libraries not audited."""
    report = _load_json(ctx.root / args[0] / "audit.json")
    lines = audit_markdown(report).splitlines()
    start = lines.index("## Verdicts") + 2
    end = next(i for i, line in enumerate(lines[start:], start) if not line)
    runs = "; ".join(f"{lib['library']} `{(lib.get('commit') or '?')[:7]}`"
                     f"{' (dirty)' if lib.get('dirty') else ''}, "
                     f"{fmt_seconds(lib.get('runtime_s') or 0.0)}" for lib in report["libraries"])
    missing = ", ".join(report.get("unavailable") or {}) or "none"
    done = {lib["library"] for lib in report["libraries"]} | set(report.get("unavailable") or {})
    pending = ", ".join(name for name in LIBRARIES if name not in done)
    mutants = []
    for lib in report["libraries"]:
        m = lib.get("mutants")
        mutants.append("" if not m else f"{m['bugs_caught']} of {m['bugs_applicable']} caught, "
                       f"{len(m['false_alarms'] or [])} false alarms (tier {m['tier']})")
    if any(mutants):
        lines.insert(end, "| mutants of its update (`fork-check --mutants`) | "
                     + " | ".join(mutants) + " |")
        end += 1
    return "\n".join([
        f"From {link(ctx, args[0] + '/README.md')} (tier {report['tier']}, seed "
        f"{report['seed']}; {runs}; not audited: {missing}"
        + (f"; not yet run: {pending}" if pending else "") + "):", "", *lines[start:end]])


def _budget_text(budget: Any) -> str:
    if budget is None:
        return "none (SKIPPED)"
    return f"`{json.dumps(budget, separators=(', ', ': '))}`"


def _catalogue_entry(d: Mapping[str, Any]) -> list[str]:
    rule = d["rule"]
    alpha = "" if rule.get("alpha") is None else f", two-sided interval at alpha {rule['alpha']:g}"
    lines = [f'<a id="{d["id"]}"></a>', "", f"#### `{d['id']}`: {d['title']}", "",
             f"- **Source:** {d['source']} ({d['kind']})",
             f"- **Statement:** {d['statement']}",
             f"- **Protocol:** {d['protocol']}",
             f"- **Rule:** {rule['statistic']} {rule_text(rule)}{alpha}. {rule['description']}",
             f"- **Negative control:** {d['negative_control']}",
             "- **Budgets:**", *(f"  - {t}: {_budget_text(b)}" for t, b in d["budgets"].items())]
    if d.get("comparison"):
        c = d["comparison"]
        margin = f"{c['margin']:g}" + (" (relative)" if c.get("relative") else "")
        lines.append(f"- **Compared by:** {c['statistic']}; better: {c['better']}; margin {margin}")
    if d.get("deviations"):
        lines += ["- **Departs from the paper:**", *(f"  - {x}" for x in d["deviations"])]
    return [*lines, ""]


def render_catalogue(ctx: Context, args: Sequence[str]) -> str:
    """``catalogue``: every registry claim: id, source, statement, protocol, rule, control,
    budgets; an index table first."""
    claims = registry()
    index = table(["Claim", "Kind", "Source", "Title"],
                  ([f"[`{d['id']}`](#{d['id']})", d["kind"], d["source"], d["title"]]
                   for d in claims))
    by_group = Counter(d["id"].split(".")[0] for d in claims)
    groups = ", ".join(f"{n} {g}" for g, n in by_group.items())
    lines = [f"{len(claims)} claims ({groups}).", "", *index, ""]
    for group in by_group:
        lines += [f"### {group}", ""]
        for d in claims:
            if d["id"].split(".")[0] == group:
                lines += _catalogue_entry(d)
    return "\n".join(lines).rstrip()


def render_schema(ctx: Context, args: Sequence[str]) -> str:
    """``schema:RUN_DIR``: the fields a committed results.json actually holds, at each level."""
    r = load_results(ctx, args[0])
    entry = r["claims"][0]

    def keys(x: Mapping[str, Any]) -> str:
        return ", ".join(f"`{k}`" for k in x)

    return "\n".join([
        f"Fields of {link(ctx, args[0] + '/results.json')} (`schema_version` "
        f"{r.get('schema_version')}):", "",
        f"- top level: {keys(r)}",
        f"- `fingerprint`: {keys(r.get('fingerprint') or {})}",
        f"- each of `claims`: {keys(entry)}",
        f"- `description`: {keys(entry['description'])}",
        f"- `verdict`: {keys(entry['verdict'])}",
        f"- `evidence`: {keys(entry['evidence'] or {})}",
        f"- `runtime_s`: {keys(entry.get('runtime_s') or {})}",
        f"- `control`: {keys(entry['control'] or {}) or DASH}",
        f"- each of `trainings`: {keys((r.get('trainings') or [{}])[0]) or DASH}",
    ])


def render_config(ctx: Context, args: Sequence[str]) -> str:
    """``config:MODULE:CLASS``: a dataclass's fields, defaults and one-line docs (the comment
    that ends each field's line), read from its source."""
    import ast
    import dataclasses
    import importlib
    import inspect

    cls = getattr(importlib.import_module(args[0]), args[1])
    source = inspect.getsource(cls)
    lines = source.splitlines()
    docs = {node.target.id: lines[node.lineno - 1].partition("  # ")[2].strip()
            for node in ast.parse(source).body[0].body
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    rows = [[f"`{f.name}`", f"`{f.default!r}`" if f.default is not dataclasses.MISSING else DASH,
             docs.get(f.name, "")] for f in dataclasses.fields(cls)]
    return "\n".join(table(["Field", "Default", "Meaning"], rows))


def _subcommands() -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """``trpo-claims``'s subcommands: name -> (one-line help, parser)."""
    from claims.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    return {name: (helps.get(name, ""), p) for name, p in sub.choices.items()}


def _usage(parser: argparse.ArgumentParser) -> str:
    width = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps usage at the terminal's width
    try:
        text = parser.format_usage()
    finally:
        os.environ.pop("COLUMNS") if width is None else os.environ.update(COLUMNS=width)
    lines = text.removeprefix("usage: ").replace("[-h] ", "").rstrip().splitlines()
    return "\n".join(line.strip() if i == 0 else "    " + line.strip()
                     for i, line in enumerate(lines))


def render_cli(ctx: Context, args: Sequence[str]) -> str:
    """``cli[:COMMAND,COMMAND]``: every subcommand of ``trpo-claims`` with its one-line help,
    from the command's own parser; the full usage of the COMMANDs named."""
    subs = _subcommands()
    rows = [[f"`trpo-claims {name}`", text] for name, (text, _) in subs.items()]
    lines = table(["Command", "What it does"], rows)
    for name in (args[0].split(",") if args else []):
        lines += ["", "```", _usage(subs[name][1]), "```"]
    return "\n".join(lines)


RENDERERS: dict[str, Callable[[Context, Sequence[str]], str]] = {
    "verdicts": render_verdicts,
    "run": render_run,
    "matrix": render_matrix,
    "summary": render_summary,
    "runs": render_runs,
    "trainings": render_trainings,
    "fork-check": render_fork_check,
    "mutants": render_mutants,
    "audit": render_audit,
    "test-run": render_test_run,
    "perf": render_perf,
    "catalogue": render_catalogue,
    "schema": render_schema,
    "cli": render_cli,
    "config": render_config,
}


# --- documents -------------------------------------------------------------------------------


def render_region(ctx: Context, name: str) -> str:
    kind, *args = name.split(":")
    if kind not in RENDERERS:
        raise ValueError(f"{ctx.doc}: unknown rendered region {name!r}; kinds: "
                         f"{', '.join(sorted(RENDERERS))}")
    return normalize_equations(RENDERERS[kind](ctx, args))


def render_text(text: str, ctx: Context) -> str:
    """``text`` with every rendered region rewritten."""
    def replace(m: re.Match[str]) -> str:
        return m["begin"] + render_region(ctx, m["name"]) + "\n" + m["end"]

    markers = re.findall(r"<!-- (?:BEGIN|END) rendered:[a-z]", text)
    if len(markers) != 2 * len(REGION.findall(text)):
        raise ValueError(f"{ctx.doc}: a rendered region's BEGIN or END marker is missing or "
                         "misspelled (each BEGIN rendered:NAME needs its END rendered:NAME)")
    return REGION.sub(replace, text)


def default_documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path,
                        help="documents to render (default: README.md and docs/*.md)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 and print a diff if any document differs")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    stale = []
    for path in [p.resolve() for p in args.files] or default_documents(root):
        old = path.read_text()
        new = render_text(old, Context(root=root, doc=path))
        if new == old:
            continue
        rel = path.relative_to(root).as_posix()
        stale.append(rel)
        if args.check:
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True),
                f"{rel} (committed)", f"{rel} (rendered)"))
        else:
            path.write_text(new)
            print(f"rendered {rel}")
    if args.check and stale:
        print(f"\n{len(stale)} document(s) differ from what the reports render: "
              f"{', '.join(stale)}. Run: python scripts/render_docs.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
