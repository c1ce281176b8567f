"""Figure plumbing shared by the claims: a headless pyplot and one way to save a figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from claims.framework.stats import percentile_bootstrap


def pyplot() -> ModuleType:
    """matplotlib.pyplot on the headless Agg backend (imported lazily: plotting is optional)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, out_dir: Path | str, name: str, *, control: bool, dpi: int = 100) -> Path:
    """Save ``fig`` as OUT_DIR/NAME.png (NAME_control.png for a negative control) and close it."""
    path = Path(out_dir) / f"{name}{'_control' if control else ''}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    fig.clf()
    pyplot().close(fig)
    return path


def plot_learning_curve(metrics_jsonl: Path | str, path: Path | str, *, title: str) -> Path:
    """Mean episode return per iteration against environment steps, from a train metrics.jsonl."""
    rows = read_metrics(metrics_jsonl)
    steps = [r["global/steps"] for r in rows]
    mean = [r["rollout/ep_return_mean"] for r in rows]
    lo = [r["rollout/ep_return_mean"] - r["rollout/ep_return_std"] for r in rows]
    hi = [r["rollout/ep_return_mean"] + r["rollout/ep_return_std"] for r in rows]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.fill_between(steps, lo, hi, color="#7d9b76", alpha=0.25, lw=0, label="+-1 std over episodes")
    ax.plot(steps, mean, color="#7d9b76", lw=1.8, label="mean episode return (batch)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    return save_figure(fig, path.parent, path.stem, control=False, dpi=110)


def read_metrics(metrics_jsonl: Path | str) -> list[dict]:
    """The per-iteration rows of a train run's metrics.jsonl."""
    import json

    return [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line]


def plot_learning_curves(
    runs: dict[str, Path | str], path: Path | str, *, title: str, grid_points: int = 200
) -> Path:
    """Several seeds of one setting: each seed's batch mean return (thin), and their mean with
    the min-max range across seeds (shaded) on a common step grid (linear interpolation between
    batches; the grid ends at the shortest run's last step). ``runs``: label -> metrics.jsonl."""
    curves = {}
    for label, metrics in runs.items():
        rows = read_metrics(metrics)
        curves[label] = (np.array([r["global/steps"] for r in rows], dtype=float),
                         np.array([r["rollout/ep_return_mean"] for r in rows], dtype=float))
    start = max(steps[0] for steps, _ in curves.values())
    stop = min(steps[-1] for steps, _ in curves.values())
    grid = np.linspace(start, stop, grid_points)
    on_grid = np.array([np.interp(grid, steps, ret) for steps, ret in curves.values()])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for steps, ret in curves.values():
        ax.plot(steps, ret, color="#7d9b76", lw=0.6, alpha=0.45)
    ax.fill_between(grid, on_grid.min(0), on_grid.max(0), color="#7d9b76", alpha=0.2, lw=0,
                    label=f"min-max over {len(curves)} seeds")
    ax.plot(grid, on_grid.mean(0), color="#3f5f3a", lw=2.0, label="mean over seeds")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean episode return (batch)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    return save_figure(fig, path.parent, path.stem, control=False, dpi=110)


# --- pure figure functions: data in, one PNG out ---------------------------------------------

PALETTE: tuple[str, ...] = ("#3b6e8f", "#b5562f", "#3f5f3a", "#8a5a9e", "#a88a2c", "#5a5a5a")
REFERENCE_COLOUR = "#8a8a8a"  # thresholds, delta, y = x and zero lines


def bootstrap_band(
    values: ArrayLike, alpha: float = 0.05, seed: int = 0, n_boot: int = 2000
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap (1 - alpha) interval of the mean over seeds, at each point.

    values: (n_seeds, n_points), finite -> (lower, upper), each (n_points,). Seeds are resampled
    with replacement ``n_boot`` times (the same resample for every point, since a seed's curve
    is one draw); deterministic given ``seed``. With one seed the band is the curve itself.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"values must be (n_seeds >= 1, n_points), got shape {values.shape}")
    return percentile_bootstrap([values], lambda v: v.mean(axis=1), alpha=alpha,
                                n_resamples=n_boot, rng=np.random.default_rng(seed))


def _finite_curve(steps: ArrayLike, values: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """One seed's (steps, values) as float arrays without non-finite points, sorted by step."""
    steps, values = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    keep = np.isfinite(steps) & np.isfinite(values)
    order = np.argsort(steps[keep], kind="stable")
    return steps[keep][order], values[keep][order]


def _save(fig: Any, ax: Any, path: Path | str, title: str) -> Path:
    ax.set_title(title, fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    return save_figure(fig, path.parent, path.stem, control=False, dpi=110)


def plot_curves_with_bands(
    curves: Mapping[str, Sequence[tuple[ArrayLike, ArrayLike]]],
    path: Path | str,
    *,
    title: str,
    ylabel: str = "mean episode return",
    threshold: float | None = None,
    threshold_label: str | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    grid_points: int = 100,
) -> Path:
    """Mean curve over seeds with a (1 - alpha) bootstrap band, one colour per label.

    curves: Mapping[label, Sequence[(steps, values)]], one pair per seed, each seed on its own
    step grid. Non-finite points are dropped; every seed is interpolated (np.interp, which holds
    the first value before a seed's first step) onto ``grid_points`` steps from 0 to the smallest
    final step among the label's seeds. One seed: the line only. ``threshold`` adds a dashed
    horizontal line.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    banded = False
    for i, (label, runs) in enumerate(curves.items()):
        colour = PALETTE[i % len(PALETTE)]
        seeds = [c for c in (_finite_curve(s, v) for s, v in runs) if c[0].size]
        if not seeds:
            continue
        grid = np.linspace(0.0, min(steps[-1] for steps, _ in seeds), grid_points)
        on_grid = np.array([np.interp(grid, steps, vals) for steps, vals in seeds])
        n = len(seeds)
        name = f"{label} (mean of {n} seeds)" if n > 1 else f"{label} (1 seed)"
        ax.plot(grid, on_grid.mean(axis=0), color=colour, lw=1.8, label=name)
        if len(seeds) > 1:
            lower, upper = bootstrap_band(on_grid, alpha=alpha, seed=seed)
            ax.fill_between(grid, lower, upper, color=colour, alpha=0.2, lw=0)
            banded = True
    if threshold is not None:
        ax.axhline(
            threshold,
            color=REFERENCE_COLOUR,
            ls="--",
            lw=1.2,
            label=threshold_label or f"threshold {threshold:g}",
        )
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    if banded:
        title = f"{title}\n(bands: {100 * (1 - alpha):g}% bootstrap CI of the mean over seeds)"
    return _save(fig, ax, path, title)


def _positive_finite(x: ArrayLike) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x) & (x > 0)]


def plot_kl_histogram(
    kl_by_label: Mapping[str, ArrayLike], delta: float, path: Path | str, *, title: str
) -> Path:
    """Overlaid step histograms of per-step KL values on a log x axis, with delta marked.

    kl_by_label: Mapping[label, array (n_steps,)]; non-positive and non-finite values are left
    out (they have no place on a log axis) and the legend gives how many were kept.
    """
    kept = {label: _positive_finite(kl) for label, kl in kl_by_label.items()}
    pooled = np.concatenate([*kept.values(), [delta]])
    lo, hi = pooled.min(), pooled.max()
    if hi <= lo:
        lo, hi = lo / 2, hi * 2
    bins = np.geomspace(lo, hi, 41)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for i, (label, kl) in enumerate(kept.items()):
        ax.hist(
            kl,
            bins=bins,
            histtype="step",
            lw=1.6,
            color=PALETTE[i % len(PALETTE)],
            label=f"{label} (n = {kl.size})",
        )
    ax.axvline(delta, color=REFERENCE_COLOUR, ls="--", lw=1.2, label="delta")
    ax.set_xscale("log")
    ax.set_xlabel("KL(pi_old || pi_new) per step")
    ax.set_ylabel("steps")
    return _save(fig, ax, path, title)


def _groups(n: int, labels: Sequence[Any] | None) -> list[tuple[str | None, np.ndarray, str]]:
    """(label, boolean mask (n,), colour) per group in order of first appearance; one unlabelled
    group when ``labels`` is None."""
    if labels is None:
        return [(None, np.ones(n, dtype=bool), PALETTE[0])]
    labels = np.asarray([str(x) for x in labels])
    if labels.shape != (n,):
        raise ValueError(f"labels has shape {labels.shape}, expected ({n},)")
    names = list(dict.fromkeys(labels.tolist()))
    return [(name, labels == name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(names)]


def _paired(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired arrays differ in length: {x.size} and {y.size}")
    return x, y


def plot_max_vs_mean_kl(
    mean_kl: ArrayLike,
    max_kl: ArrayLike,
    delta: float,
    path: Path | str,
    *,
    title: str,
    labels: Sequence[Any] | None = None,
) -> Path:
    """Max-over-states KL against mean KL, one point per step, on log-log axes.

    mean_kl, max_kl: (n_steps,); labels: optional (n_steps,) group names (one colour each).
    Points with a non-positive or non-finite coordinate are left out. Dashed: y = x (max KL can
    only lie on or above it); dotted: delta on both axes.
    """
    x, y = _paired(mean_kl, max_kl)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for label, mask, colour in _groups(x.size, labels):
        keep = mask & ok
        ax.scatter(x[keep], y[keep], s=14, alpha=0.75, color=colour, lw=0, label=label)
    span = np.concatenate([x[ok], y[ok], [delta]])
    lo, hi = span.min() / 1.5, span.max() * 1.5
    ax.plot([lo, hi], [lo, hi], color=REFERENCE_COLOUR, ls="--", lw=1.0, label="max = mean")
    ax.axvline(delta, color=REFERENCE_COLOUR, ls=":", lw=1.2, label="delta")
    ax.axhline(delta, color=REFERENCE_COLOUR, ls=":", lw=1.2)
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi))
    ax.set_xlabel("mean KL over states")
    ax.set_ylabel("max KL over states")
    return _save(fig, ax, path, title)


def plot_predicted_vs_actual(
    predicted: ArrayLike,
    actual: ArrayLike,
    path: Path | str,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    labels: Sequence[Any] | None = None,
) -> Path:
    """Scatter of actual against predicted values (e.g. true vs surrogate improvement), with a
    dashed y = x line and dotted zero lines. predicted, actual, labels: (n,); non-finite pairs
    are left out."""
    x, y = _paired(predicted, actual)
    ok = np.isfinite(x) & np.isfinite(y)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for label, mask, colour in _groups(x.size, labels):
        keep = mask & ok
        ax.scatter(x[keep], y[keep], s=14, alpha=0.75, color=colour, lw=0, label=label)
    span = np.concatenate([x[ok], y[ok], [0.0]])
    lo, hi = span.min(), span.max()
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    ax.plot(
        [lo - pad, hi + pad],
        [lo - pad, hi + pad],
        color=REFERENCE_COLOUR,
        ls="--",
        lw=1.0,
        label="y = x",
    )
    ax.axhline(0.0, color=REFERENCE_COLOUR, ls=":", lw=0.8)
    ax.axvline(0.0, color=REFERENCE_COLOUR, ls=":", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _save(fig, ax, path, title)


def plot_series(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: Path | str,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    hline: float | None = None,
) -> Path:
    """One marked line per label through its (x, y) points, e.g. a share against delta per
    task; ``hline`` draws a dotted reference level."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for i, (label, (x, y)) in enumerate(series.items()):
        order = np.argsort(np.asarray(x, dtype=float))
        ax.plot(np.asarray(x, dtype=float)[order], np.asarray(y, dtype=float)[order],
                marker="o", color=PALETTE[i % len(PALETTE)], label=label)
    if hline is not None:
        ax.axhline(hline, color=REFERENCE_COLOUR, ls=":", lw=1.0)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _save(fig, ax, path, title)
