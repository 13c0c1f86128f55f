"""The generated CUDA kernels, run on the CPU: their .cu source compiled as host C++ against a small shim
(tests/cuda_emu/snnc_cuda_emu.h: `__global__`, blockIdx/threadIdx/blockDim/gridDim as globals, float4,
uint2, __half as _Float16, __stcs, ...) and launched by a loop over every (block, thread), through the
CUDA runtime's own Python (`snnc.runtime.cuda.CudaKernels`: the choice of entry point, the launch shape,
the learnable partial sums and their reduction), against eager PyTorch on the CPU.

This works because the kernels never communicate inside a block: a thread reads and writes only its own
neurons, so running the threads one after another, in any order, computes what the GPU computes. It is
what lets a change to the kernels' loop structure land without a GPU; tests/test_kernels_gpu.py checks
the CUDA arithmetic itself where a GPU is present.

Covered: every neuron of snnc/lib/neurons.snn and the host tests' awkward neurons; hard/soft reset x
detach_reset and the membrane as the output; fp32 and fp16 I/O; both entry points (consecutive lanes with
vector accesses, and lanes a block apart for any N and alignment); T = 1, T below, at and past a chunk and
not a multiple of it; N not a multiple of the lanes; 64-, 128- and 256-thread blocks. Spikes must be
identical to eager, states and gradients within verify's tolerances; threads run forwards and backwards
must agree bit for bit, and nothing may be written outside the arrays.
"""
from __future__ import annotations

import ctypes
import dataclasses
from pathlib import Path

import pytest
import torch

from snnc.compiler import ir, kernels
from snnc.compiler.renderers import CUDA, CUDA_LAUNCH
from snnc.compiler.assemble import load_module
from snnc.compiler.derive import plan
from snnc.runtime.cc import compile_library
from snnc.runtime.cuda import ENTRY_POINTS, CudaKernels, launch_shape
from snnc.runtime.plans import scalar_args
from snnc.runtime.verify import compare, configs, default_values, learnable_defaults, random_input

from conftest import MODELS, TESTS, needs_cxx

pytestmark = needs_cxx

SHIM = TESTS / "cuda_emu"
# -O1: the kernels are unrolled 16-fold; the emulation needs correct code, not fast code, and compiles ~100 of them
EMU_FLAGS = ("-O1", "-std=c++17", "-ffp-contract=off", "-fno-strict-aliasing", "-fno-math-errno", "-shared",
             "-fPIC", "-w", f"-I{SHIM}")
LIB = load_module(MODELS / "neurons.snn")[0]
CHUNK, LANES = CUDA_LAUNCH.chunk, CUDA_LAUNCH.lanes
# [T, ...]: T = 1, T < chunk, T = chunk, and several chunks with a remainder (one step past, one short);
# N off the lanes (lanes a block apart) and N a multiple of them (vector accesses) for both T = chunk and
# several chunks; N past one 256-thread block of lanes.
SHAPES = ((1, 7), (3, 3, 37), (CHUNK, 4, 40), (2 * CHUNK + 1, 1032), (3 * CHUNK - 1, 2, 2053))


# ------------------------------------------------------------------ the emulator
_CTYPE = {"double": ctypes.c_double, "int64": ctypes.c_longlong, "int": ctypes.c_int}
_CBASE = {"double": "double", "int64": "long long", "int": "int"}


def _launcher(namespace: str, entry: str, params) -> str:
    """extern "C" emu_<entry>(grid, block, reverse, <the kernel's arguments>): every thread of the grid, in
    order or in reverse, with blockIdx/threadIdx set as CUDA would."""
    decl, call = [], []
    for q in params:
        if q.pointer:
            base = f"{namespace}::scalar_t" if q.base == "scalar_t" else q.base
            decl.append(f"void* {q.name}")
            call.append(f"({'const ' if q.const else ''}{base}*){q.name}")
        else:
            decl.append(f"{_CBASE[q.base]} {q.name}")
            call.append(q.name)
    return f"""
extern "C" void emu_{entry}(unsigned int grid, unsigned int block, int reverse, {", ".join(decl)}) {{
    gridDim.x = grid;
    blockDim.x = block;
    const unsigned long long n = (unsigned long long)grid * block;
    for (unsigned long long k = 0; k < n; ++k) {{
        const unsigned long long id = reverse ? n - 1 - k : k;
        blockIdx.x = (unsigned int)(id / block);
        threadIdx.x = (unsigned int)(id % block);
        {namespace}::{entry}({", ".join(call)});
    }}
}}
"""


def emulator_source(k: kernels.KernelSpec, sources: dict[str, str]) -> str:
    """The shim, the generated forward and backward (each in its own namespace, as two .cu files would be
    two translation units) and a launcher per entry point."""
    parts = [(SHIM / "snnc_cuda_emu.h").read_text().replace("#pragma once\n", "")]
    for which, params in (("forward", k.forward_params), ("backward", k.backward_params)):
        parts.append(f"namespace snnc_emu_{which} {{\n{sources[which]}\n}}  // namespace snnc_emu_{which}\n")
        parts += [_launcher(f"snnc_emu_{which}", entry, params) for entry in ENTRY_POINTS[which]]
    return "\n".join(parts)


class EmulatedKernels(CudaKernels):
    """CudaKernels with the generated source compiled for the CPU and launched by a loop over the threads.
    `sms`: the SM count the launch shape is chosen for; `reverse`: run the threads last to first."""

    def __init__(self, p, dtype: str, sms: int = 132, reverse: bool = False):
        self.sms, self.reverse, self.launched = sms, reverse, []
        super().__init__(CUDA, p, dtype, torch.device("cpu"))

    def _load(self) -> dict:
        source = emulator_source(self.spec, self.sources)
        lib = ctypes.CDLL(str(compile_library(source, f"emu_{self.plan.neuron.name}_{self.dtype}", EMU_FLAGS)))
        self._lib = lib
        functions = {}
        for which, params in (("forward", self.spec.forward_params), ("backward", self.spec.backward_params)):
            for entry in ENTRY_POINTS[which]:
                fn = getattr(lib, f"emu_{entry}")
                fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_int,
                               *(ctypes.c_void_p if q.pointer else _CTYPE[q.base] for q in params)]
                fn.restype = None
                functions[entry] = fn
        return functions

    def sm_count(self) -> int:
        return self.sms

    def _check(self, x) -> None:
        pass

    def _launch(self, name, params, shape, args) -> None:
        blocks, threads = shape
        self.launched.append((name, threads))
        self._functions[name](blocks, threads, int(self.reverse), *args)


class _Run(torch.autograd.Function):
    """The kernels' forward and backward as one differentiable call, as snnc.runtime.ops wires them."""

    @staticmethod
    def forward(ctx, k, scalars, x, *rest):
        S = len(k.plan.states)
        inits, learn = list(rest[:S]), list(rest[S:])
        out, finals, saved = k.forward(x, inits, learn, scalars, True)
        ctx.k, ctx.scalars, ctx.S = k, scalars, S
        ctx.save_for_backward(x, *inits, *learn, *saved)
        return (out, *finals)

    @staticmethod
    def backward(ctx, gout, *gfinals):
        x, *rest = ctx.saved_tensors
        S, L = ctx.S, len(ctx.k.plan.learnables)
        inits, learn, saved = rest[:S], rest[S:S + L], rest[S + L:]
        gout = torch.zeros_like(x) if gout is None else gout
        gfinals = [torch.zeros_like(s) if g is None else g for g, s in zip(gfinals, inits)]
        gx, ginits, glearn = ctx.k.backward(gout.contiguous(), [g.contiguous() for g in gfinals], list(saved),
                                            x, list(inits), list(learn), ctx.scalars)
        return (None, None, gx, *ginits, *glearn)


def runner(k: EmulatedKernels, scalars: dict):
    values = scalar_args(k.plan, scalars)

    def run(x, inits, learn):
        out, *finals = _Run.apply(k, values, x, *inits, *learn)
        return out, tuple(finals)

    run.__name__ = "cuda-emulated"
    return run


# ------------------------------------------------------------------ checks
def _check_against_eager(neuron, cfg, dtype: str, shapes=SHAPES, sms: int = 132):
    p = plan(neuron, cfg)
    scalars = default_values(neuron, cfg)
    learn = learnable_defaults(neuron, scalars)
    k = EmulatedKernels(p, dtype, sms=sms)
    for i, shape in enumerate(shapes):
        x, inits = random_input(p, shape, scalars, learn, seed=i)
        if dtype == "float16":
            x = x.half().float()  # the reference sees the same rounded input
        k.launched.clear()
        res = compare(runner(k, scalars), p, x, inits, scalars, learn, dtype=dtype, seed=i)
        assert res.status == "ok", f"{neuron.name} {cfg.key()} {dtype} {shape}: {res.reason}"
        assert res.spike_mismatches == 0, f"{neuron.name} {cfg.key()} {dtype} {shape}: spikes differ"
        N = x[0].numel()
        vec = N % LANES == 0
        assert [name for name, _ in k.launched] == [ENTRY_POINTS["forward"][vec], ENTRY_POINTS["backward"][vec]]
    return k


def _cases(neurons):
    for n in neurons:
        for cfg in configs(n):
            yield n, cfg


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("neuron, cfg", list(_cases(LIB.neurons)),
                         ids=lambda v: v.name if isinstance(v, ir.Neuron) else v.key())
def test_library_neuron_matches_eager(neuron, cfg, dtype):
    _check_against_eager(neuron, cfg, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_test_neurons_match_eager(kernel_test_neurons, dtype):
    """Names that would break C, several learnables (one partial-sum buffer row each), custom surrogates."""
    for neuron, cfg in _cases(kernel_test_neurons.neurons):
        _check_against_eager(neuron, cfg, dtype, shapes=SHAPES[:2] + SHAPES[3:4])


@pytest.mark.parametrize("sms", [1, 8, 132])
@pytest.mark.parametrize("name", ["PLIF", "Izhikevich"])
def test_block_sizes(name, sms):
    """The launch shape shrinks blocks for small N; the lanes-a-block-apart layout depends on blockDim."""
    n = LIB.neuron(name)
    shapes = ((5, 3000), (6, 2999), (2, 64 * LANES * 3 + 1))
    k = _check_against_eager(n, configs(n)[0], "float32", shapes=shapes, sms=sms)
    assert k.launched, "nothing was launched"


def test_launch_shape():
    assert launch_shape(2**24, 132) == (2**22 // 256, 256)
    assert launch_shape(64 * 784, 132) == (196, 64)  # T=100 N=64x784: 49 blocks of 256 would idle 83 SMs
    assert launch_shape(1, 132) == (1, 64)
    for N in (1, 5, 1000, 4099, 2**20 + 3):
        blocks, threads = launch_shape(N, 16)
        assert blocks * threads * LANES >= N > (blocks - 1) * threads * LANES
        assert threads in (64, 128, 256)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("name", ["PLIF", "Izhikevich", "LI"])
def test_thread_order_does_not_matter(name, dtype):
    """Threads last to first give the same bits: no element is written by two threads (and no thread reads
    what another writes)."""
    n = LIB.neuron(name)
    p = plan(n)
    scalars = default_values(n, p.config)
    learn = learnable_defaults(n, scalars)
    results = []
    for reverse in (False, True):
        k = EmulatedKernels(p, dtype, sms=4, reverse=reverse)
        for shape in ((2 * CHUNK + 3, 1030), (CHUNK + 1, 1031)):
            x, inits = random_input(p, shape, scalars, learn, seed=5)
            x = x.to(getattr(torch, dtype)).requires_grad_(True)
            inits = tuple(s.clone().requires_grad_(True) for s in inits)
            lr = tuple(torch.tensor(learn[l], requires_grad=True) for l in p.learnables)
            out, finals = runner(k, scalars)(x, inits, lr)
            loss = (out.float() * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum() + sum(
                f.sum() for f in finals)
            grads = torch.autograd.grad(loss, (x, *inits, *lr))
            results.append([out, *finals, *grads])
    half = len(results) // 2
    for fwd, rev in zip(results[:half], results[half:]):
        for a, b in zip(fwd, rev):
            assert torch.equal(a, b)


@pytest.mark.parametrize("shape", [(2 * CHUNK + 1, 1032), (CHUNK + 2, 1030)])
def test_inference_skips_H(shape):
    """need_saved=False (no gradient wanted): H pointers are null and nothing else changes."""
    n = LIB.neuron("Izhikevich")
    p = plan(n)
    scalars = default_values(n, p.config)
    k = EmulatedKernels(p, "float32")
    x, inits = random_input(p, shape, scalars, {}, seed=6)
    values = scalar_args(p, scalars)
    out, finals, saved = k.forward(x, list(inits), [], values, True)
    out2, finals2, saved2 = k.forward(x, list(inits), [], values, False)
    assert saved and not saved2
    assert torch.equal(out, out2) and all(torch.equal(a, b) for a, b in zip(finals, finals2))


def _guarded(t: torch.Tensor, offset: int, guard: int = 64):
    """t's values inside a NaN-filled buffer, starting `offset` elements past a 64-element guard (an odd
    offset misaligns it for vector accesses)."""
    buf = torch.full((guard + offset + t.numel() + guard,), float("nan"), dtype=t.dtype)
    view = buf[guard + offset: guard + offset + t.numel()].view(t.shape)
    view.copy_(t)
    return buf, view


def _guards_intact(buf: torch.Tensor, view: torch.Tensor) -> bool:
    if buf is view:  # not guarded
        return True
    start = (view.data_ptr() - buf.data_ptr()) // buf.element_size()
    outside = torch.cat([buf[:start], buf[start + view.numel():]])
    return bool(torch.isnan(outside).all())


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("name", ["PLIF", "Izhikevich", "LI"])
def test_no_access_outside_the_arrays(name, offset, dtype):
    """Every array inside NaN guards: nothing written outside, and (offset 1: misaligned for the vector entry
    point, so the other one runs) the results equal those from plain tensors."""
    n = LIB.neuron(name)
    p = plan(n)
    scalars = default_values(n, p.config)
    learn = learnable_defaults(n, scalars)
    values = dict(zip(p.scalars, scalar_args(p, scalars)))
    T, N = 2 * CHUNK + 1, 4 * 64 * LANES + 8
    x, inits = random_input(p, (T, N), scalars, learn, seed=2)
    io = getattr(torch, dtype)
    k = EmulatedKernels(p, dtype, sms=2)
    g = torch.Generator().manual_seed(3)

    def plain():
        return {("x", None): x.to(io), ("spike", None): torch.zeros(T, N, dtype=io),
                **{("init", s): i.clone() for s, i in zip(p.states, inits)},
                **{("final", s): torch.zeros(N) for s in p.states},
                **{("saved", s): torch.zeros(T, N) for s in p.saved},
                **{("learnable", l): torch.tensor(learn[l]) for l in p.learnables}}

    def run(tensors, wrap):
        wrapped = {key: wrap(t) for key, t in tensors.items()}
        views = {key: v for key, (_, v) in wrapped.items()}
        k.launch("forward", views, values, T, N, launch_shape(N, k.sms))
        bwd = {("gspike", None): torch.randn(T, N, generator=g).to(io), ("gx", None): torch.zeros(T, N, dtype=io),
               **{("gfinal", s): torch.randn(N, generator=g) for s in p.states},
               **{("ginit", s): torch.zeros(N) for s in p.states}}
        blocks, threads = launch_shape(N, k.sms)
        partial = torch.zeros(len(p.learnables), blocks * threads, dtype=torch.float64)
        wrapped_b = {key: wrap(t) for key, t in bwd.items()}
        views_b = {**{key: v for key, (_, v) in wrapped_b.items()},
                   **{key: views[key] for key in views if key[0] in ("x", "init", "saved", "learnable")},
                   **{("glearn", l): partial[i] for i, l in enumerate(p.learnables)}}
        k.launch("backward", views_b, values, T, N, (blocks, threads))
        for buf, view in (*wrapped.values(), *wrapped_b.values()):
            assert _guards_intact(buf, view)
        return [views[key] for key in sorted(views, key=str) if key[0] in ("spike", "final", "saved")] + \
            [views_b[key] for key in sorted(views_b, key=str) if key[0] in ("gx", "ginit")] + [partial.sum(1)]

    g.manual_seed(3)
    expected = run(plain(), lambda t: (t, t))  # plain, aligned tensors: the vector entry point
    assert k.launched[-1][0] == "snnc_backward_vec"
    g.manual_seed(3)
    got = run(plain(), lambda t: _guarded(t, offset) if t.dim() else (t, t))
    assert k.launched[-1][0] == ("snnc_backward_vec" if offset == 0 else "snnc_backward")
    for a, b in zip(expected[:-1], got[:-1]):  # per neuron, both entry points do the same arithmetic
        assert torch.equal(a, b)
    # the learnable sums group the neurons differently (a thread's lanes): equal up to rounding
    torch.testing.assert_close(expected[-1], got[-1], rtol=1e-5, atol=1e-6)


def test_emulated_source_is_the_generated_source():
    """The emulator compiles the CUDA renderer's text unchanged (only wrapped in namespaces after the shim)."""
    p = plan(LIB.neuron("PLIF"))
    src = CUDA.render(p, "float16")
    text = emulator_source(CUDA.spec(p), src)
    assert src["forward"] in text and src["backward"] in text
