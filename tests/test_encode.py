"""Encoders: the fused Poisson kernel's statistics, determinism and errors; direct and latency codes."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc import SnncError
from snnc.train.encode import _poisson_torch, direct, encode, latency, poisson


def _chi2_critical(df: int, z: float = 3.09) -> float:
    """Upper chi-square quantile (Wilson-Hilferty); z = 3.09 is p = 0.001."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


def _images(n=16, d=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g)
    x[x < 0.3] = 0.0
    x[x > 0.9] = 1.0
    return x


def test_shape_dtype_and_values():
    x = _images().view(16, 1, 8, 8)
    s = poisson(x, 7, seed=1, index=torch.arange(16))
    assert s.shape == (7, 16, 1, 8, 8) and s.dtype == torch.uint8
    assert set(s.unique().tolist()) <= {0, 1}
    f = poisson(x, 7, seed=1, index=torch.arange(16), dtype=torch.float32)
    assert f.dtype == torch.float32 and torch.equal(f, s.float())


def test_matches_torch_reference_bit_for_bit():
    x = _images(32, 100)
    idx = torch.arange(32) * 7 + 3
    assert torch.equal(poisson(x, 20, 5, idx, epoch=2, stream=1), _poisson_torch(x, 20, 5, idx, 2, 1).to(torch.uint8))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 5), d=st.integers(1, 40), T=st.integers(1, 9), seed=st.integers(0, 2**64 - 1),
       epoch=st.integers(0, 1000), offset=st.integers(0, 2**40))
def test_reference_equality_property(n, d, T, seed, epoch, offset):
    x = torch.rand(n, d)
    x[0, 0] = 0.0
    x[-1, -1] = 1.0
    idx = torch.arange(n) + offset
    assert torch.equal(poisson(x, T, seed, idx, epoch), _poisson_torch(x, T, seed, idx, epoch, 0).to(torch.uint8))


@pytest.mark.parametrize("p", [1e-3, 0.05, 0.25, 0.5, 0.77, 0.999])
def test_firing_rate_within_binomial_bounds(p):
    n, d, T = 50, 100, 400
    x = torch.full((n, d), p)
    s = poisson(x, T, seed=11, index=torch.arange(n))
    draws = s.numel()
    rate = s.double().mean().item()
    sigma = math.sqrt(p * (1 - p) / draws)
    assert abs(rate - p) < 5 * sigma, (rate, p, sigma)


def test_zero_and_one_are_exact():
    x = torch.tensor([[0.0, 1.0] * 50])
    s = poisson(x, 1000, seed=3, index=torch.tensor([9]))
    assert s[:, 0, 0::2].sum() == 0
    assert s[:, 0, 1::2].all()


def test_spike_counts_follow_binomial_chi_square():
    """Per-pixel spike counts over T steps must be Binomial(T, p)."""
    p, T, pixels = 0.3, 30, 20000
    s = poisson(torch.full((200, pixels // 200), p), T, seed=4, index=torch.arange(200))
    counts = torch.bincount(s.sum(0).flatten().long(), minlength=T + 1).double()
    pmf = torch.tensor([math.comb(T, k) * p**k * (1 - p) ** (T - k) for k in range(T + 1)], dtype=torch.float64)
    expected = pmf * pixels
    keep = expected >= 5
    obs = torch.cat([counts[keep], counts[~keep].sum().view(1)])
    exp = torch.cat([expected[keep], expected[~keep].sum().view(1)])
    chi2 = (((obs - exp) ** 2) / exp).sum().item()
    assert chi2 < _chi2_critical(len(obs) - 1), chi2


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    return (a @ b / (a.norm() * b.norm())).item()


def test_independence_across_time_pixels_and_samples():
    n, d, T = 64, 256, 200
    s = poisson(torch.full((n, d), 0.5), T, seed=8, index=torch.arange(n)).double()
    bound = 5 / math.sqrt((T - 1) * n * d)  # ~5 sigma for a correlation of independent draws
    assert abs(_corr(s[1:], s[:-1])) < bound  # consecutive steps
    assert abs(_corr(s[:, :, 1:], s[:, :, :-1])) < bound  # neighbouring pixels
    assert abs(_corr(s[:, 1:], s[:, :-1])) < bound  # neighbouring sample ids
    e0 = poisson(torch.full((n, d), 0.5), T, seed=8, index=torch.arange(n), epoch=1).double()
    assert abs(_corr(s, e0)) < bound  # next epoch


def test_deterministic_per_sample_and_independent_of_batch_and_threads():
    x = _images(8, 50)
    idx = torch.tensor([5, 900, 17, 3, 44, 1, 2, 10**9])
    a = poisson(x, 12, seed=2, index=idx, epoch=4)
    assert torch.equal(a, poisson(x, 12, seed=2, index=idx, epoch=4))
    perm = torch.tensor([3, 0, 7, 1])
    assert torch.equal(a[:, perm], poisson(x[perm], 12, seed=2, index=idx[perm], epoch=4))
    assert torch.equal(a, poisson(x, 12, seed=2, index=idx, epoch=4, threads=1))
    assert torch.equal(a, poisson(x, 12, seed=2, index=idx, epoch=4, threads=3))


@pytest.mark.parametrize("change", [dict(seed=3), dict(epoch=5), dict(stream=1), dict(index=torch.arange(8) + 1)])
def test_different_counters_give_different_spikes(change):
    x = torch.full((8, 200), 0.5)
    args = dict(seed=2, index=torch.arange(8), epoch=4, stream=0)
    a = poisson(x, 10, **args)
    b = poisson(x, 10, **{**args, **change})
    assert (a != b).float().mean() > 0.4


def test_out_buffer_is_filled_and_checked():
    x = _images(4, 30)
    buf = torch.empty(5, 4, 30)
    out = poisson(x, 5, 0, torch.arange(4), dtype=torch.float32, out=buf)
    assert out.data_ptr() == buf.data_ptr()
    assert torch.equal(out, poisson(x, 5, 0, torch.arange(4)).float())
    with pytest.raises(SnncError, match="out="):
        poisson(x, 6, 0, torch.arange(4), dtype=torch.float32, out=buf)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), 255.0])
def test_out_of_range_pixels_raise(bad):
    x = torch.rand(3, 10)
    x[2, 7] = bad
    with pytest.raises(SnncError) as info:
        poisson(x, 4, 0, torch.arange(3))
    text = str(info.value)
    assert "sample 2, element 7" in text and "[0, 1]" in text and "direct encoder" in text


def test_argument_errors():
    with pytest.raises(SnncError, match="float images"):
        poisson(torch.zeros(2, 3, dtype=torch.uint8), 4, 0, torch.arange(2))
    with pytest.raises(SnncError, match="one id per sample"):
        poisson(torch.zeros(2, 3), 4, 0, torch.arange(3))
    with pytest.raises(SnncError, match="T must be"):
        poisson(torch.zeros(2, 3), 0, 0, torch.arange(2))
    with pytest.raises(SnncError, match="unknown encoder"):
        encode("poison", torch.zeros(2, 3), 4)


def test_direct_repeats_the_image():
    x = torch.rand(3, 1, 4, 4)
    s = direct(x, 5)
    assert s.shape == (5, 3, 1, 4, 4) and all(torch.equal(s[t], x) for t in range(5))
    assert torch.equal(encode("direct", x, 5), s)


def test_latency_one_spike_at_rounded_time():
    x = torch.tensor([[0.0, 1.0, 0.5, 0.25, 1e-4]])
    s = latency(x, 9)
    assert s.shape == (9, 1, 5)
    assert s[:, 0, 0].sum() == 0  # black never fires
    fire = [int(s[:, 0, j].nonzero()) for j in range(1, 5)]
    assert fire == [0, 4, 6, 8]  # round(8 * (1 - x))
    with pytest.raises(SnncError, match="latency"):
        latency(torch.tensor([[2.0]]), 4)


def test_encode_dispatch_poisson_matches():
    x = _images(4, 30)
    idx = torch.arange(4) + 100
    assert torch.equal(encode("poisson", x, 6, seed=1, index=idx, epoch=2), poisson(x, 6, 1, idx, 2).float())


@pytest.mark.gpu
def test_cuda_path_matches_cpu():
    x = _images(8, 100)
    idx = torch.arange(8)
    cpu = poisson(x, 10, 1, idx, 3)
    assert torch.equal(poisson(x.cuda(), 10, 1, idx.cuda(), 3).cpu(), cpu)
