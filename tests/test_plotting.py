"""Learning-curve figures from train logs: they read metrics.jsonl and write a PNG."""

from __future__ import annotations

import json

import pytest

from claims.plotting import plot_learning_curve, plot_learning_curves, read_metrics

pytestmark = pytest.mark.quick


def _log(path, returns, batch=100):
    rows = [{"global/steps": batch * (i + 1), "rollout/ep_return_mean": r,
             "rollout/ep_return_std": 1.0} for i, r in enumerate(returns)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_read_metrics_returns_every_row(tmp_path):
    log = _log(tmp_path / "m.jsonl", [1.0, 2.0, 3.0])
    assert [r["rollout/ep_return_mean"] for r in read_metrics(log)] == [1.0, 2.0, 3.0]


def test_curves_of_several_seeds_write_a_png(tmp_path):
    runs = {"seed 0": _log(tmp_path / "a.jsonl", [1.0, 5.0, 9.0]),
            "seed 1": _log(tmp_path / "b.jsonl", [2.0, 4.0, 8.0, 9.0], batch=80)}
    out = plot_learning_curves(runs, tmp_path / "curves.png", title="two seeds")
    assert out == tmp_path / "curves.png" and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    single = plot_learning_curve(runs["seed 0"], tmp_path / "one.png", title="one seed")
    assert single.stat().st_size > 0
