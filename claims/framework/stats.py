"""Small pure statistics used by decision rules: intervals for means, proportions and slopes.

Every interval is two-sided at level ``1 - alpha`` and returned as ``(lower, upper)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def percentile_bootstrap(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    *,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of ``statistic`` over independent samples (Efron).

    samples: arrays (n_i, ...), each resampled by rows with replacement, independently and in
    order: one ``rng.integers(0, n_i, size=(n_resamples, n_i))`` draw each, so a caller that
    shares ``rng`` across calls gets the same draws as drawing them itself.
    statistic: the resampled arrays, each (n_resamples, n_i, ...), to the draws (n_resamples,
    ...). Returns (lower, upper): the alpha/2 and 1 - alpha/2 quantiles of the draws over
    resamples, each of the draws' trailing shape (...) (0-d for a scalar statistic).
    """
    picks = [rng.integers(0, len(s), size=(n_resamples, len(s))) for s in samples]
    draws = np.asarray(statistic(*(s[i] for s, i in zip(samples, picks, strict=True))))
    lower, upper = np.quantile(draws, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
    return lower, upper


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


def paired_proportion_difference_interval(
    both: int, first_only: int, second_only: int, neither: int, *, alpha: float = 0.05
) -> tuple[float, float]:
    """Newcombe's square-and-add (MOVER-Wilson) interval for p1 - p2 on paired binary data.

    Counts of the paired 2x2 table over n = sum pairs: ``both`` (1, 1), ``first_only`` (1, 0),
    ``second_only`` (0, 1), ``neither`` (0, 0); p1 - p2 = (first_only - second_only) / n.
    Newcombe (1998, Stat. Med. 17:2635), method 10: the Wilson intervals (l_i, u_i) of the two
    marginal shares are combined with the correlation phi of the pair,
    lower = d - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2), the upper end
    alike; phi = C / sqrt(product of the four margins), C = ad - bc less n/2 when above n/2,
    0 when in [0, n/2], ad - bc when negative (0 when a margin is empty). One of the intervals
    Fagerland, Lydersen & Laake (2014, Stat. Med. 33:2850) recommend for paired
    proportions: close to nominal coverage at small n, ends not tied to the 1/n lattice the
    difference's percentile bootstrap lives on.
    """
    counts = (both, first_only, second_only, neither)
    if any(int(c) != c or c < 0 for c in counts) or sum(counts) < 1:
        raise ValueError(f"need non-negative integer counts with a positive total, got {counts}")
    a, b, c, d = (int(x) for x in counts)
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, alpha=alpha)
    l2, u2 = wilson_interval(a + c, n, alpha=alpha)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    corrected = cross - n / 2 if cross > n / 2 else (0.0 if cross >= 0 else cross)
    phi = corrected / np.sqrt(float(margins)) if margins > 0 else 0.0
    down = np.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    up = np.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    diff = p1 - p2
    return float(max(-1.0, diff - down)), float(min(1.0, diff + up))


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


# --- aggregate performance across runs and tasks (rliable's estimators, Agarwal et al. 2021) ----
# rliable itself does not import here (its dependency `arch` breaks against pandas 3), so its
# estimators are re-derived below from their definitions, on numpy / scipy.

def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of all values (25% trimmed from each end).

    scores: any shape (e.g. (n_runs, n_tasks)); flattened. rliable's robust aggregate."""
    x = np.asarray(scores, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("iqm of an empty array")
    return float(trimmed_mean(x, 0.25))


def trimmed_mean(x: np.ndarray, proportion: float, axis: int = -1) -> np.ndarray:
    """Mean of ``x`` along ``axis`` after cutting ``int(proportion * n)`` values from each end.

    The arithmetic of scipy.stats.trim_mean (partition, then the mean of the middle), without its
    per-call overhead (~1 ms; the bootstraps call it thousands of times)."""
    a = np.asarray(x, dtype=float)
    n = a.shape[axis]
    low = int(proportion * n)
    high = n - low
    if low >= high:
        raise ValueError(f"proportion {proportion} cuts every one of {n} values")
    part = np.partition(a, (low, high - 1), axis=axis)
    return np.mean(np.take(part, np.arange(low, high), axis=axis), axis=axis)


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], float] = iqm,
    *,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` under the stratified bootstrap.

    scores: (n_runs, n_tasks); each resample draws n_runs runs with replacement *within every
    task* independently (tasks are strata, never mixed), then applies ``statistic`` to the
    resampled (n_runs, n_tasks) array. Deterministic for a given seed. n_runs >= 2.
    """
    x = np.asarray(scores, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"scores must be (n_runs >= 2, n_tasks), got shape {np.shape(scores)}")
    n_runs, n_tasks = x.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_runs, size=(n_resamples, n_runs, n_tasks))
    resampled = np.take_along_axis(np.broadcast_to(x, (n_resamples, n_runs, n_tasks)), idx, 1)
    values = np.array([statistic(r) for r in resampled])
    lo, hi = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y): the chance that a run of X beats a run of Y on a task picked uniformly.

    x: (n_x, n_tasks), y: (n_y, n_tasks) scores (1-D: one task). Per task, the Mann-Whitney
    statistic U / (n_x n_y) counting ties as one half; averaged over tasks (rliable's
    definition). 0.5 means no difference; 1 means X always wins."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    a = a[:, None] if a.ndim == 1 else a
    b = b[:, None] if b.ndim == 1 else b
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y need the same tasks, got shapes {a.shape} and {b.shape}")
    if a.shape[0] < 1 or b.shape[0] < 1:
        raise ValueError("x and y need at least one run each")
    wins = (a[:, None, :] > b[None, :, :]).mean(axis=(0, 1))
    ties = (a[:, None, :] == b[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(wins + 0.5 * ties))


def probability_of_improvement_ci(
    x: np.ndarray, y: np.ndarray, *, alpha: float = 0.05, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """P(X > Y) and its stratified-bootstrap interval (runs of X and of Y resampled within each
    task, independently). x: (n_x >= 2, n_tasks), y: (n_y >= 2, n_tasks)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    a = a[:, None] if a.ndim == 1 else a
    b = b[:, None] if b.ndim == 1 else b
    point = probability_of_improvement(a, b)
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("the interval needs at least 2 runs of each")
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    for r in range(n_resamples):
        ia = rng.integers(0, a.shape[0], size=a.shape)
        ib = rng.integers(0, b.shape[0], size=b.shape)
        values[r] = probability_of_improvement(np.take_along_axis(a, ia, 0),
                                               np.take_along_axis(b, ib, 0))
    lo, hi = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return point, (float(lo), float(hi))


def equivalence(ci: tuple[float, float], margin: float) -> str:
    """Interval-inclusion test of "similar" (two one-sided tests at the interval's level).

    ci: interval of a difference (e.g. of means). Returns "equivalent" when the whole interval
    lies inside [-margin, margin], "different" when it lies wholly outside it, and
    "inconclusive" when it straddles an edge of the margin."""
    lo, hi = float(ci[0]), float(ci[1])
    if not (margin > 0 and lo <= hi):
        raise ValueError(f"need margin > 0 and lower <= upper, got {margin}, {ci}")
    if -margin <= lo and hi <= margin:
        return "equivalent"
    if hi < -margin or lo > margin:
        return "different"
    return "inconclusive"


def norm_of_mean(
    loo_terms: np.ndarray, *, alpha: float = 0.05
) -> tuple[float, tuple[float, float]]:
    """|E[e]| for vectors e_1..e_R and its interval, from the leave-one-out terms
    u_r = e_r . mean_{j != r} e_j (so mean(u) = sum_{i != j} e_i . e_j / (R (R - 1))).

    mean(u) is the unbiased U-statistic of |E e|^2 (|mean e|^2 is biased upward by
    trace Cov / R, and so is a percentile bootstrap of |mean e|, which can exclude its own
    estimate). Normal interval mean(u) +- z * 2 sd(u) / sqrt(R) (the U-statistic's first-order
    variance; conservative when E e ~ 0), then the square root of the clipped ends; the estimate
    sqrt(max(mean(u), 0)) lies inside by construction. loo_terms: (R,), R >= 2."""
    u = np.asarray(loo_terms, dtype=float).ravel()
    if u.size < 2:
        raise ValueError(f"norm_of_mean needs at least 2 replicates, got {u.size}")
    centre = float(u.mean())
    half = float(sps.norm.ppf(1.0 - alpha / 2.0)) * 2.0 * float(u.std(ddof=1)) / np.sqrt(u.size)
    root = lambda v: float(np.sqrt(max(v, 0.0)))  # noqa: E731
    return root(centre), (root(centre - half), root(centre + half))


def leave_one_out_terms(e: np.ndarray) -> np.ndarray:
    """u_r = e_r . mean_{j != r} e_j for the rows of e (R, D), R >= 2 (see :func:`norm_of_mean`)."""
    e = np.asarray(e, dtype=float)
    r = e.shape[0]
    total = e.sum(axis=0)
    return (e @ total - np.einsum("ij,ij->i", e, e)) / (r - 1)
