"""report.md and report.html, rendered from the content of results.json alone.

Because nothing but the results document goes in, ``trpo-claims report RUN_DIR`` regenerates the
same reports from a stored results.json (see :mod:`claims.framework.runner` for its schema). Both
reports carry the same content, in the order a reader needs it: an overview first (verdict counts,
what needs attention, a compact verdict table that fits a laptop screen), then each claim's details
(folded in the HTML page), the trainings, the deviations from the paper, the environment and the
commands that reproduce the run. A negative control that came out REFUTED, as it must, is shown
as a *pass* of the control, never in the red of a failed claim.

report.html is one self-contained file (inline CSS, no scripts, no external resources): the
figures are embedded as data URIs, so the page alone can be mailed or attached to a CI run.
report.md links the figures relative to the run directory.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shlex
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from claims.framework.serialize import write_text_atomic

STATUS_ORDER: tuple[str, ...] = ("SUPPORTED", "REFUTED", "INCONCLUSIVE", "SKIPPED", "ERROR")
REPORT_FILE = "report.md"
REPORT_HTML_FILE = "report.html"
DASH = "—"
# the compact verdict table (source, kind, protocol: in each claim's details)
VERDICT_COLUMNS: tuple[str, ...] = (
    "Claim", "Title", "Verdict", "Estimate [CI]", "Rule", "n", "Control", "Runtime",
)
# the HTML table shows the title under the claim id, so it has one column fewer
HTML_VERDICT_COLUMNS: tuple[str, ...] = tuple(c for c in VERDICT_COLUMNS if c != "Title")
VERDICT_LEGEND = (
    "Verdicts: SUPPORTED (the declared rule passed), REFUTED (it failed), INCONCLUSIVE (the "
    "confidence interval straddles the threshold), SKIPPED (no budget at this tier), ERROR "
    "(the check itself crashed). Control: the claim's negative control, a deliberately broken "
    "variant on which the same rule must give REFUTED: 'pass (REFUTED)' means the check caught "
    "the broken variant, as it must; 'FAIL' means it did not, so the claim's verdict shows "
    "nothing either way."
)
ATTENTION_STATUSES = ("REFUTED", "INCONCLUSIVE", "ERROR")  # verdicts a reader should look at
# Interactive pages that show what a claim is about, by claim-id prefix, linked from each such
# claim as Markdown relative to a run directory two levels below the repository root
# (reports/NAME/ or runs/NAME/): the climb's explorer (issue 14).
EXPLORERS: dict[str, str] = {
    "climb.": "[the climb explorer](../../docs/climb.md#the-explorer) (`trpo-claims climb "
              "--html climb.html` writes it: one offline page; screenshots of each preset in "
              "[reports/climb-explorer](../../reports/climb-explorer/README.md))",
}


# --- small formatters, shared with the runner's progress lines -------------------------------


def fmt_value(x: Any, *, digits: int = 4, max_len: int = 120) -> str:
    """A number or value for humans: floats to ``digits`` significant digits, None as a dash."""
    if x is None:
        return DASH
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    if isinstance(x, str):
        return x
    text = json.dumps(x, separators=(", ", ": "))
    return text if len(text) <= max_len else text[: max_len - 3] + "..."


def fmt_ci(ci: Sequence[Any] | None) -> str:
    return DASH if ci is None else f"[{fmt_value(ci[0])}, {fmt_value(ci[1])}]"


def fmt_seconds(s: float | None) -> str:
    return DASH if s is None else f"{s:.1f} s" if s < 600 else f"{s / 60:.1f} min"


def rule_text(rule: Mapping[str, Any]) -> str:
    """``>= -1e-10`` for a rule (or a verdict) with a comparator and a threshold."""
    if rule.get("comparator") is None:
        return DASH
    return f"{rule['comparator']} {fmt_value(rule['threshold'])}"


def verdict_detail(verdict: Mapping[str, Any]) -> str:
    """``min slack = 3.1e-05; rule >= -1e-10``; for errors and skips, the message's first line."""
    if verdict.get("comparator") is None:
        return verdict["message"].splitlines()[0] if verdict.get("message") else ""
    ci = f" {fmt_ci(verdict['ci'])}" if verdict.get("ci") is not None else ""
    value = fmt_value(verdict["value"])
    return f"{verdict['statistic']} = {value}{ci}; rule {rule_text(verdict)}"


def verdict_brief(verdict: Mapping[str, Any]) -> str:
    """One line: ``SUPPORTED (min slack = 3.1e-05; rule >= -1e-10)``."""
    detail = verdict_detail(verdict)
    return f"{verdict['status']} ({detail})" if detail else verdict["status"]


def command_line(command: Sequence[str]) -> str:
    return shlex.join(command)


def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


# --- what the report says, independent of its format -----------------------------------------


def control_status(entry: Mapping[str, Any]) -> str | None:
    """The negative control's status, or None where no control ran (skipped, or --no-controls)."""
    control = entry.get("control")
    return None if control is None else control["verdict"]["status"]


def control_outcome(status: str | None) -> tuple[str, str]:
    """How a control's status reads: ``("pass", "REFUTED")`` when it came out REFUTED as it
    must; ``("FAIL", ...)`` when it did not; ``("pending", "SKIPPED")``; ``("", "")`` when no
    control ran. The first word is the control's outcome, the second its verdict."""
    if status is None:
        return "", ""
    if status == "REFUTED":
        return "pass", status
    if status == "SKIPPED":
        return "pending", status
    return "FAIL", status


def control_text(status: str | None) -> str:
    """``pass (REFUTED)``, ``FAIL (SUPPORTED; must be REFUTED)``, or a dash where none ran."""
    outcome, verdict = control_outcome(status)
    if not outcome:
        return DASH
    return f"{outcome} ({verdict}; must be REFUTED)" if outcome == "FAIL" else (
        f"{outcome} ({verdict})")


def progress_note(results: Mapping[str, Any]) -> str | None:
    """For a run that did not finish, what the report covers and how to finish it."""
    if results.get("complete", True):
        return None
    planned = results.get("planned_claims")
    judged = len(results["claims"])
    of = f"{judged} of {len(planned)}" if planned is not None else f"{judged}"
    resume = f"`{command_line(results['command'])}`" if results.get("command") else "it"
    if results.get("interrupted"):
        return (f"The run was interrupted ({results['interrupted']}) after {of} claims: this "
                f"report covers only those. Run {resume} again to resume it.")
    return (f"The run is in progress, or was killed before it could record that: this report "
            f"covers the {of} claims judged so far. If no run is writing it, run {resume} "
            "again to resume it.")


def problems(results: Mapping[str, Any]) -> list[str]:
    """What makes this run untrustworthy: negative controls not REFUTED, ERRORs, a partial run,
    corrupt job-cache files."""
    out = []
    note = progress_note(results)
    if note is not None:
        out.append(note)
    corrupt = results.get("corrupt_cache_files") or []
    if corrupt:
        shown = "; ".join(f"`{c['file']}` ({c['reason']})" for c in corrupt[:3])
        more = f" and {len(corrupt) - 3} more" if len(corrupt) > 3 else ""
        out.append(f"{len(corrupt)} job-cache file(s) were corrupt, moved aside (see "
                   f"`corrupt/` in the cache) and trained again: {shown}{more}.")
    for entry in results["claims"]:
        cid, verdict = entry["id"], entry["verdict"]
        if verdict["status"] == "ERROR":
            out.append(f"`{cid}` raised an ERROR: {verdict_detail(verdict)}.")
        cs = control_status(entry)
        if cs == "ERROR":
            detail = verdict_detail(entry["control"]["verdict"])
            out.append(
                f"The negative control of `{cid}` raised an ERROR ({detail}): nothing shows that "
                "this check can fail."
            )
        elif cs == "SKIPPED" and verdict["status"] == "SKIPPED":
            out.append(f"`{cid}` was not judged yet: {verdict.get('message', '')}")
        elif cs == "SKIPPED" and entry["control"]["verdict"]["message"].startswith("not judged"):
            out.append(f"The negative control of `{cid}` was not judged yet: "
                       f"{entry['control']['verdict']['message'].removeprefix('not judged: ')}")
        elif cs is not None and cs != "REFUTED":
            out.append(
                f"The negative control of `{cid}` came out **{cs}**, not REFUTED: as run, this "
                "check cannot fail, so its verdict is no evidence either way. This is a defect "
                "of the suite, not a finding about the paper."
            )
    return out


def deviations(results: Mapping[str, Any]) -> list[tuple[str | None, list[str]]]:
    """Where the run departs from the paper: ``(None, run-wide list)`` first when there is one,
    then ``(claim id, its list)`` for each claim whose description lists any (results.json files
    older than the ``deviations`` field list none)."""
    out: list[tuple[str | None, list[str]]] = []
    run_wide = list(results.get("deviations") or [])
    if run_wide:
        out.append((None, run_wide))
    for entry in results["claims"]:
        listed = list(entry["description"].get("deviations") or [])
        if listed:
            out.append((entry["id"], listed))
    return out


def _no_deviations_text(results: Mapping[str, Any]) -> str:
    if any("deviations" in e["description"] for e in results["claims"]):
        return "None listed by any claim."
    return (
        "None listed: this results.json predates the claims' `deviations` field, so the "
        "departures from the paper were not recorded."
    )


def claim_command(results: Mapping[str, Any], claim_id: str) -> list[str]:
    """The ``trpo-claims run`` argv that repeats one claim of this run (tier, seed, controls)."""
    command = ["trpo-claims", "run", "--tier", results["tier"], "--seed", str(results["seed"])]
    command += ["--claim", claim_id]
    return command if results.get("controls", True) else [*command, "--no-controls"]


CLAIM_COMMANDS_NOTE = (
    "One claim at a time (each writes into a new runs/TIER-YYYYMMDD-HHMMSS directory unless "
    "given `--out DIR`):"
)


def _counts(statuses: Iterable[str]) -> str:
    counts = Counter(statuses)
    return ", ".join(f"{counts[s]} {s}" for s in STATUS_ORDER if counts[s]) or "none"


def control_summary(results: Mapping[str, Any]) -> str:
    """``12 of 12 pass (REFUTED, as they must)``, with the failures and pending ones named."""
    if not results.get("controls", True):
        return "not run (--no-controls)"
    statuses = [s for e in results["claims"] if (s := control_status(e)) is not None]
    if not statuses:
        return "none ran"
    outcomes = Counter(control_outcome(s)[0] for s in statuses)
    text = f"{outcomes['pass']} of {len(statuses)} pass (REFUTED, as they must)"
    if outcomes["FAIL"]:
        text += f"; {outcomes['FAIL']} FAIL (not REFUTED: those checks show nothing)"
    if outcomes["pending"]:
        text += f"; {outcomes['pending']} not judged yet"
    return text


def attention(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(claim id, one line) for each claim a reader should look at: a verdict in
    ATTENTION_STATUSES, or a negative control that did not pass."""
    out = []
    for entry in results["claims"]:
        status = entry["verdict"]["status"]
        reasons = []
        if status in ATTENTION_STATUSES:
            reasons.append(f"**{status}** ({verdict_detail(entry['verdict'])})")
        if control_outcome(control_status(entry))[0] == "FAIL":
            reasons.append(f"negative control **{control_status(entry)}**, not REFUTED")
        if reasons:
            out.append((entry["id"], "; ".join(reasons)))
    return out


def _header_items(results: Mapping[str, Any]) -> list[str]:
    """The header's bullet points, in Markdown inline syntax (code spans)."""
    fp = results.get("fingerprint", {})
    entries = results["claims"]
    commit = (fp.get("git") or {}).get("commit")
    return [
        f"Date: {results.get('started_utc', fp.get('timestamp_utc', DASH))}",
        f"Tier: `{results['tier']}`; seed: {results['seed']}; "
        f"claims: {len(entries)}; total runtime: {fmt_seconds(results.get('runtime_s'))}"
        + (f"; commit `{commit[:12]}`" if commit else ""),
        f"Reproduce: `{command_line(results['command'])}`",
        *_execution_items(results.get("execution"), results.get("trainings")),
        *_implementation_items(results.get("implementation")),
    ]


def _overview_items(results: Mapping[str, Any]) -> list[str]:
    entries = results["claims"]
    return [f"Verdicts: {_counts(e['verdict']['status'] for e in entries)}",
            f"Negative controls: {control_summary(results)}"]


def _implementation_items(implementation: Mapping[str, Any] | None) -> list[str]:
    if not implementation:
        return []
    if implementation.get("error"):
        return [f"Implementation under test: `{implementation['spec']}`, which failed to load: "
                f"{implementation['error']}"]
    return [f"Implementation under test: {implementation.get('name')} "
            f"(`{implementation['spec']}`; capabilities: "
            f"{', '.join(implementation.get('capabilities') or []) or 'none'})"]


def _execution_items(execution: Mapping[str, Any] | None,
                     trainings: Sequence[Mapping[str, Any]] | None) -> list[str]:
    if not execution or execution.get("cache") is None:
        return []
    how = "read from it only (--cached-only)" if not execution.get("train", True) else (
        f"missing ones trained on {execution.get('executor')} x{execution.get('max_workers')}")
    counts = ""
    if trainings and any("trained_here" in t for t in trainings):
        here = sum(t.get("trained_here", 0) for t in trainings)
        cached = sum(t.get("from_cache", 0) for t in trainings)
        counts = f"; {here} trained in this run, {cached} read from the cache"
    return [f"Trainings: job cache `{execution['cache']}`, {how}{counts}"]


def _title(results: Mapping[str, Any]) -> str:
    return f"trpo-claims report: {results['tier']} tier"


def verdict_row(entry: Mapping[str, Any]) -> list[str]:
    """The verdict table's cells for one claim, as plain text (columns: VERDICT_COLUMNS)."""
    d, v = entry["description"], entry["verdict"]
    rule = d.get("rule", {})
    estimate = fmt_value(v.get("value"))
    if v.get("ci") is not None:
        estimate += f" {fmt_ci(v['ci'])}"
    statistic = rule.get("statistic", "")
    return [
        entry["id"],
        d.get("title", ""),
        v["status"],
        estimate,
        f"{statistic} {rule_text(rule)}".strip() if rule else DASH,
        str(v.get("n") or DASH),
        control_text(control_status(entry)),
        fmt_seconds(entry.get("runtime_s", {}).get("total")),
    ]


_ID, _VERDICT = VERDICT_COLUMNS.index("Claim"), VERDICT_COLUMNS.index("Verdict")
_CONTROL = VERDICT_COLUMNS.index("Control")


def _environment_rows(results: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(item, value) rows of the environment table; values in Markdown inline syntax."""
    fp = dict(results.get("fingerprint", {}))
    git = fp.pop("git", {}) or {}
    packages = fp.pop("packages", {}) or {}
    env = fp.pop("env", {}) or {}
    argv = fp.pop("argv", None)
    rows = [(k, fmt_value(v)) for k, v in fp.items()]
    rows.append(("git commit", git.get("commit") or "unknown (not a git checkout, or no commit)"))
    rows.append(("git dirty", fmt_value(git.get("dirty"))))
    rows += [(f"package {k}", v) for k, v in packages.items()]
    rows += [(f"env {k}", v) for k, v in env.items()]
    if argv is not None:
        rows.append(("argv", f"`{command_line(argv)}`"))
    rows.append(("seed", results["seed"]))
    return rows


def rule_sentence(rule: Mapping[str, Any]) -> str:
    """The declared rule in words: ``statistic >= threshold`` (and its interval), then its text."""
    text = f"`{rule['statistic']} {rule_text(rule)}`"
    if rule.get("alpha") is not None:
        level = 100 * (1 - rule["alpha"])
        text += (
            f" on both ends of a {level:g}% confidence interval "
            "(an interval straddling the threshold is INCONCLUSIVE)"
        )
    return f"{text}. {rule.get('description', '')}".strip()


def _claim_facts(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, text) of a claim's description, in Markdown inline syntax."""
    d = entry["description"]
    return [
        ("Statement", d.get("statement", "")),
        ("Source", d.get("source", "")),
        ("Kind", d.get("kind", "")),
        ("Statistic", (d.get("rule") or {}).get("statistic", "") or DASH),
        ("Protocol", d.get("protocol", "")),
        ("Decision rule", rule_sentence(d["rule"]) if d.get("rule") else DASH),
        ("Budget at this tier", f"`{fmt_value(entry.get('budget'), max_len=400)}`"),
    ] + [("Explore", page) for prefix, page in EXPLORERS.items()
         if entry["id"].startswith(prefix)]


def _control_expectation(status: str) -> str:
    return "as it must" if status == "REFUTED" else "**it must be REFUTED**"


# --- Markdown --------------------------------------------------------------------------------


def _verdict_table(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for e in entries:
        row = verdict_row(e)
        row[_ID], row[_VERDICT] = f"[`{row[_ID]}`](#{anchor(row[_ID])})", f"**{row[_VERDICT]}**"
        if control_outcome(control_status(e))[0] == "FAIL":
            row[_CONTROL] = f"**{row[_CONTROL]}**"
        rows.append(row)
    return _table(VERDICT_COLUMNS, rows)


def anchor(claim_id: str) -> str:
    """The id of a claim's section in both reports (GitHub's heading anchors differ, so the
    Markdown report puts an explicit one before each heading)."""
    return f"claim-{claim_id}"


def _summary_table(summary: Mapping[str, Any]) -> list[str]:
    if not summary:
        return ["(no summary)"]
    return _table(["Quantity", "Value"], ((k, fmt_value(v)) for k, v in summary.items()))


def _error_block(error: Mapping[str, Any] | None) -> list[str]:
    if not error:
        return []
    return [
        f"Error in `{error.get('phase', '?')}`: `{error['type']}: {error['message']}`",
        "",
        "<details><summary>traceback</summary>",
        "",
        "```",
        error.get("traceback", "").rstrip(),
        "```",
        "",
        "</details>",
        "",
    ]


def _claim_section(entry: Mapping[str, Any]) -> list[str]:
    d, v = entry["description"], entry["verdict"]
    lines = [
        f'<a id="{anchor(entry["id"])}"></a>',
        "",
        f"### `{entry['id']}`: {d.get('title', '')}",
        "",
        f"**Verdict: {v['status']}** ({verdict_detail(v)}; n = {v.get('n', 0)})",
        "",
    ]
    if v.get("message"):
        lines += [f"> {_cell(v['message'])}", ""]
    lines += [f"- **{label}.** {text}" for label, text in _claim_facts(entry)] + [""]
    lines += _error_block(entry.get("error"))
    evidence = entry.get("evidence")
    if evidence is not None:
        lines += ["**Evidence summary.**", "", *_summary_table(evidence.get("summary", {})), ""]
        lines += [f"Config: `{fmt_value(evidence.get('config'), max_len=400)}`", ""]
    lines += [f"**Negative control.** {d.get('negative_control', '')}", ""]
    control = entry.get("control")
    if control is None:
        lines += ["Not run.", ""]
    else:
        cv = control["verdict"]
        lines += [f"Control: **{control_text(cv['status'])}**: {verdict_brief(cv)} "
                  f"({_control_expectation(cv['status'])}).", ""]
        if cv.get("message"):
            lines += [f"> {_cell(cv['message'])}", ""]
        lines += _error_block(control.get("error"))
        if control.get("evidence") is not None:
            lines += [*_summary_table(control["evidence"].get("summary", {})), ""]
    figures = entry.get("figures", [])
    if figures:
        lines += ["**Figures.**", ""]
        lines += [f"![{f.rsplit('/', 1)[-1]}]({f})" for f in figures] + [""]
    for err in entry.get("figure_errors", []):
        lines += [f"Figure error (not fatal): `{err}`", ""]
    return lines


def _deviations_section(results: Mapping[str, Any]) -> list[str]:
    listed = deviations(results)
    if not listed:
        return [_no_deviations_text(results), ""]
    lines = []
    for cid, items in listed:
        lines += ["Run-wide:" if cid is None else f"`{cid}`:", ""]
        lines += [f"- {_cell(item)}" for item in items] + [""]
    return lines


TRAININGS_COLUMNS = ["Group", "Task", "Method", "Runs finished / planned", "Trained here",
                     "From cache", "Env steps", "Wall time (one worker)", "Per run"]
TRAININGS_NOTE = (
    "The empirical claims' training jobs: how many were trained in this run and how many were "
    "read from the job cache (trained earlier: where and when is listed per job below), with "
    "the wall time each finished run took on one worker when it ran (a run read from the cache "
    "cost nothing this time). With W workers, a tier takes about the total divided by W.")
TRAINING_JOB_COLUMNS = ["Group", "Task", "Method", "Seed", "Source", "Wall time", "Commit",
                        "Host", "CPU", "Finished (UTC)"]


def training_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """The rows of the trainings table, plus a total row (none when no trainings). Results
    older than the trained-here / from-cache counts show a dash there."""
    trainings = results.get("trainings") or []

    def count(t: Mapping[str, Any], key: str) -> str:
        return str(t[key]) if key in t else DASH

    rows = [[t["group"], t["task"], t["method"], f"{t['finished']} / {t['planned']}",
             count(t, "trained_here"), count(t, "from_cache"),
             f"{t['env_steps']:,}", fmt_seconds(t["wall_s"]),
             fmt_seconds(t["wall_s"] / t["finished"]) if t["finished"] else DASH]
            for t in trainings]
    if rows:
        finished = sum(t["finished"] for t in trainings)
        known = all("trained_here" in t for t in trainings)
        rows.append(["total", "", "", f"{finished} / {sum(t['planned'] for t in trainings)}",
                     str(sum(t["trained_here"] for t in trainings)) if known else DASH,
                     str(sum(t["from_cache"] for t in trainings)) if known else DASH,
                     f"{sum(t['env_steps'] for t in trainings):,}",
                     fmt_seconds(sum(t["wall_s"] for t in trainings)), ""])
    return rows


def training_job_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """One row per planned training: where its result came from (this run, the cache with the
    commit, host and CPU that trained it, or missing)."""
    rows = []
    for t in results.get("trainings") or []:
        for run in t.get("runs") or []:
            made = run.get("provenance") or {}
            commit = made.get("commit")
            source = {"this run": "trained in this run", "cache": "read from the cache",
                      "missing": "not trained yet"}.get(run["source"], run["source"])
            unknown = "unknown (record predates provenance)" if run["source"] == "cache" else DASH
            rows.append([t["group"], t["task"], run.get("algo", t["method"]), str(run["seed"]),
                         source, fmt_seconds(run.get("wall_s")),
                         _commit_cell(commit, made.get("dirty")) if commit else unknown,
                         made.get("host") or DASH, made.get("cpu_model") or DASH,
                         made.get("finished_utc") or DASH])
    return rows


def _commit_cell(commit: str, dirty: bool | None) -> str:
    return commit[:12] + (" (dirty)" if dirty else "")


def _trainings_section(results: Mapping[str, Any]) -> list[str]:
    rows = training_rows(results)
    if not rows:
        return []
    lines = ["## Trainings", "", TRAININGS_NOTE, "", *_table(TRAININGS_COLUMNS, rows), ""]
    jobs = training_job_rows(results)
    if jobs:
        lines += ["<details><summary>Every training: trained here or read from the cache, and "
                  "where it was trained</summary>", "", *_table(TRAINING_JOB_COLUMNS, jobs), "",
                  "</details>", ""]
    return lines


def render_markdown(results: Mapping[str, Any]) -> str:
    """The whole report.md for a results document (the parsed results.json)."""
    entries = results["claims"]
    lines = [f"# {_title(results)}", "", *(f"- {item}" for item in _header_items(results)), ""]
    issues = problems(results)
    if issues:
        lines += ["## WARNING: this run has problems", ""] + [f"- {p}" for p in issues] + [""]
    lines += ["## Overview", "", *(f"- {item}" for item in _overview_items(results)), ""]
    look = attention(results)
    if look:
        lines += ["Needs attention:", ""]
        lines += [f"- [`{cid}`](#{anchor(cid)}): {text}" for cid, text in look] + [""]
    lines += ["### Verdicts", "", *_verdict_table(entries), "", VERDICT_LEGEND, ""]
    lines += ["## Claims", ""]
    for entry in entries:
        lines += _claim_section(entry)
    lines += _trainings_section(results)
    lines += ["## Deviations from the paper", "", *_deviations_section(results)]
    lines += ["## Environment", "", *_table(["Item", "Value"], _environment_rows(results)), ""]
    lines += ["## Reproduce", "", "The whole run:", "", "```", command_line(results["command"])]
    lines += ["```", "", CLAIM_COMMANDS_NOTE, "", "```"]
    lines += [command_line(claim_command(results, e["id"])) for e in entries] + ["```", ""]
    return "\n".join(lines)


# --- HTML ------------------------------------------------------------------------------------

_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; color: #222; max-width: 76rem; margin: 1.5rem auto;
       padding: 0 1rem; }
h1, h2, h3 { line-height: 1.25; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
code, pre { font: 13px/1.4 ui-monospace, monospace; background: #f4f4f2; }
code { padding: 0 .2em; } pre { padding: .6rem; overflow-x: auto; white-space: pre-wrap; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f0f0ec; }
td { overflow-wrap: anywhere; }
.wide { display: block; max-width: 100%; overflow-x: auto; }
table.verdicts { width: 100%; table-layout: fixed; }
table.verdicts col.c-claim { width: 27%; } table.verdicts col.c-verdict { width: 9rem; }
table.verdicts col.c-estimate { width: 15%; } table.verdicts col.c-n { width: 5rem; }
table.verdicts col.c-control { width: 11rem; } table.verdicts col.c-runtime { width: 5.5rem; }
.claim-title { display: block; font-size: 13px; color: #555; }
.status { font-weight: 600; white-space: nowrap; }
.s-SUPPORTED { background: #d5ecd0; color: #1d5b16; }
.s-REFUTED { background: #f6d2cd; color: #8a1c0e; }
.s-INCONCLUSIVE { background: #fbe5bd; color: #7a4c00; }
.s-SKIPPED { background: #e4e4e4; color: #555; }
.s-ERROR { background: #e6d5f0; color: #5b1f7a; }
.control { white-space: nowrap; }
.c-pass { color: #1d5b16; } .c-pass b::before { content: "\\2713\\00a0"; }
.c-FAIL { background: #f6d2cd; color: #8a1c0e; font-weight: 600; }
.c-FAIL b::before { content: "\\2717\\00a0"; }
.c-pending { color: #555; }
.chips span { display: inline-block; margin: 0 .4rem .3rem 0; padding: .1rem .6rem;
              border-radius: 1rem; }
.warning { border: 2px solid #c0392b; background: #fdf0ee; padding: .2rem 1rem; }
.attention { border-left: 4px solid #d68910; padding: .1rem 1rem; background: #fdf6ec; }
blockquote { border-left: 4px solid #ccc; margin: .5rem 0; padding: .1rem .8rem; color: #444; }
figure { display: inline-block; margin: .5rem 1rem .5rem 0; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #555; }
section.claim { margin-bottom: .4rem; }
section.claim > details { border: 1px solid #ddd; border-radius: 4px; padding: .3rem .8rem; }
section.claim > details[open] { padding-bottom: .8rem; }
section.claim summary { cursor: pointer; }
section.claim summary h3 { display: inline; font-size: 1rem; }
"""

_CODE_SPAN = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\(([\w.#][^):\s]*)\)")  # relative targets only (no scheme)
_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
         ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _inline(text: Any) -> str:
    """Markdown inline text (code spans, bold, relative links) as HTML, every character
    escaped first."""
    parts = _CODE_SPAN.split(_esc(text))  # odd items: the code spans' contents
    html_text = "".join(f"<code>{part}</code>" if i % 2 else _LINK.sub(r'<a href="\2">\1</a>', part)
                        for i, part in enumerate(parts))
    return _BOLD.sub(r"<strong>\1</strong>", html_text)


def _status(status: str | None) -> str:
    """A table cell for a verdict status, coloured by its class (a dash where there is none)."""
    if status is None:
        return f"<td>{DASH}</td>"
    return f'<td class="status s-{_esc(status)}">{_esc(status)}</td>'


def _control_span(status: str | None) -> str:
    """A control's outcome: a pass (green text, no red) when REFUTED, a red FAIL otherwise."""
    outcome, verdict = control_outcome(status)
    if not outcome:
        return DASH
    note = "; must be REFUTED" if outcome == "FAIL" else ""
    return (f'<span class="control c-{outcome}"><b>{outcome}</b> ({_esc(verdict)}{note})'
            "</span>")


def _html_table(header: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "",
                cols: Sequence[str] = ()) -> str:
    """A table of cells that are already HTML (each a ``<td>`` or plain content). Tables
    without a class scroll inside their own box rather than widen the page."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
        for row in rows
    )
    colgroup = ("<colgroup>" + "".join(f'<col class="{c}">' for c in cols) + "</colgroup>"
                if cols else "")
    table = (f'<table class="{cls or "wide"}">{colgroup}<thead><tr>{head}</tr></thead>'
             f"<tbody>{body}</tbody></table>")
    return table


def _html_verdict_table(entries: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for e in entries:
        cells = verdict_row(e)
        title = cells.pop(VERDICT_COLUMNS.index("Title"))
        row = [_esc(c) for c in cells]
        cid = e["id"]
        row[0] = (f'<a href="#{_esc(anchor(cid))}"><code>{_esc(cid)}</code></a>'
                  f'<span class="claim-title">{_esc(title)}</span>')
        row[HTML_VERDICT_COLUMNS.index("Verdict")] = _status(e["verdict"]["status"])
        row[HTML_VERDICT_COLUMNS.index("Control")] = _control_span(control_status(e))
        rows.append(row)
    cols = [f"c-{c.split()[0].lower()}" for c in HTML_VERDICT_COLUMNS]
    return _html_table(HTML_VERDICT_COLUMNS, rows, cls="verdicts", cols=cols)


def _html_summary(summary: Mapping[str, Any]) -> str:
    if not summary:
        return "<p>(no summary)</p>"
    rows = ((_esc(k), _esc(fmt_value(v))) for k, v in summary.items())
    return _html_table(["Quantity", "Value"], rows)


def _html_error(error: Mapping[str, Any] | None) -> str:
    if not error:
        return ""
    return (
        f"<p>Error in <code>{_esc(error.get('phase', '?'))}</code>: "
        f"<code>{_esc(error['type'])}: {_esc(error['message'])}</code></p>"
        f"<details><summary>traceback</summary><pre>{_esc(error.get('traceback', '').rstrip())}"
        "</pre></details>"
    )


def figure_source(figure: str, run_dir: Path | None) -> str:
    """The ``src`` of a figure: its bytes as a base64 data URI when the file is in ``run_dir``
    (so the page needs nothing beside it), else its relative path."""
    path = None if run_dir is None else run_dir / figure
    if path is None or not path.is_file():
        return figure
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _html_figures(entry: Mapping[str, Any], run_dir: Path | None) -> list[str]:
    parts = []
    figures = entry.get("figures", [])
    if figures:
        parts.append("<p><strong>Figures.</strong></p>")
        for f in figures:
            name = _esc(f.rsplit("/", 1)[-1])
            src = figure_source(f, run_dir)
            missing = "" if src.startswith("data:") else " (not embedded: file not found)"
            parts.append(
                f'<figure><img src="{html.escape(src, quote=True)}" alt="{name}">'
                f"<figcaption>{name}{missing}</figcaption></figure>"
            )
    parts += [
        f"<p>Figure error (not fatal): <code>{_esc(err)}</code></p>"
        for err in entry.get("figure_errors", [])
    ]
    return parts


def _html_claim(entry: Mapping[str, Any], run_dir: Path | None) -> str:
    d, v = entry["description"], entry["verdict"]
    needs_look = v["status"] in ATTENTION_STATUSES or (
        control_outcome(control_status(entry))[0] == "FAIL")
    parts = [
        f'<section class="claim" id="{_esc(anchor(entry["id"]))}">',
        f"<details{' open' if needs_look else ''}><summary>"
        f"<h3><code>{_esc(entry['id'])}</code>: {_esc(d.get('title', ''))}</h3> "
        f'<span class="status s-{_esc(v["status"])}">{_esc(v["status"])}</span> '
        f"{_control_span(control_status(entry)) if entry.get('control') else ''}</summary>",
        f'<p>Verdict: <span class="status s-{_esc(v["status"])}">{_esc(v["status"])}</span> '
        f"({_esc(verdict_detail(v))}; n = {_esc(v.get('n', 0))})</p>",
    ]
    if v.get("message"):
        parts.append(f"<blockquote>{_esc(v['message'])}</blockquote>")
    facts = "".join(
        f"<li><strong>{_esc(k)}.</strong> {_inline(t)}</li>" for k, t in _claim_facts(entry)
    )
    parts += [f"<ul>{facts}</ul>", _html_error(entry.get("error"))]
    evidence = entry.get("evidence")
    if evidence is not None:
        parts += ["<p><strong>Evidence summary.</strong></p>"]
        parts += [_html_summary(evidence.get("summary", {}))]
        config = fmt_value(evidence.get("config"), max_len=400)
        parts += [f"<p>Config: <code>{_esc(config)}</code></p>"]
    parts.append(
        f"<p><strong>Negative control.</strong> {_inline(d.get('negative_control', ''))}</p>"
    )
    control = entry.get("control")
    if control is None:
        parts.append("<p>Not run.</p>")
    else:
        cv = control["verdict"]
        parts.append(
            f"<p>Control: {_control_span(cv['status'])}: {_esc(verdict_brief(cv))} "
            f"({_inline(_control_expectation(cv['status']))}).</p>"
        )
        if cv.get("message"):
            parts.append(f"<blockquote>{_esc(cv['message'])}</blockquote>")
        parts.append(_html_error(control.get("error")))
        if control.get("evidence") is not None:
            parts.append(_html_summary(control["evidence"].get("summary", {})))
    parts += _html_figures(entry, run_dir)
    parts.append("</details></section>")
    return "\n".join(p for p in parts if p)


def _html_deviations(results: Mapping[str, Any]) -> str:
    listed = deviations(results)
    if not listed:
        return f"<p>{_inline(_no_deviations_text(results))}</p>"
    parts = []
    for cid, items in listed:
        parts.append("<p>Run-wide:</p>" if cid is None else f"<p><code>{_esc(cid)}</code>:</p>")
        parts.append("<ul>" + "".join(f"<li>{_esc(item)}</li>" for item in items) + "</ul>")
    return "\n".join(parts)


def _html_overview(results: Mapping[str, Any]) -> list[str]:
    entries = results["claims"]
    counts = Counter(e["verdict"]["status"] for e in entries)
    chips = "".join(f'<span class="status s-{s}">{counts[s]} {s}</span>'
                    for s in STATUS_ORDER if counts[s]) or "<span>no claims judged</span>"
    parts = ["<h2>Overview</h2>", f'<p class="chips">{chips}</p>',
             f"<p>Negative controls: {_esc(control_summary(results))}</p>"]
    look = attention(results)
    if look:
        items = "".join(f'<li><a href="#{_esc(anchor(cid))}"><code>{_esc(cid)}</code></a>: '
                        f"{_inline(text)}</li>" for cid, text in look)
        parts.append(f'<div class="attention"><p><strong>Needs attention</strong></p>'
                     f"<ul>{items}</ul></div>")
    parts += ["<h3>Verdicts</h3>", _html_verdict_table(entries), f"<p>{_esc(VERDICT_LEGEND)}</p>"]
    return parts


def render_html(results: Mapping[str, Any], run_dir: Path | str | None = None) -> str:
    """The whole report.html for a results document: report.md's content as one HTML page,
    figures embedded from ``run_dir`` (linked when it is None or a figure is missing)."""
    run_dir = None if run_dir is None else Path(run_dir)
    entries = results["claims"]
    header = "".join(f"<li>{_inline(item)}</li>" for item in _header_items(results))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(_title(results))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_esc(_title(results))}</h1>",
        f"<ul>{header}</ul>",
    ]
    issues = problems(results)
    if issues:
        items = "".join(f"<li>{_inline(p)}</li>" for p in issues)
        parts.append(
            f'<div class="warning"><h2>WARNING: this run has problems</h2><ul>{items}</ul></div>'
        )
    parts += _html_overview(results)
    parts += ["<h2>Claims</h2>", "<p>Each claim's details (statement, protocol, rule, evidence, "
              "negative control, figures) unfold on a click; those that need attention are "
              "open.</p>"]
    parts += [_html_claim(entry, run_dir) for entry in entries]
    rows = training_rows(results)
    if rows:
        parts += ["<h2>Trainings</h2>", f"<p>{_esc(TRAININGS_NOTE)}</p>",
                  _html_table(TRAININGS_COLUMNS, ([_esc(str(c)) for c in r] for r in rows))]
        jobs = training_job_rows(results)
        if jobs:
            parts += ["<details><summary>Every training: trained here or read from the cache, "
                      "and where it was trained</summary>",
                      _html_table(TRAINING_JOB_COLUMNS, ([_esc(c) for c in r] for r in jobs)),
                      "</details>"]
    parts += ["<h2>Deviations from the paper</h2>", _html_deviations(results)]
    env_rows = ((_esc(k), _inline(v)) for k, v in _environment_rows(results))
    parts += ["<h2>Environment</h2>", _html_table(["Item", "Value"], env_rows)]
    claim_commands = "\n".join(command_line(claim_command(results, e["id"])) for e in entries)
    parts += [
        "<h2>Reproduce</h2>",
        "<p>The whole run:</p>",
        f"<pre>{_esc(command_line(results['command']))}</pre>",
        f"<p>{_inline(CLAIM_COMMANDS_NOTE)}</p>",
        f"<pre>{_esc(claim_commands)}</pre>",
        "</body></html>",
        "",
    ]
    return "\n".join(parts)


# --- files -----------------------------------------------------------------------------------


def write_reports(run_dir: Path | str, results: Mapping[str, Any]) -> list[Path]:
    """Write RUN_DIR/report.md and RUN_DIR/report.html (atomically) from ``results`` (a run's
    results document, e.g. :func:`claims.framework.runner.load_results`); their paths, Markdown
    first."""
    run_dir = Path(run_dir)
    paths = [run_dir / REPORT_FILE, run_dir / REPORT_HTML_FILE]
    write_text_atomic(paths[0], render_markdown(results))
    write_text_atomic(paths[1], render_html(results, run_dir))
    return paths
