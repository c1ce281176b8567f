"""Section-8 verdicts pinned on hand-built job records (tests/section8_fixtures.py): each claim
runs on a full-tier cache whose trainings "did" what a World says, and must give that world's
verdict. A change to a claim's statistic, rule or reading of the records breaks a test here."""

from __future__ import annotations

import pytest
from section8_fixtures import CONTRARY, NOISY, PAPER, fill_cache

from claims.framework.core import Status
from claims.framework.jobs import Execution, execution
from claims.framework.registry import all_claims

S, R, U = Status.SUPPORTED, Status.REFUTED, Status.INCONCLUSIVE  # U: undecided
SECTION8 = {c.id: c for c in all_claims() if c.id.startswith("empirical.")}

# claim -> (verdict in the paper's world, its control there, verdict in the contrary world)
EXPECTED: dict[str, tuple[Status, Status, Status]] = {
    "empirical.delta_transfers": (S, R, R),
    "empirical.vine_solves": (S, R, R),
    "empirical.npg_easy_tasks": (S, R, R),
    "empirical.max_kl_slower": (S, R, R),
    "empirical.empirical_fim_similar": (S, R, R),
    "empirical.derivative_free_poor": (S, R, R),
    "empirical.npg_no_forward_progress": (S, R, R),
    "empirical.monotonic": (S, R, R),
    "empirical.kl_full_step": (S, R, R),
    "empirical.max_vs_mean_kl": (S, R, R),
    "empirical.surrogate_realized": (S, R, R),
    "empirical.atari_beats_random": (S, R, R),
    "empirical.figure4_ranking": (S, R, R),
    "empirical.atari_table1": (S, R, R),
}
# seeds spread around the thresholds: the threshold claims cannot decide
NOISY_EXPECTED = {"empirical.delta_transfers": U, "empirical.vine_solves": U,
                  "empirical.npg_easy_tasks": U}


def test_every_section8_claim_has_pinned_verdicts():
    assert set(EXPECTED) == set(SECTION8) - NEW_CLAIMS_PINNED_ELSEWHERE


NEW_CLAIMS_PINNED_ELSEWHERE: set[str] = set()


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    return {name: fill_cache(tmp_path_factory.mktemp(name), "full", world)
            for name, world in (("paper", PAPER), ("contrary", CONTRARY), ("noisy", NOISY))}


def verdict(claim_id: str, cache, *, control: bool = False) -> Status:
    claim = SECTION8[claim_id]
    with execution(Execution(cache=cache, train=False, progress=None)):
        evidence = claim.run("full", control=control)
    v = claim.decide(evidence)
    if v.ci is not None:  # every interval holds its own estimate
        assert v.ci[0] - 1e-12 <= v.value <= v.ci[1] + 1e-12, v
    return v.status


@pytest.mark.parametrize("claim_id", sorted(EXPECTED))
def test_paper_world_supports_and_the_control_refutes(claim_id, caches):
    real, control, _ = EXPECTED[claim_id]
    assert verdict(claim_id, caches["paper"]) is real
    assert verdict(claim_id, caches["paper"], control=True) is control


@pytest.mark.parametrize("claim_id", sorted(EXPECTED))
def test_contrary_world_refutes(claim_id, caches):
    assert verdict(claim_id, caches["contrary"]) is EXPECTED[claim_id][2]


@pytest.mark.parametrize("claim_id", sorted(NOISY_EXPECTED))
def test_noisy_world_is_inconclusive(claim_id, caches):
    assert verdict(claim_id, caches["noisy"]) is NOISY_EXPECTED[claim_id]
