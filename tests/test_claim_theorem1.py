"""theory.theorem1 (eq. 8 and eq. 9) at the quick tier, and its negative control."""

import numpy as np
import pytest

from claims.catalogue.theory.theorem1 import (
    FORMS,
    Theorem1,
    _penalty_coefficient_bug_one_power,
    check_family,
)
from claims.framework.core import Evidence, Status
from trpo_ref.tabular import evaluate, penalty_coefficient, random_mdp, random_policy

pytestmark = pytest.mark.quick

CLAIM = Theorem1()


@pytest.fixture(scope="module")
def runs():
    return CLAIM.run("quick"), CLAIM.run("quick", control=True)


def test_real_supported_with_enough_pairs(runs):
    real, _ = runs
    verdict = CLAIM.decide(real)
    assert verdict.status is Status.SUPPORTED, verdict.message
    assert real.summary["n_pairs"] >= 10_000
    assert verdict.n == 2 * real.summary["n_pairs"]
    for f in FORMS:
        assert real.summary[f"n_violations_{f}"] == 0


def test_control_with_one_power_of_one_minus_gamma_is_refuted(runs):
    _, control = runs
    verdict = CLAIM.decide(control)
    assert verdict.status is Status.REFUTED, verdict.message
    assert verdict.value < CLAIM.rule.threshold


def test_statistic_recomputes_from_data(runs):
    for evidence in runs:
        verdict = CLAIM.decide(evidence)
        per_form = [min(evidence.data[f"family_min_slack_{f}"]) for f in FORMS]
        assert verdict.value == min(per_form)
        assert verdict.value == min(evidence.summary[f"min_slack_{f}"] for f in FORMS)
        # the sampled per-pair slacks can only be above the minimum
        for f in FORMS:
            assert min(evidence.data[f"sample_slack_{f}"]) >= evidence.summary[f"min_slack_{f}"]


def test_argmin_example_reproduces(runs):
    for evidence in runs:
        for f in FORMS:
            where = evidence.summary[f"argmin_{f}"]
            out = check_family(
                where["family"],
                batch=evidence.config["pairs_per_family"],
                run_seed=evidence.config["seed"],
                control=evidence.control,
            )
            assert out[f"slack_{f}"][where["pair_index"]] == evidence.summary[f"min_slack_{f}"]


def test_generation_covers_the_declared_ranges(runs):
    families = runs[0].data["families"]
    assert max(f["gamma"] for f in families) == pytest.approx(0.99)
    assert {f["new_policy"] for f in families} == {"logit_noise", "mixture"}
    temperatures = [f["temperature"] for f in families]  # pairs spread +-0.5 decades around
    assert min(temperatures) < 0.05 and max(temperatures) > 2.0
    assert {2, 12} <= {f["n_states"] for f in families}
    sparsities = [f["sparsity"] for f in families]
    assert min(sparsities) == 0.0 and max(sparsities) == 1.0


def test_generation_does_not_depend_on_imported_modules(runs):
    # hypothesis's pool of constants from local modules is switched off during the run
    assert runs[0].config["hypothesis"]["local_constants"] == "disabled"


def test_slow_mixing_regime_is_where_the_control_fails(runs):
    by_regime = runs[1].summary["by_regime"]
    assert by_regime["slow_mixing"]["min_slack_tv"] < CLAIM.rule.threshold


def test_deterministic():
    a = CLAIM.run("quick")
    b = CLAIM.run("quick")
    assert a.summary == b.summary


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.99])
def test_bug_coefficient_is_one_power_short(gamma):
    mdp = random_mdp(7, 5, 3, gamma)
    pi = random_policy(1, 5, 3)
    ev = evaluate(mdp, pi)
    np.testing.assert_allclose(
        _penalty_coefficient_bug_one_power(mdp, ev),
        (1 - gamma) * penalty_coefficient(mdp, pi, ev_old=ev),
        rtol=1e-12,
        atol=0,
    )


def test_empty_evidence_is_inconclusive():
    empty = Evidence(CLAIM.id, "quick", False, {"min_pairs": 10_000})
    assert CLAIM.decide(empty).status is Status.INCONCLUSIVE


def test_histogram_figure_is_written(runs, tmp_path):
    paths = CLAIM.figures(runs[0], tmp_path)
    assert paths and all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_slack_distribution_is_the_headline(runs):
    """How tight the bound is, first in the summary and in the verdict's message: the share of
    vacuous pairs and quantiles of the share of the penalty used (max < 1 where it holds)."""
    real, control = runs
    for evidence in runs:
        assert next(iter(evidence.summary)) == "slack_distribution"
        for f in FORMS:
            d = evidence.summary["slack_distribution"][f]
            assert d["share_of_pairs_vacuous"] == evidence.summary[f"fraction_vacuous_{f}"]
            assert d["share_of_penalty_used_max"] == evidence.summary[
                f"max_share_of_penalty_used_{f}"]
            assert (d["share_of_penalty_used_median"] <= d["share_of_penalty_used_p90"]
                    <= d["share_of_penalty_used_p99"] <= d["share_of_penalty_used_max"])
    assert real.summary["slack_distribution"]["tv"]["share_of_penalty_used_max"] < 1.0
    assert control.summary["slack_distribution"]["tv"]["share_of_penalty_used_max"] > 1.0
    assert "vacuous for" in CLAIM.decide(real).message
    samples = CLAIM.samples(real)
    assert len(samples) == real.summary["n_families"]
    assert max(samples.values()) == real.summary["slack_distribution"]["kl"][
        "share_of_penalty_used_max"]
