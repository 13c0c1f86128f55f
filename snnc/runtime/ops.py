"""Fused neuron layers as PyTorch custom operators: one dispatch and one autograd wiring for every backend.

`snnc::neuron_forward` runs a neuron's T steps and `snnc::neuron_backward` their BPTT, on the backend the
call names (the backend table's kernel loader builds the kernels, once per plan). Both have fake
implementations that declare their outputs' shapes and dtypes, and the forward has a registered autograd
formula, so `torch.compile` traces a network's neuron layers without graph breaks: the operators are
opaque to it, and the Python around them only reads module attributes. Eager calls go through `_Eager`, an
autograd function over the same kernels and formula: an operator's first eager call imports TorchDynamo
(1.4 s of start-up) and every call pays its dispatch.

A backend whose kernels are PyTorch operations (the table's `traced` rows: `torch`) is not hidden behind the
operator when compiled: Dynamo traces `_Eager` and the kernels themselves, and Inductor fuses each layer's
T steps, forward and BPTT backward, into its own loops. Up to `TRACED_STEPS` steps a call: the steps are
unrolled, and Inductor's compile time grows with them (first compiled step on a 2-core CPU: fc2_mnist 30 s
at T = 8 and 96 s at T = 32, lif_fc_mnist 250 s at T = 100; 10 s through the operator); longer calls use
the operator.

Kernels (`torch_kernels`, `host`, `cuda`) implement

    forward(x, inits, learn, scalars, need_saved) -> (out, finals, saved)
    backward(gout, gfinals, saved, x, inits, learn, scalars) -> (gx, ginits, glearn)

with `saved` the charged values H[t] of `plan.saved`, `finals` in the dtype of `inits`, `out` in x's dtype.
"""
from __future__ import annotations

import threading

import torch

from . import backends
from .plans import plan_for, scalar_args, spec_for, spec_of

_KERNELS: dict = {}
_LOCK = threading.Lock()
TRACED_STEPS = 16  # longest sequence whose steps torch.compile unrolls on a traced backend


def kernels(spec: str, backend: str, device: torch.device, dtype: torch.dtype):
    """The kernels of one plan on one backend, device and I/O dtype (built once per process)."""
    key = (spec, backend, device.type, device.index, dtype)
    hit = _KERNELS.get(key)
    if hit is None:
        with _LOCK:
            hit = _KERNELS.get(key)
            if hit is None:
                hit = _KERNELS[key] = backends.require(backend, device).kernels(plan_for(spec), device, dtype)
    return hit


# ------------------------------------------------------------------ the operators
@torch.library.custom_op("snnc::neuron_forward", mutates_args=())
def neuron_forward(spec: str, backend: str, x: torch.Tensor, inits: list[torch.Tensor], learn: list[torch.Tensor],
                   scalars: list[float], need_saved: bool) -> list[torch.Tensor]:
    k = kernels(spec, backend, x.device, x.dtype)
    out, finals, saved = k.forward(x, list(inits), list(learn), list(scalars), need_saved)
    return [out, *finals, *saved]


@neuron_forward.register_fake
def _(spec, backend, x, inits, learn, scalars, need_saved):
    p = plan_for(spec)
    dtype = backends.get(backend).state_dtype(x.dtype)
    saved = [x.new_empty(x.shape, dtype=dtype) for _ in p.saved] if need_saved else []
    return [torch.empty_like(x), *(torch.empty_like(s) for s in inits), *saved]


@torch.library.custom_op("snnc::neuron_backward", mutates_args=())
def neuron_backward(spec: str, backend: str, gout: torch.Tensor, gfinals: list[torch.Tensor],
                    saved: list[torch.Tensor], x: torch.Tensor, inits: list[torch.Tensor], learn: list[torch.Tensor],
                    scalars: list[float]) -> list[torch.Tensor]:
    k = kernels(spec, backend, x.device, x.dtype)
    gx, ginits, glearn = k.backward(gout, list(gfinals), list(saved), x, list(inits), list(learn), list(scalars))
    return [gx, *ginits, *glearn]


@neuron_backward.register_fake
def _(spec, backend, gout, gfinals, saved, x, inits, learn, scalars):
    return [torch.empty_like(x), *(torch.empty_like(s) for s in inits),
            *(torch.empty((), dtype=torch.float32, device=x.device) for _ in learn)]


def _setup_context(ctx, inputs, output):
    spec, backend, x, inits, learn, scalars, need_saved = inputs
    S = len(inits)
    ctx.spec, ctx.backend, ctx.scalars, ctx.S, ctx.L = spec, backend, list(scalars), S, len(learn)
    ctx.save_for_backward(x, *inits, *learn, *output[1 + S:])


def _gradients_in(ctx, grads):
    """From a forward's saved tensors and its outputs' gradients: (gout, gfinals, saved, x, inits, learn)."""
    x, *rest = ctx.saved_tensors
    S, L = ctx.S, ctx.L
    inits, learn, saved = rest[:S], rest[S:S + L], rest[S + L:]
    gout = grads[0] if grads[0] is not None else torch.zeros_like(x)
    gfinals = [g.contiguous() if g is not None else torch.zeros_like(s) for g, s in zip(grads[1:1 + S], inits)]
    return gout.contiguous(), gfinals, list(saved), x, list(inits), list(learn)


def _backward(ctx, grads):
    gout, gfinals, saved, x, inits, learn = _gradients_in(ctx, grads)
    res = neuron_backward(ctx.spec, ctx.backend, gout, gfinals, saved, x, inits, learn, ctx.scalars)
    S = ctx.S
    return None, None, res[0], list(res[1:1 + S]), list(res[1 + S:]), None, None


def _backward_kernels(ctx, grads):
    gout, gfinals, saved, x, inits, learn = _gradients_in(ctx, grads)
    return kernels(ctx.spec, ctx.backend, x.device, x.dtype).backward(gout, gfinals, saved, x, inits, learn,
                                                                        ctx.scalars)


neuron_forward.register_autograd(_backward, setup_context=_setup_context)


# ------------------------------------------------------------------ from a module
def _signature(spec: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The plan's runtime scalars and learnables, by name (a constant for torch.compile)."""
    p = plan_for(spec)
    return tuple(p.scalars), tuple(p.learnables)


# What `torch.compiler.assume_constant_result` does, without the import of Dynamo it costs (1.4 s of every
# start-up); tests/test_compile.py checks that the decorator still does exactly this.
_signature._dynamo_marked_constant = True  # type: ignore[attr-defined]


def multi_step(module, x_seq: torch.Tensor, states: tuple):
    """`support.BACKENDS.multi_step`: a generated neuron module's T steps on its backend -> (out_seq, final states)."""
    spec = spec_of(module)
    backend = module.resolved_backend(x_seq.device)
    scalar_names, learnable_names = _signature(spec)
    scalars = [float(getattr(module, n)) for n in scalar_names]
    learn = [getattr(module, n) for n in learnable_names]
    return _run(spec, backend, x_seq, states, scalars, learn)


def run_plan(p, backend: str, x_seq: torch.Tensor, states, scalars: dict, learnables=()):
    """A plan's T steps on a backend, from explicit states and values: (out_seq, final states). Differentiable."""
    return _run(spec_for(p), backend, x_seq, states, scalar_args(p, scalars), list(learnables))


def _run(spec: str, backend: str, x_seq: torch.Tensor, states, scalars: list[float], learn: list):
    inits = [s.to(x_seq.dtype) for s in states] if _in_input_dtype(backend) else list(states)
    need_saved = torch.is_grad_enabled() and (
        x_seq.requires_grad or any(s.requires_grad for s in inits) or any(p.requires_grad for p in learn))
    if torch.compiler.is_compiling() and not (
            x_seq.shape[0] <= TRACED_STEPS and _traced(spec, backend, x_seq.device, x_seq.dtype)):
        res = neuron_forward(spec, backend, x_seq, inits, learn, scalars, need_saved)
    else:  # eager: the same kernels and formula without the operator's dispatch, whose first call imports Dynamo
        res = _Eager.apply(spec, backend, scalars, need_saved, len(inits), x_seq, *inits, *learn)
    return res[0], tuple(res[1:1 + len(inits)])


def _in_input_dtype(backend: str) -> bool:
    """Whether the backend's kernels keep their states in the input's dtype (else they widen to float32)."""
    return backends.get(backend).precision == "input"


_in_input_dtype._dynamo_marked_constant = True  # type: ignore[attr-defined]


def _traced(spec: str, backend: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether torch.compile traces this backend's kernels (a `traced` row) rather than calling the operator.
    Dynamo runs this at trace time (it is marked constant): it builds the kernels, so the lookup traced next hits."""
    if not backends.get(backend).traced:
        return False
    kernels(spec, backend, device, dtype)
    return True


_traced._dynamo_marked_constant = True  # type: ignore[attr-defined]


class _Eager(torch.autograd.Function):
    """`neuron_forward` with its registered autograd formula, for eager calls."""

    @staticmethod
    def forward(ctx, spec, backend, scalars, need_saved, S, x, *tensors):
        inits, learn = list(tensors[:S]), list(tensors[S:])
        out, finals, saved = kernels(spec, backend, x.device, x.dtype).forward(x, inits, learn, scalars, need_saved)
        ctx.spec, ctx.backend, ctx.scalars, ctx.S, ctx.L = spec, backend, scalars, S, len(learn)
        ctx.save_for_backward(x, *inits, *learn, *saved)
        return (out, *finals)

    @staticmethod
    def backward(ctx, *grads):
        gx, ginits, glearn = _backward_kernels(ctx, grads)
        return (None, None, None, None, None, gx, *ginits, *glearn)


def install() -> None:
    """Make the generated modules' runtime (`support`) run on this table: its names, the fused multi-step
    pass for every row, and the default row per device type."""
    from . import support

    if support.BACKENDS.multi_step is multi_step:
        return
    support.BACKENDS.install(backends.names(), multi_step,
                             {d: backends.default(d) for d in backends.device_types()})
