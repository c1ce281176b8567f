"""The gridworld climb simulation (trpo_ref.tabular.climb): hand values and properties."""

import math
from dataclasses import replace

import numpy as np
import pytest

from trpo_ref.tabular import (
    GOAL_STATE,
    START_STATE,
    TRAP_STATE,
    evaluate,
    grid_state,
    gridworld,
    optimal_policy,
    random_policy,
    softmax,
    surrogate,
    uniform_policy,
)
from trpo_ref.tabular.climb import (
    ETA_TOL,
    KL_PENALTY,
    NO_TRUST_REGION,
    PRESETS,
    SHARED_ESTIMATE_ERROR,
    TRUST_REGION,
    UPDATE_RULES,
    ClimbSettings,
    RuleOutcome,
    distance_to,
    estimated_advantage,
    far_cells_worst_action_bias,
    get_preset,
    logits_of,
    percent_of_optimal,
    preset_names,
    run_climb,
    settings_for,
)

pytestmark = pytest.mark.quick

MDP_ = gridworld()
BIAS = far_cells_worst_action_bias(MDP_)
UP, RIGHT, DOWN, LEFT = range(4)


# --- the bias pattern and the estimate -------------------------------------------------------


def test_distance_to_goal_hand_values():
    d = distance_to(MDP_, GOAL_STATE)
    assert d[START_STATE] == 8 and d[GOAL_STATE] == 0
    assert d[grid_state(3, 4)] == 1 and d[grid_state(0, 4)] == 4
    assert math.isinf(d[TRAP_STATE])  # absorbing: the goal cannot be reached from it


def test_bias_marks_the_worst_action_in_the_far_cells():
    biased = BIAS.sum(axis=1) > 0
    assert BIAS.sum() == 14 and set(np.unique(BIAS)) == {0.0, 1.0}
    assert BIAS.sum(axis=1).max() == 1.0  # one action per biased cell
    far = [grid_state(r, c) for r in range(5) for c in range(5) if r + c <= 4]
    assert set(np.flatnonzero(biased)) == set(far) - {TRAP_STATE}
    assert BIAS[START_STATE, UP] == 1  # wall bump (ties with LEFT go to the lowest index)
    assert BIAS[grid_state(1, 2), DOWN] == 1 and BIAS[grid_state(2, 1), RIGHT] == 1  # into trap
    assert BIAS[grid_state(0, 2), LEFT] == 1  # a step away from the goal
    assert not biased[GOAL_STATE] and not biased[TRAP_STATE]


def test_shared_estimate_error_misranks_exactly_the_start_cell_at_the_optimum():
    """The documented reason for e = 0.05: between the smallest and the next optimal gap."""
    pi_star, _ = optimal_policy(MDP_)
    adv_star = evaluate(MDP_, pi_star).adv
    biased = BIAS.sum(axis=1) > 0
    gaps = (adv_star.max(axis=1) - (adv_star * BIAS).sum(axis=1))[biased]
    smallest, second = np.sort(gaps)[:2]
    assert smallest < SHARED_ESTIMATE_ERROR < second
    adv_hat = estimated_advantage(adv_star, pi_star, BIAS, SHARED_ESTIMATE_ERROR)
    # misranked: the estimate's best action is not an optimal one (ties among optimal are fine)
    chosen = adv_star[np.arange(25), adv_hat.argmax(axis=1)]
    misranked = chosen < adv_star.max(axis=1) - 1e-12
    assert np.flatnonzero(misranked & biased).tolist() == [START_STATE]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("error", [0.0, 0.05, 1.0])
def test_estimate_is_centred_under_the_policy(seed, error):
    pi = random_policy(seed, 25, 4)
    adv = evaluate(MDP_, pi).adv
    adv_hat = estimated_advantage(adv, pi, BIAS, error)
    np.testing.assert_allclose((pi * adv_hat).sum(axis=1), 0.0, atol=1e-14)
    if error == 0.0:
        np.testing.assert_array_equal(adv_hat, adv)


def test_estimate_hand_values():
    pi = np.array([[0.5, 0.5], [0.25, 0.75]])
    adv = np.zeros((2, 2))
    bias = np.array([[1.0, 0.0], [0.0, 0.0]])
    # row 0: b - E b = (1 - 0.5, 0 - 0.5); row 1 unbiased
    np.testing.assert_allclose(estimated_advantage(adv, pi, bias, 0.2),
                               [[0.1, -0.1], [0.0, 0.0]])


def test_surrogate_on_the_estimate_equals_eta_at_the_old_policy():
    pi = random_policy(3, 25, 4)
    ev = evaluate(MDP_, pi)
    believed = replace(ev, adv=estimated_advantage(ev.adv, pi, BIAS, 0.3))
    assert float(surrogate(MDP_, pi, pi, ev_old=believed)) == pytest.approx(float(ev.eta),
                                                                           abs=1e-14)


def test_percent_of_optimal_hand_values():
    assert percent_of_optimal(1.0, 1.0, 3.0) == 0.0
    assert percent_of_optimal(3.0, 1.0, 3.0) == 100.0
    assert percent_of_optimal(2.5, 1.0, 3.0) == 75.0
    assert percent_of_optimal(0.0, 1.0, 3.0) == -50.0


@pytest.mark.parametrize("seed", [0, 4])
def test_logits_of_inverts_softmax_including_zeros(seed):
    pi = random_policy(seed, 6, 4)
    pi[2] = [0.0, 1.0, 0.0, 0.0]
    np.testing.assert_allclose(softmax(logits_of(pi)), pi, atol=1e-15)


# --- presets and settings -------------------------------------------------------------------


def test_presets_are_named_as_the_explainer_names_them():
    assert [p.name for p in PRESETS] == [
        "No trust region: overshoot", "Trust region", "KL penalty: crawl",
        "Trust region too wide",
    ]
    assert [p.slug for p in PRESETS] == ["overshoot", "trust-region", "crawl", "too-wide"]
    assert get_preset("Trust region").delta == 0.02
    assert get_preset("too-wide").delta > get_preset("trust-region").delta
    for p in PRESETS:
        assert p.rule in UPDATE_RULES and p.reasons and p.behaviour
        assert get_preset(p.name) is p and get_preset(p.slug) is p
        assert get_preset(p.name.upper()) is p
    assert len(preset_names()) == 8


def test_unknown_preset_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown preset") as info:
        get_preset("overshot")
    for p in PRESETS:
        assert p.name in str(info.value) and p.slug in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"rounds": 0}, "rounds must be >= 1"),
        ({"rounds": -3}, "rounds must be >= 1"),
        ({"delta": 0.0}, "delta must be finite and > 0"),
        ({"delta": -0.1}, "delta must be finite and > 0"),
        ({"delta": math.nan}, "delta must be finite and > 0"),
        ({"step_size": 0.0}, "step_size must be finite and > 0"),
        ({"estimate_error": -0.1}, "estimate_error must be finite and >= 0"),
        ({"switch_at": 0, "switch_to": TRUST_REGION}, "switch_at must be in 1..60"),
        ({"switch_at": 61, "switch_to": TRUST_REGION}, "switch_at must be in 1..60"),
        ({"switch_at": 5}, "give both or neither"),
        ({"switch_to": TRUST_REGION}, "give both or neither"),
        ({"switch_at": 5, "switch_to": "sgd"}, "unknown update rule 'sgd'"),
    ],
)
def test_bad_settings_raise_naming_the_problem(overrides, match):
    with pytest.raises(ValueError, match=match):
        settings_for("overshoot", **overrides)


def test_rule_at_switches_from_round_k_on():
    s = settings_for("crawl", rounds=10, switch_at=4, switch_to=TRUST_REGION)
    assert [s.rule_at(k) for k in range(1, 11)] == [KL_PENALTY] * 3 + [TRUST_REGION] * 7
    assert settings_for("crawl").rule_at(60) == KL_PENALTY


# --- runs -------------------------------------------------------------------------------------


def _short(preset: str, rounds: int = 8, **kw) -> ClimbSettings:
    return settings_for(preset, rounds=rounds, **kw)


@pytest.mark.parametrize("preset", [p.slug for p in PRESETS])
def test_run_records_every_round_from_the_uniform_start(preset):
    result = run_climb(_short(preset, rounds=5))
    assert [r.round for r in result.records] == [1, 2, 3, 4, 5]
    assert result.start_percent == 0.0  # the reference policy is the uniform start
    assert result.start_eta == pytest.approx(float(evaluate(MDP_, uniform_policy(25, 4)).eta))
    assert result.eta_star == pytest.approx(float(optimal_policy(MDP_)[1]))
    assert result.eta_star == pytest.approx(0.95**7)  # the goal is 8 moves away
    for r in result.records:
        assert r.percent == pytest.approx(float(percent_of_optimal(
            r.eta, result.eta_ref, result.eta_star)))
        assert r.percent <= 100.0 + 1e-9
    assert result.etas().shape == result.percents().shape == (6,)


@pytest.mark.parametrize("preset", [p.slug for p in PRESETS])
def test_run_is_deterministic(preset):
    a, b = run_climb(_short(preset)), run_climb(_short(preset))
    assert a.to_json() == b.to_json()


def test_trust_region_rounds_replay_the_engine_step_and_its_prediction():
    """Round k of the trust-region preset = trust_region_step on A_hat, and its recorded
    prediction = eq. (3) with A_hat, recomputed here independently."""
    from trpo_ref.tabular import trust_region_step

    result = run_climb(_short("trust-region", rounds=4))
    theta = np.zeros((25, 4))
    for rec in result.records:
        pi = softmax(theta)
        ev = evaluate(MDP_, pi)
        adv_hat = estimated_advantage(ev.adv, pi, BIAS, SHARED_ESTIMATE_ERROR)
        step = trust_region_step(MDP_, theta, 0.02, adv=adv_hat)
        assert rec.eta == pytest.approx(float(step.eta_after), abs=1e-14)
        predicted = float(ev.eta) + float((ev.rho * ((step.pi - pi) * adv_hat).sum(1)).sum())
        assert rec.predicted_eta == pytest.approx(predicted, abs=1e-12)
        assert rec.n_backtracks == int(step.n_backtracks)
        theta = step.theta


def test_trust_region_steps_stay_within_delta_and_rejections_keep_the_policy():
    result = run_climb(settings_for("trust-region"))
    etas = result.etas()
    for k, r in enumerate(result.records, start=1):
        assert r.delta == 0.02
        if r.accepted:
            assert r.kl_mean <= r.delta
        else:
            assert r.kl_mean == 0.0 and etas[k] == etas[k - 1]


@pytest.mark.parametrize("rule", [TRUST_REGION, NO_TRUST_REGION])
@pytest.mark.parametrize("size", [0.02, 0.5, 10.0])
def test_with_exact_advantages_natural_steps_never_lower_the_return(rule, size):
    """Policy mirror descent with exact advantages improves monotonically for any step size:
    the reason the overshoot presets need an estimate error."""
    kw = {"delta": size} if rule == TRUST_REGION else {"step_size": size}
    settings = ClimbSettings(preset="test", rule=rule, rounds=25, estimate_error=0.0,
                             **{"delta": 0.02, "step_size": 10.0, **kw})
    etas = run_climb(settings).etas()
    assert np.all(np.diff(etas) >= -ETA_TOL)


def test_algorithm1_rounds_are_monotone_and_predict_with_exact_advantages():
    result = run_climb(_short("crawl", rounds=6))
    assert np.all(np.diff(result.etas()) >= -ETA_TOL)
    pi = uniform_policy(25, 4)
    rec = result.records[0]
    from trpo_ref.tabular import algorithm1_step

    step = algorithm1_step(MDP_, pi)
    assert rec.predicted_eta == pytest.approx(float(step.surrogate), abs=1e-14)
    assert rec.eta == pytest.approx(float(step.eta_after), abs=1e-14)
    assert rec.delta is None


def test_switch_changes_the_rule_and_logs_it():
    result = run_climb(_short("crawl", rounds=6, switch_at=3, switch_to=NO_TRUST_REGION))
    assert [r.rule for r in result.records] == [KL_PENALTY] * 2 + [NO_TRUST_REGION] * 4
    switches = [e for e in result.events if e.kind == "switch"]
    assert [(e.round, e.message) for e in switches] == [(3, "kl-penalty -> no-trust-region")]


def test_events_match_the_records():
    """Overshoot iff a gain was predicted and the true return fell; rejected iff not accepted."""
    for preset in ("overshoot", "too-wide"):
        result = run_climb(settings_for(preset))
        etas = result.etas()
        over = {e.round for e in result.events if e.kind == "overshoot"}
        expected = {r.round for r in result.records
                    if r.predicted_eta > etas[r.round - 1] + ETA_TOL
                    and r.eta < etas[r.round - 1] - ETA_TOL}
        assert over == expected
        rejected = {e.round for e in result.events if e.kind == "rejected"}
        assert rejected == {r.round for r in result.records if not r.accepted}


def test_rules_and_estimate_can_be_swapped():
    def stay(ctx):
        return RuleOutcome(ctx.theta, 0, False, ctx.adv_hat)

    result = run_climb(_short("trust-region", rounds=3), rules={TRUST_REGION: stay})
    assert np.all(result.etas() == result.start_eta)
    assert [e.kind for e in result.events] == ["rejected"] * 3

    seen = []

    def spy(adv, pi, bias, error):
        seen.append(error)
        return adv

    run_climb(_short("overshoot", rounds=2), estimate=spy)
    assert seen == [SHARED_ESTIMATE_ERROR] * 2


def test_to_json_is_plain_data():
    import json

    payload = run_climb(_short("overshoot", rounds=3, switch_at=2, switch_to=TRUST_REGION))
    text = json.dumps(payload.to_json())
    back = json.loads(text)
    assert back["settings"]["switch_to"] == TRUST_REGION and len(back["rounds"]) == 3
    assert back["start"]["percent"] == 0.0
