"""Properties of the interval functions in claims.framework.stats (rliable style: no magic
numbers)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claims.catalogue.empirical.common import N_RESAMPLES, iqm_interval, two_arm
from claims.framework.plotting import bootstrap_band
from claims.framework.stats import (
    bootstrap_ci,
    equivalence,
    iqm,
    loglog_slope,
    percentile_bootstrap,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
    trimmed_mean,
    wilson_interval,
)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=40), st.integers(0, 10))
def test_bootstrap_ci_brackets_the_mean(xs, seed):
    lo, hi = bootstrap_ci(np.array(xs), seed=seed, n_resamples=200)
    assert lo <= np.mean(xs) + 1e-9 and np.mean(xs) - 1e-9 <= hi


def test_bootstrap_ci_is_deterministic_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=20), rng.normal(size=2000)
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)
    w_small = np.subtract(*bootstrap_ci(small)[::-1])
    w_large = np.subtract(*bootstrap_ci(large)[::-1])
    assert w_large < w_small


def test_bootstrap_ci_of_constant_sample_is_the_point():
    assert bootstrap_ci(np.full(5, 2.5)) == (2.5, 2.5)


def test_bootstrap_ci_rejects_single_sample():
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_ci(np.array([1.0]))


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_brackets_the_proportion(kn):
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_interval_hand_value():
    # 0 of 10 at 95%: upper end is z^2/(n+z^2) = 3.8415/13.8415
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1.959964**2 / (10 + 1.959964**2), rel=1e-5)


@pytest.mark.parametrize("power", [1.0, 2.0, 3.0])
def test_loglog_slope_recovers_exact_power_law(power):
    x = np.logspace(-4, -1, 8)
    slope, (lo, hi) = loglog_slope(x, 3.0 * x**power)
    assert slope == pytest.approx(power, abs=1e-10)
    assert lo <= slope <= hi


def test_loglog_slope_interval_contains_slope_with_noise():
    rng = np.random.default_rng(1)
    x = np.logspace(-3, 0, 12)
    slope, (lo, hi) = loglog_slope(x, x**2 * np.exp(0.05 * rng.normal(size=12)))
    assert lo < slope < hi


def test_loglog_slope_rejects_nonpositive():
    with pytest.raises(ValueError, match="positive"):
        loglog_slope(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 2.0]))


# --- aggregates across runs and tasks ----------------------------------------------------------

def test_iqm_by_hand():
    # 8 values: drop the 2 lowest (-50, 1) and the 2 highest (6, 100); mean of 2, 3, 4, 5 = 3.5
    assert iqm(np.array([100.0, 1, 2, 3, 4, 5, 6, -50])) == pytest.approx(3.5)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=40))
def test_iqm_lies_between_the_quartiles(xs):
    q1, q3 = np.quantile(xs, [0.25, 0.75])
    assert q1 - 1e-9 <= iqm(np.array(xs)) <= q3 + 1e-9


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 8), st.integers(1, 4), st.integers(0, 100))
def test_stratified_bootstrap_stays_within_the_per_task_extremes(n_runs, n_tasks, seed):
    scores = np.random.default_rng(seed).normal(size=(n_runs, n_tasks))
    lo, hi = stratified_bootstrap_ci(scores, np.mean, n_resamples=300, seed=seed)
    # every resampled per-task mean lies between that task's min and max
    assert scores.min(axis=0).mean() - 1e-9 <= lo <= hi <= scores.max(axis=0).mean() + 1e-9


def test_stratified_bootstrap_never_mixes_tasks():
    # Task 0 is always 0, task 1 always 10: any resample's per-task means are exactly 0 and 10.
    scores = np.column_stack([np.zeros(5), np.full(5, 10.0)])
    assert stratified_bootstrap_ci(scores, lambda s: s[:, 1].mean() - s[:, 0].mean()) == (
        10.0, 10.0)


def test_stratified_bootstrap_is_deterministic_and_rejects_one_run():
    scores = np.random.default_rng(1).normal(size=(6, 3))
    assert stratified_bootstrap_ci(scores, seed=4) == stratified_bootstrap_ci(scores, seed=4)
    with pytest.raises(ValueError, match="n_runs >= 2"):
        stratified_bootstrap_ci(np.ones((1, 3)))


def test_probability_of_improvement_by_hand():
    x = np.array([[3.0], [1.0]])
    y = np.array([[2.0], [1.0], [0.0]])
    # pairs: 3>2, 3>1, 3>0, 1<2, 1=1 (half), 1>0 -> (4 + 0.5) / 6
    assert probability_of_improvement(x, y) == pytest.approx(4.5 / 6)
    assert probability_of_improvement(y, x) == pytest.approx(1.5 / 6)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 3), st.integers(0, 50))
def test_probability_of_improvement_is_antisymmetric(n_x, n_y, n_tasks, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, size=(n_x, n_tasks)).astype(float)  # ties happen
    y = rng.integers(0, 4, size=(n_y, n_tasks)).astype(float)
    p = probability_of_improvement(x, y)
    assert 0.0 <= p <= 1.0
    assert p + probability_of_improvement(y, x) == pytest.approx(1.0)


def test_probability_of_improvement_interval_brackets_the_point():
    rng = np.random.default_rng(2)
    x, y = rng.normal(1.0, size=(5, 3)), rng.normal(size=(5, 3))
    p, (lo, hi) = probability_of_improvement_ci(x, y, n_resamples=500)
    assert 0.0 <= lo <= p <= hi <= 1.0
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement(x, y[:, :2])


@pytest.mark.parametrize(("ci", "expected"), [
    ((-0.5, 0.5), "equivalent"), ((-1.0, 1.0), "equivalent"), ((0.5, 1.5), "inconclusive"),
    ((1.5, 2.0), "different"), ((-3.0, -1.2), "different"), ((-2.0, 2.0), "inconclusive"),
])
def test_equivalence_by_interval_inclusion(ci, expected):
    assert equivalence(ci, margin=1.0) == expected


def test_norm_of_mean_is_unbiased_where_the_plug_in_is_not():
    """|E e| = 0.1 in 50 dimensions with unit noise, R = 200: the plug-in |mean e| sits near
    sqrt(0.01 + 50 / 200) ~ 0.51; the U-statistic's root near 0.1, inside its interval."""
    from claims.framework.stats import leave_one_out_terms, norm_of_mean

    rng = np.random.default_rng(0)
    mu = np.zeros(50)
    mu[0] = 0.1
    covered, plugin = 0, []
    for _ in range(40):
        e = mu + rng.normal(size=(200, 50))
        estimate, (lo, hi) = norm_of_mean(leave_one_out_terms(e))
        assert lo <= estimate <= hi
        covered += lo <= 0.1 <= hi
        plugin.append(np.linalg.norm(e.mean(axis=0)))
    assert covered >= 36  # >= 90% of 40 at a nominal 95% (conservative near 0)
    assert np.mean(plugin) > 0.45


def test_leave_one_out_terms_by_hand():
    from claims.framework.stats import leave_one_out_terms

    e = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    # u_0 = e_0 . (e_1 + e_2) / 2 = (0 + 1) / 2
    np.testing.assert_allclose(leave_one_out_terms(e), [0.5, 1.0, 1.5])


# --- the one row-resampling bootstrap (stats.percentile_bootstrap) --------------------------------
# The three bootstraps it replaced, as they were written (main 8a9455b): each must give the same
# draws and so bit-identical intervals.

def _old_iqm_interval(x, seed):
    idx = np.random.default_rng(seed).integers(0, x.size, size=(N_RESAMPLES, x.size))
    draws = trimmed_mean(x[idx], 0.25, axis=1)
    lo, hi = np.quantile(draws, [0.05 / 2, 1 - 0.05 / 2])
    return float(lo), float(hi)


def _old_two_arm_intervals(a, b, statistic, seed):
    rng = np.random.default_rng(seed)
    out = {}
    for t in a:
        x, y = np.asarray(a[t], float), np.asarray(b[t], float)
        ix = rng.integers(0, x.size, size=(N_RESAMPLES, x.size))
        iy = rng.integers(0, y.size, size=(N_RESAMPLES, y.size))
        draws = np.array([statistic(x[i], y[j]) for i, j in zip(ix, iy, strict=True)])
        lo, hi = np.quantile(draws, [0.05 / 2, 1 - 0.05 / 2])
        out[t] = (float(lo), float(hi))
    return out


def _old_bootstrap_band(values, alpha, seed, n_boot):
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.shape[0], size=(n_boot, values.shape[0]))
    means = values[picks].mean(axis=1)
    return tuple(np.quantile(means, [alpha / 2, 1 - alpha / 2], axis=0))


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("n", [2, 5, 9])
def test_iqm_interval_draws_are_unchanged(seed, n):
    x = np.random.default_rng([n, seed]).normal(size=n)
    assert iqm_interval(x, seed=seed) == _old_iqm_interval(x, seed)


@pytest.mark.parametrize("seed", [0, 7])
def test_two_arm_intervals_are_unchanged(seed):
    rng = np.random.default_rng(seed)
    a = {"t1": rng.normal(size=5).tolist(), "t2": rng.normal(size=3).tolist()}
    b = {"t1": rng.normal(size=4).tolist(), "t2": rng.normal(size=6).tolist()}

    def ratio(x, y):
        return float(np.mean(x) / (1.0 + abs(np.mean(y))))

    assert two_arm(a, b, ratio, seed=seed).per_task_ci == _old_two_arm_intervals(a, b, ratio,
                                                                                  seed)


@pytest.mark.parametrize("shape", [(1, 4), (3, 7), (6, 2)])
def test_bootstrap_band_is_unchanged(shape):
    values = np.random.default_rng(sum(shape)).normal(size=shape)
    new, old = bootstrap_band(values, 0.1, 2, 500), _old_bootstrap_band(values, 0.1, 2, 500)
    for a, b in zip(new, old, strict=True):
        assert np.array_equal(a, b)


def test_percentile_bootstrap_shapes_and_a_constant_sample():
    rng = np.random.default_rng(0)
    lo, hi = percentile_bootstrap([np.full(4, 2.5)], lambda v: v.mean(axis=1), rng=rng)
    assert lo.shape == () and float(lo) == float(hi) == 2.5
    lo, hi = percentile_bootstrap([np.arange(12.0).reshape(4, 3)], lambda v: v.mean(axis=1),
                                  n_resamples=50, rng=rng)
    assert lo.shape == hi.shape == (3,) and np.all(lo <= hi)
