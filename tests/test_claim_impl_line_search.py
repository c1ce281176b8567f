"""The line-search claims (impl.ls_*): on a small plan the reference passes and each
mechanism's control (a seeded bug of claims.faults.forks) is REFUTED; the probes, the Fisher
coordinates and the per-claim violation counts behave as documented."""

from __future__ import annotations

import math

import numpy as np
import pytest

from claims.catalogue.implementation import line_search
from claims.catalogue.implementation.sequence import (
    COS_MIN,
    Cell,
    Crash,
    UpdateRecord,
    direction_chain,
    fisher_coordinates,
    forget_updates,
    probe_batch,
    read_cell,
    records_json,
)
from claims.faults.forks import seeded_bug
from claims.framework.core import Evidence, Status
from claims.framework.impl import ActionDistributions, StepBatch, StepOutcome
from claims.framework.registry import get

# one task, one seed: the probes, a rung where the full step often fails (0.03 on CartPole
# after a few updates) and one far from the quadratic regime (10)
SMALL = line_search.LineSearchBudget(tasks=[["CartPole-v1", 1000]], seeds=[0], warmup=2,
                                     updates=5, ladder=[0.03, 10.0], ladder_updates=10,
                                     probe_updates=3)
DECLARED = dict(line_search.LS_BUDGETS)


@pytest.fixture(scope="module")
def small_plan():
    """The small plan for the module's tests (the reference's cells are computed once)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(line_search.LS_BUDGETS, "quick", SMALL)
        forget_updates()
        yield
    forget_updates()


@pytest.mark.usefixtures("small_plan")
@pytest.mark.parametrize("claim_id", ["impl.ls_improves", "impl.ls_within_delta",
                                      "impl.ls_direction"])
def test_reference_supported_and_mechanism_control_refuted(claim_id):
    claim = get(claim_id)
    real, control = claim.run("quick"), claim.run("quick", control=True)
    assert claim.decide(real).status is Status.SUPPORTED, claim.decide(real).message
    assert claim.decide(control).status is Status.REFUTED
    assert sum(claim.violations(control).values()) > sum(claim.violations(real).values()) == 0


@pytest.mark.usefixtures("small_plan")
def test_the_probes_and_the_ladder_make_the_reference_line_search_act():
    evidence = get("impl.ls_improves").run("quick")
    assert evidence.summary["updates the line search visibly acted on (rejected or "
                               "shortened)"] > 0
    cells = evidence.summary["stress per cell"]
    assert set(cells) == {"CartPole-v1 seed 0 probe sharpen delta 0.01",
                          "CartPole-v1 seed 0 probe broaden delta 0.01",
                          "CartPole-v1 seed 0 delta 0.03", "CartPole-v1 seed 0 delta 10"}
    assert [c["updates"] for c in cells.values()] == [3, 3, 10, 10]


def test_the_ladder_is_declared_up_front_per_tier():
    for tier in ("quick", "standard", "full"):
        ladder = list(DECLARED[tier].ladder)
        assert ladder == sorted(ladder) and ladder[0] <= 0.03 and 100.0 in ladder
        assert ladder[-1] == line_search.OVERFLOW_DELTA


def test_the_finite_guard_control_accepts_a_nan_candidate():
    """The no_finite_guard bug, on a candidate whose surrogate and KL are NaN."""
    import torch

    from trpo_ref.deep import step

    policy = torch.nn.Linear(2, 1).double()
    theta = step.get_flat_params(policy)
    for bug, accepted in ((None, False), ("no_finite_guard", True)):
        with seeded_bug(bug):
            result = step.current_strategies().line_search(
                policy, theta, torch.ones_like(theta), lambda: (math.nan, math.nan), 0.0, 0.01)
        assert result.accepted is accepted


def evidence_of(claim_id, runs, deltas):
    return Evidence(claim_id, "quick", False, {"deltas": deltas}, records_json(runs))


@pytest.mark.parametrize(("claim_id", "record", "violations"), [
    ("impl.ls_improves", UpdateRecord(0.001, 0.002, -0.1, False), 1),
    ("impl.ls_improves", UpdateRecord(0.0, 0.0, 0.0, True), 0),  # rejected: nothing accepted
    ("impl.ls_within_delta", UpdateRecord(0.02, 0.03, 0.1, False), 1),
    ("impl.ls_within_delta", UpdateRecord(0.01, 0.03, 0.1, False), 0),  # KL == delta is within
    ("impl.ls_direction", UpdateRecord(0.01, 0.03, 0.1, False, 0.5, 0.4), 1),
    ("impl.ls_direction", UpdateRecord(0.01, 0.03, 0.1, False, 0.95, 0.4), 0),
])
def test_violations_by_hand(claim_id, record, violations):
    runs = {"T seed 0 delta 0.01": Cell([record]), "T seed 0 delta 10": Cell([])}
    assert sum(get(claim_id).violations(evidence_of(claim_id, runs, [0.01, 10])).values()) \
        == violations


def test_within_delta_compares_how_far_beyond_delta_by_hand():
    """Its samples: per cell, the sum over accepted steps of ln max(KL / delta, 1), capped; a
    rejected update and a step within delta add nothing."""
    claim = get("impl.ls_within_delta")
    runs = {"T seed 0 delta 0.01": Cell([UpdateRecord(0.02, 0.03, 0.1, False),
                                         UpdateRecord(0.005, 0.01, 0.1, False),
                                         UpdateRecord(0.0, 0.0, 0.0, True)]),
            "T seed 0 delta 10": Cell([UpdateRecord(math.inf, math.inf, 0.1, False),
                                       UpdateRecord(10.0 * math.e, 1e3, 0.1, False)])}
    samples = claim.samples(evidence_of(claim.id, runs, [0.01, 10]))
    assert samples["T seed 0 delta 0.01"] == pytest.approx(math.log(2.0))
    assert samples["T seed 0 delta 10"] == pytest.approx(line_search.OVERSHOOT_CAP + 1.0)


def test_direction_compares_off_direction_steps_plus_rejections_by_hand():
    """A line search that never shortens its step rejects instead: the comparison counts the
    rejections in every cell, and the off-direction steps where the direction is judged."""
    claim = get("impl.ls_direction")
    off, rejected = UpdateRecord(0.01, 0.03, 0.1, False, 0.5, 0.4), UpdateRecord(0, 0, 0, True)
    runs = {"T seed 0 delta 0.01": Cell([off, rejected]), "T seed 0 delta 10": Cell(
        [rejected, rejected, off])}  # off-direction at delta 10 is not judged (no reference)
    samples = claim.samples(evidence_of(claim.id, runs, [0.01, 10]))
    assert samples == {"T seed 0 delta 0.01": 2.0, "T seed 0 delta 10": 2.0}


def test_finite_counts_the_cells_whose_policy_became_non_finite():
    claim = get("impl.ls_finite")
    ok = UpdateRecord(0.01, 0.02, 0.1, False)
    runs = {"T seed 0 delta 1e+08": Cell([ok], Crash(2, "exception", "E", "non-finite")),
            "T seed 1 delta 1e+08": Cell([ok], Crash(2, "exception", "E", "unchanged")),
            "T seed 2 delta 1e+08": Cell([ok])}
    verdict = claim.decide(evidence_of(claim.id, runs, [1e8]))
    assert verdict.status is Status.REFUTED and verdict.value == 1.0
    del runs["T seed 0 delta 1e+08"]
    assert claim.decide(evidence_of(claim.id, runs, [1e8])).status is Status.SUPPORTED


def test_direction_is_inconclusive_when_no_step_was_shortened_or_turned():
    claim = get("impl.ls_direction")
    runs = {"T seed 0 delta 0.01": Cell([UpdateRecord(0.01, 0.02, 0.1, False, 0.99, 1.0)])}
    assert claim.decide(evidence_of(claim.id, runs, [0.01])).status is Status.INCONCLUSIVE


def gaussian(mean, std):
    return ActionDistributions(mean=np.asarray(mean, float), std=np.asarray(std, float))


def test_fisher_coordinates_by_hand():
    old = gaussian([[0.0, 0.0]], [[1.0, 2.0]])
    new = gaussian([[0.1, 0.2]], [[1.0, 2.0 * math.exp(0.05)]])
    x = fisher_coordinates(old, new)
    assert x == pytest.approx([0.1, 0.1, 0.0, math.sqrt(2) * 0.05])
    # |x|^2 / 2 is the KL to second order
    assert 0.5 * x @ x == pytest.approx(old.kl_to(new)[0], rel=0.05)
    p = ActionDistributions(probs=np.array([[0.25, 0.75]]))
    q = ActionDistributions(probs=np.array([[0.5, 0.5]]))
    assert fisher_coordinates(p, q) == pytest.approx([0.5 * math.log(2), math.sqrt(0.75)
                                                      * math.log(2 / 3)])


OLD = gaussian([[0.0, 0.0]], [[1.0, 1.0]])


def moved(x):
    """The step from OLD to the Gaussian whose Fisher coordinates are x (sigma = 1)."""
    return StepOutcome(OLD, gaussian([x], [[1.0, 1.0]]))


def curved(t, bend=1.5):
    """A parameter ray seen in Fisher coordinates: bent, as the network bends it."""
    return moved([t, bend * t * t])


def backtracking(ray, t_accept=0.7, backtrack=0.8, turn_to=None):
    """An update at fraction f of delta from one state: the full step sqrt(f) s (eq. (12)'s
    scale), then backtrack^k of it until a candidate is acceptable (length <= t_accept);
    ``turn_to``: once the full step fails, the candidates lie along that ray instead."""
    def update(f):
        t = math.sqrt(f)
        if t <= t_accept:
            return ray(t)
        shorter = turn_to or ray
        while t > t_accept:
            t *= backtrack
        return shorter(t)
    return update


def test_direction_chain_of_a_straight_ray_is_one_rerun():
    asked = []
    update = backtracking(lambda t: moved([t, 0.5 * t]))

    def rerun(f):
        asked.append(f)
        return update(f)

    assert direction_chain(update(1.0), rerun) == pytest.approx((1.0, 0.64))  # 0.8^2 of it
    assert asked == [0.01]  # the delta / 100 step alone: straight already
    asked.clear()
    assert all(math.isnan(v) for v in direction_chain(StepOutcome(OLD, OLD), rerun))
    assert asked == []  # a rejected update is not rerun


def test_direction_chain_follows_a_curved_ray_the_single_comparison_refutes():
    """A correct backtracking line search on a bent ray: against the delta / 100 step alone
    the accepted step (0.8^2 of the full one) turned by cosine 0.82, a false alarm; along the
    chain of reruns no link turns below COS_MIN."""
    update = backtracking(curved)
    step = update(1.0)
    x, x_ref = fisher_coordinates(step.old, step.new), fisher_coordinates(OLD, update(0.01).new)
    single = float(x @ x_ref / (np.linalg.norm(x) * np.linalg.norm(x_ref)))
    assert single < COS_MIN
    cos, ratio = direction_chain(step, update)
    assert cos >= COS_MIN and cos > 0.97
    assert ratio == pytest.approx(np.linalg.norm(x) / (10 * np.linalg.norm(x_ref)))


@pytest.mark.parametrize("turn_to", [
    lambda t: moved([0.6 * t, -0.8 * t]),  # the gradient instead of the natural direction
    lambda t: curved(t, bend=-1.5),  # another curve (re-solved per candidate)
])
def test_direction_chain_refutes_a_step_turned_once_the_full_step_fails(turn_to):
    for ray in (curved, lambda t: moved([t, 0.0])):
        update = backtracking(ray, turn_to=turn_to)
        cos, _ = direction_chain(update(1.0), update)
        assert cos < COS_MIN


def test_direction_chain_skips_a_failed_rerun():
    update = backtracking(curved)
    cos, _ = direction_chain(update(1.0), lambda f: None if 0.01 < f < 1 else update(f))
    assert cos < COS_MIN  # no rerun between: the long link stays as it is
    assert all(math.isnan(v) for v in direction_chain(update(1.0), lambda f: None))


def test_the_parent_recomputes_the_chain_from_the_workers_reruns():
    """read_cell: the reruns come keyed by fraction of delta; a malformed one is missing."""
    batch = StepBatch("T", np.zeros((1, 1)), np.zeros((1, 2)), np.ones(1))
    update = backtracking(curved)
    reruns = {}

    def rerun(f):
        reruns[f] = update(f)
        return reruns[f]

    step = update(1.0)
    expected = direction_chain(step, rerun)
    record = read_cell([("update", 1, step, reruns, [])], batch).records[0]
    assert (record.direction_cos, record.length_ratio) == pytest.approx(expected)
    broken = reruns | {f: StepOutcome(OLD, gaussian([[math.nan, 0.0]], [[1.0, 1.0]]))
                       for f in reruns if f != 0.01}
    record = read_cell([("update", 1, step, broken, [])], batch).records[0]
    assert record.direction_cos < COS_MIN  # as with failed reruns: the long link is judged


def test_probe_batches_reward_and_punish_the_likely_actions():
    batch = StepBatch("T", np.zeros((3, 1)), np.array([0, 1, 1]), np.zeros(3))
    pi0 = ActionDistributions(probs=np.array([[0.9, 0.1]] * 3))
    sharpen, broaden = probe_batch(batch, pi0, "sharpen"), probe_batch(batch, pi0, "broaden")
    assert sharpen.adv[0] > 0 > sharpen.adv[1] and np.allclose(broaden.adv, -sharpen.adv)
    assert sharpen.adv.mean() == pytest.approx(0.0) and sharpen.adv.std() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="all equal"):
        probe_batch(batch, ActionDistributions(probs=np.full((3, 2), 0.5)), "sharpen")
