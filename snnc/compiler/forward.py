"""A network's `forward`, as Python lines, from its analysed graph.

Two methods, one per step mode, both in dependency order:

* `forward_seq(x)` ([T, N, ...]): a node outside any loop runs once over all T steps (its step_mode is
  'm'); the nodes of a loop run step by step (step_mode 's', `LOOPS`) inside `for t in range(T)`, their
  outside inputs computed before it.
* `forward_step(x)` ([N, ...]): every node runs one step; what feedback reads between calls (a neuron's
  previous output) lives in `self.memory`, a delay keeps its own past inputs.

Every node is a module in `self.layers` (a nested `rt.Layers`, keyed by the node's path), so the state_dict
keys are `layers.<path>.<parameter>` in both modes, and modules are called (forward hooks run).
"""
from __future__ import annotations

from . import ir
from .graph import Graph
from .layers import describe


def var(name: str) -> str:
    """The local variable holding a node's value: '_' + its path, '.' written '__' ('b1.conv' -> '_b1__conv').
    Every other local of a generated forward starts with a letter (L, x, t, prev_..., steps_...)."""
    return "x" if name == ir.INPUT else "_" + name.replace(".", "__")


def prev(name: str) -> str:
    """A loop's copy of a neuron's previous output."""
    return "prev" + var(name)


def steps(name: str) -> str:
    """A loop's list of a node's per-step values."""
    return "steps" + var(name)


def each(sequence: str) -> str:
    """A loop's tuple of a sequence's steps (`sequence.unbind(0)`): read as `each...[t]`, its backward is one
    stack, where indexing the sequence at every step would add a zero-filled [T, ...] gradient per step."""
    return "each" + (sequence if sequence.startswith("_") else "_" + sequence)


def module(name: str) -> str:
    """How generated code reaches a node's module: L["b1"]["conv"]."""
    return "L" + "".join(f'["{part}"]' for part in name.split("."))


def _is_neuron(graph: Graph, name: str) -> bool:
    return isinstance(graph.nodes[name].layer.op, ir.NeuronLayer)


def _comment(graph: Graph, name: str) -> str:
    return describe(graph.nodes[name].layer.op)


def forward_seq(graph: Graph) -> list[str]:
    lines = ["L = self.layers"]
    order = graph.order
    loop_of = {n: g for g in graph.schedule if g.loop for n in g.nodes}
    for group in graph.schedule:
        if not group.loop:
            name = group.nodes[0]
            layer = graph.nodes[name].layer
            args = []
            for src in layer.inputs:
                if src != ir.INPUT and order[src] >= order[name] and _is_neuron(graph, src):
                    args.append(f"rt.shift({var(src)})")  # a neuron's previous output, all steps at once
                else:
                    args.append(var(src))
            lines.append(f"{var(name)} = {module(name)}({', '.join(args)})  # {_comment(graph, name)}")
        else:
            lines += _loop(graph, group, loop_of)
        done = _last_read(graph).get(group.nodes[-1], ())
        if done:  # what backward needs it keeps itself (in the form the memory plan says)
            lines.append(f"del {', '.join(var(n) for n in done)}")
    lines.append(f"return {var(graph.network.layers[-1].name)}")
    return lines


def _last_read(graph: Graph) -> dict[str, list[str]]:
    """Per node, the earlier nodes (not in a loop) whose output it is the last node to read: the multi-step
    pass lets go of them after it."""
    loops = {n for g in graph.schedule if g.loop for n in g.nodes}
    position = {n: i for i, g in enumerate(graph.schedule) for n in g.nodes}
    last: dict[str, str] = {}
    kept = {src for layer in graph.network.layers if layer.name in loops for src in layer.inputs}  # a loop reads
    for layer in graph.network.layers:
        for src in layer.inputs:
            if src != ir.INPUT and src not in loops and layer.name not in loops and position[src] < position[layer.name]:
                if src not in last or position[layer.name] > position[last[src]]:
                    last[src] = layer.name
    out: dict[str, list[str]] = {}
    for src, reader in last.items():
        if src != graph.network.layers[-1].name and src not in kept:
            out.setdefault(reader, []).append(src)
    return out


def _loop(graph: Graph, group, loop_of) -> list[str]:
    order = graph.order
    members = set(group.nodes)
    readers = {n: [l.name for l in graph.network.layers if n in l.inputs] for n in group.nodes}
    out_names = [n for n in group.nodes if any(r not in members for r in readers[n])
                 or n == graph.network.layers[-1].name]
    fed_back = sorted({src for n in group.nodes for src in graph.nodes[n].layer.inputs
                       if src in members and order[src] >= order[n] and _is_neuron(graph, src)}, key=order.get)
    shifted = sorted({src for n in group.nodes for src in graph.nodes[n].layer.inputs
                      if src != ir.INPUT and src not in members and order[src] >= order[n]
                      and _is_neuron(graph, src)}, key=order.get)
    names = ", ".join(group.nodes)
    lines = [f"# loop over time: {names} (feedback: "
             + ", ".join(f"{s} at t-1" if _is_neuron(graph, s) else f"{s}, delayed" for s in _feedback_sources(graph, group))
             + ")"]
    for s in fed_back:
        lines.append(f"{prev(s)} = rt.zeros(x[0], {graph.nodes[s].out_shape!r})")
    for s in shifted:
        lines.append(f"{prev(s)} = rt.shift({var(s)})")
    for n in out_names:
        lines.append(f"{steps(n)} = []")
    loop_at = len(lines)
    body = []
    unbound: list[str] = []  # sequences the loop reads step by step, each unbound once before it

    def step_of(sequence: str) -> str:
        if sequence not in unbound:
            unbound.append(sequence)
        return f"{each(sequence)}[t]"

    for n in group.nodes:
        layer = graph.nodes[n].layer
        args = []
        for src in layer.inputs:
            if src == ir.INPUT:
                args.append(step_of("x"))
            elif src in members:
                if order[src] < order[n]:
                    args.append(var(src))
                elif _is_neuron(graph, src):
                    args.append(prev(src))
                else:  # a delay read before it steps: its input d steps ago
                    args.append(f"{module(src)}.peek({step_of('x')}, {graph.nodes[src].out_shape!r})")
            elif src in shifted:
                args.append(step_of(prev(src)))
            else:
                args.append(step_of(var(src)))
        body.append(f"{var(n)} = {module(n)}({', '.join(args)})  # {_comment(graph, n)}")
        if n in fed_back:
            body.append(f"{prev(n)} = {var(n)}")
    for n in out_names:
        body.append(f"{steps(n)}.append({var(n)})")
    lines[loop_at:loop_at] = [f"{each(seq)} = {seq}.unbind(0)" for seq in unbound]
    lines.append("for t in range(x.shape[0]):")
    lines += ["    " + b for b in body]
    for n in out_names:
        lines.append(f"{var(n)} = torch.stack({steps(n)})")
    return lines


def _feedback_sources(graph: Graph, group) -> list[str]:
    order = graph.order
    return sorted({src for n in group.nodes for src in graph.nodes[n].layer.inputs
                   if src in group.nodes and order[src] >= order[n]}, key=order.get)


def forward_step(graph: Graph) -> list[str]:
    lines = ["L = self.layers"]
    order = graph.order
    remembered = sorted({src for l in graph.network.layers for src in l.inputs
                         if src != ir.INPUT and order[src] >= order[l.name] and _is_neuron(graph, src)},
                        key=order.get)
    for layer in graph.network.layers:
        name = layer.name
        args = []
        for src in layer.inputs:
            if src == ir.INPUT:
                args.append("x")
            elif order[src] < order[name]:
                args.append(var(src))
            elif _is_neuron(graph, src):
                args.append(f'self.previous("{src}", x, {graph.nodes[src].out_shape!r})')
            else:
                args.append(f"{module(src)}.peek(x, {graph.nodes[src].out_shape!r})")
        lines.append(f"{var(name)} = {module(name)}({', '.join(args)})  # {_comment(graph, name)}")
        if name in remembered:
            lines.append(f'self.memory["{name}"] = {var(name)}')
    lines.append(f"return {var(graph.network.layers[-1].name)}")
    return lines


def modules(graph: Graph, emit) -> list[str]:
    """The constructor lines: nested `rt.Layers` for block paths, one module per node, with a comment each."""
    lines = ["L = self.layers = rt.Layers()"]
    made = set()
    for name, info in graph.nodes.items():
        parts = name.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix not in made:
                made.add(prefix)
                lines.append(f"{module(prefix)} = rt.Layers()")
        lines.append(f"{module(name)} = {emit(info)}")
    return lines


def loops(graph: Graph) -> tuple[str, ...]:
    """The nodes that run step by step in multi-step mode."""
    return tuple(n for g in graph.schedule if g.loop for n in g.nodes)
