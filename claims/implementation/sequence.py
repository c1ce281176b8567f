"""The suite's step protocol for any implementation: real batches, consecutive updates, each one
measured by the suite from the action distributions the implementation returns.

For each (task, seed) the suite takes a real batch (states, actions, standardized GAE advantages
from a short, clean ``trpo_ref`` training: :func:`suite_batch`), the implementation makes a
fresh policy for the task and performs ``updates`` consecutive updates on that batch with KL
bound ``delta``, each starting from where the previous one left the policy. Repeating the
update walks the policy away from the batch's sampling policy, into the region where the
quadratic model of the KL is poor and a line search has to backtrack or give up: that is where
restoring the old parameters and checking the KL matter.

Every update gives an :class:`UpdateRecord`, measured by the paper's definitions:

- KL(pi_old || pi_new) per state, summed over action dimensions; its mean (eq. 12) and max;
- the surrogate's change L(pi_new) - L(pi_old) = mean_n (r_n - 1) A_n with r_n =
  pi_new(a_n | s_n) / pi_old(a_n | s_n) and the batch's standardized advantages (eq. 14);
- whether the policy is exactly unchanged (a rejected update, bit for bit).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from claims.core import Claim, Evidence, Kind
from claims.forks import active_bug, bugs_suspended, seeded_bug
from claims.impl import (
    REFERENCE_SPEC,
    ActionDistributions,
    ImplementationError,
    StepBatch,
    StepOutcome,
    UnderTest,
    under_test,
)
from claims.step.batches import task_config, trained_batch
from trpo_ref.deep.runtime import torch_threads


@dataclass(frozen=True)
class UpdateRecord:
    kl_mean: float  # mean over states of KL(pi_old || pi_new), summed over action dimensions
    kl_max: float  # its largest value over the batch's states
    surrogate_gain: float  # L(pi_new) - L(pi_old) with the batch's standardized advantages
    unchanged: bool  # the new distributions equal the old ones bit for bit

    @property
    def efficiency(self) -> float:
        """Surrogate gained per unit of trust region, gain / sqrt(2 KL): to first order the
        natural gradient direction maximizes it (section 7), whatever the step's length."""
        if self.unchanged or not self.kl_mean > 0:
            return math.nan
        return self.surrogate_gain / math.sqrt(2.0 * self.kl_mean)


_BATCHES: dict[tuple[str, int, int, int], StepBatch] = {}
_SEQUENCES: dict[tuple[Any, ...], list[UpdateRecord]] = {}


def forget_updates() -> None:
    """Drop the memoized update sequences (the next claim reruns the implementation)."""
    _SEQUENCES.clear()


def suite_batch(env_id: str, steps: int, seed: int, warmup_iters: int) -> StepBatch:
    """The batch of iteration ``warmup_iters`` of a clean trpo_ref training on ``env_id`` (the
    same whichever implementation or seeded bug is under test); memoized."""
    key = (env_id, steps, seed, warmup_iters)
    if key not in _BATCHES:
        with bugs_suspended(), torch_threads(1):
            item = trained_batch(task_config(env_id, steps, seed), warmup_iters)
        b = item.batch
        adv = b.adv.numpy().astype(np.float64)
        _BATCHES[key] = StepBatch(env_id, b.obs.numpy().copy(), b.act.numpy().copy(),
                                  (adv - adv.mean()) / adv.std())
    return _BATCHES[key]


def same_distributions(a: ActionDistributions, b: ActionDistributions) -> bool:
    if a.kind != b.kind:
        return False
    if a.kind == "categorical":
        return np.array_equal(a.categorical_log_probs(), b.categorical_log_probs())
    return np.array_equal(a.mean, b.mean) and np.array_equal(a.std, b.std)


def measure_update(outcome: StepOutcome, batch: StepBatch) -> UpdateRecord:
    """The suite's measurements of one update (validating the distributions first)."""
    n = len(batch.adv)
    outcome.old.validate(n, "old distributions")
    outcome.new.validate(n, "new distributions")
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        kl = outcome.old.kl_to(outcome.new)
        ratio = np.exp(outcome.new.log_prob(batch.act) - outcome.old.log_prob(batch.act))
        gain = float(np.mean((ratio - 1.0) * batch.adv))
    return UpdateRecord(float(kl.mean()), float(kl.max()), gain,
                        same_distributions(outcome.old, outcome.new))


def update_sequence(impl: Any, batch: StepBatch, seed: int, delta: float,
                    updates: int) -> list[UpdateRecord]:
    """A fresh policy (``seed``), then ``updates`` consecutive updates on ``batch``."""
    impl.new_policy(batch.env_id, seed)
    records = []
    for k in range(updates):
        try:
            records.append(measure_update(impl.policy_step(batch, delta), batch))
        except Exception as error:  # say where: the message becomes the claim's ERROR
            raise ImplementationError(f"{batch.env_id} seed {seed}, delta {delta:g}, update "
                                      f"{k + 1} of {updates}: {type(error).__name__}: "
                                      f"{error}") from error
    return records


def sequences(target: UnderTest, budget: dict[str, Any], seed: int,
              delta: float) -> dict[str, list[UpdateRecord]]:
    """Every (task, seed) sequence of a claim's ``budget`` (keys tasks [[env_id, steps], ...],
    seeds, warmup, updates), keyed "ENV seed S"; memoized per implementation and seeded bug,
    so claims sharing a protocol share the updates."""
    impl = target.load()
    out: dict[str, list[UpdateRecord]] = {}
    for env_id, steps in budget["tasks"]:
        for s in budget["seeds"]:
            key = (target.spec, active_bug(), env_id, steps, seed + s, budget["warmup"],
                   budget["updates"], delta)
            if key not in _SEQUENCES:
                batch = suite_batch(env_id, steps, seed + s, budget["warmup"])
                _SEQUENCES[key] = update_sequence(impl, batch, seed + s, delta,
                                                  budget["updates"])
            out[f"{env_id} seed {seed + s}"] = _SEQUENCES[key]
    return out


def records_json(runs: dict[str, list[UpdateRecord]]) -> dict[str, dict[str, list[Any]]]:
    """Per-(task, seed) lists of each measurement, for Evidence.data."""
    return {field: {key: [asdict(r)[field] for r in records] for key, records in runs.items()}
            for field in ("kl_mean", "kl_max", "surrogate_gain", "unchanged")}


def records_from_json(data: dict[str, dict[str, list[Any]]]) -> dict[str, list[UpdateRecord]]:
    return {key: [UpdateRecord(float(kl), float(kl_max), float(gain), bool(same))
                  for kl, kl_max, gain, same in zip(
        data["kl_mean"][key], data["kl_max"][key], data["surrogate_gain"][key],
        data["unchanged"][key], strict=True)] for key in data["kl_mean"]}


# --- claims judged on the step protocol ------------------------------------------------------

STEP_BUDGETS: dict[str, dict[str, Any] | None] = {
    "quick": {"tasks": [["CartPole-v1", 1000], ["Hopper-v5", 1000]], "seeds": [0, 1],
              "warmup": 2, "updates": 20},
    "standard": {"tasks": [["CartPole-v1", 2000], ["Hopper-v5", 5000], ["Swimmer-v5", 5000],
                           ["Walker2d-v5", 5000]], "seeds": [0, 1, 2], "warmup": 5,
                 "updates": 20},
    "full": {"tasks": [["CartPole-v1", 5000], ["Hopper-v5", 10000], ["Swimmer-v5", 10000],
                       ["Walker2d-v5", 10000]], "seeds": [0, 1, 2, 3, 4], "warmup": 10,
             "updates": 20},
}
STEP_PROTOCOL = (
    "For each task and seed: a clean trpo_ref training of `warmup` iterations gives a real batch "
    "(states, actions, standardized GAE advantages); the implementation under test makes a "
    "fresh policy for the task (same seed) and performs `updates` consecutive updates on that "
    "batch with KL bound {delta}, each from where the last left the policy; the suite measures "
    "every update from the returned action distributions: KL(old || new) per state summed over "
    "action dimensions, the surrogate change mean (r - 1) A, and whether the policy is exactly "
    "unchanged.")


class StepSequenceClaim(Claim):
    """A claim judged on :func:`sequences` at one or more KL bounds; the negative control is
    the reference with the seeded bug :attr:`control_bug` (:mod:`claims.forks`)."""

    kind = Kind.EXACT
    requires: ClassVar[frozenset[str] | None] = frozenset({"step"})
    budgets: ClassVar[dict[str, dict[str, Any] | None]] = STEP_BUDGETS
    deltas: ClassVar[tuple[float, ...]] = (0.01,)
    control_bug: ClassVar[str]

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.budget(tier) or {}
        target = UnderTest(REFERENCE_SPEC) if control else under_test()
        runs: dict[str, list[UpdateRecord]] = {}
        with seeded_bug(self.control_bug if control else None):
            for delta in self.deltas:
                for key, records in sequences(target, budget, seed, delta).items():
                    runs[key if len(self.deltas) == 1 else f"{key} delta {delta:g}"] = records
        config = {"impl": target.spec, "deltas": list(self.deltas), "seed": seed} | budget
        if control:
            config["seeded_bug"] = self.control_bug
        evidence = Evidence(self.id, tier, control, config, records_json(runs))
        evidence.summary = self.summarize(runs)
        return evidence

    def summarize(self, runs: dict[str, list[UpdateRecord]]) -> dict[str, Any]:
        return {}

    @staticmethod
    def delta_of(key: str, config: dict[str, Any]) -> float:
        return float(key.rsplit(" delta ", 1)[1]) if " delta " in key else config["deltas"][0]
