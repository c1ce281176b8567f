"""pytest plugin: ``pytest --trpo-impl=SPEC`` checks a TRPO implementation's claims as test items.

Installed with the package (entry point ``trpo_claims`` in the ``pytest11`` group), so it is active
in every pytest run of the environment; without ``--trpo-impl`` it adds nothing. With it, pytest
collects one item per selected claim, named ``trpo-claims::CLAIM_ID`` (no test file needed: run
it in an empty directory), and each item runs and judges its claim exactly as ``trpo-claims run
--impl SPEC --claim CLAIM_ID`` does (:func:`claims.framework.runner.run_one`, inside
:func:`claims.framework.impl.use_implementation`). Outcomes:

- SUPPORTED passes;
- SKIPPED (no budget at the tier, a capability the implementation lacks, a claim that checks only
  the reference) is a pytest skip with the reason;
- INCONCLUSIVE is a skip with the reason, a failure with ``--claims-strict``;
- REFUTED and ERROR fail, with the statistic, rule, value, interval, n and the verdict's message;
- with ``--claims-controls`` the claim's negative control runs as well and must come out REFUTED.

Selection (``--claims-select``): by default the claims that judge an implementation under test
(those that declare the capabilities they require, ``Claim.requires`` not None), for any spec,
the reference included, so the same command lists the same items for every implementation.
``--claims-select ID`` (repeatable) picks claims by id; ``--claims-select all`` every registered
claim (with a spec other than the reference, those checking trpo_ref itself are then SKIPPED).

Each item records its verdict in ``item.user_properties`` (``claim_id``, ``verdict``,
``statistic``, ``comparator``, ``threshold``, ``value``, ``ci``, ``n``, ``message``,
``control_verdict``, ``implementation``, ``tier``, ``seed``, ``budget_seeds``), so pytest's own
``--junitxml`` writes them as ``<property>`` elements of the test case.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# claims.framework.core only needs the standard library; everything heavier is imported once the
# plugin is asked to do something, so that the project's own test runs do not pay for it.
from claims.framework.core import DEFAULT_TIER, TIERS, Status

if TYPE_CHECKING:
    from claims.framework.core import Claim
    from claims.framework.impl import UnderTest

COLLECTOR_NAME = "trpo-claims"  # items are "trpo-claims::CLAIM_ID"
SELECT_ALL = "all"


@dataclass
class ClaimsRun:
    """What ``--trpo-impl`` and the other options asked for."""

    under_test: UnderTest
    claims: list[Claim]
    tier: str
    seed: int
    controls: bool
    strict: bool
    _name: str | None = field(default=None, init=False)

    def implementation_label(self) -> str:
        """``trpo_ref (claims.adapters.trpo_ref:factory)``: name and spec; ``SPEC (failed to
        load)`` for a spec that does not load."""
        from claims.framework.impl import ImplementationError, implementation_name

        try:
            return f"{implementation_name(self.under_test.load())} ({self.under_test.spec})"
        except ImplementationError:
            return f"{self.under_test.spec} (failed to load)"


RUN = pytest.StashKey[ClaimsRun]()


class ClaimFailed(Exception):
    """A claim item's failure; its message is the whole failure report."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trpo-claims", "trpo-claims: check a TRPO implementation's claims")
    group.addoption(
        "--trpo-impl", dest="trpo_impl", metavar="SPEC", default=None,
        help="run the claims against this implementation: 'package.module:factory' or a name "
        "registered in the 'trpo_claims.implementations' entry-point group (e.g. "
        "claims.adapters.trpo_ref:factory); without it the plugin adds nothing")
    group.addoption(
        "--claims-tier", dest="claims_tier", choices=TIERS, default=DEFAULT_TIER,
        help=f"the claims' budget tier (default {DEFAULT_TIER})")
    group.addoption(
        "--claims-seed", dest="claims_seed", type=int, default=0, metavar="N",
        help="seed passed to every claim's run (default 0)")
    group.addoption(
        "--claims-select", dest="claims_select", action="append", default=[], metavar="ID",
        help="run this claim (repeatable; 'all': every registered claim); default: every claim "
        "that judges an implementation under test")
    group.addoption(
        "--claims-controls", dest="claims_controls", action="store_true",
        help="also run each claim's negative control, which must come out REFUTED")
    group.addoption(
        "--claims-strict", dest="claims_strict", action="store_true",
        help="an INCONCLUSIVE verdict fails (default: it is skipped with the reason)")


def select_claims(ids: Sequence[str]) -> list[Claim]:
    """The claims ``--claims-select`` names (see the module docstring); KeyError for an unknown
    id, naming the known ones."""
    from claims.framework import registry

    if not ids:
        return [c for c in registry.all_claims() if c.requires is not None]
    if SELECT_ALL in ids:
        return registry.all_claims()
    return [registry.get(claim_id) for claim_id in dict.fromkeys(ids)]


def pytest_configure(config: pytest.Config) -> None:
    spec = config.getoption("trpo_impl")
    if not spec:
        return
    from claims.framework.impl import UnderTest

    try:
        claims = select_claims(config.getoption("claims_select"))
    except KeyError as error:
        raise pytest.UsageError(f"--claims-select: {error.args[0]}") from None
    config.stash[RUN] = ClaimsRun(
        under_test=UnderTest(spec), claims=claims, tier=config.getoption("claims_tier"),
        seed=config.getoption("claims_seed"), controls=config.getoption("claims_controls"),
        strict=config.getoption("claims_strict"))


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    run = config.stash.get(RUN, None)
    if run is None:
        return None
    n = len(run.claims)
    lines = [f"trpo-claims: implementation {run.implementation_label()}, tier {run.tier}, "
             f"seed {run.seed}, {n} claim{'' if n == 1 else 's'}"
             + (", with negative controls" if run.controls else "")]
    record = run.under_test.record()
    if record["error"] is not None:
        lines.append(f"trpo-claims: the implementation did not load: {record['error']}")
    return lines


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """Add the claims' collector to the session's own, so that the items go through pytest's
    usual collection (counted, listed by --collect-only, filtered by -k and -m)."""
    report = yield
    run = collector.config.stash.get(RUN, None)
    if run is not None and isinstance(collector, pytest.Session) and report.passed:
        # an explicit id: a child of the session would otherwise be "::trpo-claims"
        report.result.append(ClaimsCollector.from_parent(collector, name=COLLECTOR_NAME,
                                                         nodeid=COLLECTOR_NAME))
    return report


class ClaimsCollector(pytest.Collector):
    """``trpo-claims``: one item per selected claim."""

    def collect(self) -> list[ClaimItem]:
        run = self.config.stash[RUN]
        return [ClaimItem.from_parent(self, name=claim.id, claim=claim) for claim in run.claims]

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.config.rootpath / COLLECTOR_NAME, None, COLLECTOR_NAME


class ClaimItem(pytest.Item):
    """One claim, run and judged against the implementation under test."""

    def __init__(self, *, claim: Claim, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claim = claim

    def reportinfo(self) -> tuple[Path, None, str]:
        # the location's path is the id's first part (no "<- file" in -vv lines); the domain
        # (failure headlines) is not a suffix of the id, or pytest prints its dots as "::"
        return self.config.rootpath / COLLECTOR_NAME, None, f"{COLLECTOR_NAME} {self.name}"

    def runtest(self) -> None:
        run = self.config.stash[RUN]
        entry, progress = judge(self.claim, run)
        self.user_properties.extend(verdict_properties(entry, run))
        self.add_report_section("call", "trpo-claims", item_section(entry, run, progress))
        outcome, reason = item_outcome(entry, strict=run.strict, controls=run.controls)
        if outcome == "failed":
            raise ClaimFailed(f"{reason}\nimplementation {run.implementation_label()}, tier "
                              f"{run.tier}, seed {run.seed}")
        if outcome == "skipped":
            pytest.skip(reason)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ClaimFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))


def judge(claim: Claim, run: ClaimsRun) -> tuple[dict[str, Any], str]:
    """Run and judge ``claim`` as ``trpo-claims run`` does: its results.json entry (see
    :mod:`claims.framework.runner`) and the runner's progress line. Figures go to a temporary
    directory."""
    from claims.framework.impl import use_implementation
    from claims.framework.runner import run_one

    progress: list[str] = []
    with (use_implementation(run.under_test),
          tempfile.TemporaryDirectory(prefix="trpo-claims-") as out_dir):
        entry = run_one(claim, tier=run.tier, seed=run.seed, out_dir=Path(out_dir),
                         controls=run.controls, say=progress.append)
    return entry, "".join(progress).strip()


def verdict_lines(verdict: dict[str, Any]) -> list[str]:
    """The verdict's fields, one per line, for a failure report (the first: status and why)."""
    from claims.framework.report import fmt_ci, fmt_value, verdict_brief

    lines = [verdict_brief(verdict)]
    message = verdict.get("message") or ""
    if verdict.get("comparator") is None:  # the brief already holds the message's first line
        return lines + [f"  {line}" for line in message.splitlines()[1:]]
    rule = f"{verdict['comparator']} {fmt_value(verdict['threshold'])}"
    return [*lines, f"  statistic: {verdict['statistic']}", f"  rule: statistic {rule}",
            f"  value: {fmt_value(verdict['value'])}, CI: {fmt_ci(verdict['ci'])}, "
            f"n: {verdict['n']}",
            f"  message: {message or '-'}"]


def item_outcome(entry: dict[str, Any], *, strict: bool, controls: bool) -> tuple[str, str]:
    """("passed" | "skipped" | "failed", why) for a claim's results.json ``entry``."""
    from claims.framework.report import verdict_brief

    verdict = entry["verdict"]
    status = Status(verdict["status"])
    problems: list[str] = []
    if status in (Status.REFUTED, Status.ERROR) or (status is Status.INCONCLUSIVE and strict):
        problems += verdict_lines(verdict)
    control = entry.get("control")
    if controls and control is not None and control["verdict"]["status"] != Status.REFUTED:
        problems += ["negative control, which must be REFUTED: "
                     + verdict_lines(control["verdict"])[0], *verdict_lines(control["verdict"])[1:]]
    if problems:
        return "failed", "\n".join(problems)
    if status in (Status.SKIPPED, Status.INCONCLUSIVE):
        return "skipped", f"{entry['id']} {verdict_brief(verdict)}"
    return "passed", verdict_brief(verdict)


def budget_seeds(entry: dict[str, Any]) -> Any:
    """The seeds the claim's budget lists at the tier (None where it lists none)."""
    budget = entry.get("budget") or {}
    return budget.get("seeds") if isinstance(budget, dict) else None


def _property(value: Any) -> str:
    """A property value as text: strings as they are, anything else as JSON."""
    from claims.framework.serialize import to_jsonable

    return value if isinstance(value, str) else json.dumps(to_jsonable(value))


def verdict_properties(entry: dict[str, Any], run: ClaimsRun) -> list[tuple[str, str]]:
    """(name, value) pairs for ``item.user_properties`` (and so for --junitxml)."""
    verdict = entry["verdict"]
    control = entry.get("control")
    fields: dict[str, Any] = {
        "claim_id": entry["id"],
        "verdict": verdict["status"],
        **{key: verdict.get(key) for key in ("statistic", "comparator", "threshold", "value",
                                             "ci", "n", "message")},
        "control_verdict": "not run" if control is None else control["verdict"]["status"],
        "implementation": run.under_test.spec,
        "tier": run.tier,
        "seed": run.seed,
        "budget_seeds": budget_seeds(entry),
    }
    return [(name, _property(value)) for name, value in fields.items()]


def item_section(entry: dict[str, Any], run: ClaimsRun, progress: str) -> str:
    """The item's report section: what ran, the runner's line, and the traceback of an error
    other than an ImplementationError (whose message already says what is wrong)."""
    lines = [f"implementation {run.implementation_label()}, tier {run.tier}, seed {run.seed}, "
             f"budget seeds {_property(budget_seeds(entry))}",
             f"{entry['id']} ... {progress}"]
    for side, error in (("claim", entry.get("error")),
                        ("control", (entry.get("control") or {}).get("error"))):
        if error and error.get("traceback") and error.get("type") != "ImplementationError":
            lines += [f"{side} {error['phase']} traceback:", error["traceback"].rstrip()]
    return "\n".join(lines)
