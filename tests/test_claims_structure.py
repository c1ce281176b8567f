"""The claims package's structure: typed budgets, stable job keys, no import cycles."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from claims.core import TIERS, Budget, budget_json
from claims.empirical import protocol
from claims.jobs import job_key
from claims.registry import all_claims

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("tier", ["quick", "standard", "full"])
def test_planned_empirical_job_keys_are_unchanged(tier, monkeypatch):
    """The job cache is keyed on each job's spec: the tier's planned trainings must hash to the
    keys recorded before the configuration strings were typed (tests/data/empirical_job_keys.json,
    recorded at main 8a9455b with the NPG sweep's winner patched to 1/3), or every cached
    training would be trained again."""
    monkeypatch.setattr(protocol, "best_npg_step", lambda tier, env: (3.0**-1, {}))
    recorded = json.loads((DATA / "empirical_job_keys.json").read_text())[tier]
    jobs = [job for stage in protocol.stages(tier) for job in stage()]
    assert sorted(job_key(job, "fixture") for job in jobs) == recorded


# --- budgets are typed ---------------------------------------------------------------------------

@pytest.mark.parametrize("claim", all_claims(), ids=lambda c: c.id)
def test_every_budget_is_a_frozen_dataclass_or_none(claim):
    """A budget is a :class:`claims.core.Budget` (fields declared and documented where the
    claim family is), never a dict of string keys; None means no verdict at that tier."""
    for tier in TIERS:
        budget = claim.budget(tier)
        assert budget is None or isinstance(budget, Budget), (tier, type(budget))
        if budget is not None:
            assert dataclasses.is_dataclass(budget)
            with pytest.raises(dataclasses.FrozenInstanceError):
                budget.__setattr__(dataclasses.fields(budget)[0].name, None)
            assert json.loads(json.dumps(budget.to_json())) == budget.to_json()


def test_budget_to_json_lists_fields_in_order_and_leaves_out_unset_optionals():
    @dataclasses.dataclass(frozen=True)
    class Example(Budget):
        sizes: tuple[tuple[int, int], ...]
        n: int
        extra: int | None = None

    budget = Example(sizes=[[2, 2], [5, 3]], n=4)
    assert budget.sizes == ((2, 2), (5, 3))  # lists are frozen into tuples
    assert list(budget.to_json().items()) == [("sizes", [[2, 2], [5, 3]]), ("n", 4)]
    assert Example(sizes=[], n=1, extra=3).to_json() == {"sizes": [], "n": 1, "extra": 3}
    assert budget_json(None) is None and budget_json(budget) == budget.to_json()
