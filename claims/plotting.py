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
