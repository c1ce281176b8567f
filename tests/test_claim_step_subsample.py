"""step.subsampled_direction: the 10% FVP subsample's step against the full batch's, at the quick
tier with its control, and verdicts on hand-built evidence."""

import numpy as np
import pytest

from claims.framework.core import Evidence, Status
from claims.framework.registry import get

CLAIM = get("step.subsampled_direction")


@pytest.fixture(scope="module")
def runs():
    return CLAIM.run("quick"), CLAIM.run("quick", control=True)


def test_real_supported_and_normalizer_bug_refuted(runs):
    real, control = runs
    verdict = CLAIM.decide(real)
    assert verdict.status is Status.SUPPORTED, verdict
    assert verdict.ci[0] <= verdict.value <= verdict.ci[1]
    refuted = CLAIM.decide(control)
    assert refuted.status is Status.REFUTED, refuted
    # the bug's step overshoots the KL: that is where its gain per KL goes
    kl_over_delta = "median_kl_sub_over_delta"
    assert control.summary[kl_over_delta] > 3 * real.summary[kl_over_delta]


def test_samples_are_the_per_subsample_ratios(runs):
    real = runs[0]
    assert sorted(CLAIM.samples(real).values()) == sorted(real.data["ratio"])


def _evidence(ratios_by_task):
    data = {"task": [], "seed": [], "ratio": [], "cosine": []}
    for task, ratios in ratios_by_task.items():
        for r in ratios:
            data["task"].append(task)
            data["seed"].append(0)
            data["ratio"].append(r)
            data["cosine"].append(0.9)
    return Evidence(CLAIM.id, "quick", False, {}, data)


@pytest.mark.parametrize(("ratios", "status"), [
    ({"a": [0.95, 0.97, 0.99, 0.96], "b": [0.9, 0.92, 0.91]}, Status.SUPPORTED),
    ({"a": [0.95, 0.97, 0.99], "b": [0.3, 0.35, 0.32]}, Status.REFUTED),
    ({"a": list(np.linspace(0.6, 1.0, 9))}, Status.INCONCLUSIVE),
    ({}, Status.INCONCLUSIVE),
])
def test_decide_on_hand_built_evidence(ratios, status):
    assert CLAIM.decide(_evidence(ratios)).status is status
