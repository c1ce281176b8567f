"""The section-8 claims (claims.catalogue.empirical): per-seed summaries by hand, decisions on
synthetic evidence, the protocol's coverage, and every claim run at the quick tier with its
control."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from claims.catalogue.empirical import (
    atari,
    audit,
    common,
    learning,
    monotonic,
    npg_progress,
    protocol,
)
from claims.framework.core import Evidence, Status
from claims.framework.jobs import Execution, JobCache, execution
from claims.framework.registry import all_claims
from claims.framework.runner import claim_jobs, run_claims

EMPIRICAL = [c for c in all_claims() if c.id.startswith("empirical.")]
IDS = [c.id for c in EMPIRICAL]


# --- per-seed summaries, by hand -----------------------------------------------------------------

def run_result(returns, steps=None, **extra):
    steps = steps if steps is not None else [10 * (i + 1) for i in range(len(returns))]
    return {"returns": returns, "steps": steps, "config": {"delta": 0.01}} | extra


def test_final_return_is_the_mean_of_the_last_tenth_of_iterations():
    assert protocol.final_return(run_result(list(range(20)))) == 18.5  # last 2 of 20
    assert protocol.final_return(run_result([3.0, 5.0])) == 5.0  # at least one


def test_mean_return_weights_iterations_by_their_steps():
    # 10 steps at return 1, then 30 steps at return 3: area 100 over 40 steps
    assert protocol.mean_return(run_result([1.0, 3.0], steps=[10, 40])) == 2.5


def test_final_velocity_ignores_nan():
    result = run_result([0.0] * 10, x_velocity=[0.0] * 9 + [2.0])
    assert protocol.final_velocity(result) == 2.0
    assert math.isnan(protocol.final_velocity(run_result([0.0], x_velocity=[math.nan])))


def test_non_decreasing_share_counts_ties_as_not_falling():
    assert monotonic.non_decreasing_share([1, 2, 2, 1, 3]) == 0.75
    with pytest.raises(ValueError):
        monotonic.non_decreasing_share([1.0])


def test_audit_per_run_statistics_by_hand():
    result = run_result([10.0, 20.0, 40.0], kl_full_step=[0.02, 0.005, math.nan],
                        kl_max=[0.05, 0.5, 0.03], accepted=[True, False, True],
                        surrogate_actual=[0.1, 0.0, 0.2], adv_raw_std=[2.0, 2.0, 5.0],
                        ep_len=[100.0, 100.0, 10.0])
    assert audit.full_step_log2_error(result) == 1.0  # |log2 2| and |log2 0.5|
    assert audit.max_kl_over_delta(result) == 4.0  # median of 5 and 3 (step 2 rejected)
    np.testing.assert_allclose(audit.predicted_return_gain(result), [20.0, 0.0, 10.0])
    assert audit.realized_over_predicted(result) == (40.0 - 10.0) / 30.0


def test_progress_margin_needs_trpo_above_and_npg_below_the_speed():
    v0 = npg_progress.PROGRESS_SPEED
    assert npg_progress.progress_margin(np.full(5, v0 + 1.0), np.full(5, v0 - 0.2)) == 0.2
    assert npg_progress.progress_margin(np.full(5, v0 + 1.0), np.full(5, v0 + 0.1)) < 0


def test_ratio_statistics():
    assert common.iqm_ratio(np.array([2.0, 2.0]), np.array([4.0, 4.0])) == 0.5
    assert math.isnan(common.iqm_ratio(np.ones(2), np.array([-1.0, -1.0])))
    assert learning.log_ratio_distance(np.ones(3), np.ones(3)) == 0.0
    assert learning.log_ratio_distance(np.full(3, 2.0), np.ones(3)) == pytest.approx(math.log(2))


@given(st.lists(st.floats(-100, 100), min_size=2, max_size=6),
       st.lists(st.floats(-100, 100), min_size=2, max_size=6))
def test_worst_task_is_the_min_of_per_task_iqms_and_inside_its_interval_range(a, b):
    n = min(len(a), len(b))
    scores = np.array([a[:n], b[:n]]).T
    estimate = common.worst_task(scores, ["a", "b"])
    assert estimate.value == min(estimate.per_task.values())
    assert estimate.ci[0] <= estimate.ci[1]
    assert scores.min() - 1e-9 <= estimate.ci[0] and estimate.ci[1] <= scores.max() + 1e-9


# --- decisions on synthetic evidence -------------------------------------------------------------

def threshold_evidence(claim, finals):
    thresholds = {c: protocol.TASKS[c.split()[0]].threshold for c in finals}
    return Evidence(claim.id, "full", False, {"steps": {}},
                    {"final_return": finals, "threshold": thresholds})


@pytest.mark.parametrize(("finals", "status"), [
    ({"Hopper-v5 trpo": [1500, 1600, 1700, 1800, 1900]}, Status.SUPPORTED),
    ({"Hopper-v5 trpo": [100, 200, 300, 400, 500]}, Status.REFUTED),
    ({"Hopper-v5 trpo": [300, 900, 1200, 1400, 2500]}, Status.INCONCLUSIVE),
    ({"Hopper-v5 trpo": [1500] * 5, "Walker2d-v5 trpo": [100] * 5}, Status.REFUTED),
])
def test_threshold_claim_decides_on_the_worst_column(finals, status):
    claim = learning.DeltaTransfers()
    assert claim.decide(threshold_evidence(claim, finals)).status is status


def test_two_arm_claims_decide_from_their_data():
    fim = learning.EmpiricalFisherSimilar()
    similar = {"arm": {"CartPole-v1": [400, 410, 420]}, "reference": {"CartPole-v1": [405] * 3}}
    apart = {"arm": {"CartPole-v1": [40, 41, 42]}, "reference": {"CartPole-v1": [405] * 3}}
    for data, status in ((similar, Status.SUPPORTED), (apart, Status.REFUTED)):
        verdict = fim.decide(Evidence(fim.id, "full", False, {}, data))
        assert verdict.status is status
    slower = learning.MaxKLSlower()
    data = {"arm": {"CartPole-v1": [200, 210, 220]}, "reference": {"CartPole-v1": [400] * 3}}
    assert slower.decide(Evidence(slower.id, "full", False, {}, data)).status is Status.SUPPORTED


def test_an_undefined_ratio_is_inconclusive_not_refuted():
    claim = learning.DerivativeFreePoor()
    data = {"arm": {"Hopper-v5 cem": [10.0, 20.0]}, "reference": {"Hopper-v5 cem": [-5.0, -1.0]}}
    verdict = claim.decide(Evidence(claim.id, "full", False, {}, data))
    assert verdict.status is Status.INCONCLUSIVE


# --- the protocol covers what the claims read ---------------------------------------------------

@pytest.mark.parametrize("tier", ["quick", "standard", "full"])
def test_the_tier_plan_trains_every_job_the_claims_read(tier, monkeypatch):
    """scripts/train_tier_jobs.py trains ``protocol.stages``; the claims must read nothing else,
    or a finished full-tier run would still train when judged."""
    monkeypatch.setattr(protocol, "best_npg_step", lambda tier, env: (1.0, {}))
    planned = {repr(job.spec()) for stage in protocol.stages(tier) for job in stage()}
    read = {repr(job.spec()) for job in claim_jobs(EMPIRICAL, tier, controls=True)}
    assert read <= planned, sorted(read - planned)[:3]


def test_full_tier_budget_is_what_the_issue_asks():
    b = protocol.budget("full")
    assert len(b.seeds) >= 5
    assert all(b.steps[t] >= 1_000_000 for t in b.tasks() if protocol.TASKS[t].locomotion)
    assert set(b.tasks()) == {"CartPole-v1", "Swimmer-v5", "Hopper-v5", "Walker2d-v5"}


def test_npg_sweep_steps_are_factors_of_three():
    ratios = np.array(protocol.NPG_STEPS[1:]) / np.array(protocol.NPG_STEPS[:-1])
    np.testing.assert_allclose(ratios, 3.0)


# --- every claim at the quick tier, with its control ---------------------------------------------

@pytest.fixture(scope="module")
def quick_results(quick_job_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("quick-empirical")
    result = run_claims(EMPIRICAL, tier="quick", seed=0, out_dir=out,
                        jobs=Execution(cache=quick_job_cache, progress=None))
    assert all(t["finished"] == t["planned"] > 0 for t in result.results["trainings"])
    return {entry["id"]: entry for entry in result.results["claims"]}


@pytest.mark.parametrize("claim", EMPIRICAL, ids=IDS)
def test_claim_at_quick_tier(claim, quick_results):
    entry = quick_results[claim.id]
    if claim.budget("quick") is None:
        assert entry["verdict"]["status"] == "SKIPPED"
        return
    assert entry["verdict"]["status"] != "ERROR", entry["error"]
    assert entry["control"]["verdict"]["status"] == "REFUTED", entry["control"]["verdict"]
    assert entry["evidence"]["data"], "per-seed evidence is recorded"
    assert not entry["figure_errors"], entry["figure_errors"]


# --- the locomotion-only claims, mechanically, on a tiny budget ---------------------------------

@pytest.mark.parametrize("claim_cls", [npg_progress.NaturalGradientNoForwardProgress,
                                       learning.DerivativeFreePoor])
def test_locomotion_claim_runs_and_its_control_is_refuted_on_a_tiny_budget(
        claim_cls, monkeypatch, tmp_path):
    """The quick tier skips these claims; here they run end to end on 4K-step Hopper runs
    (no verdict about the paper: only that the machinery works and the control fails)."""
    tiny = protocol.Budget(steps={"Hopper-v5": 4_000}, seeds=(0, 1), control_seeds=(0, 1),
                           sweep_seeds=(100,), sweep_fraction=0.5, delta_seeds=(0,),
                           methods={"Hopper-v5": ("trpo", "npg", "cem")})
    monkeypatch.setitem(protocol.BUDGETS, "quick", tiny)
    claim = claim_cls()
    monkeypatch.setattr(claim, "budgets", {"quick": common.TrainingsBudget(
        tasks=["Hopper-v5"], steps={"Hopper-v5": 4_000}, seeds=(0, 1), control_seeds=(0, 1))})
    with execution(Execution(progress=None)):
        real = claim.run("quick")
        control = claim.run("quick", control=True)
    assert claim.decide(real).status is not Status.ERROR
    assert claim.decide(control).status is Status.REFUTED
    assert claim.figures(real, tmp_path)


def test_a_cache_only_run_skips_claims_whose_trainings_are_missing(tmp_path):
    claim = learning.DeltaTransfers()
    settings = Execution(cache=JobCache(tmp_path / "empty"), train=False, progress=None)
    result = run_claims([claim], tier="quick", seed=0, out_dir=tmp_path / "run", jobs=settings)
    entry = result.results["claims"][0]
    assert entry["verdict"]["status"] == "SKIPPED"
    assert "have not finished" in entry["verdict"]["message"]
    assert entry["control"]["verdict"]["status"] == "SKIPPED"
    assert not list((tmp_path / "empty").glob("*.json")), "nothing was trained"
    planned = {(t["task"], t["method"]): (t["finished"], t["planned"])
               for t in result.results["trainings"]}
    assert planned[("CartPole-v1", "trpo")] == (0, 2)  # quick: 2 seeds, none finished
    assert result.results["execution"]["train"] is False
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Trainings" in report and "(--cached-only)" in report


def test_atari_claim_on_one_tiny_pong_run(monkeypatch, tmp_path):
    """Mechanics only (the full tier's budget is 200K steps per game): one ~1K-step Pong run
    and its sign-flipped control, judged against Table 1's random and human rows."""
    tiny = atari.AtariBudget(games=["Pong"], steps=500, steps_per_iter=500, seed=0,
                             control_games=["Pong"])
    monkeypatch.setitem(atari.ATARI_BUDGETS, "quick", tiny)
    claim = atari.AtariBeatsRandom()
    monkeypatch.setattr(claim, "budgets", {"quick": tiny})
    with execution(Execution(progress=None)):
        real, control = claim.run("quick"), claim.run("quick", control=True)
    assert set(real.data["final_window"]) == {"Pong"}
    assert real.summary["Pong: Table 1 random / human / DQN / TRPO single path"][0] == -20.4
    assert claim.decide(real).status is not Status.ERROR
    assert claim.decide(control).status is Status.REFUTED  # one game of -21: below random
    assert claim.figures(real, tmp_path)


def test_the_protocol_trains_table_1s_games():
    assert protocol.ATARI_GAMES == tuple(atari.TABLE1)
    assert set(protocol.ATARI_CONTROL_GAMES) <= set(atari.TABLE1)


def test_human_normalized_score_by_hand():
    assert atari.normalized(-20.4, "Pong") == 0.0
    assert atari.normalized(-3.0, "Pong") == pytest.approx(1.0)
