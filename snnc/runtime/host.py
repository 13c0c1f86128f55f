"""The `cpp` backend: the generated host C++ kernels, compiled once per source and called through ctypes.

ctypes releases the GIL for the call; the kernels parallelise with OpenMP over `torch.get_num_threads()`
threads. Computation is float32 whatever the input dtype (float16, bfloat16 and float64 inputs are
converted; outputs come back in the input's dtype). The forward saves only the charged values H[t] of
`plan.saved`; spikes are recomputed from H in the backward.
"""
from __future__ import annotations

import ctypes
import sys

import torch

from ..compiler import kernels as kernel_source
from ..compiler.neuron import Plan
from ..compiler.renderers import CKernels
from ..compiler.source import SnncError
from .cc import load_library

__all__ = ["HostKernels", "host_kernels"]

_CTYPES = {"double": ctypes.c_double, "int64": ctypes.c_longlong, "int": ctypes.c_int}
_HUGE = 1 << 21  # transparent huge page size on x86-64 and aarch64 (4 KiB base pages)


def _ctype(p: kernel_source.KernelParam):
    return ctypes.c_void_p if p.pointer else _CTYPES[p.base]


def _find_madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
        fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        fn.restype = ctypes.c_int
        return fn
    except (OSError, AttributeError):
        return None


_madvise = _find_madvise()


def _empty(shape) -> torch.Tensor:
    """torch.empty (fp32, CPU), asking Linux for transparent huge pages on large buffers.

    A fresh large allocation is mmap'ed and first-touched by the kernel: with 4 KiB pages that is one page
    fault per 4 KiB (tens of ms for 100 MB); MADV_HUGEPAGE makes it one per 2 MiB. Advisory only.
    """
    t = torch.empty(shape, dtype=torch.float32)
    nbytes = t.numel() * 4
    if _madvise is not None and nbytes >= 4 * _HUGE:
        start = (t.data_ptr() + _HUGE - 1) & ~(_HUGE - 1)
        end = (t.data_ptr() + nbytes) & ~(_HUGE - 1)
        if end > start:
            _madvise(start, end - start, 14)  # MADV_HUGEPAGE
    return t


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float32).contiguous()


class HostKernels:
    """One plan's compiled forward and backward, with the parameter lists their arguments are built from."""

    def __init__(self, renderer: CKernels, p: Plan):
        self.plan = p
        self.spec = renderer.spec(p)
        (self.source,) = renderer.render(p).values()
        lib = load_library(self.source, f"snnc_{p.neuron.name}", kernel_source.HOST_FLAGS)
        self._lib = lib  # keep the library alive
        self._forward = lib.snnc_forward
        self._forward.argtypes = [_ctype(q) for q in self.spec.forward_params]
        self._forward.restype = None
        self._backward = lib.snnc_backward
        self._backward.argtypes = [_ctype(q) for q in self.spec.backward_params]
        self._backward.restype = None

    @staticmethod
    def arguments(params, tensors: dict, scalars: dict, T: int, N: int) -> list:
        """Call arguments in signature order: tensors by (role, key), scalars by name; missing optional -> NULL."""
        out = []
        for q in params:
            if q.role == "scalar":
                out.append(scalars[q.key])
            elif q.role == "T":
                out.append(T)
            elif q.role == "N":
                out.append(N)
            elif q.role == "nthreads":
                out.append(max(1, torch.get_num_threads()))
            else:
                t = tensors.get((q.role, q.key))
                out.append(None if t is None else t.data_ptr())
        return out

    def forward(self, x, inits, learn, scalars, need_saved):
        p = self.plan
        _check("x_seq", x)
        xf = _f32(x)
        shape = xf.shape[1:]
        i32 = [_f32(s.expand(shape)) for s in inits]
        l32 = [_f32(t.reshape(())) for t in learn]
        T, N = xf.shape[0], xf[0].numel() if xf.shape[0] else 0
        out = _empty(xf.shape)
        finals = [torch.empty_like(s) for s in i32]
        saved = [_empty(xf.shape) for _ in p.saved] if need_saved else []
        tensors = {("x", None): xf, ("spike", None): out,
                   **{("init", s): t for s, t in zip(p.states, i32)},
                   **{("final", s): t for s, t in zip(p.states, finals)},
                   **{("saved", s): t for s, t in zip(p.saved, saved)},
                   **{("learnable", l): t for l, t in zip(p.learnables, l32)}}
        if T > 0 and N > 0:
            self._forward(*self.arguments(self.spec.forward_params, tensors, dict(zip(p.scalars, scalars)), T, N))
        else:
            finals = [s.clone() for s in i32]
        return out.to(x.dtype), [f.to(s.dtype) for f, s in zip(finals, inits)], saved

    def backward(self, gout, gfinals, saved, x, inits, learn, scalars):
        p = self.plan
        xf = _f32(x)
        shape = xf.shape[1:]
        T, N = xf.shape[0], xf[0].numel() if xf.shape[0] else 0
        i32 = [_f32(s.expand(shape)) for s in inits]
        gx = _empty(xf.shape)
        ginits = [torch.empty(shape, dtype=torch.float32) for _ in p.states]
        glearn = [torch.zeros((), dtype=torch.float32) for _ in p.learnables]
        tensors = {("gspike", None): _f32(gout), ("x", None): xf, ("gx", None): gx,
                   **{("gfinal", s): _f32(g) for s, g in zip(p.states, gfinals)},
                   **{("saved", s): t for s, t in zip(p.saved, saved)},
                   **{("init", s): t for s, t in zip(p.states, i32)},
                   **{("learnable", l): _f32(t.reshape(())) for l, t in zip(p.learnables, learn)},
                   **{("ginit", s): g for s, g in zip(p.states, ginits)},
                   **{("glearn", l): g for l, g in zip(p.learnables, glearn)}}
        if T > 0 and N > 0:
            self._backward(*self.arguments(self.spec.backward_params, tensors, dict(zip(p.scalars, scalars)), T, N))
        else:
            ginits = [_f32(g.expand(shape)).clone() for g in gfinals]
        return gx.to(x.dtype), [g.to(s.dtype) for g, s in zip(ginits, inits)], glearn


_KERNELS: dict = {}


def host_kernels(renderer: CKernels, p: Plan) -> HostKernels:
    """Compiled kernels for a plan, once per process (and on disk by source hash)."""
    hit = _KERNELS.get(id(p))
    if hit is None or hit.plan is not p:
        hit = _KERNELS[id(p)] = HostKernels(renderer, p)
    return hit


def _check(name: str, t: torch.Tensor) -> None:
    if t.device.type != "cpu":
        raise SnncError(f"the 'cpp' backend runs on the CPU, but {name} is on {t.device}",
                        hint="use backend='cupy' for CUDA tensors, or move the model to the CPU")
    if not t.is_floating_point():
        raise SnncError(f"the 'cpp' backend needs floating-point tensors; {name} has dtype {t.dtype}",
                        hint="convert the input with .float()")
