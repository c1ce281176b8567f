"""Small pure statistics used by decision rules: intervals for means, proportions and slopes.

Every interval is two-sided at level ``1 - alpha`` and returned as ``(lower, upper)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats as sps


def bootstrap_ci(
    samples: np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``samples``.

    samples: (n,) per-seed or per-example values, n >= 2. Deterministic for a given seed.
    """
    x = np.asarray(samples, dtype=float).ravel()
    if x.size < 2:
        raise ValueError(f"bootstrap_ci needs at least 2 samples, got {x.size}")
    if np.ptp(x) == 0.0:  # scipy refuses degenerate samples; the interval is the point
        v = float(statistic(x))
        return v, v
    res = sps.bootstrap(
        (x,),
        lambda s, axis: np.apply_along_axis(statistic, axis, s),
        confidence_level=1.0 - alpha,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def wilson_interval(successes: int, n: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n`` (n >= 1)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes}/{n}")
    z = float(sps.norm.ppf(1.0 - alpha / 2.0))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 (k = n) the lower (upper) end is exactly 0 (1); avoid rounding just past it.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return float(lo), float(hi)


def loglog_slope(
    x: np.ndarray, y: np.ndarray, *, alpha: float = 0.05
) -> tuple[float, tuple[float, float]]:
    """Least-squares slope of log(y) on log(x) and its t-interval.

    x, y: (n,) positive values, n >= 3. Returns (slope, (lower, upper)).
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape or x.size < 3:
        raise ValueError(f"need matching x, y with at least 3 points, got {x.shape}, {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("loglog_slope needs strictly positive x and y")
    fit = sps.linregress(np.log(x), np.log(y))
    t = float(sps.t.ppf(1.0 - alpha / 2.0, df=x.size - 2))
    return float(fit.slope), (float(fit.slope - t * fit.stderr), float(fit.slope + t * fit.stderr))
