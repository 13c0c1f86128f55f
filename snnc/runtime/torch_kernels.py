"""The `torch` backend: a neuron's step plan (forward and derived backward) as PyTorch operations.

One autograd node per layer call instead of one per operation per step: the forward runs the T steps
without recording a graph and saves only the charged values H[t] the backward reads, like the fused
kernels; the backward runs the plan's derived BPTT statements in reverse time. Computation is in the input's
dtype, as eager PyTorch does, so spikes equal those of the generated module's single steps. The source is
rendered from `templates/torch_kernel.py.j2` and compiled once per plan.
"""
from __future__ import annotations

import threading
from types import SimpleNamespace

from ..compiler.codegen import environment
from ..compiler.neuron import MEMBRANE, Plan
from . import support

_CACHE: dict = {}
_LOCK = threading.Lock()


def render_torch_kernel(p: Plan) -> str:
    tensors = {"x", *p.states, *p.learnables, "_spike", "_spike_r", "_sp", "_sg", "_g_spike",
               *(f"_h_{s}" for s in p.states), *(f"_hp_{s}" for s in p.states), *(f"_g_{s}" for s in p.states),
               *(t for t, _ in p.backward), *(t for t, _ in p.charge)}
    return environment().get_template("torch_kernel.py.j2").render(
        origin=f"neuron {p.neuron.name}", name=p.neuron.name, config=p.config.key(), scalars=p.scalars,
        learnables=p.learnables, states=p.states, saved=p.saved, charge=p.charge, reset=p.reset,
        membrane=MEMBRANE, out=MEMBRANE if p.config.output == "v" else "_spike", output=p.config.output,
        prev=p.prev, state_index={s: i for i, s in enumerate(p.states)}, needs_x=p.needs_x,
        surrogate=p.surrogate_grad, backward=p.backward, threshold=p.threshold, threshold_prev=p.threshold_prev,
        tensors=sorted(tensors))


def torch_kernels(p: Plan):
    """The compiled kernel module of a plan: `.forward` and `.backward` (cached per plan)."""
    key = id(p)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is p:
        return hit[1]
    source = render_torch_kernel(p)
    namespace: dict = {"rt": support}
    exec(compile(source, f"<snnc torch kernel {p.neuron.name}>", "exec"), namespace)  # printed from the IR
    kernels = SimpleNamespace(forward=namespace["forward"], backward=namespace["backward"], source=source, plan=p)
    with _LOCK:
        _CACHE[key] = (p, kernels)
    return kernels
