"""Seeded-bug forks of ``trpo_ref``: each a bug a real TRPO implementation could have (issue 5).

A fork is ``trpo_ref`` with one bug switched on by :func:`seeded_bug`, a context manager that
patches ``trpo_ref``'s module attributes for the duration of the body and restores them after,
so ``trpo_ref``'s own source never carries broken code. Everything that calls ``trpo_ref``'s
update or training loop inside the body (a claim, an adapter, a training job) sees the bug; the
suite's measurements (KL by ``torch.distributions``, parameter bits) never go through the patched
functions.

The bugs (:data:`BUGS`), with where each one lives:

- ``no_kl_check``: the line search accepts any candidate that improves the surrogate, whatever
  its KL (``step.line_search``).
- ``beta_without_factor_2``: beta = sqrt(delta / s^T A s) instead of sqrt(2 delta / s^T A s), so
  every full step is 1/sqrt(2) too short (``step.step_scale``).
- ``fvp_old_attached``: the Fisher-vector product differentiates KL(pi_theta || pi_theta) with
  pi_old *not* detached; that KL is identically 0, so the "Fisher" is just the damping
  (``step.fisher_vector_product_fn``).
- ``one_cg_iteration``: conjugate gradient stops after one iteration (``step.conjugate_gradient``).
- ``no_restore_on_failure``: a failed line search leaves the last (rejected) candidate in place
  and reports it as applied (``step.line_search``).
- ``kl_mean_over_action_dims``: Gaussian KL averaged over action dimensions instead of summed,
  in the Fisher and in the line search alike (sb3-contrib's choice), so steps are sized for a KL
  of act_dim x delta (``DiagGaussianMLP.kl``).
- ``kl_reversed``: KL(pi_new || pi_old) instead of KL(pi_old || pi_new) everywhere the update
  computes it (``PolicyModule.kl``).
- ``flip_advantages``: the advantages' sign is flipped before the update (``step.make_batch`` and
  ``trpo.make_batch``).
- ``per_minibatch_trust_region``: the batch is split into 4 minibatches, each given its own
  trust-region step of size delta, so the total KL drifts past delta (``step.update`` and
  ``trpo.update``).

Line-search controls (the negative controls of :mod:`claims.implementation.line_search`, one
mechanism each; :data:`LINE_SEARCH_BUGS`, not part of the fork check's default nine):

- ``no_improvement_check``: the line search accepts any candidate within the KL bound, whether
  or not it improves the surrogate (``step.line_search``).
- ``backtrack_along_gradient``: when the full step is not acceptable, the line search goes on
  along the plain gradient (scaled to the full step's first-order gain) instead of shrinking
  the natural step (``step.update`` and ``trpo.update``).
- ``no_finite_guard``: the acceptance test is written as a rejection test, "reject if the
  surrogate did not improve or the KL is too large", which a NaN candidate passes (every
  comparison with NaN is false), and the finite check is missing (``step.line_search``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from trpo_ref.deep import policies, step, trpo

MINIBATCHES = 4  # per_minibatch_trust_region: steps per batch


def _no_kl_check() -> dict[tuple[Any, str], Any]:
    line_search = step.line_search

    def unchecked(policy: Any, theta_old: Any, full_step: Any, evaluate: Any,
                  surrogate_old: float, limit: float, *rest: Any) -> Any:
        return line_search(policy, theta_old, full_step, evaluate, surrogate_old, math.inf,
                           *rest)

    return {(step, "line_search"): unchecked}


def _beta_without_factor_2() -> dict[tuple[Any, str], Any]:
    step_scale = step.step_scale

    def short(s_a_s: float, delta: float) -> tuple[float, str | None]:
        return step_scale(s_a_s, delta / 2)  # sqrt(2 (delta / 2) / sAs) = sqrt(delta / sAs)

    return {(step, "step_scale"): short}


def _fvp_old_attached() -> dict[tuple[Any, str], Any]:
    def attached(policy: Any, obs: torch.Tensor, old_params: Any, damping: float,
                 index: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        if index is not None:
            obs = obs[index]
        current = policy.dist_params(obs)  # pi_old taken from the live graph, not detached
        grad_kl = step.flat_grad(policy.kl_from(current, policy.dist_params(obs)).mean(),
                                 policy, create_graph=True)
        params = list(policy.parameters())

        def product(v: torch.Tensor) -> torch.Tensor:
            hv = torch.autograd.grad(grad_kl @ v, params, retain_graph=True, allow_unused=True)
            flat = [torch.zeros_like(p).reshape(-1) if h is None else h.reshape(-1)
                    for h, p in zip(hv, params, strict=True)]
            return torch.cat(flat) + damping * v

        return product

    return {(step, "fisher_vector_product_fn"): attached}


def _one_cg_iteration() -> dict[tuple[Any, str], Any]:
    conjugate_gradient = step.conjugate_gradient

    def once(matrix_vector: Any, b: torch.Tensor, iters: int = 10,
             residual_tol: float = 1e-10) -> tuple[torch.Tensor, float]:
        return conjugate_gradient(matrix_vector, b, 1, residual_tol)

    return {(step, "conjugate_gradient"): once}


def _no_restore_on_failure() -> dict[tuple[Any, str], Any]:
    def leaky(policy: Any, theta_old: torch.Tensor, full_step: torch.Tensor, evaluate: Any,
              surrogate_old: float, limit: float, backtrack: float = 0.8,
              max_backtracks: int = 10) -> step.LineSearchResult:
        fraction, constraint_full = 1.0, math.nan
        for k in range(max_backtracks):
            fraction = backtrack**k
            step.set_flat_params(policy, theta_old + fraction * full_step)
            surr, constraint = evaluate()
            if k == 0:
                constraint_full = constraint
            if (math.isfinite(surr) and math.isfinite(constraint) and surr > surrogate_old
                    and constraint <= limit):
                return step.LineSearchResult(True, k, fraction, surr, constraint, None,
                                             constraint_full)
        # the bug: the last candidate stays in place and its fraction is reported as applied
        return step.LineSearchResult(False, max_backtracks, fraction, surrogate_old, math.nan,
                                     "line search failed", constraint_full)

    return {(step, "line_search"): leaky}


def _kl_mean_over_action_dims() -> dict[tuple[Any, str], Any]:
    kl = policies.DiagGaussianMLP.kl

    def averaged(self: Any, old_params: Any, obs: torch.Tensor) -> torch.Tensor:
        return kl(self, old_params, obs) / old_params[0].shape[-1]

    return {(policies.DiagGaussianMLP, "kl"): averaged}


def _kl_reversed() -> dict[tuple[Any, str], Any]:
    def reversed_kl(self: Any, old_params: Any, obs: torch.Tensor) -> torch.Tensor:
        return self.kl_from(self.dist_params(obs), old_params)

    return {(policies.PolicyModule, "kl"): reversed_kl}


def _flip_advantages() -> dict[tuple[Any, str], Any]:
    make_batch = step.make_batch

    def flipped(policy: Any, obs: Any, act: Any, adv: Any) -> Any:
        return make_batch(policy, obs, act, -adv)

    return {(step, "make_batch"): flipped, (trpo, "make_batch"): flipped}


def _per_minibatch_trust_region() -> dict[tuple[Any, str], Any]:
    update = step.update

    def per_minibatch(policy: Any, batch: step.PolicyBatch, **kwargs: Any) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        for rows in torch.arange(len(batch)).chunk(MINIBATCHES):
            sub = step.PolicyBatch(batch.obs[rows], batch.act[rows], batch.adv[rows],
                                   tuple(t[rows] for t in batch.old_params),
                                   batch.old_log_prob[rows])
            # the bug: each minibatch's pi_old is the policy *now*, so each step gets a fresh
            # delta and the KL from the batch's pi_old accumulates
            metrics = update(policy, step.make_batch(policy, sub.obs, sub.act, sub.adv),
                             **kwargs)
        return metrics

    return {(step, "update"): per_minibatch, (trpo, "update"): per_minibatch}


def _no_improvement_check() -> dict[tuple[Any, str], Any]:
    line_search = step.line_search

    def kl_only(policy: Any, theta_old: Any, full_step: Any, evaluate: Any,
                surrogate_old: float, limit: float, *rest: Any) -> Any:
        return line_search(policy, theta_old, full_step, evaluate, -math.inf, limit, *rest)

    return {(step, "line_search"): kl_only}


def _backtrack_along_gradient() -> dict[tuple[Any, str], Any]:
    update, line_search = step.update, step.line_search

    def along_gradient(policy: Any, batch: step.PolicyBatch, **kwargs: Any) -> dict[str, Any]:
        g = step.flat_grad(step.surrogate(policy, batch), policy)

        def search(policy: Any, theta_old: torch.Tensor, full_step: torch.Tensor,
                   evaluate: Any, surrogate_old: float, limit: float, backtrack: float = 0.8,
                   max_backtracks: int = 10) -> step.LineSearchResult:
            first = line_search(policy, theta_old, full_step, evaluate, surrogate_old, limit,
                                backtrack, 1)
            if first.accepted or max_backtracks < 2 or not float(g @ g) > 0:
                return first
            # the bug: the shorter candidates lie along g, with the full step's gain g . step
            gradient_step = g * (float(g @ full_step) / float(g @ g))
            rest = line_search(policy, theta_old, backtrack * gradient_step, evaluate,
                               surrogate_old, limit, backtrack, max_backtracks - 1)
            return dataclasses.replace(rest, backtracks=rest.backtracks + 1,
                                       constraint_full=first.constraint_full)

        saved = step.line_search
        step.line_search = search
        try:
            return update(policy, batch, **kwargs)
        finally:
            step.line_search = saved

    return {(step, "update"): along_gradient, (trpo, "update"): along_gradient}


def _no_finite_guard() -> dict[tuple[Any, str], Any]:
    def unguarded(policy: Any, theta_old: torch.Tensor, full_step: torch.Tensor, evaluate: Any,
                  surrogate_old: float, limit: float, backtrack: float = 0.8,
                  max_backtracks: int = 10) -> step.LineSearchResult:
        constraint_full = math.nan
        for k in range(max_backtracks):
            fraction = backtrack**k
            step.set_flat_params(policy, theta_old + fraction * full_step)
            surr, constraint = evaluate()
            if k == 0:
                constraint_full = constraint
            # the bug: a rejection test that NaN passes, and no finite check
            if not (surr <= surrogate_old or constraint > limit):
                return step.LineSearchResult(True, k, fraction, surr, constraint, None,
                                             constraint_full)
        step.set_flat_params(policy, theta_old)
        return step.LineSearchResult(False, max_backtracks, 0.0, surrogate_old, math.nan,
                                     "line search failed", constraint_full)

    return {(step, "line_search"): unguarded}


BUGS: dict[str, Callable[[], dict[tuple[Any, str], Any]]] = {
    "no_kl_check": _no_kl_check,
    "beta_without_factor_2": _beta_without_factor_2,
    "fvp_old_attached": _fvp_old_attached,
    "one_cg_iteration": _one_cg_iteration,
    "no_restore_on_failure": _no_restore_on_failure,
    "kl_mean_over_action_dims": _kl_mean_over_action_dims,
    "kl_reversed": _kl_reversed,
    "flip_advantages": _flip_advantages,
    "per_minibatch_trust_region": _per_minibatch_trust_region,
}
# controls of the line-search claims, applied by seeded_bug like the others
LINE_SEARCH_BUGS: dict[str, Callable[[], dict[tuple[Any, str], Any]]] = {
    "no_improvement_check": _no_improvement_check,
    "backtrack_along_gradient": _backtrack_along_gradient,
    "no_finite_guard": _no_finite_guard,
}


Patches = dict[tuple[Any, str], Any]


@contextlib.contextmanager
def seeded_bug(name: str | None) -> Iterator[None]:
    """Run the body with the bug ``name`` (a key of :data:`BUGS`; None: the clean reference)."""
    if name is None:
        yield
        return
    known = BUGS | LINE_SEARCH_BUGS
    if name not in known:
        raise ValueError(f"unknown seeded bug {name!r}; choose one of {', '.join(known)}")
    patches = known[name]()
    saved = _apply(patches)
    _ACTIVE.append((name, patches, saved))
    try:
        yield
    finally:
        _ACTIVE.pop()
        _restore(saved)


@contextlib.contextmanager
def bugs_suspended() -> Iterator[None]:
    """The clean reference inside the body, whatever bugs are switched on around it (for what
    the suite itself computes with trpo_ref, such as its batches)."""
    active = list(_ACTIVE)
    for _, _, saved in reversed(active):
        _restore(saved)
    _ACTIVE.clear()
    try:
        yield
    finally:
        for name, patches, _ in active:
            _ACTIVE.append((name, patches, _apply(patches)))


def active_bug() -> str | None:
    """The seeded bug switched on now (None: the clean reference); measurements that are cached
    in memory key on it."""
    return _ACTIVE[-1][0] if _ACTIVE else None


def _apply(patches: Patches) -> Patches:
    # a class may inherit the attribute: restore by deleting what we set, not by copying down
    saved = {key: vars(key[0]).get(key[1], _INHERITED) for key in patches}
    for (owner, attr), replacement in patches.items():
        setattr(owner, attr, replacement)
    return saved


def _restore(saved: Patches) -> None:
    for (owner, attr), original in saved.items():
        if original is _INHERITED:
            delattr(owner, attr)
        else:
            setattr(owner, attr, original)


_INHERITED = object()
_ACTIVE: list[tuple[str, Patches, Patches]] = []
