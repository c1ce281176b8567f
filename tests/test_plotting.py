"""Learning-curve figures from train logs: they read metrics.jsonl and write a PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from claims.framework.plotting import (
    bootstrap_band,
    plot_curves_with_bands,
    plot_kl_histogram,
    plot_learning_curve,
    plot_learning_curves,
    plot_max_vs_mean_kl,
    plot_predicted_vs_actual,
    read_metrics,
)

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


# --- pure figure functions -------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.stat().st_size > 0 and path.read_bytes()[:8] == PNG_MAGIC


@settings(max_examples=60, deadline=None)
@given(
    values=arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 5)),
        elements=st.floats(-1e6, 1e6, allow_nan=False),
    ),
    alpha=st.sampled_from([0.01, 0.05, 0.32]),
    seed=st.integers(0, 2**16),
)
def test_bootstrap_band_brackets_the_mean_within_the_data(values, alpha, seed):
    lower, upper = bootstrap_band(values, alpha=alpha, seed=seed, n_boot=400)
    assert lower.shape == upper.shape == (values.shape[1],)
    mean = values.mean(axis=0)
    tol = 1e-9 * (1.0 + np.abs(values).max())
    # a bootstrap mean is an average of the seeds, so the band never leaves the data's range
    assert np.all(values.min(axis=0) - tol <= lower)
    assert np.all(lower <= upper)
    assert np.all(upper <= values.max(axis=0) + tol)
    assert np.all(lower - tol <= mean) and np.all(mean <= upper + tol)


def test_bootstrap_band_is_deterministic_and_collapses_for_one_seed():
    values = np.random.default_rng(1).normal(size=(5, 7))
    first, again = bootstrap_band(values, seed=4), bootstrap_band(values, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    one = values[:1]
    lower, upper = bootstrap_band(one)
    np.testing.assert_array_equal(lower, one[0])
    np.testing.assert_array_equal(upper, one[0])


def test_bootstrap_band_narrows_as_alpha_grows():
    values = np.random.default_rng(2).normal(size=(8, 4))
    wide = np.subtract(*bootstrap_band(values, alpha=0.01)[::-1])
    narrow = np.subtract(*bootstrap_band(values, alpha=0.5)[::-1])
    assert np.all(narrow <= wide)


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((0, 3))])
def test_bootstrap_band_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match="n_seeds"):
        bootstrap_band(bad)


def test_curves_with_bands_several_seeds_one_seed_and_nans(tmp_path):
    rng = np.random.default_rng(0)
    trpo = [
        (np.arange(1, 11) * 100.0, np.cumsum(rng.normal(1.0, 0.3, size=10))),
        (np.arange(1, 9) * 130.0, np.cumsum(rng.normal(1.0, 0.3, size=8))),
        (np.array([50.0, 500.0, 900.0, 1200.0]), np.array([0.0, np.nan, 3.0, 4.0])),
    ]
    curves = {
        "TRPO": trpo,
        "NPG": [(np.arange(1, 6) * 200.0, np.linspace(0.0, 2.0, 5))],  # one seed: line only
        "empty": [(np.array([1.0, 2.0]), np.array([np.nan, np.inf]))],  # nothing to draw
    }
    out = plot_curves_with_bands(
        curves, tmp_path / "bands.png", title="returns", threshold=2.5, threshold_label="goal"
    )
    assert out == tmp_path / "bands.png" and _is_png(out)


def test_kl_histogram_ignores_values_a_log_axis_cannot_show(tmp_path):
    rng = np.random.default_rng(0)
    kl = {
        "TRPO": np.concatenate([rng.lognormal(-5.0, 0.5, size=200), [0.0, -1.0, np.nan, np.inf]]),
        "no line search": rng.lognormal(-3.5, 1.0, size=200),
        "nothing positive": np.array([0.0, np.nan]),
    }
    assert _is_png(plot_kl_histogram(kl, 0.01, tmp_path / "kl.png", title="per-step KL"))
    only_zeros = plot_kl_histogram({"a": [0.0]}, 0.01, tmp_path / "zeros.png", title="empty")
    assert _is_png(only_zeros)


@pytest.mark.parametrize("labels", [None, ["trpo"] * 3 + ["npg"] * 3])
def test_max_vs_mean_kl_scatter(tmp_path, labels):
    mean = np.array([1e-3, 5e-3, 1e-2, 2e-3, np.nan, 0.0])
    peak = np.array([1e-2, 4e-2, 0.3, 5e-3, 1e-2, 1e-2])
    out = plot_max_vs_mean_kl(mean, peak, 0.01, tmp_path / "maxmean.png", title="KL", labels=labels)
    assert _is_png(out)


def test_predicted_vs_actual_scatter(tmp_path):
    predicted = np.array([0.1, -0.2, 0.3, np.nan, 0.05])
    actual = np.array([0.08, -0.25, 0.1, 1.0, np.inf])
    out = plot_predicted_vs_actual(
        predicted,
        actual,
        tmp_path / "pva.png",
        title="surrogate vs true improvement",
        xlabel="surrogate improvement",
        ylabel="true improvement",
        labels=["a", "b", "a", "b", "a"],
    )
    assert _is_png(out)
    empty = plot_predicted_vs_actual([np.nan], [1.0], tmp_path / "e.png", title="t", xlabel="x",
                                     ylabel="y")
    assert _is_png(empty)


def test_paired_inputs_must_match(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        plot_predicted_vs_actual([1.0, 2.0], [1.0], tmp_path / "x.png", title="t", xlabel="x",
                                 ylabel="y")
    with pytest.raises(ValueError, match="labels"):
        plot_max_vs_mean_kl([1.0], [2.0], 0.01, tmp_path / "y.png", title="t", labels=["a", "b"])
