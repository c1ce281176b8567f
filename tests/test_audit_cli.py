"""trpo-claims audit: a library whose adapter cannot load is listed with the reason, and one
library's results become a line of the comparative report (verdicts, KL overshoot by action
dimension, crash, mutant detection)."""

from __future__ import annotations

import json

from claims.cli import audit as audit_cli


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
