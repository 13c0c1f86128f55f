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

import torch
from torch import nn

from .encode import RNG_CPP, _check_args, _raise_range, _u64

_CPP = RNG_CPP + r"""
struct Prepared {
    std::vector<uint32_t> thr;     // [N, D] thresholds
    std::vector<int32_t> inner;    // [N, D] per sample: pixels strictly inside (0, 1), ascending
    std::vector<uint32_t> inner_thr;  // [N, D] their thresholds, in the same order
    std::vector<int64_t> count;    // [N]
    std::vector<uint64_t> key;     // [N]
    int64_t bad = -1;
};

static void prepare(Prepared& p, const float* x, int64_t N, int64_t D, const int64_t* index,
                    uint64_t seed, uint64_t stream, uint64_t epoch, int threads) {
    p.thr.assign(N * D, 0); p.inner.assign(N * D, 0); p.inner_thr.assign(N * D, 0);
    p.count.assign(N, 0); p.key.assign(N, 0);
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t n = 0; n < N; ++n) {
        int64_t c = 0;
        for (int64_t j = 0; j < D; ++j) {
            int64_t th = threshold(x[n * D + j]);
            if (th < 0) {
                #pragma omp critical
                { if (p.bad < 0 || n * D + j < p.bad) p.bad = n * D + j; }
                th = 0;
            }
            p.thr[n * D + j] = (uint32_t)th;
            if (th != 0 && th != ONE) {
                p.inner[n * D + c] = (int32_t)j;
                p.inner_thr[n * D + c++] = (uint32_t)th;
            }
        }
        p.count[n] = c;
        p.key[n] = sample_key(seed, stream, epoch, (uint64_t)index[n]);
    }
}

// y[t, n, :] = sum over pixels j firing at (t, n) of wt[j, :]   (wt = weight^T, [D, O])
extern "C" int64_t snnc_poisson_linear_fwd(const float* x, int64_t N, int64_t D, int64_t T, const int64_t* index,
                                           uint64_t seed, uint64_t stream, uint64_t epoch,
                                           const float* wt, int64_t O, float* y, int threads) {
    Prepared p;
    prepare(p, x, N, D, index, seed, stream, epoch, threads);
    if (p.bad >= 0) return p.bad;
    std::vector<float> base(N * O, 0.0f);  // the pixels at 1 fire at every step
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t n = 0; n < N; ++n) {
        float* b = &base[n * O];
        for (int64_t j = 0; j < D; ++j) {
            if (p.thr[n * D + j] != ONE) continue;
            const float* w = wt + j * O;
            #pragma omp simd
            for (int64_t o = 0; o < O; ++o) b[o] += w[o];
        }
    }
    #pragma omp parallel num_threads(threads)
    {
        std::vector<uint8_t> bits(D);
        std::vector<int32_t> fired(D);
        #pragma omp for collapse(2) schedule(static)
        for (int64_t t = 0; t < T; ++t) {
            for (int64_t n = 0; n < N; ++n) {
                float* acc = y + (t * N + n) * O;
                std::memcpy(acc, &base[n * O], O * sizeof(float));
                const uint64_t k = p.key[n];
                const int32_t* js = &p.inner[n * D];
                const uint32_t* th = &p.inner_thr[n * D];
                const int64_t c = p.count[n];
                // draw (vectorised), compact without branches, then add the rows that fired in ascending j
                #pragma omp simd
                for (int64_t m = 0; m < c; ++m) bits[m] = fires(k, t, D, js[m], th[m]);
                int64_t nf = 0;
                for (int64_t m = 0; m < c; ++m) { fired[nf] = js[m]; nf += bits[m]; }
                for (int64_t f = 0; f < nf; ++f) {
                    const float* w = wt + (int64_t)fired[f] * O;
                    #pragma omp simd
                    for (int64_t o = 0; o < O; ++o) acc[o] += w[o];
                }
            }
        }
    }
    return -1;
}

// dwt[j, :] = sum over (t, n) where pixel j fires of g[t, n, :]; each thread owns a range of pixels.
extern "C" int64_t snnc_poisson_linear_bwd(const float* x, int64_t N, int64_t D, int64_t T, const int64_t* index,
                                           uint64_t seed, uint64_t stream, uint64_t epoch,
                                           const float* g, int64_t O, float* dwt, int threads) {
    Prepared p;
    prepare(p, x, N, D, index, seed, stream, epoch, threads);
    if (p.bad >= 0) return p.bad;
    std::vector<float> gsum(N * O, 0.0f);  // sum over t, for the pixels that always fire
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t n = 0; n < N; ++n)
        for (int64_t t = 0; t < T; ++t) {
            const float* gt = g + (t * N + n) * O;
            #pragma omp simd
            for (int64_t o = 0; o < O; ++o) gsum[n * O + o] += gt[o];
        }
    #pragma omp parallel num_threads(threads)
    {
        std::vector<uint8_t> bits(T);
        std::vector<int32_t> fired(T);
        #pragma omp for schedule(dynamic, 8)
        for (int64_t j = 0; j < D; ++j) {
            float* d = dwt + j * O;
            for (int64_t n = 0; n < N; ++n) {
                const uint32_t th = p.thr[n * D + j];
                if (th == 0) continue;
                if (th == ONE) {
                    #pragma omp simd
                    for (int64_t o = 0; o < O; ++o) d[o] += gsum[n * O + o];
                    continue;
                }
                const uint64_t k = p.key[n];
                #pragma omp simd
                for (int64_t t = 0; t < T; ++t) bits[t] = fires(k, t, D, j, th);
                int64_t nf = 0;
                for (int64_t t = 0; t < T; ++t) { fired[nf] = (int32_t)t; nf += bits[t]; }
                for (int64_t f = 0; f < nf; ++f) {
                    const float* gt = g + ((int64_t)fired[f] * N + n) * O;
                    #pragma omp simd
                    for (int64_t o = 0; o < O; ++o) d[o] += gt[o];
                }
            }
        }
    }
    return -1;
}
"""

_I64, _U64, _P = ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p


def _library() -> ctypes.CDLL:
    from ..runtime.cc import load_library

    lib = load_library(_CPP, "snnc_poisson_linear")
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


def split_head(net: nn.Module) -> tuple[nn.Linear, nn.Module] | None:
    """If the network starts with flatten -> linear, return (that linear layer, the rest of the network)."""
    layers = getattr(net, "layers", None)
    if not isinstance(layers, nn.Sequential) or len(layers) < 3:
        return None
    if isinstance(layers[0], nn.Flatten) and isinstance(layers[1], nn.Linear):
        return layers[1], layers[2:]
    return None
