"""The claim registry: every claim module registers its Claim class with :func:`register`.

Modules are imported in the order of ``CLAIM_MODULES`` so listings and reports are stable.
"""

from __future__ import annotations

import importlib
from typing import TypeVar

from claims.framework.core import Claim

C = TypeVar("C", bound=type[Claim])

CLAIM_MODULES: tuple[str, ...] = (
    "claims.catalogue.theory.surrogate",
    "claims.catalogue.theory.theorem1",
    "claims.catalogue.theory.algorithm1",
    "claims.catalogue.theory.mean_kl",
    "claims.catalogue.theory.natural_gradient",
    "claims.catalogue.theory.penalty",
    "claims.catalogue.theory.identities",
    "claims.catalogue.climb.claims",
    "claims.catalogue.step.kl_constraint",
    "claims.catalogue.step.line_search",
    "claims.catalogue.step.kl_quadratic",
    "claims.catalogue.step.fisher",
    "claims.catalogue.step.vine_variance",
    "claims.catalogue.step.cost",
    "claims.catalogue.step.subsample",
    "claims.catalogue.empirical.learning",
    "claims.catalogue.empirical.npg_progress",
    "claims.catalogue.empirical.monotonic",
    "claims.catalogue.empirical.audit",
    "claims.catalogue.empirical.atari",
    "claims.catalogue.empirical.ranking",
    "claims.catalogue.implementation.kl_within_delta",
    "claims.catalogue.implementation.surrogate_improves",
    "claims.catalogue.implementation.rejected_update_restores",
    "claims.catalogue.implementation.line_search",
    "claims.catalogue.implementation.learns",
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
