"""The training job of :mod:`claims.catalogue.implementation.learns`: one training by the
implementation under test, as a cached job (:mod:`claims.framework.jobs`).

Kept apart from the claim: a job's cache key hashes the module that defines its function (and
the paths in its ``JOB_SOURCES``), so editing the claim's judgement re-keys no training.
"""

from __future__ import annotations

from typing import Any

from claims.faults.forks import seeded_bug
from claims.framework.impl import TrainOutcome, load_implementation
from trpo_ref.deep.runtime import torch_threads

# what a training's result may depend on besides this module and trpo_ref: the protocol's
# types, the seeded bugs (the control's trainings), the adapters the suite ships
JOB_SOURCES = ("claims/framework/impl.py", "claims/faults/forks.py", "claims/faults/__init__.py",
               "claims/adapters/trpo_ref.py", "claims/adapters/sb3_contrib.py")


def train_episodes(spec: str, env_id: str, seed: int, total_steps: int,
                   bug: str | None = None, version: str = "") -> dict[str, Any]:
    """Job function: one training by the implementation ``spec`` (with the seeded bug ``bug``
    of the reference, if any); its episodes as JSON."""
    implementation = load_implementation(spec)
    with seeded_bug(bug), torch_threads(1):
        outcome = implementation.train(env_id, seed, total_steps)
    if not isinstance(outcome, TrainOutcome):
        raise TypeError(f"train returned {type(outcome).__name__}, not TrainOutcome")
    outcome.validate(total_steps)
    return {"episode_returns": [float(r) for r in outcome.episode_returns],
            "episode_lengths": [int(n) for n in outcome.episode_lengths],
            # env steps in finished episodes (what the report's Trainings table counts)
            "steps": [int(sum(outcome.episode_lengths))],
            "implementation_version": version}
