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
    import json

    rows = [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line]
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
