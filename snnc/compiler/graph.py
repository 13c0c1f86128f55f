"""A network's graph: node shapes, feedback, loops and the order to run them in.

Nodes are defined in order; a node reads its inputs. Reading a node defined later is a feedback
connection, allowed from a neuron layer (its output of the previous step, 0 at t = 0) or a delay of at
least one step (its output now: its input d steps ago). Any other feedback would need a value before it
is computed: an algebraic loop.

`analyse` returns a `Graph`: per node its input and output shapes and parameter count, and a schedule of
groups in dependency order. A group is one node run over all T steps at once, or a loop (a strongly
connected component) run step by step. `check` reports the problems `analyse` finds; `codegen` renders
the schedule as the network's `forward`.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

from . import ir
from .layers import KINDS, LayerError, Shape, describe, kind_of


@dataclass(frozen=True)
class NodeInfo:
    layer: ir.Layer
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    params: int


@dataclass(frozen=True)
class Group:
    nodes: tuple[str, ...]  # in definition order
    loop: bool  # run step by step (a cycle through feedback)


@dataclass(frozen=True)
class Graph:
    network: ir.Network
    nodes: dict[str, NodeInfo]  # in definition order
    schedule: tuple[Group, ...]

    @property
    def output(self) -> NodeInfo:
        return self.nodes[self.network.layers[-1].name]

    def is_feedback(self, reader: str, source: str) -> bool:
        """Whether `reader` reads `source` before `source` is computed (source defined at or after it)."""
        order = self.order
        return source != ir.INPUT and order[source] >= order[reader]

    @property
    def order(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.nodes)}

    def group_of(self, name: str) -> Group:
        return next(g for g in self.schedule if name in g.nodes)


@dataclass(frozen=True)
class Problem:
    message: str
    node: ir.Node
    hint: str | None = None


def analyse(net: ir.Network, learnables: dict[str, int]) -> tuple[Graph | None, list[Problem]]:
    """Shapes, feedback rules and schedule of `net`; `learnables`: neuron name -> number of learnables."""
    problems = _feedback(net) + _unused(net)
    if problems:
        return None, problems
    shapes, problems = _shapes(net, learnables)
    if problems:
        return None, problems
    return Graph(net, shapes, _schedule(net)), []


# ------------------------------------------------------------------ feedback and use
def _feedback(net: ir.Network) -> list[Problem]:
    order = {l.name: i for i, l in enumerate(net.layers)}
    by_name = {l.name: l for l in net.layers}
    problems = []
    for layer in net.layers:
        for source in layer.inputs:
            if source == ir.INPUT or order[source] < order[layer.name]:
                continue
            src = by_name[source]
            if kind_of(src.op).feedback(src.op):
                continue
            cycle = _path(net, layer.name, source, order)
            who = _shown(source)
            if cycle:
                loop = " -> ".join(_shown(n) for n in (*cycle, layer.name))
                problems.append(Problem(
                    f"algebraic loop: {loop} has no neuron or delay on it", layer,
                    f"feed back a neuron layer's output (read at the previous step) or put a delay(1) on the loop"))
            else:
                problems.append(Problem(
                    f"node '{_shown(layer.name)}' reads '{who}', which is defined after it and is neither a neuron "
                    f"nor a delay", layer, f"define '{who}' before it (only neurons and delays can be read before "
                    "they are computed: a neuron's previous output, a delay's past input)"))
    return problems


def _path(net: ir.Network, start: str, goal: str, order: dict[str, int]) -> list[str] | None:
    """A chain of same-step (forward) edges from `start` to `goal`, if `goal` depends on `start`."""
    readers: dict[str, list[str]] = {}
    for layer in net.layers:
        for source in layer.inputs:
            if source != ir.INPUT and order[source] < order[layer.name]:
                readers.setdefault(source, []).append(layer.name)
    stack, parent = [start], {start: None}
    while stack:
        node = stack.pop()
        if node == goal:
            path = []
            while node is not None:
                path.append(node)
                node = parent[node]
            return path[::-1]
        for nxt in readers.get(node, ()):
            if nxt not in parent:
                parent[nxt] = node
                stack.append(nxt)
    return None


def _unused(net: ir.Network) -> list[Problem]:
    read = {source for layer in net.layers for source in layer.inputs}
    return [Problem(f"node '{_shown(l.name)}' ({describe(l.op)}) is never used", l,
                    "remove it, or read it from another node (`from` or a merge)")
            for l in net.layers[:-1] if l.name not in read]


def _shown(name: str) -> str:
    return name


# ------------------------------------------------------------------ shapes
def _provisional(layer: ir.Layer, shapes: list[Shape | None]) -> Shape | None:
    """A node's output shape while some inputs (feedback not yet seen) are unknown, where the kind fixes it."""
    op = layer.op
    known = [s for s in shapes if s is not None]
    if isinstance(op, ir.Linear):
        return (op.out_features,)
    if isinstance(op, (ir.Merge,)) and known:
        return known[0]
    if isinstance(op, (ir.NeuronLayer, ir.Delay, ir.Dropout)) and known:
        return known[0]
    return None


def _shapes(net: ir.Network, learnables: dict[str, int]) -> tuple[dict[str, NodeInfo], list[Problem]]:
    shapes: dict[str, Shape | None] = {ir.INPUT: tuple(net.input_shape)}
    for _ in range(len(net.layers) + 1):  # sweeps until feedback shapes settle
        changed = False
        for layer in net.layers:
            ins = [shapes.get(s) for s in layer.inputs]
            if all(s is not None for s in ins):
                try:
                    out = kind_of(layer.op).shape(layer.op, ins)
                except LayerError:
                    out = None  # reported by the strict pass below
            else:
                out = _provisional(layer, ins)
            if out is not None and shapes.get(layer.name) != out:
                shapes[layer.name] = out
                changed = True
        if not changed:
            break
    problems: list[Problem] = []
    infos: dict[str, NodeInfo] = {}
    for layer in net.layers:
        ins = [shapes.get(s) for s in layer.inputs]
        if any(s is None for s in ins):
            if not problems:
                problems.append(Problem(
                    f"the shape of node '{layer.name}' cannot be inferred: it depends on itself through feedback",
                    layer, "put a layer that fixes the size on the loop, e.g. linear(128)"))
            continue
        kind = kind_of(layer.op)
        try:
            out = kind.shape(layer.op, ins)
        except LayerError as exc:
            problems.append(Problem(exc.message, layer, exc.hint))
            continue
        n = kind.params(layer.op, ins)
        if isinstance(layer.op, ir.NeuronLayer):
            n += learnables.get(layer.op.neuron, 0)
        infos[layer.name] = NodeInfo(layer, tuple(ins), out, n)
    return infos, problems


# ------------------------------------------------------------------ schedule
def _schedule(net: ir.Network) -> tuple[Group, ...]:
    """Strongly connected components (Tarjan) over all edges, in dependency order, ties by definition order."""
    order = {l.name: i for i, l in enumerate(net.layers)}
    deps = {l.name: [s for s in l.inputs if s != ir.INPUT] for l in net.layers}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in order:  # iterative Tarjan: deep graphs must not hit the recursion limit
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(deps[node])):
                nxt = deps[node][j]
                if nxt not in index:
                    work.append((node, j + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                components.append(sorted(comp, key=order.get))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    comp_of = {n: k for k, comp in enumerate(components) for n in comp}
    succ: dict[int, set[int]] = {k: set() for k in range(len(components))}
    indeg = {k: 0 for k in range(len(components))}
    for name, sources in deps.items():
        for s in sources:
            a, b = comp_of[s], comp_of[name]
            if a != b and b not in succ[a]:
                succ[a].add(b)
                indeg[b] += 1
    ready = [(order[components[k][0]], k) for k, d in indeg.items() if d == 0]
    heapq.heapify(ready)
    groups = []
    while ready:
        _, k = heapq.heappop(ready)
        comp = components[k]
        loop = len(comp) > 1 or comp[0] in deps[comp[0]]
        groups.append(Group(tuple(comp), loop))
        for nxt in succ[k]:
            indeg[nxt] -= 1
            if indeg[nxt] == 0:
                heapq.heappush(ready, (order[components[nxt][0]], nxt))
    return tuple(groups)


def input_head(rows) -> tuple[str, str] | None:
    """The (flatten, linear) nodes a Poisson encoder can be fused with: the first node reads the input and is
    a flatten, the next reads only it and is a linear, and nothing else reads the input or the flatten.
    `rows`: (node, layer, inputs) per node, as a generated network's GRAPH holds them."""
    kinds = {name: kind for name, kind, _ in rows}
    inputs = {name: tuple(ins) for name, _, ins in rows}
    readers: dict[str, list[str]] = {}
    for name, ins in inputs.items():
        for src in ins:
            readers.setdefault(src, []).append(name)
    first = readers.get(ir.INPUT, [])
    if len(first) != 1 or kinds[first[0]] != "flatten":
        return None
    second = readers.get(first[0], [])
    if len(second) != 1 or kinds[second[0]] != "linear" or inputs[second[0]] != (first[0],):
        return None
    return first[0], second[0]


def rows(net: ir.Network) -> tuple:
    """(node, layer, inputs) per node: the graph as generated networks carry it (their GRAPH)."""
    return tuple((l.name, describe(l.op), l.inputs) for l in net.layers)


__all__ = ["Graph", "Group", "NodeInfo", "Problem", "analyse", "input_head", "rows"]
