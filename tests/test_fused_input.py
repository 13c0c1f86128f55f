"""The Poisson-fused first layer equals encode.poisson followed by the linear layer."""
from __future__ import annotations

import pytest
import torch

from snnc.train.encode import poisson
from snnc.train.fused_input import poisson_linear
from snnc.compiler.source import SnncError


def _images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    x[x < 0.5] = 0.0  # MNIST-like: mostly black, some saturated, the rest in between
    x[x > 0.9] = 1.0
    return x


@pytest.mark.parametrize("out_features,bias", [(10, False), (33, True), (1, False)])
@pytest.mark.parametrize("T", [1, 7])
def test_matches_encoder_then_linear(out_features, bias, T):
    torch.manual_seed(1)
    x, idx = _images(), torch.arange(16) * 3 + 5
    lin = torch.nn.Linear(784, out_features, bias=bias)
    y = poisson_linear(x, lin, T, seed=4, index=idx, epoch=2, stream=1)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    grads = [p.grad.clone() for p in lin.parameters()]
    lin.zero_grad()
    ref = lin(poisson(x, T, 4, idx, 2, stream=1, dtype=torch.float32).flatten(2))
    (ref * g).sum().backward()
    assert y.shape == ref.shape == (T, 16, out_features)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, (p.grad for p in lin.parameters())):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_independent_of_thread_count():
    x, idx = _images(32, seed=3), torch.arange(32)
    lin = torch.nn.Linear(784, 10, bias=False)
    results = []
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            lin.zero_grad()
            y = poisson_linear(x, lin, 5, 0, idx)
            y.square().sum().backward()
            results.append((y, lin.weight.grad.clone()))
    finally:
        torch.set_num_threads(old)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_pixels_outside_unit_range_are_a_clear_error():
    x = _images(2)
    x[1, 0, 3, 4] = 1.5
    with pytest.raises(SnncError, match=r"outside \[0, 1\]"):
        poisson_linear(x, torch.nn.Linear(784, 10), 3, 0, torch.arange(2))
