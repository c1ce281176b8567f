"""Saved baselines and `trpo-claims compare`: outcomes from intervals of paired differences,
regressions by verdict, machine warnings, exit status."""

from __future__ import annotations

import json

import pytest

from claims.cli.main import main
from claims.framework.compare import (
    compare_claim,
    decide_difference,
    load_side,
    machine_differences,
    paired_differences,
    save_baseline,
)
from claims.framework.core import Comparison

EITHER = Comparison("x", "either", 0.1)
HIGHER = Comparison("x", "higher", 0.1)
LOWER = Comparison("x", "lower", 0.1)


@pytest.mark.parametrize(("ci", "rule", "expected"), [
    ((-0.05, 0.05), EITHER, "equivalent"),
    ((0.2, 0.3), EITHER, "worse"),
    ((-0.3, -0.2), EITHER, "worse"),
    ((0.05, 0.2), EITHER, "inconclusive"),
    ((0.2, 0.3), HIGHER, "better"),
    ((-0.3, -0.2), HIGHER, "worse"),
    ((0.2, 0.3), LOWER, "worse"),
    ((-0.3, -0.2), LOWER, "better"),
    ((-0.2, 0.2), HIGHER, "inconclusive"),
    ((float("nan"), 0.0), HIGHER, "inconclusive"),
])
def test_decide_difference(ci, rule, expected):
    assert decide_difference(ci, rule) == expected


def test_paired_differences_pair_by_key_and_scale_relative_margins():
    base, cand = {"a": 2.0, "b": 4.0, "only base": 1.0}, {"b": 5.0, "a": 2.0, "only cand": 9.0}
    assert paired_differences(base, cand, EITHER).tolist() == [0.0, 1.0]
    relative = Comparison("x", "higher", 0.1, relative=True)
    assert paired_differences(base, cand, relative).tolist() == pytest.approx(
        [0.0, 1.0 / 3.0])  # divided by the baseline's mean |value| over the pairs, (2 + 4) / 2


def side(status, samples, rule=HIGHER):
    return {"status": status, "samples": samples,
            "comparison": None if rule is None else rule.__dict__}


def test_compare_claim_outcomes():
    same = compare_claim("c", side("SUPPORTED", {"a": 1.0, "b": 2.0}),
                         side("SUPPORTED", {"a": 1.0, "b": 2.0}))
    assert same.outcome == "equivalent" and same.ci == (0.0, 0.0) and same.n == 2
    worse = compare_claim("c", side("SUPPORTED", {"a": 1.0, "b": 2.0}),
                          side("SUPPORTED", {"a": 0.5, "b": 1.4}))
    assert worse.outcome == "worse" and worse.ci[1] < -0.1
    # a verdict that falls is a regression even when the samples are equivalent
    fell = compare_claim("c", side("SUPPORTED", {"a": 1.0}), side("REFUTED", {"a": 1.0}))
    assert fell.outcome == "worse" and "fell from SUPPORTED to REFUTED" in fell.message
    by_verdict = compare_claim("c", side("SUPPORTED", {}, None), side("ERROR", {}, None))
    assert by_verdict.outcome == "worse"
    missing = compare_claim("c", None, side("SUPPORTED", {}))
    assert missing.outcome == "inconclusive" and "not in the baseline" in missing.message


def test_compare_pairs_cell_by_cell_and_names_the_unpaired():
    base = side("SUPPORTED", {"A seed 0 delta 1": 0.0, "A seed 1 delta 1": 1.0}, LOWER)
    cand = side("REFUTED", {"A seed 0 delta 1": 0.0}, LOWER)  # seed 1 crashed before a sample
    row = compare_claim("c", base, cand)
    assert row.n == 1 and "1 cell(s) on one side only" in row.message
    assert "A seed 1 delta 1" in row.message and row.outcome == "worse"


RESULTS = {
    "tier": "quick", "seed": 0, "command": ["trpo-claims", "run"],
    "implementation": {"spec": "claims.adapters.trpo_ref:factory", "name": "trpo_ref"},
    "fingerprint": {"machine": "x86_64", "cpu_model": "AMD EPYC", "cpu_count": 2,
                    "platform": "Linux", "python": "3.11.7", "packages": {"torch": "2.13.0"}},
    "claims": [{"id": "impl.kl_within_delta", "evidence": None,
                "verdict": {"status": "SUPPORTED", "statistic": "s", "value": 0.9}}],
}


def test_save_load_and_cli_compare(tmp_path, capsys):
    saved = save_baseline(RESULTS, "main", tmp_path)
    assert json.loads(saved.read_text())["claims"]["impl.kl_within_delta"]["value"] == 0.9
    assert load_side("main", tmp_path)["name"] == "main"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    other = json.loads(json.dumps(RESULTS))
    other["fingerprint"]["cpu_count"] = 16
    other["claims"][0]["verdict"]["status"] = "REFUTED"
    (run_dir / "results.json").write_text(json.dumps(other))
    assert load_side(str(run_dir), tmp_path)["claims"]["impl.kl_within_delta"]["status"] == \
        "REFUTED"
    assert main(["compare", "main", "main", "--baseline-dir", str(tmp_path)]) == 0
    assert main(["compare", "main", str(run_dir), "--baseline-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "different machines" in err and "cpu_count" in err
    with pytest.raises(FileNotFoundError):
        load_side("nothing-here", tmp_path)


def test_machine_differences_name_packages():
    other = json.loads(json.dumps(RESULTS))
    other["fingerprint"]["packages"]["torch"] = "2.14.0"
    assert machine_differences(RESULTS, other) == ["torch: '2.13.0' vs '2.14.0'"]


def test_run_save_writes_a_baseline_with_samples(tmp_path, capsys):
    out, baselines = tmp_path / "run", tmp_path / "baselines"
    argv = ["run", "--claim", "impl.kl_within_delta", "--out", str(out), "--no-controls",
            "--save", "ref", "--baseline-dir", str(baselines)]
    assert main(argv) == 0
    entry = json.loads((baselines / "ref.json").read_text())["claims"]["impl.kl_within_delta"]
    assert entry["status"] == "SUPPORTED" and len(entry["samples"]) == 4
    assert entry["comparison"]["better"] == "either"
    assert main(["run", "--claim", "impl.kl_within_delta", "--save", "../x"]) == 2
