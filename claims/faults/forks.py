"""Seeded-bug forks of ``trpo_ref``: each a bug a real TRPO implementation could have (issue 5).

A fork is ``trpo_ref`` with one bug switched on by :func:`seeded_bug`, a context manager that
applies the fault of that name from the registry (:mod:`claims.faults`) for the duration of the
body: it swaps pieces of trpo_ref's update (:class:`trpo_ref.deep.step.UpdateStrategies`, read
at call time), so ``trpo_ref``'s own source never carries broken code and no module attribute is
patched. Everything that calls ``trpo_ref``'s update or training loop inside the body (a claim,
an adapter, a training job) sees the bug; the suite's measurements (KL by
``torch.distributions``, parameter bits) never go through the swapped pieces.

The bugs (:data:`BUGS`), with the piece of the update each one replaces:

- ``no_kl_check``: the line search accepts any candidate that improves the surrogate, whatever
  its KL (``line_search``).
- ``beta_without_factor_2``: beta = sqrt(delta / s^T A s) instead of sqrt(2 delta / s^T A s), so
  every full step is 1/sqrt(2) too short (``step_scale``).
- ``fvp_old_attached``: the Fisher-vector product differentiates KL(pi_theta || pi_theta) with
  pi_old *not* detached; that KL is identically 0, so the "Fisher" is just the damping
  (``fisher_product``).
- ``one_cg_iteration``: conjugate gradient stops after one iteration (``conjugate_gradient``).
- ``no_restore_on_failure``: a failed line search leaves the last (rejected) candidate in place
  and reports it as applied (``line_search``).
- ``kl_mean_over_action_dims``: Gaussian KL averaged over action dimensions instead of summed,
  in the Fisher and in the line search alike (sb3-contrib's choice), so steps are sized for a KL
  of act_dim x delta (``kl``).
- ``kl_reversed``: KL(pi_new || pi_old) instead of KL(pi_old || pi_new) everywhere the update
  computes it (``kl``).
- ``flip_advantages``: the advantages' sign is flipped before the update (``advantages``, applied in
  ``make_batch``).
- ``per_minibatch_trust_region``: the batch is split into 4 minibatches, each given its own
  trust-region step of size delta, so the total KL drifts past delta (``update``).

Line-search controls (the negative controls of :mod:`claims.catalogue.implementation.line_search`,
one mechanism each; :data:`LINE_SEARCH_BUGS`, not part of the fork check's default nine):

- ``no_improvement_check``: the line search accepts any candidate within the KL bound, whether
  or not it improves the surrogate (``line_search``).
- ``backtrack_along_gradient``: when the full step is not acceptable, the line search goes on
  along the plain gradient (scaled to the full step's first-order gain) instead of shrinking
  the natural step (``update``).
- ``no_finite_guard``: the acceptance test is written as a rejection test, "reject if the
  surrogate did not improve or the KL is too large", which a NaN candidate passes (every
  comparison with NaN is false), and the finite check is missing (``line_search``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from claims import faults
from trpo_ref.deep import step

MINIBATCHES = faults.MINIBATCHES  # per_minibatch_trust_region: steps per batch

# the fork check's seeded bugs and the line-search claims' controls: names in claims.faults
BUGS: dict[str, Any] = {name: faults.FAULTS[name] for name in (
    "no_kl_check", "beta_without_factor_2", "fvp_old_attached", "one_cg_iteration",
    "no_restore_on_failure", "kl_mean_over_action_dims", "kl_reversed", "flip_advantages",
    "per_minibatch_trust_region")}
LINE_SEARCH_BUGS: dict[str, Any] = {name: faults.FAULTS[name] for name in (
    "no_improvement_check", "backtrack_along_gradient", "no_finite_guard")}


@contextlib.contextmanager
def seeded_bug(name: str | None) -> Iterator[None]:
    """Run the body with the bug ``name`` (a key of :data:`BUGS` or :data:`LINE_SEARCH_BUGS`;
    None: the clean reference)."""
    if name is None:
        yield
        return
    known = BUGS | LINE_SEARCH_BUGS
    if name not in known:
        raise ValueError(f"unknown seeded bug {name!r}; choose one of {', '.join(known)}")
    entry = known[name]  # a registry Fault, or (tests) a callable giving UpdateStrategies pieces
    pieces = entry.pieces() if isinstance(entry, faults.Fault) and entry.pieces else entry()
    _ACTIVE.append(name)
    try:
        with step.use_strategies(**pieces):
            yield
    finally:
        _ACTIVE.pop()


@contextlib.contextmanager
def bugs_suspended() -> Iterator[None]:
    """The clean reference inside the body, whatever bugs are switched on around it (for what
    the suite itself computes with trpo_ref, such as its batches)."""
    active = list(_ACTIVE)
    _ACTIVE.clear()
    try:
        with step.use_strategies(step.PAPER):
            yield
    finally:
        _ACTIVE[:] = active


def active_bug() -> str | None:
    """The seeded bug switched on now (None: the clean reference); measurements that are cached
    in memory key on it."""
    return _ACTIVE[-1] if _ACTIVE else None


_ACTIVE: list[str] = []
