"""The fork check flags a seeded bug against the clean reference, and the clean reference,
rerun, passes."""

from __future__ import annotations

import json

from claims.cli.main import main


def test_fork_check_catches_a_bug_and_passes_the_clean_reference(tmp_path, capsys):
    out = tmp_path / "fc"
    argv = ["fork-check", "--bug", "no_restore_on_failure", "--claim",
            "impl.rejected_update_restores", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "detection.json").read_text())
    assert report["clean_reference_passes"] and report["all_bugs_caught"]
    rows = {row["bug"]: row for row in report["rows"]}
    assert not rows["clean_reference"]["caught"]
    hit = rows["no_restore_on_failure"]["caught_by"][0]
    assert hit["claim_id"] == "impl.rejected_update_restores"
    assert hit["candidate_status"] == "REFUTED" and hit["candidate_value"] > 0
    table = (out / "detection.md").read_text()
    assert "| no_restore_on_failure | yes | impl.rejected_update_restores |" in table
    assert (out / "runs" / "no_restore_on_failure" / "results.json").is_file()


def test_a_harmless_fork_goes_uncaught_and_the_check_exits_1(tmp_path, monkeypatch):
    from claims.faults import forks

    monkeypatch.setitem(forks.BUGS, "harmless", dict)  # patches nothing: the clean reference
    argv = ["fork-check", "--bug", "harmless", "--claim", "impl.surrogate_improves", "--out",
            str(tmp_path / "fc")]
    assert main(argv) == 1
    report = json.loads((tmp_path / "fc" / "detection.json").read_text())
    assert report["clean_reference_passes"] and not report["all_bugs_caught"]
    assert "| harmless | no |" in (tmp_path / "fc" / "detection.md").read_text()
