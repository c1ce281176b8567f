"""Properties of the interval functions in claims.stats (rliable style: no magic numbers)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claims.stats import bootstrap_ci, loglog_slope, wilson_interval


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
