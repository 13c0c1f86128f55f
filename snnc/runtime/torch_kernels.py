"""The `torch` backend: a neuron's step plan (forward and derived backward) as PyTorch operations.

One autograd node per layer call instead of one per operation per step: the forward runs the T steps
without recording a graph and saves only the charged values H[t] the backward reads, like the fused
kernels; the backward runs the plan's derived BPTT statements in reverse time. Computation is in the input's
dtype, as eager PyTorch does, so spikes equal those of the generated module's single steps. The source is
rendered by its renderer (`renderers.TORCH`: `templates/torch_kernel.py.j2`) and compiled once per plan.
"""
from __future__ import annotations

import threading
from types import SimpleNamespace

from ..compiler.neuron import Plan
from ..compiler.renderers import Renderer
from . import support

_CACHE: dict = {}
_LOCK = threading.Lock()


def torch_kernels(renderer: Renderer, p: Plan):
    """The compiled kernel module of a plan: `.forward` and `.backward` (cached per plan)."""
    key = id(p)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is p:
        return hit[1]
    (source,) = renderer.render(p).values()
    namespace: dict = {"rt": support}
    exec(compile(source, f"<snnc torch kernel {p.neuron.name}>", "exec"), namespace)  # printed from the IR
    kernels = SimpleNamespace(forward=namespace["forward"], backward=namespace["backward"], source=source, plan=p)
    with _LOCK:
        _CACHE[key] = (p, kernels)
    return kernels
