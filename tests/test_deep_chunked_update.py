"""The update's memory bound (issue 16): above a network's chunk bound every pass over the batch
runs in chunks and computes what one pass computes (to rounding); at or below it, one pass,
bit for bit as before. And the line search's parameter-only representability check."""

from __future__ import annotations

import math

import pytest
import torch

from trpo_ref.deep.policies import (
    AtariCategoricalCNN,
    CategoricalMLP,
    DiagGaussianMLP,
    ValueCNN,
    evaluate_in_chunks,
    row_chunks,
    split_rows,
)
from trpo_ref.deep.runtime import torch_threads
from trpo_ref.deep.step import (
    ALGOS,
    batch_surrogate,
    chunked_fisher_product_fn,
    fisher_vector_product,
    get_flat_params,
    kl_per_state,
    kl_surrogate_params,
    make_batch,
    set_flat_params,
    surrogate,
    surrogate_and_gradient,
    update,
)
from trpo_ref.deep.value import fit_value

pytestmark = pytest.mark.quick

N = 48


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    with torch_threads(1):
        yield


def make_policy(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    if kind == "gaussian":
        return DiagGaussianMLP(3, 2, hidden=(6,), log_std_init=-0.3)
    if kind == "categorical":
        return CategoricalMLP(3, 4, hidden=(6,))
    return AtariCategoricalCNN((2, 12, 12), 3, hidden=4, channels=2, dtype=torch.float64)


def batch_for(policy, kind: str, seed: int = 0):
    """Random states, actions drawn from the policy (moved off its initial near-uniform
    parameters), random advantages."""
    gen = torch.Generator().manual_seed(seed)
    theta = get_flat_params(policy)
    set_flat_params(policy, theta + 0.5 * torch.randn(theta.shape, generator=gen,
                                                      dtype=theta.dtype))
    if kind == "cnn":
        obs = torch.randint(0, 256, (N, 2, 12, 12), generator=gen, dtype=torch.uint8)
    else:
        obs = torch.randn(N, 3, generator=gen, dtype=torch.float64)
    act = policy.sample(obs, gen)
    adv = torch.randn(N, generator=gen, dtype=torch.float64)
    return obs, act, adv


def chunked(policy, above: int, rows: int):
    policy.chunk_above, policy.chunk_rows = above, rows
    return policy


@pytest.mark.parametrize(("n", "above", "size", "expected"), [
    (10, None, 4, None), (10, 10, 4, None), (11, 10, 4, [(0, 4), (4, 8), (8, 11)]),
    (8, 2, 8, [(0, 8)]),
])
def test_row_chunks_only_above_the_bound(n, above, size, expected):
    module = torch.nn.Linear(1, 1)
    if above is not None:
        module.chunk_above, module.chunk_rows = above, size
    chunks = row_chunks(module, n)
    assert (None if chunks is None else [(c.start, c.stop) for c in chunks]) == expected


def test_split_rows_covers_every_row_once():
    assert [(c.start, c.stop) for c in split_rows(7, 3)] == [(0, 3), (3, 6), (6, 7)]


@pytest.mark.parametrize("kind", ["gaussian", "categorical", "cnn"])
@pytest.mark.parametrize("algo", ALGOS)
def test_update_at_the_bound_is_one_pass_bit_for_bit(kind, algo):
    """A batch of exactly chunk_above rows is one pass: the same bits as a network without a
    bound."""
    results = []
    for bound in (None, N):
        policy = make_policy(kind)
        obs, act, adv = batch_for(policy, kind)
        if bound is not None:
            chunked(policy, bound, 5)
        metrics = update(policy, make_batch(policy, obs, act, adv), algo=algo, delta=0.05,
                         fvp_subsample=0.5, generator=torch.Generator().manual_seed(1))
        results.append((get_flat_params(policy), metrics))
    (theta_a, metrics_a), (theta_b, metrics_b) = results
    assert torch.equal(theta_a, theta_b)
    assert repr(metrics_a) == repr(metrics_b)


@pytest.mark.parametrize("kind", ["gaussian", "categorical", "cnn"])
@pytest.mark.parametrize("algo", ALGOS)
def test_chunked_update_computes_the_one_pass_update(kind, algo):
    """Above the bound (chunks of 10 rows, and of 10 rows for the Fisher products on the
    24-row subsample), the update lands where the one-pass update does, to rounding."""
    results = []
    for bound in (None, 16):
        policy = make_policy(kind)
        obs, act, adv = batch_for(policy, kind)
        if bound is not None:
            chunked(policy, bound, 10)
        metrics = update(policy, make_batch(policy, obs, act, adv), algo=algo, delta=0.05,
                         fvp_subsample=0.5, generator=torch.Generator().manual_seed(1))
        results.append((get_flat_params(policy), metrics))
    (theta_a, metrics_a), (theta_b, metrics_b) = results
    assert metrics_a["train/accepted"] and metrics_b["train/accepted"]
    assert metrics_a["train/backtracks"] == metrics_b["train/backtracks"]
    torch.testing.assert_close(theta_b, theta_a, rtol=1e-9, atol=1e-12)
    for key in ("train/kl_mean", "train/kl_max", "train/surrogate_actual", "train/sAs"):
        if not math.isnan(metrics_a[key]):
            assert metrics_b[key] == pytest.approx(metrics_a[key], rel=1e-8, abs=1e-14)


@pytest.mark.parametrize("kind", ["gaussian", "cnn"])
def test_chunked_passes_equal_one_pass(kind):
    policy = make_policy(kind)
    obs, act, adv = batch_for(policy, kind)
    one = make_batch(policy, obs, act, adv)
    value_one, grad_one = surrogate_and_gradient(policy, one)
    chunked(policy, 16, 7)
    many = make_batch(policy, obs, act, adv)
    for a, b in zip(one.old_params, many.old_params, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    value_many, grad_many = surrogate_and_gradient(policy, many)
    assert value_many == pytest.approx(value_one, rel=1e-12)
    torch.testing.assert_close(grad_many, grad_one, rtol=1e-10, atol=1e-13)
    with torch.no_grad():
        assert float(batch_surrogate(policy, many)) == value_many  # the same sum, same order
        assert float(surrogate(policy, one)) == pytest.approx(value_many, rel=1e-12)
        torch.testing.assert_close(kl_per_state(policy, many), kl_per_state(policy, one),
                                   rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ["gaussian", "categorical", "cnn"])
def test_chunked_fisher_product_is_the_mean_of_chunk_products(kind):
    policy = make_policy(kind)
    obs, act, adv = batch_for(policy, kind)
    batch = make_batch(policy, obs, act, adv)
    gen = torch.Generator().manual_seed(2)
    theta = get_flat_params(policy)
    set_flat_params(policy, theta + 0.1 * torch.randn(theta.shape, generator=gen,
                                                      dtype=theta.dtype))
    index = torch.arange(3, N, 2)
    v = torch.randn(theta.shape, generator=gen, dtype=theta.dtype)
    expected = fisher_vector_product(policy, batch.obs, batch.old_params, v, 0.1, index)
    product = chunked_fisher_product_fn(policy, batch.obs, batch.old_params, 0.1, index, 7)
    torch.testing.assert_close(product(v), expected, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(product(2 * v), 2 * expected, rtol=1e-10, atol=1e-13)


def test_value_fit_and_value_passes_in_chunks():
    """The value CNN's full-batch passes in chunks give its one-pass values; the fit (whose
    minibatches never exceed the bound) moves the parameters identically."""
    gen = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (N, 2, 12, 12), generator=gen, dtype=torch.uint8)
    targets = torch.randn(N, generator=gen)
    fits = []
    for bound in (None, 16):
        torch.manual_seed(0)
        value_fn = ValueCNN((2, 12, 12), hidden=4, channels=2)
        if bound is not None:
            chunked(value_fn, bound, 10)
        with torch.no_grad():
            values = evaluate_in_chunks(value_fn, value_fn, obs)
        optimizer = torch.optim.Adam(value_fn.parameters(), lr=1e-3)
        metrics = fit_value(value_fn, optimizer, obs, targets, 2, 8,
                            torch.Generator().manual_seed(3))
        fits.append((values, get_flat_params(value_fn), metrics))
    (values_a, theta_a, metrics_a), (values_b, theta_b, metrics_b) = fits
    torch.testing.assert_close(values_b, values_a, rtol=1e-5, atol=1e-6)
    assert torch.equal(theta_a, theta_b)
    assert metrics_b["value/explained_variance"] == pytest.approx(
        metrics_a["value/explained_variance"], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("kind", ["gaussian", "categorical", "cnn"])
def test_one_forward_kl_and_surrogate_are_the_two_calls_bit_for_bit(kind):
    """The line search's one-pass KL, surrogate and parameters equal kl_per_state,
    batch_surrogate and dist_params, each of which runs its own forward pass."""
    policy = make_policy(kind)
    obs, act, adv = batch_for(policy, kind)
    batch = make_batch(policy, obs, act, adv)
    gen = torch.Generator().manual_seed(5)
    theta = get_flat_params(policy)
    set_flat_params(policy, theta + 0.05 * torch.randn(theta.shape, generator=gen,
                                                       dtype=theta.dtype))
    with torch.no_grad():
        kl, surr, params = kl_surrogate_params(policy, batch)
        assert torch.equal(kl, kl_per_state(policy, batch))
        assert torch.equal(surr, batch_surrogate(policy, batch))
        for a, b in zip(params, policy.dist_params(batch.obs), strict=True):
            assert torch.equal(a, b)
        chunked(policy, 16, 10)  # chunked: the two calls, no parameters
        kl_c, surr_c, params_c = kl_surrogate_params(policy, batch)
    assert params_c is None
    torch.testing.assert_close(kl_c, kl, rtol=1e-12, atol=1e-15)
    assert float(surr_c) == pytest.approx(float(surr), rel=1e-12)


@pytest.mark.parametrize(("log_std", "expected"), [(0.0, True), (-700.0, True), (700.0, True),
                                                   (710.0, False), (-760.0, False)])
def test_gaussian_representable_reads_log_std(log_std, expected):
    """exp(log_std) overflows to inf above ~709.78 and underflows to 0 below ~-745."""
    policy = DiagGaussianMLP(3, 2, hidden=(4,))
    with torch.no_grad():
        policy.log_std.fill_(log_std)
    assert policy.representable() is expected
    with torch.no_grad():
        params = policy.dist_params(torch.zeros(2, 3, dtype=torch.float64))
    assert policy.representable_from(params) is expected


def test_categorical_is_always_representable_without_a_forward_pass():
    assert CategoricalMLP(3, 4, hidden=(4,)).representable() is True
