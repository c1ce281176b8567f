"""The value fit's fast path: the same minibatches, bit for bit, as indexing by the permutation."""

from __future__ import annotations

import pytest
import torch

from trpo_ref.deep.runtime import torch_threads
from trpo_ref.deep.step import get_flat_params
from trpo_ref.deep.value import ValueMLP, fit_value

pytestmark = pytest.mark.quick


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    with torch_threads(1):
        yield


def regression_batch(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """obs (n, 3), targets (n,): a smooth function the MLP can fit."""
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 3, dtype=torch.float64, generator=gen)
    return obs, 1.0 + obs[:, 0] - 2 * torch.tanh(obs[:, 1])


def fit_by_index(value_fn: ValueMLP, optimizer: torch.optim.Optimizer, obs: torch.Tensor,
                 targets: torch.Tensor, epochs: int, minibatch_size: int,
                 generator: torch.Generator) -> None:
    """The plain loop: index the batch by each slice of the epoch's permutation."""
    for _ in range(epochs):
        order = torch.randperm(obs.shape[0], generator=generator)
        for start in range(0, obs.shape[0], minibatch_size):
            index = order[start : start + minibatch_size]
            loss = (value_fn(obs[index]) - targets[index]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


@pytest.mark.parametrize(("n", "minibatch_size"), [(256, 64), (300, 128), (50, 128)])
def test_sliced_fit_is_bit_identical_to_indexing(n: int, minibatch_size: int):
    obs, targets = regression_batch(n)
    fitted = []
    for fit in (fit_value, fit_by_index):
        torch.manual_seed(0)
        value_fn = ValueMLP(3, hidden=(16,))
        initial = get_flat_params(value_fn)
        optimizer = torch.optim.Adam(value_fn.parameters(), lr=1e-2)
        fit(value_fn, optimizer, obs, targets, 3, minibatch_size, torch.Generator().manual_seed(1))
        fitted.append(get_flat_params(value_fn))
        assert not torch.equal(fitted[-1], initial)  # the fit did move the value network
    assert torch.equal(fitted[0], fitted[1])


def test_sliced_fit_leaves_the_batch_unchanged():
    obs, targets = regression_batch(200)
    obs_before, targets_before = obs.clone(), targets.clone()
    torch.manual_seed(0)
    value_fn = ValueMLP(3, hidden=(16,))
    fit_value(value_fn, torch.optim.Adam(value_fn.parameters(), lr=1e-2), obs, targets, 2, 64,
              torch.Generator().manual_seed(1))
    assert torch.equal(obs, obs_before) and torch.equal(targets, targets_before)
