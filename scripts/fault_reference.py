"""Bit-identity evidence for trpo_ref refactors: short seeded runs hashed, recorded and re-checked.

``record OUT.json`` runs every case below and writes {case: sha256}; ``check OUT.json`` runs them
again and lists every case whose hash differs. A case hashes what it produced bit for bit: the
metrics of every iteration (repr of every value, ``time/*`` left out) and the final policy and
value parameters. Cases: every update rule (trpo, npg, max-kl, empirical-fim, pg, vine, cem,
cma) on CartPole and Hopper; every seeded bug of :mod:`claims.faults.forks` and every training fault
of :mod:`claims.catalogue.training_jobs` on a short Hopper training; every seeded bug on one update
through the trpo_ref adapter; every fault of :mod:`claims.catalogue.step.line_search` in both paths;
trpo on Pong and Breakout (the CNN, the frames, the ALE pipeline). ``check`` skips, and names,
cases the reference was recorded without.

    PYTHONPATH=$PWD python scripts/fault_reference.py record /tmp/ref.json
    PYTHONPATH=$PWD python scripts/fault_reference.py check /tmp/ref.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from claims.catalogue import training_jobs
from claims.faults import forks
from trpo_ref.deep import derivative_free, step, trpo
from trpo_ref.deep.runtime import torch_threads


def digest(value: Any) -> str:
    """sha256 of ``value`` (metrics, tensors, arrays) rendered exactly."""
    h = hashlib.sha256()

    def feed(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            h.update(str(v.dtype).encode() + str(tuple(v.shape)).encode())
            h.update(v.detach().contiguous().numpy().tobytes())
        elif isinstance(v, np.ndarray):
            h.update(str(v.dtype).encode() + str(v.shape).encode() + v.tobytes())
        elif isinstance(v, dict):
            for key in sorted(v, key=str):
                if (isinstance(key, str) and key.startswith("time/")) or key == "wall_s":
                    continue
                h.update(repr(key).encode())
                feed(v[key])
        elif isinstance(v, list | tuple):
            h.update(b"[")
            for item in v:
                feed(item)
            h.update(b"]")
        else:
            h.update(repr(v).encode())

    feed(value)
    return h.hexdigest()


def _training(config: Any) -> str:
    run = derivative_free.train if config.algo in derivative_free.DF_ALGOS else trpo.train
    with tempfile.TemporaryDirectory() as out:
        history = run(config, out)
        path = Path(out) / "checkpoint.pt"  # cem / cma keep none: their metrics carry es/*
        checkpoint = torch.load(path, weights_only=False) if path.exists() else {}
    params = {k: checkpoint[k] for k in ("policy", "value") if k in checkpoint}
    return digest([history, params])


def _cases() -> Iterator[tuple[str, Callable[[], str]]]:
    small = {"CartPole-v1": 400, "Hopper-v5": 600}
    for env_id, n in small.items():
        for algo in ("trpo", "npg", "max-kl", "empirical-fim", "pg"):
            config = trpo.TRPOConfig(env_id=env_id, algo=algo, seed=3, total_steps=2 * n,
                                     steps_per_iter=n, checkpoint_every=0)
            yield f"train/{env_id}/{algo}", lambda c=config: _training(c)
        vine = trpo.TRPOConfig(env_id=env_id, seed=3, total_steps=2 * n, steps_per_iter=n,
                               sampling="vine", vine_states=20, vine_horizon=20)
        yield f"train/{env_id}/vine", lambda c=vine: _training(c)
        for algo in ("cem", "cma"):
            config = derivative_free.DerivativeFreeConfig(env_id=env_id, algo=algo, seed=3,
                                                          total_steps=n, population=6)
            yield f"train/{env_id}/{algo}", lambda c=config: _training(c)
    hopper = trpo.TRPOConfig(env_id="Hopper-v5", seed=5, total_steps=1200, steps_per_iter=600,
                             checkpoint_every=0)
    yield "bug-step/clean", lambda: _adapter_step(None)
    for name in [*forks.BUGS, *forks.LINE_SEARCH_BUGS]:
        def bugged(name: str = name) -> str:
            with forks.seeded_bug(name):
                return _training(hopper)
        yield f"bug-train/{name}", bugged
        yield f"bug-step/{name}", lambda name=name: _adapter_step(name)
    for fault in training_jobs.FAULTS:
        yield f"train-job/{fault}", lambda f=fault: digest(training_jobs.train_job(
            "Hopper-v5", "trpo", 5, 1200, {"steps_per_iter": 600}, fault=f))
    yield "step-line-search", _line_search_cases
    for game in ("ALE/Pong-v5", "ALE/Breakout-v5"):  # the CNN, frames and ALE pipeline
        config = trpo.TRPOConfig(env_id=game, seed=3, total_steps=1200, steps_per_iter=600,
                                 checkpoint_every=0)
        yield f"train/{game}/trpo", lambda c=config: _training(c)


def _adapter_step(bug: str | None) -> str:
    from claims.adapters.trpo_ref import TrpoRef
    from claims.framework.impl import StepBatch

    rng = np.random.default_rng(0)
    impl = TrpoRef(fvp_subsample=0.5)
    out = []
    with forks.seeded_bug(bug):
        impl.new_policy("Hopper-v5", 2)
        for delta in (0.01, 0.3, 3.0):
            obs = rng.normal(size=(256, 11))
            act = rng.normal(size=(256, 3))
            adv = rng.normal(size=256)
            batch = StepBatch(env_id="Hopper-v5", obs=obs, act=act, adv=adv)
            outcome = impl.policy_step(batch, delta)
            out.append([outcome.new.mean, outcome.new.std])
    return digest([out, step.get_flat_params(impl.policy)])


def _line_search_cases() -> str:
    from claims.catalogue.step import line_search as ls

    config = trpo.TRPOConfig(env_id="Hopper-v5", seed=1)
    env = trpo.make_env("Hopper-v5", config)
    trpo.seed_everything(1, env)
    policy = trpo.make_policy(config, env)
    env.close()
    rng = np.random.default_rng(1)
    obs = torch.as_tensor(rng.normal(size=(300, 11)))
    act = torch.as_tensor(rng.normal(size=(300, 3)))
    adv = torch.as_tensor(rng.normal(size=300))
    theta = step.get_flat_params(policy)
    out = []
    for fault in ls.FAULTS:
        for fn in (step.line_search, ls._line_search_bug_no_restore):
            for case in (ls.run_line_search_case, ls.run_update_case):
                step.set_flat_params(policy, theta)
                batch = step.make_batch(policy, obs, act, adv)
                result = case(fault, policy, batch, config, torch.Generator().manual_seed(0), fn)
                out.append([fault, case.__name__, result, step.get_flat_params(policy)])
    return digest(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("record", "check"))
    parser.add_argument("path", type=Path)
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args()
    hashes = {}
    with torch_threads(1):
        for name, run in _cases():
            if args.only in name:
                hashes[name] = run()
                print(name, hashes[name][:16], flush=True)
    if args.mode == "record":
        args.path.write_text(json.dumps(hashes, indent=1) + "\n")
        return 0
    expected = json.loads(args.path.read_text())
    unrecorded = [n for n in hashes if n not in expected]  # cases added since the recording
    differ = [n for n in hashes if n in expected and expected[n] != hashes[n]]
    checked = len(hashes) - len(unrecorded)
    print(f"{checked - len(differ)} of {checked} cases bit-identical; differ: {differ}"
          + (f"; not in the reference (not checked): {unrecorded}" if unrecorded else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
