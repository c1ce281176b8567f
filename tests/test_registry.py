"""Every registered claim is complete, and at the standard/full tiers its control is REFUTED.

The quick tier of each claim is tested in its own tests/test_claim_<name>.py; here the heavier
tiers run only on demand (``pytest -m standard`` / ``pytest -m full``).
"""

import pytest

from claims.framework.core import TIERS, Claim, DecisionRule, Kind, Status
from claims.framework.registry import all_claims

CLAIMS = all_claims()
IDS = [c.id for c in CLAIMS]


def test_registry_is_not_empty_and_ids_are_unique():
    assert CLAIMS, "no claims registered"
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_claim_declares_everything_before_running(claim: Claim):
    for attr in ("id", "title", "statement", "source", "protocol", "negative_control"):
        assert isinstance(getattr(claim, attr), str) and getattr(claim, attr).strip(), attr
    assert isinstance(claim.kind, Kind)
    assert isinstance(claim.rule, DecisionRule) and claim.rule.description.strip()
    assert set(claim.budgets) == set(TIERS)
    assert claim.budgets["full"] is not None, "every claim is decided at the full tier"
    if claim.budgets["quick"] is None:  # only where the quick budget cannot support a verdict
        assert claim.kind is Kind.EMPIRICAL, "every non-empirical claim runs at the quick tier"


def _run_tier(claim: Claim, tier: str) -> None:
    if claim.budget(tier) is None:
        pytest.skip(f"{claim.id} has no {tier} budget")
    real = claim.decide(claim.run(tier, control=False))
    control = claim.decide(claim.run(tier, control=True))
    assert real.status is not Status.ERROR, real.message
    assert control.status is Status.REFUTED, control.message


@pytest.mark.standard
@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_standard_tier_control_refuted(claim: Claim):
    _run_tier(claim, "standard")


@pytest.mark.full
@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_full_tier_control_refuted(claim: Claim):
    _run_tier(claim, "full")
