"""Fused multi-step neurons: dispatch a generated neuron module to the host C++ or CUDA kernels.

`multi_step(module, x_seq, states)` is what `support.FUSED[backend]` calls. The
module supplies the neuron IR (`snnc_neuron`), its configuration
(`snnc_config()`), its float parameters (`scalar_values()`) and its learnables
(attributes named after them). Plans and compiled kernels are cached per
(neuron, config).
"""
from __future__ import annotations

import math
import threading

import torch

from ..compiler import ir
from ..compiler.derive import Config, Plan, plan as make_plan
from ..compiler.printers import PythonPrinter
from ..compiler.source import SnncError

__all__ = ["multi_step", "plan_for", "initial_states", "scalar_args", "BACKENDS"]

BACKENDS = ("cpp", "cupy")
_PLANS: dict = {}
_LOCK = threading.Lock()


def plan_for(neuron: ir.Neuron, cfg: Config | None) -> Plan:
    """The step plan for (neuron, config), cached; the neuron object is kept so its id is not reused."""
    key = (id(neuron), cfg)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is neuron:
        return hit[1]
    p = make_plan(neuron, cfg)
    with _LOCK:
        _PLANS[key] = (neuron, p)
    return p


def scalar_args(p: Plan, values: dict) -> tuple[float, ...]:
    """The plan's runtime scalars, in kernel order, from a name -> value dict."""
    missing = [s for s in p.scalars if values.get(s) is None]
    if missing:
        raise SnncError(f"neuron '{p.neuron.name}': no value for parameter(s) {', '.join(missing)}",
                        hint="the fused kernels need every float parameter the neuron's equations use")
    return tuple(float(values[s]) for s in p.scalars)


def initial_states(p: Plan, values: dict, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Fresh states shaped like one time step of the input, from the neuron's `state k = <init>` expressions."""
    printer = PythonPrinter()
    env = {"math": math, **{k: float(v) for k, v in values.items() if v is not None}}
    out = []
    for _, e in p.init:
        value = float(eval(printer(e), env))  # noqa: S307 - printed from the checked IR
        out.append(torch.full(like.shape, value, dtype=torch.float32, device=like.device))
    return tuple(out)


def cached(cache: dict, lock, key, neuron, build):
    """Compiled kernels per key, built once per process (the neuron object guards against a reused id())."""
    hit = cache.get(key)
    if hit is not None and hit[0] is neuron:
        return hit[1]
    with lock:
        hit = cache.get(key)
        if hit is None or hit[0] is not neuron:
            hit = cache[key] = (neuron, build())
        return hit[1]


def forward_tensors(p: Plan, x, spike, inits, finals, saved: dict, learn) -> dict:
    """The forward kernel's tensor arguments by (role, state): one table for every target."""
    return {("x", None): x, ("spike", None): spike,
            **{("init", s): t for s, t in zip(p.states, inits)},
            **{("final", s): t for s, t in zip(p.states, finals)},
            **{("saved", s): t for s, t in saved.items()},
            **{("learnable", l): t for l, t in zip(p.learnables, learn)}}


def unpack_saved(p: Plan, stored: tuple) -> tuple[dict, object, tuple, tuple]:
    """What a fused forward saved, in its order: H per saved state, x, initial states, learnables."""
    n_saved, S = len(p.saved), len(p.states)
    return (dict(zip(p.saved, stored[:n_saved])), stored[n_saved], stored[n_saved + 1:n_saved + 1 + S],
            stored[n_saved + 1 + S:])


def multi_step(module, x_seq: torch.Tensor, states: tuple) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Run `module` over x_seq [T, ...] from `states` (one tensor, or None for a fresh state, per neuron state)."""
    backend = getattr(module, "backend", None)
    if backend not in BACKENDS:
        raise SnncError(f"fused multi_step: unknown backend {backend!r}", hint="use 'cpp' (CPU) or 'cupy' (CUDA)")
    p = plan_for(module.snnc_neuron, module.snnc_config())
    values = dict(module.scalar_values())
    learnables = tuple(getattr(module, name) for name in p.learnables)
    states = tuple(states) if states is not None else (None,) * len(p.states)
    if len(states) != len(p.states):
        raise SnncError(f"neuron '{p.neuron.name}' has {len(p.states)} state(s) ({', '.join(p.states)}), "
                        f"got {len(states)}")
    if any(s is None or not isinstance(s, torch.Tensor) for s in states):
        fresh = initial_states(p, values, x_seq[0] if x_seq.dim() > 0 and x_seq.shape[0] > 0 else x_seq)
        states = tuple(f if s is None else (s if isinstance(s, torch.Tensor) else torch.full_like(f, float(s)))
                       for s, f in zip(states, fresh))
    if backend == "cpp":
        from .host import multi_step as run
    else:
        from .cuda import multi_step as run
    return run(p, x_seq, states, values, learnables)
