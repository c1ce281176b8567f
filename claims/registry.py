"""The claim registry: every claim module registers its Claim class with :func:`register`.

Modules are imported in the order of ``CLAIM_MODULES`` so listings and reports are stable.
"""

from __future__ import annotations

import importlib
from typing import TypeVar

from claims.core import Claim

C = TypeVar("C", bound=type[Claim])

CLAIM_MODULES: tuple[str, ...] = (
    "claims.theory.surrogate",
    "claims.theory.theorem1",
    "claims.theory.algorithm1",
    "claims.theory.mean_kl",
    "claims.theory.natural_gradient",
    "claims.theory.penalty",
    "claims.theory.identities",
    "claims.climb",
    "claims.step.kl_constraint",
    "claims.step.line_search",
    "claims.step.kl_quadratic",
    "claims.step.fisher",
    "claims.step.vine_variance",
    "claims.step.cost",
    "claims.step.subsample",
    "claims.empirical.learning",
    "claims.empirical.npg_progress",
    "claims.empirical.monotonic",
    "claims.empirical.audit",
    "claims.empirical.atari",
    "claims.empirical.ranking",
    "claims.implementation.kl_within_delta",
    "claims.implementation.surrogate_improves",
    "claims.implementation.rejected_update_restores",
    "claims.implementation.line_search",
    "claims.implementation.learns",
)

_REGISTRY: dict[str, Claim] = {}


def register(cls: C) -> C:
    """Class decorator: instantiate the claim and add it to the registry under ``cls.id``."""
    if cls.id in _REGISTRY and type(_REGISTRY[cls.id]) is not cls:
        raise ValueError(f"two claims share the id {cls.id!r}")
    _REGISTRY[cls.id] = cls()
    return cls


def _load() -> None:
    for name in CLAIM_MODULES:
        importlib.import_module(name)


def all_claims() -> list[Claim]:
    """Every registered claim, in the order of CLAIM_MODULES (then registration order)."""
    _load()
    order = {name: i for i, name in enumerate(CLAIM_MODULES)}
    claims = list(_REGISTRY.values())
    return sorted(claims, key=lambda c: order.get(type(c).__module__, len(order)))


def get(claim_id: str) -> Claim:
    _load()
    try:
        return _REGISTRY[claim_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise KeyError(f"no claim with id {claim_id!r}; known ids: {known}") from None
