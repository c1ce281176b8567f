"""report.md and report.html, rendered from the content of results.json alone.

Because nothing but the results document goes in, ``trpo-claims report RUN_DIR`` regenerates the
same reports from a stored results.json (see :mod:`claims.runner` for its schema). Both reports
carry the same content; the HTML page is self-contained (inline CSS, no scripts, no external
resources) except for the figures, which it links relative to the run directory.
"""

from __future__ import annotations

import html
import json
import re
import shlex
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from claims.serialize import write_text_atomic

STATUS_ORDER: tuple[str, ...] = ("SUPPORTED", "REFUTED", "INCONCLUSIVE", "SKIPPED", "ERROR")
DASH = "—"
VERDICT_COLUMNS: tuple[str, ...] = (
    "Claim",
    "Title",
    "Source",
    "Kind",
    "Statistic",
    "Rule",
    "Estimate",
    "CI",
    "n",
    "Verdict",
    "Control",
    "Tier",
    "Runtime",
)
VERDICT_LEGEND = (
    "Verdicts: SUPPORTED (the declared rule passed), REFUTED (it failed), INCONCLUSIVE (the "
    "confidence interval straddles the threshold), SKIPPED (no budget at this tier), ERROR "
    "(the check itself crashed). Control: the verdict of the claim's negative control, a "
    "deliberately broken variant on which the same rule must give REFUTED."
)


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


def problems(results: Mapping[str, Any]) -> list[str]:
    """What makes this run untrustworthy: negative controls not REFUTED, ERRORs, a partial run."""
    out = []
    if not results.get("complete", True):
        out.append(
            "The run did not finish: this report covers only the claims that ran before it stopped."
        )
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
    "One claim at a time (each writes into reports/TIER unless given `--out DIR`, so add one to "
    "keep this run's files):"
)


def _counts(statuses: Iterable[str]) -> str:
    counts = Counter(statuses)
    return ", ".join(f"{counts[s]} {s}" for s in STATUS_ORDER if counts[s]) or "none"


def _header_items(results: Mapping[str, Any]) -> list[str]:
    """The header's bullet points, in Markdown inline syntax (code spans)."""
    fp = results.get("fingerprint", {})
    entries = results["claims"]
    controls = (
        _counts(s for e in entries if (s := control_status(e)) is not None)
        if results.get("controls", True)
        else "not run (--no-controls)"
    )
    return [
        f"Date: {results.get('started_utc', fp.get('timestamp_utc', DASH))}",
        f"Tier: `{results['tier']}`; seed: {results['seed']}; "
        f"claims: {len(entries)}; total runtime: {fmt_seconds(results.get('runtime_s'))}",
        f"Verdicts: {_counts(e['verdict']['status'] for e in entries)}",
        f"Negative controls: {controls}",
        f"Reproduce: `{command_line(results['command'])}`",
        *_execution_items(results.get("execution")),
        *_implementation_items(results.get("implementation")),
    ]


def _implementation_items(implementation: Mapping[str, Any] | None) -> list[str]:
    if not implementation:
        return []
    if implementation.get("error"):
        return [f"Implementation under test: `{implementation['spec']}`, which failed to load: "
                f"{implementation['error']}"]
    return [f"Implementation under test: {implementation.get('name')} "
            f"(`{implementation['spec']}`; capabilities: "
            f"{', '.join(implementation.get('capabilities') or []) or 'none'})"]


def _execution_items(execution: Mapping[str, Any] | None) -> list[str]:
    if not execution or execution.get("cache") is None:
        return []
    how = "read from it only (--cached-only)" if not execution.get("train", True) else (
        f"missing ones trained on {execution.get('executor')} x{execution.get('max_workers')}")
    return [f"Trainings: job cache `{execution['cache']}`, {how}"]


def _title(results: Mapping[str, Any]) -> str:
    return f"trpo-claims report: {results['tier']} tier"


def verdict_row(entry: Mapping[str, Any], tier: str) -> list[str]:
    """The verdict table's cells for one claim, as plain text (columns: VERDICT_COLUMNS)."""
    d, v = entry["description"], entry["verdict"]
    rule = d.get("rule", {})
    return [
        entry["id"],
        d.get("title", ""),
        d.get("source", ""),
        d.get("kind", ""),
        rule.get("statistic", ""),
        rule_text(rule),
        fmt_value(v.get("value")),
        fmt_ci(v.get("ci")),
        str(v.get("n") or DASH),
        v["status"],
        control_status(entry) or DASH,
        entry.get("tier", tier),
        fmt_seconds(entry.get("runtime_s", {}).get("total")),
    ]


_ID, _VERDICT = VERDICT_COLUMNS.index("Claim"), VERDICT_COLUMNS.index("Verdict")


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
        ("Protocol", d.get("protocol", "")),
        ("Decision rule", rule_sentence(d["rule"]) if d.get("rule") else DASH),
        ("Budget at this tier", f"`{fmt_value(entry.get('budget'), max_len=400)}`"),
    ]


def _control_expectation(status: str) -> str:
    return "as it must" if status == "REFUTED" else "**it must be REFUTED**"


# --- Markdown --------------------------------------------------------------------------------


def _verdict_table(entries: Sequence[Mapping[str, Any]], tier: str) -> list[str]:
    rows = []
    for e in entries:
        row = verdict_row(e, tier)
        row[_ID], row[_VERDICT] = f"`{row[_ID]}`", f"**{row[_VERDICT]}**"
        rows.append(row)
    return _table(VERDICT_COLUMNS, rows)


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
        expected = _control_expectation(cv["status"])
        lines += [f"Control verdict: **{verdict_brief(cv)}** ({expected}).", ""]
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


TRAININGS_COLUMNS = ["Group", "Task", "Method", "Runs finished / planned", "Env steps",
                     "Wall time (one worker)", "Per run"]
TRAININGS_NOTE = (
    "The empirical claims' training jobs, from the job cache: the wall time each finished run "
    "took on one worker, whenever it ran (a run read from the cache cost nothing this time). "
    "With W workers, a tier takes about the total divided by W.")


def training_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """The rows of the trainings table, plus a total row (none when no trainings)."""
    trainings = results.get("trainings") or []
    rows = [[t["group"], t["task"], t["method"], f"{t['finished']} / {t['planned']}",
             f"{t['env_steps']:,}", fmt_seconds(t["wall_s"]),
             fmt_seconds(t["wall_s"] / t["finished"]) if t["finished"] else DASH]
            for t in trainings]
    if rows:
        finished = sum(t["finished"] for t in trainings)
        rows.append(["total", "", "", f"{finished} / {sum(t['planned'] for t in trainings)}",
                     f"{sum(t['env_steps'] for t in trainings):,}",
                     fmt_seconds(sum(t["wall_s"] for t in trainings)), ""])
    return rows


def _trainings_section(results: Mapping[str, Any]) -> list[str]:
    rows = training_rows(results)
    if not rows:
        return []
    return ["## Trainings", "", TRAININGS_NOTE, "", *_table(TRAININGS_COLUMNS, rows), ""]


def render_markdown(results: Mapping[str, Any]) -> str:
    """The whole report.md for a results document (the parsed results.json)."""
    entries = results["claims"]
    lines = [f"# {_title(results)}", "", *(f"- {item}" for item in _header_items(results)), ""]
    issues = problems(results)
    if issues:
        lines += ["## WARNING: this run has problems", ""] + [f"- {p}" for p in issues] + [""]
    lines += ["## Verdicts", "", *_verdict_table(entries, results["tier"]), ""]
    lines += [VERDICT_LEGEND, "", "## Claims", ""]
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
body { font: 15px/1.5 system-ui, sans-serif; color: #222; max-width: 72rem; margin: 2rem auto;
       padding: 0 1rem; }
h1, h2, h3 { line-height: 1.25; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
code, pre { font: 13px/1.4 ui-monospace, monospace; background: #f4f4f2; }
code { padding: 0 .2em; } pre { padding: .6rem; overflow-x: auto; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f0f0ec; }
.status { font-weight: 600; white-space: nowrap; }
.s-SUPPORTED { background: #d5ecd0; color: #1d5b16; }
.s-REFUTED { background: #f6d2cd; color: #8a1c0e; }
.s-INCONCLUSIVE { background: #fbe5bd; color: #7a4c00; }
.s-SKIPPED { background: #e4e4e4; color: #555; }
.s-ERROR { background: #e6d5f0; color: #5b1f7a; }
.warning { border: 2px solid #c0392b; background: #fdf0ee; padding: .2rem 1rem; }
blockquote { border-left: 4px solid #ccc; margin: .5rem 0; padding: .1rem .8rem; color: #444; }
figure { display: inline-block; margin: .5rem 1rem .5rem 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #555; }
section.claim { margin-bottom: 2rem; }
"""

_CODE_SPAN = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _inline(text: Any) -> str:
    """Markdown inline text (code spans, bold) as HTML, every character escaped first."""
    escaped = _esc(text)
    return _BOLD.sub(r"<strong>\1</strong>", _CODE_SPAN.sub(r"<code>\1</code>", escaped))


def _status(status: str | None) -> str:
    """A table cell for a verdict status, coloured by its class (a dash where there is none)."""
    if status is None:
        return f"<td>{DASH}</td>"
    return f'<td class="status s-{_esc(status)}">{_esc(status)}</td>'


def _html_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table of cells that are already HTML (each a ``<td>`` or plain content)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_verdict_table(entries: Sequence[Mapping[str, Any]], tier: str) -> str:
    control = VERDICT_COLUMNS.index("Control")
    rows = []
    for e in entries:
        row = [_esc(c) for c in verdict_row(e, tier)]
        row[_ID] = f'<a href="#claim-{_esc(e["id"])}"><code>{row[_ID]}</code></a>'
        row[_VERDICT] = _status(e["verdict"]["status"])
        row[control] = _status(control_status(e))
        rows.append(row)
    return _html_table(VERDICT_COLUMNS, rows)


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


def _html_claim(entry: Mapping[str, Any]) -> str:
    d, v = entry["description"], entry["verdict"]
    parts = [
        f'<section class="claim" id="claim-{_esc(entry["id"])}">',
        f"<h3><code>{_esc(entry['id'])}</code>: {_esc(d.get('title', ''))}</h3>",
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
            f'<p>Control verdict: <span class="status s-{_esc(cv["status"])}">'
            f"{_esc(verdict_brief(cv))}</span> ({_inline(_control_expectation(cv['status']))}).</p>"
        )
        if cv.get("message"):
            parts.append(f"<blockquote>{_esc(cv['message'])}</blockquote>")
        parts.append(_html_error(control.get("error")))
        if control.get("evidence") is not None:
            parts.append(_html_summary(control["evidence"].get("summary", {})))
    figures = entry.get("figures", [])
    if figures:
        parts.append("<p><strong>Figures.</strong></p>")
        for f in figures:
            name = _esc(f.rsplit("/", 1)[-1])
            parts.append(
                f'<figure><img src="{html.escape(f, quote=True)}" alt="{name}">'
                f"<figcaption>{name}</figcaption></figure>"
            )
    parts += [
        f"<p>Figure error (not fatal): <code>{_esc(err)}</code></p>"
        for err in entry.get("figure_errors", [])
    ]
    parts.append("</section>")
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


def render_html(results: Mapping[str, Any]) -> str:
    """The whole report.html for a results document: report.md's content as one HTML page."""
    entries = results["claims"]
    header = "".join(f"<li>{_inline(item)}</li>" for item in _header_items(results))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
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
    parts += ["<h2>Verdicts</h2>", _html_verdict_table(entries, results["tier"])]
    parts += [f"<p>{_esc(VERDICT_LEGEND)}</p>", "<h2>Claims</h2>"]
    parts += [_html_claim(entry) for entry in entries]
    rows = training_rows(results)
    if rows:
        parts += ["<h2>Trainings</h2>", f"<p>{_esc(TRAININGS_NOTE)}</p>",
                  _html_table(TRAININGS_COLUMNS, ([_esc(str(c)) for c in r] for r in rows))]
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


def write_reports(run_dir: Path | str, results: Mapping[str, Any] | None = None) -> list[Path]:
    """Write RUN_DIR/report.md and RUN_DIR/report.html (atomically) from ``results``, by default
    RUN_DIR/results.json; returns their paths, Markdown first."""
    # the runner imports this module, so its file names are looked up at call time
    from claims.runner import REPORT_FILE, REPORT_HTML_FILE, load_results

    run_dir = Path(run_dir)
    results = load_results(run_dir) if results is None else results
    paths = [run_dir / REPORT_FILE, run_dir / REPORT_HTML_FILE]
    for path, render in zip(paths, (render_markdown, render_html), strict=True):
        write_text_atomic(path, render(results))
    return paths
