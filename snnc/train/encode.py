"""Input encoders: images in [0, 1] -> spike trains [T, N, ...].

`poisson` is the hot path of rate-coded training (T * N * D Bernoulli draws per
batch). It is a fused C++ kernel with a counter-based RNG: the spike of pixel
`j` at step `t` of dataset sample `index[n]` in epoch `epoch` is a pure function
of (seed, stream, epoch, index[n], t, j). Spikes therefore do not depend on
batch composition, thread count or device, and a run can be resumed mid-epoch
with identical spikes.

RNG: a per-sample 64-bit key is derived by chaining SplitMix64's finaliser over
(seed, stream, epoch, index); the draw for counter c = t * D + j is
`mix64(key + (c + 1) * GAMMA)`, i.e. element c of the SplitMix64 sequence that
starts at `key`. Its top 24 bits u (uniform on 0 .. 2^24 - 1) give a spike iff
u < ceil(x * 2^24), so P(spike) = ceil(x * 2^24) / 2^24: x up to 2^-24, exactly 0
for x == 0 and exactly 1 for x == 1 (torch's `rand() <= x` differs only in
firing with probability 2^-24 at x == 0).

Pixels at exactly 0 or 1 need no draw; MNIST is ~80% such pixels, so the kernel
draws only for the rest and copies a precomputed row for the others.

On CUDA the same hash runs as torch integer ops, giving bit-identical spikes.
"""
from __future__ import annotations

import ctypes
import functools
import torch

from ..compiler.encoders import ENCODERS  # noqa: F401 (public API: the table)
from ..compiler.source import SnncError


_GAMMA = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_SEED_SALT = 0x5EED5EED5EED5EED

def input_kernel_source(template: str) -> str:
    """The C++ of a host input kernel (`templates/poisson.cpp.j2`, `poisson_linear.cpp.j2`)."""
    from ..compiler.templating import render

    return render(template)


_U64 = ctypes.c_uint64
_I64 = ctypes.c_int64
_P = ctypes.c_void_p


@functools.cache  # rendered and loaded once per process, not at every batch
def _library() -> ctypes.CDLL:
    from ..runtime.cc import load_library

    lib = load_library(input_kernel_source("poisson.cpp.j2"), "snnc_poisson")
    for fn in (lib.snnc_poisson_u8, lib.snnc_poisson_f32):
        fn.restype = _I64
        fn.argtypes = [_P, _I64, _I64, _I64, _P, _U64, _U64, _U64, _P, ctypes.c_int]
    lib.snnc_key.restype = _U64
    lib.snnc_key.argtypes = [_U64, _U64, _U64, _U64]
    return lib


def poisson(
    images: torch.Tensor,
    T: int,
    seed: int,
    index: torch.Tensor,
    epoch: int = 0,
    *,
    stream: int = 0,
    dtype: torch.dtype = torch.uint8,
    threads: int | None = None,
    out: torch.Tensor | None = None,
    host: bool = True,
) -> torch.Tensor:
    """Poisson (Bernoulli-per-step) rate code: spike[t, n, ...] = u(seed, stream, epoch, index[n], t, pixel) < x.

    images: float [N, ...] in [0, 1]; index: int64 [N] dataset sample ids. `stream`
    separates e.g. the training and test sets. Returns `dtype` [T, N, ...] of 0/1
    (uint8 by default; float32 writes the network's input dtype directly).
    `out`, a contiguous CPU tensor of that shape and dtype, is filled and returned
    instead of allocating (reusing one buffer avoids page faults on every batch).
    `host=False` draws the same spikes with torch integer operations (no C++ compiler needed).
    """
    images, index = _check_args(images, T, index)
    if images.device.type != "cpu" or not host:
        return _poisson_torch(images, T, seed, index, epoch, stream).to(dtype)
    if dtype not in (torch.uint8, torch.float32):
        return poisson(images, T, seed, index, epoch, stream=stream).to(dtype)
    x = images.detach().float().contiguous()
    idx = index.to(torch.int64).contiguous()
    n, d = x.shape[0], x[0].numel() if x.shape[0] else 0
    out = _output(out, (T, *x.shape), dtype)
    if out.numel() == 0:
        return out
    fn = _library().snnc_poisson_u8 if dtype == torch.uint8 else _library().snnc_poisson_f32
    bad = fn(x.data_ptr(), n, d, T, idx.data_ptr(), *_u64(seed, stream, epoch), out.data_ptr(),
             threads or torch.get_num_threads())
    if bad >= 0:
        _raise_range(x.reshape(-1)[bad].item(), bad // d, bad % d)
    return out


def _output(out: torch.Tensor | None, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    if out is None:
        return torch.empty(shape, dtype=dtype)
    if tuple(out.shape) != shape or out.dtype != dtype or out.device.type != "cpu" or not out.is_contiguous():
        raise SnncError(f"poisson out= must be a contiguous CPU {dtype} tensor of shape {shape}")
    return out


def direct(images: torch.Tensor, T: int) -> torch.Tensor:
    """The image itself at every step: [T, N, ...] (an expanded view; do not write into it)."""
    return images.unsqueeze(0).expand(T, *images.shape)


def latency(images: torch.Tensor, T: int, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """Latency (time-to-first-spike) code: one spike per pixel at t = round((T - 1) * (1 - x)).

    Brighter pixels fire earlier (x == 1 at t = 0). A pixel at exactly 0 never
    fires (SpikingJelly's linear LatencyEncoder fires it at T - 1); a black
    background carrying spikes would only add noise.
    """
    _check_range(images, "latency")
    t_fire = torch.round((T - 1) * (1.0 - images.float()))
    steps = torch.arange(T, device=images.device).view(T, *([1] * images.dim()))
    return ((steps == t_fire) & (images > 0)).to(dtype)


def rows(images: torch.Tensor, T: int) -> torch.Tensor:
    """Sequential MNIST, one image row per step: [N, C, H, W] -> [H, N, C*W] (T = H)."""
    n, c, h, w = images.shape
    return images.permute(2, 0, 1, 3).reshape(h, n, c * w)


def pixels(images: torch.Tensor, T: int) -> torch.Tensor:
    """Pixel-by-pixel sequential MNIST, one pixel (all channels) per step: [N, C, H, W] -> [H*W, N, C]."""
    n, c, h, w = images.shape
    return images.reshape(n, c, h * w).permute(2, 0, 1)


PERMUTATION_SEED = 1234  # the permuted variant's fixed pixel order: the same in every run, as the benchmark asks


def pixels_permuted(images: torch.Tensor, T: int) -> torch.Tensor:
    """Permuted pixel-by-pixel MNIST: `pixels` in one fixed random order (torch.Generator seeded 1234)."""
    seq = pixels(images, T)
    order = torch.randperm(seq.shape[0], generator=torch.Generator().manual_seed(PERMUTATION_SEED))
    return seq[order.to(seq.device)]


def frames(x_seq: torch.Tensor, T: int) -> torch.Tensor:
    """A sequence [T, N, ...] as it is: frame t at step t (event frames, binned spikes)."""
    return x_seq


def _poisson_code(x, T, *, seed, index, epoch, stream, dtype, out, host):
    if index is None:
        index = torch.arange(x.shape[0])
    if x.device.type != "cpu" or dtype not in (torch.uint8, torch.float32):
        out = None
    return poisson(x, T, seed, index, epoch, stream=stream, dtype=dtype, out=out, host=host)


# The encoder table (snnc/compiler/encoders.py) names each row's function here; each takes (x, T) and the keyword
# arguments of `encode`, and returns the network's input [T, N, ...] in `dtype`.
_FUNCTIONS = {
    "poisson_code": _poisson_code,
    "direct": lambda x, T, dtype, **_: direct(x.to(dtype), T),
    "latency": lambda x, T, dtype, **_: latency(x, T, dtype),
    "rows": lambda x, T, dtype, **_: rows(x.to(dtype), T),
    "pixels": lambda x, T, dtype, **_: pixels(x.to(dtype), T),
    "pixels_permuted": lambda x, T, dtype, **_: pixels_permuted(x.to(dtype), T),
    "frames": lambda x, T, dtype, **_: frames(x.to(dtype), T),
}


def encode(kind: str, images: torch.Tensor, T: int, *, seed: int = 0, index: torch.Tensor | None = None,
           epoch: int = 0, stream: int = 0, dtype: torch.dtype = torch.float32,
           out: torch.Tensor | None = None, host: bool = True) -> torch.Tensor:
    """A batch (images [N, ...], or sequences [T, N, ...]) encoded as the encoder table's row `kind` says; the
    result has `dtype` (the network's input dtype). `out` is an optional reusable buffer (Poisson, CPU)."""
    row = ENCODERS.get(kind)
    if row is None:
        raise SnncError(f"unknown encoder '{kind}'", hint=f"use one of: {', '.join(ENCODERS)}")
    return _FUNCTIONS[row.function](images, T, seed=seed, index=index, epoch=epoch, stream=stream, dtype=dtype,
                                    out=out, host=host)


def _u64(*values: int) -> tuple[int, ...]:
    return tuple(int(v) & 0xFFFFFFFFFFFFFFFF for v in values)


def _check_args(images: torch.Tensor, T: int, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not images.is_floating_point():
        raise SnncError(
            f"poisson encoder needs float images in [0, 1], got dtype {images.dtype}",
            hint="convert uint8 pixels with images.float() / 255",
        )
    if T < 1:
        raise SnncError(f"T must be at least 1, got {T}")
    index = torch.as_tensor(index, device=images.device)
    if index.shape != images.shape[:1]:
        raise SnncError(f"poisson index has shape {tuple(index.shape)}, expected ({images.shape[0]},): one id per sample")
    if images.dim() > 0 and images.shape[0] and images[0].numel() * T >= 2**62:
        raise SnncError(f"poisson encoder: T * pixels = {images[0].numel() * T} is too large")
    return images, index


def _raise_range(value: float, sample: int, pixel: int):
    raise SnncError(
        f"poisson encoder got pixel value {value:g} (sample {sample}, element {pixel}) outside [0, 1]; "
        "its input is the dataset images after the model's preprocessing",
        hint="the Poisson code fires with probability x, so inputs must be normalised to [0, 1] "
        "(divide uint8 pixels by 255 and do not apply mean/std normalisation), or use the direct encoder",
    )


def _check_range(images: torch.Tensor, kind: str):
    bad = ~((images >= 0) & (images <= 1))
    if bool(bad.any()):
        flat = int(bad.reshape(-1).nonzero()[0])
        d = max(1, images[0].numel())
        if kind == "poisson":
            _raise_range(images.reshape(-1)[flat].item(), flat // d, flat % d)
        raise SnncError(
            f"{kind} encoder got pixel value {images.reshape(-1)[flat].item():g} outside [0, 1]",
            hint="normalise the images to [0, 1] or use the direct encoder",
        )


# --- the same counter-based RNG as torch integer ops (CUDA, and a reference for tests) ---

def _s64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    z = (z ^ _shr(z, 30)) * _s64(_M1)
    z = (z ^ _shr(z, 27)) * _s64(_M2)
    return z ^ _shr(z, 31)


def sample_keys(seed: int, stream: int, epoch: int, index: torch.Tensor) -> torch.Tensor:
    """Per-sample 64-bit keys (as int64 bit patterns), identical to the C++ kernel's."""
    k = _mix64(torch.tensor(_s64(seed ^ _SEED_SALT), dtype=torch.int64, device=index.device))
    k = _mix64(k + _s64(stream))
    k = _mix64(k + _s64(epoch))
    return _mix64(k + index.to(torch.int64))


def _poisson_torch(images, T, seed, index, epoch, stream) -> torch.Tensor:
    _check_range(images, "poisson")
    n = images.shape[0]
    d = images[0].numel() if n else 0
    x = images.reshape(n, d).float()
    thr = torch.ceil(x * 16777216.0).to(torch.int64)
    key = sample_keys(seed, stream, epoch, index).view(1, n, 1)
    counter = torch.arange(T * d, device=images.device, dtype=torch.int64).view(T, 1, d) + 1
    u = _shr(_mix64(key + counter * _s64(_GAMMA)), 40)
    return (u < thr.unsqueeze(0)).view(T, *images.shape)
