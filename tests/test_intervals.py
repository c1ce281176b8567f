"""Intervals hold their own estimates: the worst-over-tasks intervals of the section-8 claims
(claims.catalogue.empirical.common.worst_of), the distance interval of empirical_fim_similar, and
stats.norm_of_mean's interval for a norm."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from claims.catalogue.empirical import common, learning

values = st.lists(st.floats(1.0, 1000.0), min_size=2, max_size=6)


def holds(estimate) -> bool:
    lo, hi = estimate.ci
    return lo - 1e-9 <= estimate.value <= hi + 1e-9


@settings(max_examples=40, deadline=None)
@given(st.lists(values, min_size=1, max_size=3), st.sampled_from(["min", "max"]))
def test_worst_task_interval_holds_its_estimate(columns, worst):
    n = min(map(len, columns))
    scores = np.array([c[:n] for c in columns]).T
    estimate = common.worst_task(scores, [f"t{j}" for j in range(len(columns))], worst=worst)
    assert holds(estimate)
    for t, (lo, hi) in estimate.per_task_ci.items():
        assert lo - 1e-9 <= estimate.per_task[t] <= hi + 1e-9


@settings(max_examples=25, deadline=None)
@given(values, values, st.sampled_from(["ratio", "distance"]))
def test_two_arm_intervals_hold_their_estimates(a, b, kind):
    data_a, data_b = {"t": a}, {"t": b}
    if kind == "ratio":
        estimate = common.two_arm(data_a, data_b, common.iqm_ratio)
    else:
        signed = common.two_arm(data_a, data_b, learning.log_ratio)
        estimate = common.worst_of({"t": abs(signed.value)},
                                   {"t": learning.abs_interval(signed.per_task_ci["t"])}, "max")
    assert holds(estimate)


def test_abs_interval_by_hand():
    assert learning.abs_interval((-0.2, 0.1)) == (0.0, 0.2)
    assert learning.abs_interval((0.1, 0.3)) == (0.1, 0.3)
    assert learning.abs_interval((-0.3, -0.1)) == (0.1, 0.3)


def test_worst_of_is_the_image_of_the_per_task_intervals():
    est = common.worst_of({"a": 1.0, "b": 2.0}, {"a": (0.5, 1.5), "b": (1.8, 2.5)}, "min")
    assert (est.value, est.ci) == (1.0, (0.5, 1.5))
    est = common.worst_of({"a": 1.0, "b": 2.0}, {"a": (0.5, 3.0), "b": (1.8, 2.5)}, "min")
    assert est.ci == (0.5, 2.5)  # a's interval reaches above b's: b may be the worst
    est = common.worst_of({"a": 1.0, "b": 2.0}, {"a": (0.5, 3.0), "b": (1.8, 2.5)}, "max")
    assert (est.value, est.ci) == (2.0, (1.8, 3.0))
