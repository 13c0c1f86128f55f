"""Spiking transformers: the token primitives against plain torch, and snnc.transformers' SSA and SDSA blocks
against SpikingJelly 2.0.0's SpikingSelfAttention and SpikeDrivenSelfAttention with the same weights: spikes
identical, outputs within fp32 round-off, gradients close, on the torch and cpp backends."""
from __future__ import annotations

import pytest
import torch

import snnc
from snnc.runtime import support as rt

from conftest import HAS_CXX, TESTS, needs_sj

FIXTURE = TESTS / "fixtures" / "attention.snn"
BACKENDS = ["torch"] + (["cpp"] if HAS_CXX else [])


def test_primitives_match_torch():
    x = torch.randn(3, 2, 5, 4, 6)  # [T, N, C, H, W]
    tokens = rt.Tokens()(x)
    assert torch.equal(tokens, x.flatten(-2).transpose(-1, -2))
    h = rt.Heads(3)(torch.randn(3, 2, 24, 6))
    assert h.shape == (3, 2, 3, 24, 2) and torch.equal(rt.MergeHeads()(h), h.transpose(-2, -3).flatten(-2))
    q, k = torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 4)
    assert torch.allclose(rt.Matmul(transpose_b=True, scale=0.5)(q, k), q @ k.transpose(-1, -2) * 0.5)
    assert torch.equal(rt.Matmul(transpose_a=True)(q, k), q.transpose(-1, -2) @ k)
    assert torch.equal(rt.Reduce("sum", "tokens")(q), q.sum(-2, keepdim=True))
    assert torch.equal(rt.Reduce("mean", "channels", keepdim=False)(q), q.mean(-1))


def _snnc_net(name, backend):
    torch.manual_seed(0)
    return snnc.load(FIXTURE).network(name, backend=backend).train()


def _of(net, cls):
    return [m for m in net.modules() if type(m) is cls]


def _copy_bn(dst, src, rows=slice(None)):
    with torch.no_grad():
        for a in ("weight", "bias", "running_mean", "running_var"):
            getattr(dst, a).copy_(getattr(src, a)[rows])


def _randomise(module, seed=1):
    """Weights and BN affines away from their defaults, so a wrong mapping cannot pass by symmetry."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=g) * 0.6 + (0.7 if p.dim() == 1 else -0.2))


def _compare(ours, theirs, x_ours, x_theirs, to_theirs, input_to_theirs):
    """Forward (spikes or values) and the gradients of the input and of every weight, both ways."""
    x_ours, x_theirs = x_ours.clone().requires_grad_(), x_theirs.clone().requires_grad_()
    y, y_ref = ours(x_ours), theirs(x_theirs)
    assert torch.allclose(to_theirs(y), y_ref, atol=1e-5), (to_theirs(y) - y_ref).abs().max()
    g = torch.randn_like(y_ref)
    (to_theirs(y) * g).sum().backward()
    (y_ref * g).sum().backward()
    assert torch.allclose(input_to_theirs(x_ours.grad), x_theirs.grad, atol=1e-4, rtol=1e-3)
    return y, y_ref


@needs_sj
@pytest.mark.parametrize("backend", BACKENDS)
def test_ssa_matches_spikingjelly(backend):
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.layer.attention import SpikingSelfAttention

    C = 32
    ref = SpikingSelfAttention(C, num_heads=4)
    _randomise(ref)
    net = _snnc_net("SSAOnly", backend)
    linears, bns = _of(net, rt.Linear), _of(net, rt.TokenBatchNorm1d)
    conv, bn = ref.qkv_conv_bn[0], ref.qkv_conv_bn[1]
    with torch.no_grad():
        for i in range(3):  # Q, K, V: SpikingJelly's one 3C-wide 1x1 conv and BN, row blocks of C
            linears[i].weight.copy_(conv.weight[i * C:(i + 1) * C, :, 0])
            _copy_bn(bns[i], bn, slice(i * C, (i + 1) * C))
        linears[3].weight.copy_(ref.proj_conv_bn[0].weight[:, :, 0])
        _copy_bn(bns[3], ref.proj_conv_bn[1])
    functional.reset_net(ref)
    x = (torch.rand(4, 3, 16, C) < 0.3).float() * 2.0  # [T, N, L, C]: spikes of a residual stream (0, 2)
    flip = lambda t: t.transpose(-1, -2)  # [T, N, L, C] <-> SpikingJelly's [T, N, C, L]
    y, y_ref = _compare(net, ref, x, flip(x), lambda t: flip(t.unflatten(-1, (16, C))), flip)
    assert set(y.unique().tolist()) <= {0.0, 1.0} and 0 < y.mean() < 1  # spikes, neither silent nor saturated
    # the weights' gradients: Q's, K's, V's row blocks and the projection
    for i in range(3):
        assert torch.allclose(linears[i].weight.grad, conv.weight.grad[i * C:(i + 1) * C, :, 0], atol=1e-4, rtol=1e-3)
    assert torch.allclose(linears[3].weight.grad, ref.proj_conv_bn[0].weight.grad[:, :, 0], atol=1e-4, rtol=1e-3)


@needs_sj
@pytest.mark.parametrize("backend", BACKENDS)
def test_sdsa_matches_spikingjelly(backend):
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.layer.attention import SpikeDrivenSelfAttention

    C, H, W = 32, 4, 4
    ref = SpikeDrivenSelfAttention(C, num_heads=4)
    _randomise(ref)
    net = _snnc_net("SDSAOnly", backend)
    linears, bns = _of(net, rt.Linear), _of(net, rt.TokenBatchNorm1d)
    pairs = [(ref.q_conv, ref.q_bn), (ref.k_conv, ref.k_bn), (ref.v_conv, ref.v_bn), (ref.proj_conv, ref.proj_bn)]
    with torch.no_grad():
        for (conv, bn), lin, ours_bn in zip(pairs, linears, bns):
            lin.weight.copy_(conv.weight[:, :, 0, 0])
            if conv.bias is not None:
                lin.bias.copy_(conv.bias)
            _copy_bn(ours_bn, bn)
    functional.reset_net(ref)
    x = torch.randn(4, 3, C, H, W) * 2  # [T, N, C, H, W]: the membrane stream
    to_maps = lambda t: t.unflatten(-1, (H * W, C)).transpose(-1, -2).unflatten(-1, (H, W))  # -> [T, N, C, H, W]
    y, y_ref = _compare(net, ref, x.flatten(-2).transpose(-1, -2), x, to_maps,
                        lambda t: t.transpose(-1, -2).unflatten(-1, (H, W)))
    for (conv, _), lin in zip(pairs, linears):
        assert torch.allclose(lin.weight.grad, conv.weight.grad[:, :, 0, 0], atol=1e-4, rtol=1e-3)


def test_spikformer_mnist_trains_one_batch():
    """The shipped model builds, runs forward and backward, and its loss falls on a fixed batch."""
    torch.manual_seed(0)
    net = snnc.load(TESTS.parent / "models" / "spikformer_mnist.snn").network().train()
    x, labels = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(4):
        out = net(x.unsqueeze(0).repeat(4, 1, 1, 1, 1)).mean(0)
        loss = torch.nn.functional.cross_entropy(out, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_spikformer_cifar10_trains_on_files_in_torchvision_layout(tmp_path):
    """Spikformer-4-384 end to end: the CIFAR-10 reader, the recipe's augmentation, one step, validation, test."""
    import formats
    from snnc import cli

    formats.write_cifar(tmp_path / "data", "cifar10", per_batch=2)
    assert cli.main(["train", str(TESTS.parent / "models" / "spikformer_cifar10.snn"), "--data-dir",
                     str(tmp_path / "data"), "--max-steps", "1", "-b", "2", "--no-plots", "--quiet",
                     "--val-split", "0.2", "--epochs", "1", "--out-dir", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "best.pt").exists()
