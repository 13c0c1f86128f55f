"""Host backend: the generated C++ kernels, compiled once per source and called through ctypes.

ctypes releases the GIL for the call; the kernels parallelise with OpenMP over
`torch.get_num_threads()` threads. The forward saves only the charged values
H[t] of `plan.saved` (fp32); spikes are recomputed from H in the backward.
"""
from __future__ import annotations

import ctypes
import math
import sys
import threading
import weakref

import torch

from ..compiler import kernels
from ..compiler.derive import Plan
from ..compiler.source import SnncError
from .cc import load_library
from .fused import cached, forward_tensors, unpack_saved

__all__ = ["HostKernels", "host_kernels", "multi_step", "clear_buffer_pool"]

_CTYPES = {"double": ctypes.c_double, "int64": ctypes.c_longlong, "int": ctypes.c_int}


def _ctype(p: kernels.KernelParam):
    return ctypes.c_void_p if p.pointer else _CTYPES[p.base]


class HostKernels:
    """One plan's compiled forward/backward, with the parameter lists their arguments are built from."""

    def __init__(self, p: Plan):
        self.plan = p
        self.spec = kernels.spec(p, host=True)
        self.source = kernels.render_host(p)
        lib = load_library(self.source, f"snnc_{p.neuron.name}", kernels.HOST_FLAGS)
        self._lib = lib  # keep the library alive
        self.forward = lib.snnc_forward
        self.forward.argtypes = [_ctype(q) for q in self.spec.forward_params]
        self.forward.restype = None
        self.backward = lib.snnc_backward
        self.backward.argtypes = [_ctype(q) for q in self.spec.backward_params]
        self.backward.restype = None

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


_KERNELS: dict = {}
_LOCK = threading.Lock()
_HUGE = 1 << 21  # transparent huge page size on x86-64 and aarch64 (4 KiB base pages)


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


def _empty(shape, like: torch.Tensor | None = None) -> torch.Tensor:
    """torch.empty (fp32, CPU), asking Linux for transparent huge pages on large buffers.

    A fresh large allocation is mmap'ed and first-touched by the kernel: with 4 KiB pages that is one page
    fault per 4 KiB (tens of ms for 100 MB); MADV_HUGEPAGE makes it one per 2 MiB. Advisory only: without THP
    (or with THP 'never') nothing changes.
    """
    t = torch.empty(shape, dtype=torch.float32)
    nbytes = t.numel() * 4
    if _madvise is not None and nbytes >= 4 * _HUGE:
        start = (t.data_ptr() + _HUGE - 1) & ~(_HUGE - 1)
        end = (t.data_ptr() + nbytes) & ~(_HUGE - 1)
        if end > start:
            _madvise(start, end - start, 14)  # MADV_HUGEPAGE
    return t


class _BufferPool:
    """Recycles the buffers that hold H[t] for the backward.

    A fresh 100 MB buffer costs a page fault per page (and the OS zeroes it); a recycled one costs nothing.
    A buffer comes back when the autograd node that saved it is freed - after the backward and once the
    graph's outputs are gone - so it is never handed out while a backward could still read it. At most
    MAX_PER_SIZE idle buffers per size are kept (`clear_buffer_pool()` drops them); small ones are not pooled.
    """

    MAX_PER_SIZE = 2
    MIN_BYTES = 4 << 20

    def __init__(self):
        self._free: dict[int, list[torch.Tensor]] = {}
        self._lock = threading.Lock()

    def take(self, shape) -> torch.Tensor:
        n = math.prod(shape)
        if n * 4 >= self.MIN_BYTES:
            with self._lock:
                idle = self._free.get(n)
                if idle:
                    return idle.pop().view(shape)
        return _empty(shape)

    def give(self, t: torch.Tensor) -> None:
        if t.numel() * 4 < self.MIN_BYTES:
            return
        with self._lock:
            idle = self._free.setdefault(t.numel(), [])
            if len(idle) < self.MAX_PER_SIZE:
                idle.append(t.view(-1))

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


_POOL = _BufferPool()


def clear_buffer_pool() -> None:
    """Release the idle saved-state buffers the host backend keeps for reuse."""
    _POOL.clear()


def host_kernels(p: Plan) -> HostKernels:
    """Compiled kernels for a plan, cached per (neuron, config) for the process (and on disk by source hash)."""
    return cached(_KERNELS, _LOCK, (id(p.neuron), p.config), p.neuron, lambda: HostKernels(p))


def _forward(ctx, k: HostKernels, scalars: dict, x, rest, need_grad: bool):
    p = k.plan
    S = len(p.states)
    inits, learn = rest[:S], rest[S:]
    T, N = x.shape[0], x[0].numel() if x.shape[0] else x.numel()
    spike = _empty(x.shape)
    finals = tuple(torch.empty_like(s) for s in inits)
    saved = {s: _POOL.take(x.shape) for s in p.saved} if need_grad else {}
    tensors = forward_tensors(p, x, spike, inits, finals, saved, learn)
    if T > 0 and N > 0:
        k.forward(*HostKernels.arguments(k.spec.forward_params, tensors, scalars, T, N))
    else:
        finals = tuple(s.clone() for s in inits)
    if ctx is not None:
        for t in saved.values():  # back to the pool when this autograd node is freed
            weakref.finalize(ctx, _POOL.give, t)
        ctx.k, ctx.scalars, ctx.T, ctx.N = k, scalars, T, N
        ctx.save_for_backward(*saved.values(), x if p.needs_x else None,
                              *(t if s in k.spec.prev_states else None for s, t in zip(p.states, inits)), *learn)
    return (spike, *finals)


class _HostFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, k: HostKernels, scalars: dict, x, *rest):
        return _forward(ctx, k, scalars, x, rest, True)

    @staticmethod
    def backward(ctx, gspike, *gfinals):
        k: HostKernels = ctx.k
        p = k.plan
        saved, x, inits, learn = unpack_saved(p, ctx.saved_tensors)
        T, N = ctx.T, ctx.N
        like = next(iter(saved.values()))
        gspike = torch.zeros_like(like) if gspike is None else gspike.to(torch.float32).contiguous()
        gfinals = [None if g is None else g.to(torch.float32).contiguous() for g in gfinals]
        gx = _empty(like.shape)
        shape = like.shape[1:]
        ginits = tuple(torch.empty(shape, dtype=torch.float32) for _ in p.states)
        glearn = tuple(torch.zeros((), dtype=torch.float32) for _ in p.learnables)
        tensors = {("gspike", None): gspike, ("x", None): x, ("gx", None): gx,
                   **{("gfinal", s): g for s, g in zip(p.states, gfinals)},
                   **{("saved", s): t for s, t in saved.items()},
                   **{("init", s): t for s, t in zip(p.states, inits) if t is not None},
                   **{("learnable", l): t for l, t in zip(p.learnables, learn)},
                   **{("ginit", s): g for s, g in zip(p.states, ginits)},
                   **{("glearn", l): g for l, g in zip(p.learnables, glearn)}}
        if T > 0 and N > 0:
            k.backward(*HostKernels.arguments(k.spec.backward_params, tensors, ctx.scalars, T, N))
        else:
            ginits = tuple(torch.zeros(shape) if g is None else g for g in gfinals)
        return (None, None, gx, *ginits, *glearn)


def _check(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor):
        raise SnncError(f"the 'cpp' backend expects tensors; {name} is {type(t).__name__}")
    if t.device.type != "cpu":
        raise SnncError(f"the 'cpp' backend runs on the CPU, but {name} is on {t.device}",
                        hint="use backend='cupy' for CUDA tensors, or move the model to the CPU")
    if not t.is_floating_point():
        raise SnncError(f"the 'cpp' backend needs floating-point tensors; {name} has dtype {t.dtype}",
                        hint="convert the input with .float()")


def multi_step(p: Plan, x_seq: torch.Tensor, states: tuple, scalars: dict, learnables: tuple = ()):
    """Fused forward over x_seq [T, ...] on the CPU, differentiable; returns (spike_seq, final_states).

    Computation is fp32; spike_seq has x_seq's dtype, the final states are fp32.
    """
    from .fused import scalar_args

    _check("x_seq", x_seq)
    if x_seq.dim() < 1:
        raise SnncError("x_seq must have a time dimension first: [T, ...]")
    for s, t in zip(p.states, states):
        _check(f"state '{s}'", t)
    for l, t in zip(p.learnables, learnables):
        _check(f"learnable '{l}'", t)
    k = host_kernels(p)
    values = dict(zip(p.scalars, scalar_args(p, scalars)))
    dtype = x_seq.dtype
    x = x_seq.to(torch.float32).contiguous()
    shape = x.shape[1:]
    inits = tuple(s.to(torch.float32).expand(shape).contiguous() for s in states)
    learn = tuple(t.to(torch.float32).reshape(()).contiguous() for t in learnables)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, *inits, *learn)):
        spike, *finals = _HostFunction.apply(k, values, x, *inits, *learn)
    else:  # inference: nothing to save
        spike, *finals = _forward(None, k, values, x, inits + learn, False)
    return spike.to(dtype), tuple(finals)
