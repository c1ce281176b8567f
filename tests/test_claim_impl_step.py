"""The step-protocol claims (impl.*): the reference passes, each negative control (a seeded bug)
is REFUTED, and the measurements behave as the paper's definitions say."""

from __future__ import annotations

import math

import numpy as np
import pytest

from claims.catalogue.implementation.rejected_update_restores import violates
from claims.catalogue.implementation.sequence import (
    Cell,
    UpdateRecord,
    measure_update,
    records_from_json,
    records_json,
    suite_batch,
)
from claims.framework.core import Status
from claims.framework.impl import ActionDistributions, StepBatch, StepOutcome
from claims.framework.registry import get

STEP_CLAIMS = ["impl.surrogate_improves", "impl.rejected_update_restores"]


@pytest.mark.parametrize("claim_id", STEP_CLAIMS)
def test_reference_supported_and_control_refuted(claim_id):
    claim = get(claim_id)
    real, control = claim.run("quick"), claim.run("quick", control=True)
    assert claim.decide(real).status is Status.SUPPORTED
    assert claim.decide(control).status is Status.REFUTED
    assert control.config["seeded_bug"] == claim.control_bug
    samples = claim.samples(real)
    assert samples and all(math.isfinite(v) for v in samples.values())


def test_the_stress_test_exercises_rejections():
    claim = get("impl.rejected_update_restores")
    evidence = claim.run("quick")
    assert evidence.summary["rejected (unchanged) updates"] > 0  # the restore was exercised


def test_suite_batches_ignore_the_seeded_bug_under_test():
    from claims.faults.forks import seeded_bug

    clean = suite_batch("CartPole-v1", 500, 7, 1)
    with seeded_bug("flip_advantages"):
        import claims.catalogue.implementation.sequence as sequence

        sequence._BATCHES.clear()
        buggy = suite_batch("CartPole-v1", 500, 7, 1)
    assert np.array_equal(clean.obs, buggy.obs) and np.array_equal(clean.adv, buggy.adv)
    assert abs(clean.adv.mean()) < 1e-12 and clean.adv.std() == pytest.approx(1.0)


def test_measure_update_by_hand():
    batch = StepBatch("toy", np.zeros((2, 1)), np.array([0, 1]), np.array([1.0, -1.0]))
    old = ActionDistributions(probs=np.array([[0.5, 0.5], [0.5, 0.5]]))
    new = ActionDistributions(log_probs=np.log(np.array([[0.75, 0.25], [0.75, 0.25]])))
    record = measure_update(StepOutcome(old, new), batch)
    kl = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert record.kl_mean == pytest.approx(kl) and record.kl_max == pytest.approx(kl)
    # ratios 1.5 (a=0, A=+1) and 0.5 (a=1, A=-1): mean((r - 1) A) = (0.5 + 0.5) / 2
    assert record.surrogate_gain == pytest.approx(0.5)
    assert not record.unchanged
    assert measure_update(StepOutcome(old, old), batch).unchanged


def test_log_probs_survive_where_probabilities_underflow():
    old = ActionDistributions(log_probs=np.log(np.array([[0.5, 0.5]])))
    new = ActionDistributions(log_probs=np.array([[0.0, -800.0]]))  # exp(-800) == 0.0
    assert np.isfinite(old.kl_to(new)).all()
    assert old.kl_to(new)[0] == pytest.approx(0.5 * math.log(0.5) + 0.5 * (math.log(0.5) + 800))


@pytest.mark.parametrize(("record", "delta", "expected"), [
    (UpdateRecord(0.5, 1.0, 0.1, False), 1.0, False),  # improved within the region
    (UpdateRecord(1.5, 2.0, 0.1, False), 1.0, True),  # outside the region
    (UpdateRecord(0.5, 1.0, 0.0, False), 1.0, True),  # moved without improving
    (UpdateRecord(0.0, 0.0, 0.0, True), 1.0, False),  # rejected, unchanged
    (UpdateRecord(math.inf, math.inf, math.nan, False), 100.0, True),
])
def test_violates(record, delta, expected):
    assert violates(record, delta) is expected


def test_records_round_trip_through_json():
    records = [UpdateRecord(0.1, 0.2, 0.3, False, 0.99, 0.5), UpdateRecord(0, 0, 0, True)]
    back = records_from_json(records_json({"A seed 0": Cell(records)}))["A seed 0"]
    assert back[0] == records[0] and back[1].unchanged and math.isnan(back[1].direction_cos)
    # evidence saved before the direction fields existed still reads
    old = {f: {"k": [v]} for f, v in zip(("kl_mean", "kl_max", "surrogate_gain", "unchanged"),
                                         (0.1, 0.2, 0.3, False), strict=True)}
    assert records_from_json(old)["k"][0].kl_mean == 0.1
    assert math.isnan(UpdateRecord(0.0, 0.0, 0.0, True).efficiency)
    assert UpdateRecord(0.02, 0.05, 0.2, False).efficiency == pytest.approx(1.0)  # 0.2 / 0.2


class RaisesOnThirdUpdate:
    name = "raises"

    def __init__(self):
        self.calls = 0

    def new_policy(self, env_id, seed):
        self.calls = 0

    def policy_step(self, batch, delta):
        self.calls += 1
        if self.calls == 3:
            raise ValueError("parameters are NaN")
        d = ActionDistributions(log_probs=np.log(np.full((len(batch.adv), 2), 0.5)))
        return StepOutcome(d, d)


def test_an_implementation_error_is_a_cell_crash_that_says_where():
    from claims.catalogue.implementation.sequence import update_sequence

    batch = StepBatch("CartPole-v1", np.zeros((3, 4)), np.array([0, 1, 0]), np.ones(3))
    cell = update_sequence(RaisesOnThirdUpdate(), batch, 5, 10.0, 4)
    assert len(cell.records) == 2
    assert (cell.crash.update, cell.crash.kind) == (3, "exception")
    assert cell.crash.error.startswith("ValueError: parameters are NaN")
    assert cell.crash.state == "unchanged"  # read from one more update (no inspect)


@pytest.mark.parametrize(("returns", "lengths", "expected"), [
    ([1.0, 2.0, 3.0], [50, 40, 10], 2.5),  # ends at 50, 90, 100: >= 90 keeps the last two
    ([1.0, 2.0, 3.0], [10, 10, 10], 3.0),  # ends at 10, 20, 30: >= 27 keeps the last
    ([1.0, 2.0, 4.0], [80, 15, 5], 3.0),  # ends at 80, 95, 100: the last two
    ([], [], float("nan")),
])
def test_learns_final_return_by_hand(returns, lengths, expected):
    from claims.catalogue.implementation.learns import final_return

    value = final_return(returns, lengths)
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


def test_learns_reference_supported_and_flipped_fork_refuted(quick_job_cache):
    from claims.framework.jobs import Execution, execution

    claim = get("impl.learns")
    with execution(Execution(cache=quick_job_cache)):  # shared with the quick-tier smoke test
        real, control = claim.run("quick"), claim.run("quick", control=True)
    assert claim.decide(real).status is Status.SUPPORTED
    assert claim.decide(control).status is Status.REFUTED
    assert set(claim.samples(real)) == {"CartPole-v1 seed 0", "CartPole-v1 seed 1"}
    jobs = claim.jobs("quick", control=True)
    assert [j.kwargs["bug"] for j in jobs] == ["flip_advantages"] and len(jobs) == 1
