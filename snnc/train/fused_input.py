"""Poisson encoding fused with the first linear layer, for rate-coded training on the CPU.

With a Poisson encoder followed by `flatten` and `linear`, the encoded input
(T * N * D binary spikes) exists only to be multiplied by the weight. This
kernel never stores it: the forward adds weight rows for the pixels that fire,
drawing each spike from the encoder's counter-based RNG (so the spikes are
exactly those of `encode.poisson`), and the backward redraws them to accumulate
the weight gradient. Pixels at exactly 0 never fire and pixels at 1 always do,
so only the ~20% of MNIST pixels in between cost a draw. Sums run in a fixed
order: results do not depend on the thread count.
"""
from __future__ import annotations

import ctypes
import functools
from contextlib import contextmanager

import torch
from torch import nn

from .encode import _check_args, _raise_range, _u64, input_kernel_source


_I64, _U64, _P = ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p


@functools.cache  # rendered and loaded once per process, not at every batch
def _library() -> ctypes.CDLL:
    from ..runtime.cc import load_library

    lib = load_library(input_kernel_source("poisson_linear.cpp.j2"), "snnc_poisson_linear")
    for fn in (lib.snnc_poisson_linear_fwd, lib.snnc_poisson_linear_bwd):
        fn.restype = _I64
        fn.argtypes = [_P, _I64, _I64, _I64, _P, _U64, _U64, _U64, _P, _I64, _P, ctypes.c_int]
    return lib


class _PoissonLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, bias, x, index, T, rng):
        n, d = x.shape
        out = torch.empty(T, n, weight.shape[0])
        wt = weight.detach().t().contiguous()
        bad = _library().snnc_poisson_linear_fwd(x.data_ptr(), n, d, T, index.data_ptr(), *rng, wt.data_ptr(),
                                                 weight.shape[0], out.data_ptr(), torch.get_num_threads())
        if bad >= 0:
            _raise_range(x.reshape(-1)[bad].item(), bad // d, bad % d)
        ctx.save_for_backward(x, index)
        ctx.T, ctx.rng, ctx.has_bias = T, rng, bias is not None
        return out if bias is None else out + bias

    @staticmethod
    def backward(ctx, grad):
        x, index = ctx.saved_tensors
        n, d = x.shape
        g = grad.float().contiguous()
        dwt = torch.zeros(d, g.shape[-1])
        _library().snnc_poisson_linear_bwd(x.data_ptr(), n, d, ctx.T, index.data_ptr(), *ctx.rng, g.data_ptr(),
                                           g.shape[-1], dwt.data_ptr(), torch.get_num_threads())
        dbias = g.sum((0, 1)) if ctx.has_bias else None
        return dwt.t(), dbias, None, None, None, None


def poisson_linear(images: torch.Tensor, linear: nn.Linear, T: int, seed: int, index: torch.Tensor,
                   epoch: int = 0, stream: int = 0) -> torch.Tensor:
    """`linear(flatten(poisson(images, T, seed, index, epoch, stream=stream)))` without the spikes: [T, N, out]."""
    images, index = _check_args(images, T, index)
    x = images.detach().float().reshape(images.shape[0], -1).contiguous()
    if x.shape[1] != linear.in_features:
        raise ValueError(f"poisson_linear: {x.shape[1]} pixels for a linear layer of {linear.in_features} inputs")
    idx = index.to(torch.int64).contiguous()
    return _PoissonLinear.apply(linear.weight, linear.bias, x, idx, T, _u64(seed, stream, epoch))


class _Images(nn.Module):
    """Stands for the flatten node while the fused head runs: passes the images on."""

    def seq(self, x):
        return x

    step = forward = seq


class _PoissonHead(nn.Module):
    """Stands for the first linear layer: `poisson_linear` on the images, with the layer's own parameters."""

    def __init__(self, linear: nn.Linear, T, seed, index, epoch, stream):
        super().__init__()
        self.linear, self.args = linear, (T, seed, index, epoch, stream)

    def seq(self, images):
        return poisson_linear(images, self.linear, *self.args)

    step = forward = seq


@contextmanager
def fused_head(model: nn.Module, head: tuple[str, str], T, seed, index, epoch, stream):
    """Run `model(images)` with its flatten -> linear head replaced by the fused Poisson + linear kernel."""
    net = getattr(model, "module", model)
    flatten, linear = head
    layers_of = lambda name: net.node(name.rsplit(".", 1)[0]) if "." in name else net.layers  # noqa: E731
    old = net.node(flatten), net.node(linear)
    layers_of(flatten)[flatten.rsplit(".", 1)[-1]] = _Images()
    layers_of(linear)[linear.rsplit(".", 1)[-1]] = _PoissonHead(old[1], T, seed, index, epoch, stream)
    try:
        yield
    finally:
        layers_of(flatten)[flatten.rsplit(".", 1)[-1]] = old[0]
        layers_of(linear)[linear.rsplit(".", 1)[-1]] = old[1]
