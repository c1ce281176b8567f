"""report.md, rendered from the content of results.json alone.

Because nothing but the results document goes in, ``trpo-claims report RUN_DIR`` regenerates the
same report.md from a stored results.json (see :mod:`claims.runner` for its schema).
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

STATUS_ORDER: tuple[str, ...] = ("SUPPORTED", "REFUTED", "INCONCLUSIVE", "SKIPPED", "ERROR")
DASH = "—"


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


# --- the parts of the report -----------------------------------------------------------------


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
        elif cs is not None and cs != "REFUTED":
            out.append(
                f"The negative control of `{cid}` came out **{cs}**, not REFUTED: as run, this "
                "check cannot fail, so its verdict is no evidence either way. This is a defect "
                "of the suite, not a finding about the paper."
            )
    return out


def _counts(statuses: Iterable[str]) -> str:
    counts = Counter(statuses)
    return ", ".join(f"{counts[s]} {s}" for s in STATUS_ORDER if counts[s]) or "none"


def _header(results: Mapping[str, Any]) -> list[str]:
    fp = results.get("fingerprint", {})
    entries = results["claims"]
    controls = (
        _counts(s for e in entries if (s := control_status(e)) is not None)
        if results.get("controls", True)
        else "not run (--no-controls)"
    )
    return [
        f"# trpo-claims report: {results['tier']} tier",
        "",
        f"- Date: {results.get('started_utc', fp.get('timestamp_utc', DASH))}",
        f"- Tier: `{results['tier']}`; seed: {results['seed']}; "
        f"claims: {len(entries)}; total runtime: {fmt_seconds(results.get('runtime_s'))}",
        f"- Verdicts: {_counts(e['verdict']['status'] for e in entries)}",
        f"- Negative controls: {controls}",
        f"- Reproduce: `{command_line(results['command'])}`",
    ]


def _verdict_table(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    header = [
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
        "Runtime",
    ]
    rows = []
    for e in entries:
        d, v = e["description"], e["verdict"]
        rule = d.get("rule", {})
        rows.append(
            [
                f"`{e['id']}`",
                d.get("title", ""),
                d.get("source", ""),
                d.get("kind", ""),
                rule.get("statistic", ""),
                rule_text(rule),
                fmt_value(v.get("value")),
                fmt_ci(v.get("ci")),
                v.get("n") or DASH,
                f"**{v['status']}**",
                control_status(e) or DASH,
                fmt_seconds(e.get("runtime_s", {}).get("total")),
            ]
        )
    return _table(header, rows)


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
    lines += [
        f"- **Statement.** {d.get('statement', '')}",
        f"- **Source.** {d.get('source', '')}",
        f"- **Kind.** {d.get('kind', '')}",
        f"- **Protocol.** {d.get('protocol', '')}",
        f"- **Decision rule.** {rule_sentence(d['rule']) if d.get('rule') else DASH}",
        f"- **Budget at this tier.** `{fmt_value(entry.get('budget'), max_len=400)}`",
        "",
    ]
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
        expected = "as it must" if cv["status"] == "REFUTED" else "**it must be REFUTED**"
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


def _environment(results: Mapping[str, Any]) -> list[str]:
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
    return _table(["Item", "Value"], rows)


def render_markdown(results: Mapping[str, Any]) -> str:
    """The whole report.md for a results document (the parsed results.json)."""
    entries = results["claims"]
    lines = [*_header(results), ""]
    issues = problems(results)
    if issues:
        lines += ["## WARNING: this run has problems", ""] + [f"- {p}" for p in issues] + [""]
    lines += ["## Verdicts", "", *_verdict_table(entries), ""]
    lines += [
        "Verdicts: SUPPORTED (the declared rule passed), REFUTED (it failed), INCONCLUSIVE (the "
        "confidence interval straddles the threshold), SKIPPED (no budget at this tier), ERROR "
        "(the check itself crashed). Control: the verdict of the claim's negative control, a "
        "deliberately broken variant on which the same rule must give REFUTED.",
        "",
        "## Claims",
        "",
    ]
    for entry in entries:
        lines += _claim_section(entry)
    lines += ["## Environment", "", *_environment(results), ""]
    lines += ["## Reproduce", "", "```", command_line(results["command"]), "```", ""]
    return "\n".join(lines)
