"""scripts/render_docs.py's ``perf`` region: the committed bench and Atari-memory JSON as tables."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def render_docs(load_script):
    return load_script("render_docs")


def _rate(wall: float, cpu: float) -> dict:
    return {"steps_per_s": wall, "steps_per_cpu_s": cpu}


def test_perf_region_tabulates_both_files(render_docs, tmp_path):
    perf = tmp_path / "reports" / "perf"
    perf.mkdir(parents=True)
    (perf / "bench-hopper-50k-seed0.json").write_text(json.dumps({
        "config": {"env_id": "Hopper-v5", "steps": 50000, "steps_per_iter": 5000},
        "machine": {"git": {"commit": "abcdef0123", "dirty": False}},
        "load_average": {"before": [1.04, 1, 1]},
        "raw_env": _rate(10000, 10500), "unwrapped_env": _rate(11000, 11500),
        "raw_mujoco": None, "trpo_ref": {**_rate(5000, 5200), "update_share": 0.2}}))
    (perf / "atari-update-memory.json").write_text(json.dumps({
        "command": "python scripts/atari_update_memory.py 5000", "chunk_above": 8192,
        "chunk_rows": 1024,
        "runs": [{"steps": 5000, "peak_mib": {"start": 10.0, "policy update": 3719.4},
                  "seconds": 12.0}]}))
    ctx = render_docs.Context(tmp_path, tmp_path / "README.md")
    text = render_docs.render_region(ctx, "perf")
    assert "commit `abcdef0`, load average 1.0 before" in text and "20.0%" in text
    assert "| raw gymnasium | 10,000 | 10,500 |" in text
    assert "| unwrapped env.step | 11,000 | 11,500 |" in text
    assert "bare mujoco" not in text  # not measured: no row
    assert "| 5,000 | 3,719 | 12 |" in text and "more than 8,192 rows" in text


def test_perf_region_says_when_nothing_was_measured(render_docs, tmp_path):
    ctx = render_docs.Context(tmp_path, tmp_path / "README.md")
    assert "Not measured" in render_docs.render_region(ctx, "perf")
