"""Reproducible example generation with hypothesis at claim run time.

Claims that search for counterexamples draw *families* of examples with hypothesis (sizes,
discounts, sparsity, temperatures, a numpy seed) and build a numpy batch from each family. This
module runs such a search deterministically: derandomized, generate phase only, no example
database, and without hypothesis's pool of constants from local modules (see below).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st


@contextmanager
def without_local_constants() -> Iterator[bool]:
    """Run hypothesis without its pool of constants from local modules; yields whether it could.

    Hypothesis (>= 6.131) mixes numeric literals found in the *local* modules present in
    sys.modules into its draws (about 5-15% of draws), so a derandomized run's examples depend
    on which project modules happen to be imported (CLI vs pytest, editable install or not) and
    change whenever any of them is edited. An empty pool makes the same seed give the same
    examples everywhere. This touches hypothesis internals: if they change, nothing is patched
    and the caller records that in its evidence.
    """
    try:
        from hypothesis.internal.conjecture import providers

        original = providers._get_local_constants
        empty = providers.Constants()
        cache = providers.CONSTANTS_CACHE.cache
    except (ImportError, AttributeError):
        yield False
        return
    providers._get_local_constants = lambda: empty
    cache.clear()
    try:
        yield True
    finally:
        providers._get_local_constants = original
        cache.clear()


def for_each_example(
    strategy: st.SearchStrategy[Any], n_examples: int, visit: Callable[[Any], None]
) -> dict[str, str]:
    """Call ``visit(example)`` on ``n_examples`` derandomized draws of ``strategy``.

    The draws depend only on the strategy and the hypothesis version, not on what else is
    imported. Returns a description of the generator for the evidence's config.
    """

    @settings(
        derandomize=True,
        database=None,
        max_examples=int(n_examples),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(example=strategy)
    def _draw(example: Any) -> None:
        visit(example)

    with without_local_constants() as isolated:
        _draw()
    return {
        "hypothesis_version": hypothesis.__version__,
        "mode": "derandomized, generate phase only, no database",
        "local_constants": "disabled" if isolated else "not controlled (internals changed)",
    }
