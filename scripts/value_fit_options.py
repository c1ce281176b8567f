"""Value-fit options on the same batches: fit quality (explained variance) against time.

    PYTHONPATH=$PWD python scripts/value_fit_options.py --steps 50000 --seeds 0 1 --json OUT

Trains ``trpo_ref`` on Hopper-v5 with the default config and, at every iteration, snapshots
the value network, its Adam state and the batch it is fit on. Afterwards every option below
is fit from each snapshot on that batch (interleaved, so a load change on a shared machine hits
every option alike) and scored by the explained variance of the fit on its own batch and on
the *next* batch's targets (the out-of-sample quality GAE depends on), and by its wall time.
Options: the default (Adam, 5 epochs of 128-row minibatches, float64), larger minibatches,
fewer epochs, float32, and a full-batch L-BFGS fit as the original TRPO code (modular_rl) used.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from trpo_ref.deep import trpo
from trpo_ref.deep.value import fit_value

Snapshot = dict[str, Any]


def record_snapshots(steps: int, seed: int) -> list[Snapshot]:
    """Run the default training; before each value fit keep (V, Adam state, obs, targets)."""
    snapshots: list[Snapshot] = []
    real_fit = trpo.fit_value

    def recording(value_fn, optimizer, obs, targets, *args, **kwargs):
        snapshots.append({"value": copy.deepcopy(value_fn.state_dict()),
                          "adam": copy.deepcopy(optimizer.state_dict()),
                          "obs": obs.clone(), "targets": targets.clone()})
        return real_fit(value_fn, optimizer, obs, targets, *args, **kwargs)

    trpo.fit_value = recording
    try:
        trpo.train(trpo.TRPOConfig(env_id="Hopper-v5", seed=seed, total_steps=steps))
    finally:
        trpo.fit_value = real_fit
    return snapshots


def explained_variance(value_fn: torch.nn.Module, obs: torch.Tensor, targets: torch.Tensor
                       ) -> float:
    with torch.no_grad():
        residual = value_fn(obs.to(next(value_fn.parameters()).dtype)).double() - targets
    return 1.0 - float(residual.var()) / float(targets.var())


def adam(epochs: int, minibatch: int, dtype: torch.dtype, lr: float = 1e-3
         ) -> Callable[..., None]:
    def fit(value_fn, snapshot, generator):
        optimizer = torch.optim.Adam(value_fn.parameters(), lr=lr)
        optimizer.load_state_dict(snapshot["adam"])  # the run's optimizer state, cast to dtype
        for group in optimizer.param_groups:  # load_state_dict restores the run's lr
            group["lr"] = lr
        fit_value(value_fn, optimizer, snapshot["obs"].to(dtype), snapshot["targets"].to(dtype),
                  epochs, minibatch, generator)
    return fit


def lbfgs(max_iter: int, l2: float = 0.0) -> Callable[..., None]:
    """Full-batch L-BFGS on the mean squared error (+ l2 |theta|^2), strong-Wolfe line search."""
    def fit(value_fn, snapshot, generator):
        obs, targets = snapshot["obs"], snapshot["targets"]
        params = list(value_fn.parameters())
        optimizer = torch.optim.LBFGS(params, max_iter=max_iter, history_size=10,
                                      line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = (value_fn(obs) - targets).pow(2).mean()
            if l2:
                loss = loss + l2 * sum(p.pow(2).sum() for p in params)
            loss.backward()
            return loss

        optimizer.step(closure)
    return fit


OPTIONS: dict[str, tuple[torch.dtype, Callable[..., None]]] = {
    "adam f64 5x128 (default)": (torch.float64, adam(5, 128, torch.float64)),
    "adam f32 5x128": (torch.float32, adam(5, 128, torch.float32)),
    "adam f64 5x512": (torch.float64, adam(5, 512, torch.float64)),
    "adam f64 2x128": (torch.float64, adam(2, 128, torch.float64)),
    "adam f64 10x1024": (torch.float64, adam(10, 1024, torch.float64)),
    "adam f64 5x512 lr 3e-3": (torch.float64, adam(5, 512, torch.float64, 3e-3)),
    "adam f32 5x256 lr 2e-3": (torch.float32, adam(5, 256, torch.float32, 2e-3)),
    "adam f64 3x128": (torch.float64, adam(3, 128, torch.float64)),
    "lbfgs f64 25 iters": (torch.float64, lbfgs(25)),
    "lbfgs f64 50 iters": (torch.float64, lbfgs(50)),
}


def evaluate(snapshots: list[Snapshot], seed: int) -> dict[str, list[dict[str, float]]]:
    template = trpo.make_value(trpo.TRPOConfig(), trpo.make_env("Hopper-v5"))
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in OPTIONS}
    for i, (snapshot, following) in enumerate(itertools.pairwise(snapshots)):
        for name, (dtype, fit) in OPTIONS.items():
            value_fn = copy.deepcopy(template)
            value_fn.load_state_dict(snapshot["value"])
            value_fn.to(dtype)
            started = time.perf_counter()
            fit(value_fn, snapshot, torch.Generator().manual_seed(seed + 1 + i))
            seconds = time.perf_counter() - started
            value_fn.double()
            rows[name].append({
                "seconds": seconds,
                "ev_in_sample": explained_variance(value_fn, snapshot["obs"],
                                                   snapshot["targets"]),
                "ev_next_batch": explained_variance(value_fn, following["obs"],
                                                    following["targets"]),
            })
    return rows


def summarize(rows: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    base = statistics.fmean(r["seconds"] for r in rows["adam f64 5x128 (default)"])
    return {name: {"seconds_mean": statistics.fmean(r["seconds"] for r in runs),
                   "time_over_default": statistics.fmean(r["seconds"] for r in runs) / base,
                   "ev_in_sample_mean": statistics.fmean(r["ev_in_sample"] for r in runs),
                   "ev_next_batch_mean": statistics.fmean(r["ev_next_batch"] for r in runs),
                   "ev_next_batch_median": statistics.median(r["ev_next_batch"] for r in runs),
                   "fits": len(runs)}
            for name, runs in rows.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in OPTIONS}
    for seed in args.seeds:
        for name, runs in evaluate(record_snapshots(args.steps, seed), seed).items():
            rows[name] += runs
    summary = summarize(rows)
    print(f"{'option':<28}{'time x':>8}{'EV in':>8}{'EV next':>9}{'median':>8}")
    for name, s in summary.items():
        print(f"{name:<28}{s['time_over_default']:>8.2f}{s['ev_in_sample_mean']:>8.3f}"
              f"{s['ev_next_batch_mean']:>9.3f}{s['ev_next_batch_median']:>8.3f}")
    if args.json is not None:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip()
        args.json.write_text(json.dumps({
            "command": f"scripts/value_fit_options.py --steps {args.steps} --seeds "
                       + " ".join(map(str, args.seeds)),
            "commit": commit, "machine": platform.platform(), "processor": platform.processor(),
            "note": "shared machine under load: compare times within this run only",
            "summary": summary, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
