"""Peak memory of one Atari TRPO update (policy step and value fit) on a batch of N frames.

    python scripts/atari_update_memory.py 1000 3000 6000

``trpo_ref`` samples whole episodes, so a batch can hold up to one ALE time limit (27K agent
steps) beyond its 5K minimum; this measures how the update's peak resident memory grows with the
batch, to tell whether such a batch fits the machine. Each size runs in a fresh process on
synthetic uint8 frames (Breakout's shape and actions) with the default ``TRPOConfig``; prints
the peak RSS (MiB) after the value forward pass, the policy update and the value fit, and the
seconds from the value forward to the end of the fit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

GAME = "ALE/Breakout-v5"


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: Linux's ``VmHWM``.

    Not ``ru_maxrss``: Linux carries that across fork and exec, so a child launched from a large
    process (a pytest run late in the suite) reports its parent's peak instead of its own.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line (this script needs Linux)")


def measure(steps: int, seed: int = 0, timing: dict[str, float] | None = None
            ) -> dict[str, float]:
    """Peak RSS in MB (``peak_rss_mb``) at each phase of one update on ``steps`` frames;
    ``timing["seconds"]``, if given, gets the wall time from the value forward to the end."""
    import numpy as np
    import torch

    from trpo_ref.deep.policies import evaluate_in_chunks
    from trpo_ref.deep.step import make_batch, update
    from trpo_ref.deep.trpo import TRPOConfig, make_env, make_policy, make_value
    from trpo_ref.deep.value import fit_value

    config = TRPOConfig()
    env = make_env(GAME, config)
    policy, value_fn = make_policy(config, env), make_value(config, env)
    value_opt = torch.optim.Adam(value_fn.parameters(), lr=config.vf_lr)
    rng = np.random.default_rng(seed)
    obs = torch.as_tensor(rng.integers(0, 256, (steps, *env.observation_space.shape), np.uint8))
    act = torch.as_tensor(rng.integers(0, env.action_space.n, steps))
    adv = torch.as_tensor(rng.standard_normal(steps))
    peaks = {"start": peak_rss_mb()}
    started = time.perf_counter()
    with torch.no_grad():  # as the training loop computes V on a batch (in chunks above the bound)
        targets = evaluate_in_chunks(value_fn, value_fn, obs) + adv.float()
    peaks["value forward"] = peak_rss_mb()
    update(policy, make_batch(policy, obs, act, adv), algo=config.algo, delta=config.delta,
           damping=config.damping, cg_iters=config.cg_iters, backtrack=config.backtrack,
           max_backtracks=config.max_backtracks, fvp_subsample=config.fvp_subsample,
           step_size=config.step_size, generator=torch.Generator().manual_seed(seed))
    peaks["policy update"] = peak_rss_mb()
    fit_value(value_fn, value_opt, obs, targets, config.vf_epochs, config.vf_minibatch,
              torch.Generator().manual_seed(seed))
    peaks["value fit"] = peak_rss_mb()
    if timing is not None:
        timing["seconds"] = time.perf_counter() - started
    return peaks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("steps", type=int, nargs="+", help="batch sizes (agent steps)")
    parser.add_argument("--json", metavar="OUT", default=None,
                        help="also write the peaks, the chunk bound and the machine to OUT")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.one:
        timing: dict[str, float] = {}
        peaks = measure(args.steps[0], timing=timing)
        seconds = timing["seconds"]
        print(f"{args.steps[0]:>7,} steps: " + ", ".join(f"{k} {v:,.0f} MB"
                                                        for k, v in peaks.items())
              + f" ({seconds:,.0f} s)", flush=True)
        print(json.dumps({"steps": args.steps[0], "peak_mib": peaks, "seconds": seconds}),
              flush=True)
        return 0
    runs = []
    for steps in args.steps:  # a fresh process each: a peak never goes down
        child = subprocess.run([sys.executable, __file__, "--one", str(steps)], check=True,
                               capture_output=True, text=True)
        lines = child.stdout.strip().splitlines()
        print(lines[-2], flush=True)
        runs.append(json.loads(lines[-1]))
    if args.json is not None:
        from claims.framework.fingerprint import fingerprint
        from claims.framework.serialize import write_json_atomic
        from trpo_ref.deep.policies import CHUNK_ABOVE, CHUNK_ROWS

        write_json_atomic(Path(args.json), {
            "command": "python scripts/atari_update_memory.py " + " ".join(map(str, args.steps)),
            "game": GAME, "chunk_above": CHUNK_ABOVE, "chunk_rows": CHUNK_ROWS,
            "load_average_after": list(os.getloadavg()), "machine": fingerprint(),
            "runs": runs,
        })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
