"""A network and its weights as a NIR graph: `snnc export MODEL.snn --nir out.nir [--checkpoint best.pt]`.

The graph has one NIR node per snnc node, named by the node's path, in definition order, between an `Input`
and an `Output`. What changes on the way:

* `add` merges disappear: NIR sums a node's inputs, so each reader of an `add` takes the add's inputs as edges.
* A loop (a neuron read at the previous step) becomes a sub-graph with cyclic edges: the back edge carries the
  previous step, as it does in snnc, snnTorch's RLeaky and SpikingJelly. A loop entered or left at more than one
  node stays as cycles in the top graph.
* `delay(d)` becomes `nir.Delay` of d * dt seconds (per channel, one value per neuron).
* Neurons become the NIR neuron their charge equation proves them to be (`nir_neurons`); learnables are taken
  at their (trained) value. Training-only settings (surrogate, detach_reset, dropout) are dropped and recorded.

What NIR cannot express is a located error per offending node, never an approximation. The graph's metadata
`snnc` (JSON) records the network's settings, the neurons' definitions and each layer's arguments, so that
`snnc import` can give back the same file's network exactly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from ..compiler import ir
from ..compiler.check import Checked
from ..compiler.graph import Graph
from ..compiler.layers import call_text, delay_steps, describe, kind_of
from ..compiler.neuron import layer_config
from ..compiler.printers import value_text
from ..compiler.source import Diagnostic, SnncError
from .nir_neurons import TIES, NotNIR, nir_form
from .snn_text import neuron_text

META_KEY = "snnc"
FORMAT = "snnc-nir-1"
TRAINING_ONLY = ("surrogate", "detach_reset")

# Layer kinds NIR has no node for: (why, what to do instead).
UNSUPPORTED = {
    "maxpool2d": ("NIR has no max pooling", "use avgpool2d (NIR's AvgPool2d) or a strided conv2d"),
    "batchnorm1d": ("NIR has no batch normalisation",
                    "fold it into the linear layer before it (scale the weights, shift the bias) for inference"),
    "batchnorm2d": ("NIR has no batch normalisation",
                    "fold it into the conv2d layer before it (scale the weights, shift the bias) for inference"),
    "concat": ("NIR has no concatenation (a node sums its inputs)",
               "feed each part through its own linear layer and add them: the same function"),
    "mul": ("NIR has no element-wise product (a node sums its inputs)", "only add merges export"),
    "and": ("NIR has no element-wise product (a node sums its inputs)", "only add merges export"),
    "iand": ("NIR has no element-wise product (a node sums its inputs)", "only add merges export"),
}
PASSED = {"add": "summed by NIR at its reader", "dropout": "the identity at inference (training only)"}


@dataclass
class _Export:
    checked: Checked
    graph: Graph
    net: object  # the generated network (weights and neuron parameters at their values)
    dt: float
    ties: str
    problems: list[Diagnostic] = field(default_factory=list)
    nodes: dict = field(default_factory=dict)  # NIR name -> node, definition order
    meta_nodes: dict = field(default_factory=dict)
    neurons: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    merges: dict = field(default_factory=dict)  # reader -> the add it reads (its name comes back on import)

    def problem(self, layer: ir.Layer, message: str, hint: str | None = None) -> None:
        span = layer.span
        self.problems.append(Diagnostic(message, span, hint, self.checked.sources.get(span.file) if span else None))

    def tensor(self, name: str, what: str) -> np.ndarray:
        return getattr(self.net.node(name), what).detach().cpu().numpy().copy()


# ------------------------------------------------------------------ public API
def export_file(path, out, network: str | None = None, checkpoint=None, dt: float = 1e-4, ties: str = "nir"):
    """Check, build and export one network of a `.snn` file (with a checkpoint's weights) to `out`."""
    graph = export_network(path, network, checkpoint, dt, ties)
    write(out, graph)
    return graph


def write(out, graph) -> None:
    """`nir.write`, with HDF5 keeping the nodes in the order they were made (Input, then definition order):
    by default HDF5 lists them by name, and nirtorch 2.6 (the reader of snnTorch and SpikingJelly) builds a
    sub-graph twice, and fails, when it meets it before the nodes that feed it."""
    import h5py
    import nir

    config = h5py.get_config()
    tracked = config.track_order
    config.track_order = True
    try:
        nir.write(str(out), graph)
    except OSError as exc:
        raise SnncError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        config.track_order = tracked


def export_network(path, network: str | None = None, checkpoint=None, dt: float = 1e-4, ties: str = "nir",
                   state_dict: dict | None = None):
    """The NIR graph of a network: weights from `checkpoint` (a file `snnc train` wrote), or `state_dict`, or
    the network's initial weights (seeded with its recipe's seed, as `snnc train` starts)."""
    import torch

    import snnc
    from ..compiler.driver import check_file
    from ..train import checkpoint as ckpt

    check_options(dt, ties)
    checked = check_file(path)
    net_ir = pick_network(checked.module, network)
    lib = snnc.load(path)
    rng = torch.get_rng_state()
    try:
        torch.manual_seed(net_ir.train.seed)
        net = lib.network(net_ir.name, backend="torch")
    finally:
        torch.set_rng_state(rng)
    if checkpoint is not None:
        state_dict = ckpt.load(checkpoint, lib.model_hash(net_ir.name))["model"]
    if state_dict is not None:
        net.load_state_dict(state_dict)
    return to_nir(checked, checked.graphs[net_ir.name], net, dt, ties)


def pick_network(module: ir.Module, name: str | None) -> ir.Network:
    from ..compiler.source import did_you_mean

    if not module.networks:
        raise SnncError(f"{module.file} defines no network", hint="add 'network Name { ... }' to export it")
    if name is None:
        return module.networks[0]
    found = next((n for n in module.networks if n.name == name), None)
    if found is None:
        names = [n.name for n in module.networks]
        raise SnncError(f"no network '{name}' in {module.file}", hint=did_you_mean(name, names) or
                        f"networks: {', '.join(names)}")
    return found


def check_options(dt: float, ties: str) -> None:
    if not dt > 0:
        raise SnncError(f"dt must be a positive time step in seconds, not {dt}", hint="NIR's usual step is 1e-4")
    if ties not in TIES:
        raise SnncError(f"unknown ties convention '{ties}'", hint=f"use one of: {', '.join(TIES)}")


# ------------------------------------------------------------------ the conversion
def to_nir(checked: Checked, graph: Graph, net, dt: float = 1e-4, ties: str = "nir"):
    """The NIR graph of an analysed network whose generated module `net` holds the values. Every node NIR
    cannot express is reported at once, as one `SnncError`."""
    import nir

    x = _Export(checked, graph, net, dt, ties)
    layers = graph.network.layers
    for layer in layers:
        _check_feedback(x, layer)
        kind = kind_of(layer.op).name
        if kind in PASSED:
            if kind == "dropout":
                x.dropped[layer.name] = [call_text(layer.op)]
            continue
        if kind in UNSUPPORTED:
            why, hint = UNSUPPORTED[kind]
            x.problem(layer, f"node '{layer.name}' ({describe(layer.op)}) cannot be exported: {why}", hint)
            continue
        convert = CONVERT.get(kind)
        if convert is None:
            x.problem(layer, f"node '{layer.name}' ({describe(layer.op)}) cannot be exported: snnc does not know "
                      "a NIR node for this layer kind yet")
            continue
        node = convert(x, layer, graph.nodes[layer.name])
        if node is not None:
            x.nodes[layer.name] = node
    if x.problems:
        raise SnncError(diagnostics=x.problems)
    edges = _edges(x)
    nodes, edges = _loops(x, edges)
    inp, out = _unique("input", nodes), _unique("output", nodes)
    shape = np.array(graph.network.input_shape)
    all_nodes = {inp: nir.Input(input_type={"input": shape}), **nodes,
                 out: nir.Output(output_type={"output": np.array(graph.output.out_shape)})}
    edges = [(inp if a == ir.INPUT else a, out if b == _OUT else b) for a, b in edges]
    return nir.NIRGraph(nodes=all_nodes, edges=edges, metadata={META_KEY: _metadata(x, inp, out)})


_OUT = "\0output"  # the graph's output, before it has a name


def _check_feedback(x: _Export, layer: ir.Layer) -> None:
    """A neuron read at the previous step must close a loop (NIR's cycles carry the step); a loop closed
    through a delay has no NIR reading (a cycle's step plus the delay's)."""
    g = x.graph
    for src in layer.inputs:
        if src == ir.INPUT or not g.is_feedback(layer.name, src):
            continue
        same_loop = g.group_of(src).loop and layer.name in g.group_of(src).nodes
        if isinstance(g.nodes[src].layer.op, ir.NeuronLayer) and not same_loop:
            x.problem(layer, f"node '{layer.name}' reads '{src}' at the previous step outside a loop; NIR delays a "
                      "value by a step only on a cycle", f"define '{src}' before '{layer.name}' and put delay(1) "
                      "between them (nir.Delay)")
        elif isinstance(g.nodes[src].layer.op, ir.Delay) and same_loop:
            x.problem(layer, f"node '{layer.name}' closes a loop through delay '{src}'; NIR fixes no step for a "
                      "cycle closed by a delay", "close the loop on a neuron's output (read at the previous step) "
                      "and keep the delay inside the loop")


def _edges(x: _Export) -> list[tuple[str, str]]:
    """NIR edges: every exported node's inputs, through adds and dropouts (NIR sums what reaches a node)."""
    by_name = {l.name: l for l in x.graph.network.layers}

    def sources(name: str) -> list[str]:
        if name == ir.INPUT or name in x.nodes:
            return [name]
        return [s for src in by_name[name].inputs for s in sources(src)]

    edges: list[tuple[str, str]] = []
    readers = [(l.name, l.inputs) for l in x.graph.network.layers if l.name in x.nodes]
    readers.append((_OUT, (x.graph.network.layers[-1].name,)))
    for name, inputs in readers:
        for src in inputs:
            if src != ir.INPUT and src not in x.nodes and isinstance(by_name[src].op, ir.Merge):
                x.merges[name] = src
            for s in sources(src):
                if (s, name) in edges:
                    layer = by_name.get(name, x.graph.network.layers[-1])
                    x.problem(layer, f"node '{name}' receives '{s}' twice (through an add); NIR has one edge per "
                              "pair of nodes", "scale the input with a linear layer instead")
                else:
                    edges.append((s, name))
    if x.problems:
        raise SnncError(diagnostics=x.problems)
    return edges


def _loops(x: _Export, edges: list[tuple[str, str]]):
    """Each loop entered at one node and left at one node becomes a sub-graph (Input -> entry ... exit ->
    Output, with its cycles inside); the top graph reads and feeds the sub-graph in their place."""
    import nir

    nodes = dict(x.nodes)
    for group in x.graph.schedule:
        members = [n for n in group.nodes if n in x.nodes]
        if not group.loop or not members:
            continue
        inside = set(members)
        entries = {b for a, b in edges if b in inside and a not in inside}
        exits = {a for a, b in edges if a in inside and b not in inside}
        if len(entries) != 1 or len(exits) != 1:
            continue
        (entry,), (exit_,) = entries, exits
        name = _loop_name(members, nodes, x)
        sub_edges = [("input", entry)] + [(a, b) for a, b in edges if a in inside and b in inside] + [(exit_, "output")]
        sub = {"input": nir.Input(input_type={"input": np.array(x.graph.nodes[entry].in_shapes[0])}),
               **{m: nodes.pop(m) for m in members},  # noqa: B035
               "output": nir.Output(output_type={"output": np.array(x.graph.nodes[exit_].out_shape)})}
        subgraph = nir.NIRGraph(nodes=sub, edges=sub_edges)
        placed = {}
        for n, node in nodes.items():  # the sub-graph takes its first member's place
            if x.graph.order.get(n, -1) > x.graph.order[members[0]] and name not in placed:
                placed[name] = subgraph
            placed[n] = node
        placed.setdefault(name, subgraph)
        nodes = placed
        outside = []
        for a, b in edges:
            if a in inside and b in inside:
                continue
            outside.append((name if a in inside else a, name if b in inside else b))
        edges = outside
    return nodes, edges


def _loop_name(members: list[str], nodes: dict, x: _Export) -> str:
    """The sub-graph's name: 'loop_' and the block the loop lies in ('loop_0' for '0.recurrent', '0.spikes'), else
    its first node."""
    parts = [m.split(".") for m in members]
    common = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    prefix = ".".join(common) if common and len(common) < min(len(p) for p in parts) else members[0]
    return _unique(f"loop_{prefix}", nodes)


def _unique(name: str, nodes: dict) -> str:
    out, k = name, 2
    while out in nodes:
        out, k = f"{name}_{k}", k + 1
    return out


def _metadata(x: _Export, inp: str, out: str) -> str:
    net = x.graph.network
    return json.dumps({
        "format": FORMAT, "snnc": __version__, "source": net.file, "dt": x.dt, "ties": x.ties,
        "ties_rule": TIES[x.ties], "input": inp, "output": out,
        "network": {"name": net.name, "input": list(net.input_shape), "T": net.T, "encoder": net.encoder,
                    "readout": net.readout, "step_mode": net.step_mode, "train": net.train.model_dump()},
        "order": list(x.nodes), "neurons": x.neurons, "nodes": x.meta_nodes, "dropped": x.dropped,
        "merges": {(out if k == _OUT else k): v for k, v in x.merges.items()},
    }, indent=1, sort_keys=True)


# ------------------------------------------------------------------ one converter per layer kind
def _flatten(x: _Export, layer: ir.Layer, info):
    import nir

    # every dimension of the input type, counted from the end: NIR's dimensions exclude the batch, while
    # snnTorch's and Norse's importers (and nirtorch's default) hand start_dim to torch.nn.Flatten, which
    # counts the batch; start_dim = -ndim means the same to NIR and to all of them (SpikingJelly's too)
    shape = np.array(info.in_shapes[0])
    return nir.Flatten(input_type={"input": shape}, start_dim=-len(shape), end_dim=-1)


def _linear(x: _Export, layer: ir.Layer, info):
    import nir

    weight = x.tensor(layer.name, "weight")
    return nir.Affine(weight=weight, bias=x.tensor(layer.name, "bias")) if layer.op.bias else nir.Linear(weight=weight)


def _conv2d(x: _Export, layer: ir.Layer, info):
    import nir

    op: ir.Conv2d = layer.op
    weight = x.tensor(layer.name, "weight")
    bias = x.tensor(layer.name, "bias") if op.bias else np.zeros(op.out_channels, dtype=weight.dtype)
    return nir.Conv2d(input_shape=tuple(info.in_shapes[0][1:]), weight=weight, stride=op.stride,
                      padding=op.padding, dilation=1, groups=1, bias=bias)


def _avgpool2d(x: _Export, layer: ir.Layer, info):
    import nir

    k, s = layer.op.kernel_size, layer.op.stride or layer.op.kernel_size
    node = nir.AvgPool2d(kernel_size=np.array([k, k]), stride=np.array([s, s]), padding=np.array([0, 0]))
    node.input_type = {"input": np.array(info.in_shapes[0])}
    node.output_type = {"output": np.array(info.out_shape)}
    return node


def _delay(x: _Export, layer: ir.Layer, info):
    import nir

    shape = info.in_shapes[0]
    steps = np.array(delay_steps(layer.op), dtype=np.float64)
    per_channel = steps.reshape((-1,) + (1,) * (len(shape) - 1)) if isinstance(layer.op.steps, tuple) else steps
    return nir.Delay(delay=np.broadcast_to(per_channel * x.dt, shape).copy())


def _neuron(x: _Export, layer: ir.Layer, info):
    import nir

    op: ir.NeuronLayer = layer.op
    neuron = x.checked.module.neuron(op.neuron)
    cfg = layer_config(neuron, op.overrides)
    module = x.net.node(layer.name)
    values = {p: float(getattr(module, p)) for p in module.FLOAT_PARAMS if getattr(module, p) is not None}
    learned = {l.name: float(getattr(module, l.name).detach().cpu().reshape(-1)[0]) for l in neuron.learnables}
    try:
        form = nir_form(neuron, cfg, {**values, **learned}, x.dt, x.ties)
    except NotNIR as exc:
        x.problem(layer, f"node '{layer.name}' ({neuron.name}) has no NIR form: {exc.reason}", exc.hint)
        return None
    shape = tuple(info.out_shape)
    params = {k: np.full(shape, v, dtype=np.float64) for k, v in form.params}
    x.neurons[neuron.name] = {"library": neuron.file == "snnc/lib/neurons.snn", "text": neuron_text(neuron)}
    x.meta_nodes[layer.name] = {
        "neuron": neuron.name, "arguments": [f"{k} = {value_text(v)}" for k, v in op.overrides],
        "learnables": learned, "nir": form.kind}
    sg = cfg.surrogate or neuron.surrogate
    dropped = [] if neuron.output == "membrane" else [
        "surrogate " + (sg.name + "(" + ", ".join(f"{k} = {v!r}" for k, v in sg.args) + ")")]
    if cfg.detach_reset:
        dropped.append("detach_reset = true")
    if dropped:
        x.dropped[layer.name] = dropped
    return getattr(nir, form.kind)(**params)


def _conv1d(x: _Export, layer: ir.Layer, info):
    import nir

    op: ir.Conv1d = layer.op
    weight = x.tensor(layer.name, "weight")
    bias = x.tensor(layer.name, "bias") if op.bias else np.zeros(op.out_channels, dtype=weight.dtype)
    return nir.Conv1d(input_shape=int(info.in_shapes[0][1]), weight=weight, stride=op.stride, padding=op.padding,
                      dilation=1, groups=1, bias=bias)


def _sumpool2d(x: _Export, layer: ir.Layer, info):
    import nir

    k, s = layer.op.kernel_size, layer.op.stride or layer.op.kernel_size
    node = nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([s, s]), padding=np.array([0, 0]))
    node.input_type = {"input": np.array(info.in_shapes[0])}
    node.output_type = {"output": np.array(info.out_shape)}
    return node


def _scale(x: _Export, layer: ir.Layer, info):
    import nir

    return nir.Scale(scale=x.tensor(layer.name, "weight"))


def _vote(x: _Export, layer: ir.Layer, info):
    """The mean of each group of `size` inputs: a Linear node whose weight holds 1/size in each group's block."""
    import nir

    n, size = info.in_shapes[0][0], layer.op.size
    weight = np.kron(np.eye(n // size, dtype=np.float32), np.full((1, size), 1.0 / size, dtype=np.float32))
    return nir.Linear(weight=weight)


CONVERT = {"vote": _vote, "flatten": _flatten, "linear": _linear, "conv2d": _conv2d, "avgpool2d": _avgpool2d, "delay": _delay,
           "neuron": _neuron, "conv1d": _conv1d, "sumpool2d": _sumpool2d, "scale": _scale}


def _dcls(x: _Export, layer: ir.Layer, info):
    """A learnable-delay layer at its rounded (inference) delays: a sub-graph with, per delay d in use, a
    `nir.Delay` of d * dt (none for d = 0) and a `nir.Linear` holding the synapses of that delay; the output sums
    them (NIR sums a node's inputs). `snnc import` reads it back as fixed delays and linear layers, added."""
    import nir

    module = x.net.node(layer.name)
    delays = module.delays().cpu().numpy()
    weight = x.tensor(layer.name, "weight")
    n_in = info.in_shapes[0][0]
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    edges = []
    for i, d in enumerate(sorted(set(delays.flat))):
        w = np.where(delays == d, weight, 0).astype(weight.dtype)
        if i == 0 and layer.op.bias:
            nodes[f"w{d}"] = nir.Affine(weight=w, bias=x.tensor(layer.name, "bias"))
        else:
            nodes[f"w{d}"] = nir.Linear(weight=w)
        if d:
            nodes[f"d{d}"] = nir.Delay(delay=np.full(n_in, d * x.dt))
            edges += [("input", f"d{d}"), (f"d{d}", f"w{d}")]
        else:
            edges.append(("input", f"w{d}"))
        edges.append((f"w{d}", "output"))
    nodes["output"] = nir.Output(output_type={"output": np.array(info.out_shape)})
    x.dropped[layer.name] = [f"{call_text(layer.op)}: exported at its rounded delays (continuous positions and "
                             f"the kernel width are training-only)"]
    return nir.NIRGraph(nodes=nodes, edges=edges)


CONVERT["dcls"] = _dcls
