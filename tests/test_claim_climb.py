"""The four gridworld-climb claims at the quick tier: measured verdicts, negative controls,
statistics recomputed from the evidence, determinism."""

import numpy as np
import pytest

from claims.climb import (
    WOBBLE_FALL_POINTS,
    ClimbCrawl,
    ClimbOvershoot,
    ClimbTooWide,
    ClimbTrustRegion,
    _estimate_bug_error_not_wired,
    _kl_penalty_bug_no_horizon,
    _no_trust_region_bug_normalized_visitation,
    climb_data,
    plot_climb,
)
from claims.core import Evidence, Kind, Status
from trpo_ref.tabular import evaluate, gridworld, natural_gradient, penalty_coefficient, softmax
from trpo_ref.tabular.climb import (
    ETA_TOL,
    RoundContext,
    estimated_advantage,
    far_cells_worst_action_bias,
    kl_penalty_rule,
    run_climb,
    settings_for,
)

pytestmark = pytest.mark.quick

CLAIMS = [ClimbOvershoot(), ClimbTrustRegion(), ClimbCrawl(), ClimbTooWide()]
IDS = [c.id for c in CLAIMS]

# What the quick tier measured with the presets as declared before the first run (see the
# module docstrings). Three presets do not show their described behaviour in the exact
# simulation; those claims are REFUTED, and these tests pin that down.
MEASURED = {
    "climb.overshoot": Status.REFUTED,
    "climb.trust_region": Status.REFUTED,
    "climb.crawl": Status.SUPPORTED,
    "climb.too_wide": Status.REFUTED,
}


@pytest.fixture(scope="module")
def runs():
    return {c.id: (c.run("quick"), c.run("quick", control=True)) for c in CLAIMS}


@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_real_verdict_is_the_measured_one(claim, runs):
    verdict = claim.decide(runs[claim.id][0])
    assert verdict.status is MEASURED[claim.id], verdict.message
    assert verdict.n == 60 and verdict.ci is None


@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_negative_control_is_refuted(claim, runs):
    verdict = claim.decide(runs[claim.id][1])
    assert verdict.status is Status.REFUTED, verdict.message


@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_claim_metadata(claim):
    assert claim.kind is Kind.EMPIRICAL
    assert claim.source == f"seed explainer: gridworld climb, preset '{claim.preset.name}'"
    assert claim.rule.alpha is None  # deterministic: no interval
    for tier in ("quick", "standard", "full"):
        assert claim.budget(tier) == {"rounds": claim.preset.rounds}
    assert claim.describe()["negative_control"]


@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_evidence_is_deterministic(claim, runs):
    for control, evidence in zip((False, True), runs[claim.id], strict=True):
        again = claim.run("quick", control=control)
        assert again.summary == evidence.summary and again.data == evidence.data


@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_evidence_records_the_settings(claim, runs):
    real, control = runs[claim.id]
    p = claim.preset
    for evidence in (real, control):
        c = evidence.config
        assert (c["preset"], c["rule"], c["rounds"], c["delta"], c["estimate_error"]) == (
            p.name,
            p.rule,
            p.rounds,
            p.delta,
            p.estimate_error,
        )
        assert len(evidence.data["eta"]) == p.rounds
    assert real.config["negative_control"] is None
    assert control.config["negative_control"] == claim.negative_control


@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_no_rounds_is_inconclusive(claim):
    evidence = Evidence(
        claim.id, "quick", False, {"eta_star": 1.0, "delta": 0.02}, data={"eta": []}
    )
    assert claim.decide(evidence).status is Status.INCONCLUSIVE


# --- each statistic, recomputed from the raw data independently ------------------------------


def _series(evidence):
    d = evidence.data
    etas = np.array([d["start_eta"], *d["eta"]])
    pct = np.array([d["start_percent"], *d["percent"]])
    return d, etas, pct


def test_overshoot_statistic_recomputes(runs):
    claim = CLAIMS[0]
    for evidence in runs[claim.id]:
        d, etas, pct = _series(evidence)
        promised = [
            k for k in range(1, len(etas)) if d["predicted_eta"][k - 1] > etas[k - 1] + ETA_TOL
        ]
        worst = max(pct[k - 1] - pct[k] for k in promised)
        verdict = claim.decide(evidence)
        assert verdict.value == pytest.approx(worst, abs=1e-12)
        assert (verdict.value >= 10.0) == (verdict.status is Status.SUPPORTED)


def test_trust_region_statistic_recomputes(runs):
    claim = CLAIMS[1]
    for evidence in runs[claim.id]:
        _, etas, _ = _series(evidence)
        share = np.mean([etas[k] > etas[k - 1] + 1e-12 for k in range(1, len(etas))])
        verdict = claim.decide(evidence)
        assert verdict.value == pytest.approx(share)
        assert (verdict.value >= 0.9) == (verdict.status is Status.SUPPORTED)


def test_crawl_statistic_recomputes(runs):
    claim = CLAIMS[2]
    for evidence in runs[claim.id]:
        _, etas, pct = _series(evidence)
        progress = 100 * (etas[-1] - etas[0]) / (evidence.config["eta_star"] - etas[0])
        verdict = claim.decide(evidence)
        assert verdict.value == pytest.approx(progress)
        assert verdict.value == pytest.approx(pct[-1])  # the start is the 0% reference
        assert (verdict.value <= 10.0) == (verdict.status is Status.SUPPORTED)


def test_too_wide_statistic_recomputes(runs):
    claim = CLAIMS[3]
    for evidence in runs[claim.id]:
        _, _, pct = _series(evidence)
        share = np.mean(pct[:-1] - pct[1:] > WOBBLE_FALL_POINTS)
        verdict = claim.decide(evidence)
        assert verdict.value == pytest.approx(share)
        assert evidence.summary["shortfall_points"] == pytest.approx(100 - pct[-1])
        assert (verdict.value >= 0.1) == (verdict.status is Status.SUPPORTED)


# --- the controls are the bugs they say they are ---------------------------------------------


def _context(preset="overshoot", seed_theta=0.3):
    mdp = gridworld()
    theta = np.random.default_rng(0).normal(scale=seed_theta, size=(25, 4))
    pi = softmax(theta)
    ev = evaluate(mdp, pi)
    adv_hat = estimated_advantage(ev.adv, pi, far_cells_worst_action_bias(mdp), 0.05)
    return RoundContext(mdp, theta, pi, ev, adv_hat, settings_for(preset))


def test_overshoot_control_step_is_one_minus_gamma_times_the_real_one():
    ctx = _context()
    bugged = _no_trust_region_bug_normalized_visitation(ctx).theta - ctx.theta
    real = ctx.settings.step_size * natural_gradient(ctx.mdp, ctx.theta, adv=ctx.adv_hat)
    np.testing.assert_allclose(bugged, real * (1 - 0.95), atol=1e-12)


def test_crawl_control_penalty_lacks_the_horizon_factor():
    ctx = _context("crawl")
    C_theory = float(penalty_coefficient(ctx.mdp, ctx.pi))
    bugged = _kl_penalty_bug_no_horizon(ctx)
    expected = kl_penalty_rule(ctx, C=C_theory * (1 - 0.95) ** 2)
    np.testing.assert_allclose(softmax(bugged.theta), softmax(expected.theta), atol=1e-12)


def test_too_wide_control_drops_the_estimate_error():
    ctx = _context()
    out = _estimate_bug_error_not_wired(ctx.ev.adv, ctx.pi, far_cells_worst_action_bias(), 0.05)
    np.testing.assert_array_equal(out, ctx.ev.adv)


def test_trust_region_control_leaves_the_trust_region(runs):
    _, control = runs["climb.trust_region"]
    kl = np.asarray(control.data["kl_mean"])
    assert np.any(kl > control.config["delta"])  # no KL test: the step leaves the region
    kinds = {e["kind"] for e in control.data["events"]}
    assert "kl-over-delta" in kinds


def test_real_trust_region_stays_inside_delta(runs):
    real, _ = runs["climb.trust_region"]
    kl = np.asarray(real.data["kl_mean"])
    assert np.all(kl <= real.config["delta"])


# --- figures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_figures_are_written(claim, runs, tmp_path):
    for evidence in runs[claim.id]:
        paths = claim.figures(evidence, tmp_path)
        assert len(paths) == 1 and paths[0].suffix == ".png" and paths[0].stat().st_size > 0
    assert len(list(tmp_path.glob("*.png"))) == 2  # real and control do not overwrite


def test_plot_marks_a_switch(tmp_path):
    result = run_climb(settings_for("crawl", rounds=6, switch_at=3, switch_to="trust-region"))
    path = plot_climb(climb_data(result), tmp_path / "sub" / "c.png", title="t")
    assert path.exists() and path.stat().st_size > 0
