"""Process-wide torch settings for the deep-RL code, set for a scope and restored after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the body with ``n`` torch intra-op threads, then restore the previous number.

    The networks here are small: on a 2-core machine a second thread buys nothing and, when the
    other core is busy, its spin-waits make every small matmul 10-50x slower (measured). One
    thread also keeps results independent of the machine's core count.
    """
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
