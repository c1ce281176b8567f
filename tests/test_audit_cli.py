"""trpo-claims audit: a library whose adapter cannot load is listed with the reason, one
library's results become a line of the comparative report (verdicts, KL overshoot by action
dimension, crashed cells, mutant detection), and an audit resumes (finished libraries kept)."""

from __future__ import annotations

import json
from pathlib import Path

from claims.cli import audit as audit_cli
from claims.framework.impl import REFERENCE_SPEC, capabilities, load_implementation


def test_an_unavailable_library_is_reported_with_its_error(tmp_path):
    report = audit_cli.audit("quick", {"ghost": "no_such_module:factory"}, out=tmp_path)
    assert "cannot import 'no_such_module'" in report["unavailable"]["ghost"]
    assert "torch==2.5.1" in report["unavailable"]["mushroom_rl"]
    readme = (tmp_path / "README.md").read_text()
    assert "- ghost: " in readme and "## Not audited" in readme


def test_a_librarys_results_become_its_line(tmp_path):
    results = {"implementation": {"name": "x"}, "claims": [
        {"id": "impl.kl_within_delta", "error": None,
         "verdict": {"status": "REFUTED", "value": 3.0, "message": "m"},
         "evidence": {"config": {"deltas": [0.01]},
                      "data": {"kl_mean": {"Hopper-v5 seed 0": [0.005, 0.03],
                                           "CartPole-v1 seed 0": [0.008]}}}},
        {"id": "impl.rejected_update_restores", "verdict": None,
         "error": {"message": "Hopper-v5 seed 0, delta 100, update 3: ValueError: nan"}}]}
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "detection.json").write_text(json.dumps(
        {"bugs_caught": 3, "bugs_applicable": 4, "false_alarms": [], "complete": True,
         "clean_reference_passes": True, "not_applicable": [], "missed": ["b"], "tier": "quick"}))
    line = audit_cli.summarize("x", "x:factory", results, mutants_dir=tmp_path)
    overshoot = {r["cell"]: r for r in line["kl_overshoot"]}
    assert overshoot["Hopper-v5 seed 0"]["action_dims"] == 3
    assert abs(overshoot["Hopper-v5 seed 0"]["max_kl_over_delta"] - 3.0) < 1e-12
    assert overshoot["CartPole-v1 seed 0"]["action_dims"] == 1
    assert line["restore"] == {"status": "ERROR", "crash": results["claims"][1]["error"]
                               ["message"]}
    table = audit_cli.audit_markdown({"tier": "quick", "seed": 0, "libraries": [line],
                                      "unavailable": {}})
    assert "| impl.kl_within_delta | REFUTED 3 |" in table
    assert "| x | 3 of 4 (tier quick) | 0 | yes | b |" in table


def test_crashed_cells_are_listed_once_with_the_state_left():
    crash = {"update": 3, "kind": "exception", "error": "ValueError: nan", "state": "non-finite",
             "kl_after": None}
    results = {"claims": [
        {"id": "impl.kl_within_delta", "evidence": {"data": {"crashes": {
            "Hopper-v5 seed 0 delta 100": crash, "CartPole-v1 seed 0 delta 100": None}}}},
        {"id": "impl.ls_finite", "evidence": {"data": {"crashes": {
            "Hopper-v5 seed 0 delta 100": crash}}}},
        {"id": "impl.learns", "evidence": None}]}
    rows = audit_cli.crashed_cells(results)
    assert rows == [{"claim": "impl.kl_within_delta", "cell": "Hopper-v5 seed 0 delta 100",
                     "update": 3, "kind": "exception", "error": "ValueError: nan",
                     "state": "non-finite"}]
    line = audit_cli.summarize("x", "x:factory", {**results, "implementation": {"name": "x"}},
                               mutants_dir=Path("/nonexistent"))
    table = audit_cli.audit_markdown({"tier": "quick", "seed": 0, "libraries": [line],
                                      "unavailable": {}})
    assert "| Hopper-v5 seed 0 delta 100 | 3 | exception | non-finite | ValueError: nan |" in table


def _complete_run(tmp_path, name, spec, ids, tier="quick", seed=0):
    (tmp_path / name).mkdir(parents=True)
    doc = {"schema_version": 1, "complete": True, "tier": tier, "seed": seed, "controls": False,
           "planned_claims": ids, "finished_utc": "2026-12-03T00:00:00Z", "runtime_s": 60.0,
           "implementation": {"spec": spec, "name": name},
           "fingerprint": {"git": {"commit": "abcdef0123", "dirty": False}},
           "claims": [{"id": i, "verdict": {"status": "SUPPORTED", "value": 1.0}} for i in ids]}
    (tmp_path / name / "results.json").write_text(json.dumps(doc))
    return doc


def test_a_complete_run_of_the_same_plan_is_kept_and_other_lines_stay(tmp_path):
    """Resuming an audit reruns nothing already finished, and auditing one library keeps the
    other libraries' lines of the same tier and seed."""
    spec = REFERENCE_SPEC
    offered = capabilities(load_implementation(spec))
    ids = [c.id for c in audit_cli.audit_claims() if c.requires <= offered]
    _complete_run(tmp_path, "ref", spec, ids)
    (tmp_path / "audit.json").write_text(json.dumps(
        {"tier": "quick", "seed": 0, "unavailable": {},
         "libraries": [{"library": "other", "verdicts": {}, "kl_overshoot": [],
                        "restore": {"status": None, "crash": None}, "mutants": None}]}))
    report = audit_cli.audit("quick", {"ref": spec}, out=tmp_path)
    assert [line["library"] for line in report["libraries"]] == ["other", "ref"]
    ref = report["libraries"][1]
    assert ref["commit"] == "abcdef0123"
    assert set(ref["verdicts"]) == set(ids)
    assert "`abcdef0`" in (tmp_path / "README.md").read_text()
    # another tier's audit.json is not merged into this one
    assert audit_cli.earlier_lines(tmp_path, "standard", 0) == []


def test_a_run_of_another_plan_is_not_kept(tmp_path):
    _complete_run(tmp_path, "ref", REFERENCE_SPEC, ["impl.kl_within_delta"], tier="standard")
    assert audit_cli.finished_run(tmp_path / "ref", tier="quick", seed=0,
                                  ids=["impl.kl_within_delta"], spec=REFERENCE_SPEC) is None
    assert audit_cli.finished_run(tmp_path / "ref", tier="standard", seed=0,
                                  ids=["impl.kl_within_delta"], spec=REFERENCE_SPEC) is not None


def test_libraries_not_yet_run_are_named_with_how_to_resume():
    table = audit_cli.audit_markdown({"tier": "standard", "seed": 0, "libraries": [],
                                      "unavailable": {"skrl": "cannot import"}})
    pending = table.split("## Not yet run at this tier")[1].split("## Not audited")[0]
    assert "trpo_ref" in pending and "tianshou" in pending and "skrl" not in pending


def test_report_only_rebuilds_the_audit_from_the_results_in_out(tmp_path):
    _complete_run(tmp_path, "tianshou", "claims.adapters.tianshou:factory",
                  ["impl.kl_within_delta"], tier="standard")
    _complete_run(tmp_path, "pfrl", "claims.adapters.pfrl:factory", ["impl.kl_within_delta"])
    report = audit_cli.rebuild("standard", 0, tmp_path)
    assert [line["library"] for line in report["libraries"]] == ["tianshou"]  # pfrl: quick
    readme = (tmp_path / "README.md").read_text()
    assert "| impl.kl_within_delta | SUPPORTED 1 |" in readme and "## Not yet run" in readme
