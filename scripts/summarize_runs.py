"""Summarize train runs as a markdown table: returns, line-search acceptance, KL, wall time and
the update share, one row per RUN_ROOT/seed*/metrics.jsonl.

Usage: python scripts/summarize_runs.py RUN_ROOT
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from claims.framework.plotting import read_metrics

PHASES = ("rollout", "advantages", "update", "value_fit", "iteration")
HEADER = ("| seed | iterations | steps | last batch | mean of last 10 batches | best batch | "
          "accepted | max mean KL | steps that backtracked | wall (s) | steps/s | update share |")


def summarize(run_dir: Path) -> dict:
    rows = read_metrics(run_dir / "metrics.jsonl")
    returns = np.array([r["rollout/ep_return_mean"] for r in rows])
    seconds = {k: sum(r[f"time/{k}_s"] for r in rows) for k in PHASES}
    return {
        "seed": run_dir.name.removeprefix("seed"),
        "iterations": len(rows),
        "steps": rows[-1]["global/steps"],
        "last": returns[-1],
        "last10": returns[-10:].mean(),
        "best": returns.max(),
        "accepted": sum(bool(r["train/accepted"]) for r in rows),
        "max_kl": max(r["train/kl_mean"] for r in rows if r["train/accepted"]),
        "backtracked": sum(1 for r in rows if r["train/backtracks"] > 0),
        "wall": seconds["iteration"],
        "update_share": (seconds["update"] + seconds["value_fit"]) / seconds["iteration"],
    }


def main(root: Path) -> None:
    runs = [summarize(d) for d in sorted(root.glob("seed*")) if (d / "metrics.jsonl").exists()]
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    for s in runs:
        print(f"| {s['seed']} | {s['iterations']} | {s['steps']:,} | {s['last']:,.0f} | "
              f"{s['last10']:,.0f} | {s['best']:,.0f} | {s['accepted']}/{s['iterations']} | "
              f"{s['max_kl']:.5f} | {s['backtracked']} | {s['wall']:.0f} | "
              f"{s['steps'] / s['wall']:,.0f} | {s['update_share']:.3f} |")
    for key, name in (("last", "last batch"), ("last10", "mean of the last 10 batches")):
        values = np.array([s[key] for s in runs])
        print(f"\n{name}, over {len(runs)} seeds: mean {values.mean():,.0f}, "
              f"min {values.min():,.0f}, max {values.max():,.0f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
