"""The adapter-writing API: everything a TRPO implementation's adapter needs, in one stable place.

An adapter (docs/checking-another-implementation.md) imports its types from here, not from the
module that defines them (:mod:`claims.framework.impl`), so a reorganization of the framework
never breaks it::

    from claims.api import ActionDistributions, StepBatch, StepOutcome, TrainOutcome

- :class:`StepBatch`: what one update sees (states, actions, raw advantages, the task);
- :class:`StepOutcome`: the action distributions before and after the update;
- :class:`ActionDistributions`: diagonal Gaussian or categorical distributions on N states;
- :class:`TrainOutcome`: every finished episode's true return and length, in order;
- :class:`ImplementationError`: raise it when the implementation cannot do what is asked (an
  unsupported action space), with a message that says why;
- :data:`CAPABILITIES`, :func:`capabilities`: the methods each capability needs, and which an
  object offers; :data:`ENTRY_POINT_GROUP`: where a package registers its adapter by name;
- :func:`check_adapter`: what ``trpo-claims check-adapter SPEC`` runs.
"""

from claims.framework.impl import (
    CAPABILITIES,
    ENTRY_POINT_GROUP,
    ActionDistributions,
    ImplementationError,
    StepBatch,
    StepOutcome,
    TrainOutcome,
    capabilities,
    check_adapter,
)

__all__ = ["CAPABILITIES", "ENTRY_POINT_GROUP", "ActionDistributions", "ImplementationError",
           "StepBatch", "StepOutcome", "TrainOutcome", "capabilities", "check_adapter"]
