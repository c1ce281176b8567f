"""Figure plumbing shared by the claims: a headless pyplot and one way to save a figure."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any


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
    import numpy as np

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
