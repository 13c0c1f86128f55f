"""A NIR graph as snnc's list of nodes: sub-graphs inlined, put in an order snnc runs, several inputs summed
by `add` nodes, and named. What `nir_import` writes as a network's `layers { ... }`.

The order: every node reads earlier ones, except that a neuron on a cycle is read at the previous step by the
node that closes the cycle (snnc's feedback; NIR's cycles carry a step). A cycle with no neuron on it has no
such reading and is an error.
"""
from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field

from ..compiler import ir
from ..compiler.source import SnncError
from .nir_neurons import FIELDS
from .snn_text import label


@dataclass
class Line:
    """One node of the written network."""

    nir: str  # the NIR node it comes from ('' for an add of a node's inputs)
    op: object
    inputs: tuple[str, ...] = ()  # keys of what it reads (ir.INPUT for the network input), then snnc names
    comment: str = ""
    weights: dict = field(default_factory=dict)  # module attribute -> array
    key: str = ""  # how other lines refer to it before it is named: its NIR name, or a key of its own
    wanted: str = ""  # the name it would like (its NIR name, or the add's name the exporter recorded)
    name: str = ""  # its snnc path
    defined: bool = False  # a neuron layer whose neuron the file defines (not the library's)


def flatten(graph, problems: list[str]):
    """Sub-graphs inlined (their Input and Output dissolved into edges, in place, so a node's inputs keep their
    order); returns (nodes, edges, the Input's name, the Output's name). Inner names stay unless they clash,
    then they become '<sub-graph>.<name>'."""
    import nir

    nodes: dict = {}
    edges: list[tuple[str, str]] = []
    placeholders: list[tuple[str, int]] = []  # a sub-graph's Input (side 0) or Output (side 1), to dissolve
    used = set(graph.nodes)

    def fresh(prefix: str, k: str) -> str:
        out, n = (k if k not in used else f"{prefix}.{k}"), 2
        while out in used:
            out, n = f"{prefix}.{k}_{n}", n + 1
        used.add(out)
        return out

    def inline(g, prefix: str) -> tuple[str, str, dict]:
        ins = [k for k, n in g.nodes.items() if isinstance(n, nir.Input)]
        outs = [k for k, n in g.nodes.items() if isinstance(n, nir.Output)]
        if len(ins) != 1 or len(outs) != 1:
            where = f"sub-graph '{prefix}'" if prefix else "the graph"
            problems.append(f"{where} has {len(ins)} inputs and {len(outs)} outputs; snnc imports one of each")
        rename = {k: fresh(prefix, k) if prefix else k for k in g.nodes}
        inner: dict[str, tuple[str, str, dict]] = {}
        for k, n in g.nodes.items():
            if isinstance(n, nir.NIRGraph):
                inner[k] = inline(n, rename[k])
            else:
                nodes[rename[k]] = n
        if prefix:
            placeholders.extend([(rename[i], 0) for i in ins] + [(rename[o], 1) for o in outs])

        def end(endpoint: str, side: int) -> str:
            if endpoint in inner:
                return inner[endpoint][side]
            base, _, rest = endpoint.partition(".")  # 'sub.node': a node inside a sub-graph
            if endpoint not in rename and base in inner and rest in inner[base][2]:
                return inner[base][2][rest]
            return rename.get(endpoint, endpoint)

        edges.extend((end(a, 1), end(b, 0)) for a, b in g.edges)
        return (rename[ins[0]] if ins else ""), (rename[outs[0]] if outs else ""), rename

    top_in, top_out, _ = inline(graph, "")
    for p, side in placeholders:  # Input: its feeders take its place; Output: its sources take its readers'
        outer = [a for a, b in edges if b == p] if side == 0 else [b for a, b in edges if a == p]
        out: list[tuple[str, str]] = []
        for a, b in edges:
            if side == 0 and b == p or side == 1 and a == p:
                if side == 1:
                    out += [(s, b) for s, q in edges if q == p]
                continue
            if side == 0 and a == p:
                out += [(s, b) for s in outer]
            elif not (side == 1 and b == p):
                out.append((a, b))
        edges[:] = out
        nodes.pop(p, None)
    known = set(nodes)
    for a, b in edges:
        for e in (a, b):
            if e not in known:
                problems.append(f"an edge names '{e}', which is no node of the graph")
                known.add(e)
    return nodes, edges, top_in or "input", top_out or "output"


def dead_ends(nodes: dict, edges, inp: str, out: str) -> list[str]:
    """Nodes that read nothing or that nothing reads: a snnc network has neither."""
    fed = {b for _, b in edges}
    read = {a for a, _ in edges}
    return ([f"node '{n}' reads nothing" for n in nodes if n != inp and n not in fed] +
            [f"node '{n}' is read by no node (a dead end)" for n in nodes if n != out and n not in read])


def order(nodes: dict, edges, inp: str, out: str, preferred: list[str]) -> list[str]:
    """Nodes so that each reads earlier ones, except a neuron's output read on a cycle (then: the previous
    step). Ties go by `preferred` (the exporter's definition order), then by name; the node feeding the
    output comes last where it can."""
    names = [n for n in nodes if n not in (inp, out)]
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ.setdefault(a, []).append(b)

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            n = stack.pop()
            if n == goal:
                return True
            if n not in seen:
                seen.add(n)
                stack += succ.get(n, [])
        return False

    back = {(a, b) for a, b in edges if a in names and b in names and _is_neuron(nodes[a]) and reaches(b, a)}
    forward = [(a, b) for a, b in edges if (a, b) not in back and a in names and b in names]
    indeg = {n: 0 for n in names}
    for _, b in forward:
        indeg[b] += 1
    last = {a for a, b in edges if b == out}
    rank = {n: i for i, n in enumerate(preferred)}
    key = lambda n: (n in last and len(last) == 1, rank.get(n, len(rank)), _natural(n))  # noqa: E731
    ready = [(key(n), n) for n in names if indeg[n] == 0]
    heapq.heapify(ready)
    out_order = []
    while ready:
        _, n = heapq.heappop(ready)
        out_order.append(n)
        for a, b in forward:
            if a == n:
                indeg[b] -= 1
                if indeg[b] == 0:
                    heapq.heappush(ready, (key(b), b))
    if len(out_order) != len(names):
        stuck = ", ".join(sorted(n for n in names if n not in out_order))
        raise SnncError(f"the graph has a cycle with no neuron on it (through {stuck}); snnc runs a cycle step by "
                        "step and needs a neuron's previous output to close it")
    return out_order


def _natural(name: str):
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p)


def _is_neuron(node) -> bool:
    return type(node).__name__ in FIELDS


def wire(order: list[str], lines: dict[str, Line], edges, inp: str, out: str, merges: dict) -> list[Line]:
    """The nodes in order with their inputs; a node with several inputs reads an add of them (added in order)."""
    written: list[Line] = []
    for name in [*order, out]:
        sources = tuple(ir.INPUT if a == inp else a for a, b in edges if b == name)
        if len(sources) > 1:
            sources = _sum(written, sources, name, merges.get(name))
        if name == out:
            if len(sources) != 1:
                raise SnncError("the graph's output reads nothing")
            if not written or written[-1].key != sources[0]:
                raise SnncError(f"the graph's output, '{sources[0]}', is read at the same step by a node after "
                                "it; a snnc network's output is its last node")
            break
        line = lines[name]
        line.inputs, line.key, line.wanted = sources, name, name
        written.append(line)
    return written


def _sum(written: list[Line], sources: tuple[str, ...], reader: str, name: str | None) -> tuple[str]:
    acc = sources[0]
    for k, src in enumerate(sources[1:], start=1):
        last = k == len(sources) - 1
        wanted = (name or f"{reader}_in") if last else f"{reader}_in{k}"
        line = Line("", ir.Merge(kind="add"), (acc, src), "NIR sums a node's inputs", key=f"\0add{k}:{reader}",
                    wanted=wanted)
        written.append(line)
        acc = line.key
    return (acc,)


def name(written: list[Line]) -> None:
    """snnc names: a node whose wanted name is its position and that only the next node reads stays unnamed
    (so a graph snnc wrote comes back with the same paths); every other gets a label made from its name."""
    explicit = set()
    for i, line in enumerate(written):
        implicit = ir.INPUT if i == 0 else written[i - 1].key
        if isinstance(line.op, ir.Merge) or line.inputs != (implicit,):
            explicit.update(line.inputs)
    taken: set[str] = set()
    for i, line in enumerate(written):
        if line.wanted == str(i) and line.key not in explicit:
            line.name = str(i)
        else:
            line.name = label(line.wanted, taken)
    names = {line.key: line.name for line in written} | {ir.INPUT: ir.INPUT}
    for line in written:
        line.inputs = tuple(names[k] for k in line.inputs)
