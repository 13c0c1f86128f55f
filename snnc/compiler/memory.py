"""Training memory planned from the graph: which node outputs backward keeps, and in what form.

Backward keeps a node's output when a reader's backward needs it (a conv, linear or batch norm keeps its
input for the weight gradient, a neuron its input per step). The graph proves some outputs binary (a
spiking neuron's, and what max pooling, flattening, concatenation, AND or a delay make of spikes): those
are kept as bits, 1 per element instead of 32, and unpacked in backward, exactly. Outputs of stateless,
deterministic layers can instead be recomputed in backward from their (kept) inputs: nothing of them is
kept, at the price of running the layer again. A policy chooses, per node, from a cost model: the layer's
work per element recomputed against the bytes it saves.

    fast      today's autograd: every needed output kept as it is
    balanced  bits for binary outputs; recompute layers of at most BALANCED_FLOPS per element
              (batch norm, pooling, merges), not convolutions or linear layers
    min       bits; recompute every stateless layer whose output is needed

`plan` gives per node what is kept and its bytes per sample; `snnc check` prints it, the generated network
carries the node actions of each policy (`MEMORY`) and `runtime/memory.py` carries them out. Batch norm
recomputed in training mode uses the batch statistics again and leaves the running statistics alone (they
were updated once, in the forward pass). Nodes in a loop over time are never planned (autograd's way).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from . import ir
from .graph import Graph

POLICIES = ("fast", "balanced", "min")
BALANCED_FLOPS = 32  # most work per output element that `balanced` recomputes


@dataclass(frozen=True)
class Saving:
    """What a layer kind means for training memory. `saves_input`: its backward keeps its inputs;
    `keeps_binary`: binary inputs give a binary output; `recompute`: work per output element to run it again
    (from the node's op and input shapes), None where it cannot be rerun (state, randomness); `view`: the
    output shares its input's storage, so it is kept as its input is."""

    saves_input: bool = False
    keeps_binary: bool = False
    recompute: Callable[[object, list], float] | None = None
    view: bool = False  # its output is a view of its input: kept (or not) as that input is


def _conv_flops(op, shapes) -> float:
    return 2.0 * shapes[0][0] * op.kernel_size ** (2 if op.kind == "conv2d" else 1)


_POOL = Saving(saves_input=True, recompute=lambda op, s: float(op.kernel_size ** 2))
# One row per layer kind; a kind without a row is never planned (autograd keeps what it keeps).
SAVING: dict[str, Saving] = {
    "flatten": Saving(keeps_binary=True, view=True),
    "linear": Saving(saves_input=True, recompute=lambda op, s: 2.0 * s[0][0]),
    "conv2d": Saving(saves_input=True, recompute=_conv_flops),
    "conv1d": Saving(saves_input=True, recompute=_conv_flops),
    "maxpool2d": Saving(saves_input=True, keeps_binary=True, recompute=_POOL.recompute),
    "avgpool2d": _POOL,
    "sumpool2d": _POOL,
    "batchnorm1d": Saving(saves_input=True, recompute=lambda op, s: 8.0),
    "batchnorm2d": Saving(saves_input=True, recompute=lambda op, s: 8.0),
    "dropout": Saving(),
    "neuron": Saving(saves_input=True),
    "add": Saving(recompute=lambda op, s: 1.0),
    "mul": Saving(saves_input=True, keeps_binary=True, recompute=lambda op, s: 1.0),
    "and": Saving(saves_input=True, keeps_binary=True, recompute=lambda op, s: 1.0),
    "iand": Saving(saves_input=True, keeps_binary=True, recompute=lambda op, s: 2.0),
    "concat": Saving(keeps_binary=True, recompute=lambda op, s: 1.0),
    "delay": Saving(keeps_binary=True),
    "scale": Saving(saves_input=True, recompute=lambda op, s: 1.0),
    "vote": Saving(recompute=lambda op, s: 1.0),
}


@dataclass(frozen=True)
class NodePlan:
    name: str
    kept: str  # "float" (as it is), "bits" (packed), "recompute" (rerun in backward), "view" (as its input
    # is kept), "-" (not needed)
    bytes_per_sample: int  # of the output as kept, all T steps


def _kind(layer: ir.Layer) -> str:
    return "neuron" if isinstance(layer.op, ir.NeuronLayer) else layer.op.kind


def binary(graph: Graph, module: ir.Module) -> frozenset[str]:
    """The nodes whose output the graph proves binary: spiking neurons (not a membrane readout's output),
    and binary-keeping layers of binary inputs, outside loops."""
    net = graph.network
    loops = {n for g in graph.schedule if g.loop for n in g.nodes}
    order, found = graph.order, set()
    for layer in net.layers:
        if layer.name in loops:
            continue
        if isinstance(layer.op, ir.NeuronLayer):
            neuron = module.neuron(layer.op.neuron)
            membrane_out = net.readout == "membrane" and layer.name == net.layers[-1].name
            if neuron is not None and neuron.output == "spike" and not membrane_out:
                found.add(layer.name)
        elif SAVING.get(_kind(layer), Saving()).keeps_binary and all(
                s in found and order[s] < order[layer.name] for s in layer.inputs):
            found.add(layer.name)
    return frozenset(found)


def plan(graph: Graph, module: ir.Module, policy: str) -> tuple[NodePlan, ...]:
    """Per node, in definition order: how its output is kept for backward under `policy`, and its bytes."""
    if policy not in POLICIES:
        raise ValueError(f"memory policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    net, order = graph.network, graph.order
    bits = binary(graph, module) if policy != "fast" else frozenset()
    loops = {n for g in graph.schedule if g.loop for n in g.nodes}
    readers: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for layer in net.layers:
        for s in layer.inputs:
            if s != ir.INPUT and order[s] < order[layer.name]:
                readers[s].append(layer.name)
    needed = {n for n, rs in readers.items()
              if any(SAVING.get(_kind(graph.nodes[r].layer), Saving(saves_input=True)).saves_input for r in rs)}
    kept: dict[str, str] = {}
    for name in reversed(list(graph.nodes)):
        info = graph.nodes[name]
        row = SAVING.get(_kind(info.layer))
        if name not in needed:
            kept[name] = "-"
        elif row is not None and row.view and info.layer.inputs[0] != ir.INPUT:
            kept[name] = "view"
            needed.add(info.layer.inputs[0])
        elif name in bits:
            kept[name] = "bits"
        elif (policy != "fast" and row is not None and row.recompute is not None and name not in loops
              and all(s == ir.INPUT or order[s] < order[name] for s in info.layer.inputs)
              and (policy == "min" or row.recompute(info.layer.op, list(info.in_shapes)) <= BALANCED_FLOPS)):
            kept[name] = "recompute"
            needed.update(s for s in info.layer.inputs if s != ir.INPUT)
        else:
            kept[name] = "float"
    sizes = {n: net.T * math.prod(i.out_shape) for n, i in graph.nodes.items()}
    per = {"float": lambda k: 4 * k, "bits": lambda k: (k + 7) // 8, "recompute": lambda k: 0, "view": lambda k: 0,
           "-": lambda k: 0}
    return tuple(NodePlan(n, kept[n], per[kept[n]](sizes[n])) for n in graph.nodes)


def actions(graph: Graph, module: ir.Module) -> dict[str, dict[str, str]]:
    """What the generated network carries (`MEMORY`): per policy other than fast, node -> 'bits' | 'recompute'."""
    return {p: {r.name: r.kept for r in plan(graph, module, p) if r.kept in ("bits", "recompute")}
            for p in POLICIES if p != "fast"}
