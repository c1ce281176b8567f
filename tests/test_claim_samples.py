"""Every claim of theory/step/empirical declares per-example samples and a Comparison, and
``compare`` has power on them: a candidate whose samples move by 3 margins the wrong way is
"worse", one equal to the baseline "equivalent". Samples come from the hand-built evidence of
tests/test_claim_verdicts.py and the section-8 fixture records."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
from section8_fixtures import PAPER, fill_cache
from test_claim_verdicts import CASES

from claims.framework.compare import compare_claim
from claims.framework.core import Claim, Evidence
from claims.framework.jobs import Execution, execution
from claims.framework.registry import all_claims, get

OWNED = ("theory.", "step.", "empirical.")
CLAIMS = [c for c in all_claims() if c.id.startswith(OWNED)]


def test_every_claim_declares_samples_and_a_comparison():
    missing = [c.id for c in CLAIMS
               if c.comparison is None or type(c).samples is Claim.samples]
    assert not missing, missing


def _moved(samples: dict[str, float], comparison, steps: float) -> dict[str, float]:
    """``samples`` moved ``steps`` margins in the worse direction ("either": up)."""
    scale = float(np.mean(np.abs(list(samples.values())))) if comparison.relative else 1.0
    sign = -1.0 if comparison.better == "higher" else 1.0
    return {k: v + sign * steps * comparison.margin * (scale or 1.0) for k, v in samples.items()}


def _check_power(claim_id: str, samples: dict[str, float]) -> None:
    claim = get(claim_id)
    assert samples and all(np.isfinite(list(samples.values()))), (claim_id, samples)
    rule = asdict(claim.comparison)
    base = {"status": "SUPPORTED", "samples": samples, "comparison": rule}
    same = compare_claim(claim_id, base, dict(base))
    assert same.outcome == "equivalent", same
    worse = compare_claim(claim_id, base, {**base, "samples": _moved(samples, claim.comparison,
                                                                      3.0)})
    assert worse.outcome == "worse", worse


SAMPLED_CASES = {}
for _name, _evidence, _status in CASES:
    if _evidence.claim_id not in SAMPLED_CASES and get(_evidence.claim_id).samples(_evidence):
        SAMPLED_CASES[_evidence.claim_id] = _evidence


def _ev(claim_id, data, config=None):
    return Evidence(claim_id, "quick", False, config or {}, data)


SAMPLED_CASES |= {e.claim_id: e for e in (
    _ev("theory.theorem1", {"family_max_share_used_kl": [0.1, 0.2, None, 0.05]}),
    _ev("theory.algorithm1_monotonic", {"case": ["a", "a", "b"], "index": [0, 1, 0],
                                        "min_slack": [1e-3, 2e-3, 0.0]}),
    _ev("theory.performance_difference", {"group_max_relative_error": [1e-14, 3e-14]}),
    _ev("theory.cpi_mixture_bound", {"group_min_relative_slack": [1e-3, 2e-4]}),
    _ev("theory.is_estimator_unbiased", {"mdp": ["a", "b", "c"], "z": [0.1, -1.2, 0.4]}),
    _ev("step.kl_quadratic", {"kl_full_over_delta": [1.0, 0.5, 2.0, 1.3]}),
    _ev("step.subsampled_direction", {"task": ["t", "t", "u"], "seed": [0, 0, 0],
                                      "ratio": [0.9, 0.95, 1.0]}),
)}


def test_every_theory_and_step_claim_is_checked_for_power():
    ids = {c.id for c in CLAIMS if not c.id.startswith("empirical.")}
    assert ids <= set(SAMPLED_CASES), sorted(ids - set(SAMPLED_CASES))


@pytest.mark.parametrize("claim_id", sorted(SAMPLED_CASES))
def test_compare_has_power_on_hand_built_evidence(claim_id):
    _check_power(claim_id, get(claim_id).samples(SAMPLED_CASES[claim_id]))


@pytest.fixture(scope="module")
def paper_cache(tmp_path_factory):
    return fill_cache(tmp_path_factory.mktemp("paper"), "full", PAPER)


@pytest.mark.parametrize("claim_id", sorted(c.id for c in CLAIMS if c.id.startswith("empirical.")))
def test_compare_has_power_on_section8_fixture_records(claim_id, paper_cache):
    claim = get(claim_id)
    with execution(Execution(cache=paper_cache, train=False, progress=None)):
        evidence = claim.run("full")
    samples = claim.samples(evidence)
    if claim_id == "empirical.max_kl_slower":  # cart-pole only: one task, five seeds
        assert len(samples) == 5
    _check_power(claim_id, samples)
