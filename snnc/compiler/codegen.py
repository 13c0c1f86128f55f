"""IR to source text: `{artifact name: text}`. Nothing here touches the file system or imports generated code.

Every name in the output comes from the IR (identifiers checked by the grammar
and `check`), every number is printed by a printer, and every other string
(file names, requirement text) goes through `pyrepr` or `comment`: a `.snn`
file cannot inject code.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from . import ir
from . import forward, memory
from .check import Checked
from .graph import Graph, NodeInfo, rows
from .layers import EmitContext, describe, kind_of
from .neuron import MEMBRANE, Config, emitted_neurons, reset_updates, threshold
from .printers import PythonPrinter, SnnPrinter
from .surrogates import grad_expr, surrogate_from_value
from .exprs import free_names
from .templating import comment, environment

RUNTIME_FILE = "_snnc_runtime.py"


# ------------------------------------------------------------------ surrogates
@dataclass(frozen=True)
class SurrogateArtifact:
    index: int
    text: str
    grad: ir.Expr
    spec: str


class _Surrogates:
    """The distinct surrogates a file uses, numbered in order of first use."""

    def __init__(self):
        self.items: dict[str, SurrogateArtifact] = {}

    def add(self, s: ir.Surrogate) -> int:
        spec = s.model_dump_json()
        if spec not in self.items:
            args = ", ".join(f"{k}={v!r}" for k, v in s.args)
            text = f"{s.name}({args})" if s.name != "custom" else f"grad = {SnnPrinter()(s.grad)} ({args})"
            self.items[spec] = SurrogateArtifact(len(self.items), text, grad_expr(s), spec)
        return self.items[spec].index


def surrogate_source(s: ir.Surrogate) -> str:
    """Python source defining `SURROGATE_0` for one surrogate (used by `snnc.surrogate`)."""
    table = _Surrogates()
    table.add(s)
    env = environment()
    macro = env.get_template("_python.j2").module.surrogate_def
    return str(macro(next(iter(table.items.values()))))


# ------------------------------------------------------------------ neurons
def _origin(node: ir.Node, file: str) -> str:
    return f"{file}:{node.span.line}" if node.span else file


def _neuron_context(n: ir.Neuron, surrogates: _Surrogates) -> dict:
    float_params = tuple(p.name for p in n.params if p.type == "float")
    bool_params = tuple(p.name for p in n.params if p.type == "bool")
    scalar_py = PythonPrinter()
    states = tuple(s.name for s in n.states)
    learnables = tuple(l.name for l in n.learnables)
    tensors = {"x", *states, *learnables, *(f"_h_{s}" for s in states), "_spike", "_spike_r",
               *(a.target for a in n.charge)}
    charge = [(a.target, a.value if a.op == "=" else ir.BinOp(op="+", left=ir.Var(name=a.target), right=a.value))
              for a in n.charge]
    soft, hard = reset_updates(n, Config(soft_reset=True)), reset_updates(n, Config(soft_reset=False))
    step_names = set().union(*(free_names(e) for _, e in (*charge, *soft, *hard))) | {"v_threshold", "detach_reset"}

    def bind(names: set[str]) -> str:
        """Local names for the parameters a method reads (`v_reset` reads as 0 under soft reset)."""
        lines = [f"{p} = self.{p}" if p != "v_reset" else "v_reset = 0.0 if self.v_reset is None else self.v_reset"
                 for p in float_params + bool_params if p in names]
        return "\n        ".join(lines) or "pass"

    snn = SnnPrinter()
    requires = []
    for r in n.requires:
        names = sorted({v for v in free_names(r.cond)})
        requires.append({"cond": scalar_py(r.cond), "text": snn(r.cond),
                         "shown": "{" + ", ".join(f"{k!r}: {k}" for k in names) + "}"})
    return {
        "name": n.name, "origin": _origin(n, n.file), "spec": n.model_dump_json(),
        "states": states, "membrane": states.index(MEMBRANE) if MEMBRANE in states else 0,
        "threshold": threshold(n), "threshold_text": snn(threshold(n)).replace("_h_", "H_"),
        "nonspiking": n.output == "membrane", "float_params": float_params, "bool_params": bool_params,
        "params": [{"name": p.name, "type": p.type, "optional": p.optional,
                    "default": "None" if p.default is None else scalar_py(p.default)} for p in n.params],
        "requires": requires, "surrogate": surrogates.add(n.surrogate),
        "bind_step": bind(step_names),
        "bind_init": bind(set().union(*(free_names(s.init) for s in n.states))),
        "bind_learnables": bind(set().union(set(), *(free_names(l.init) for l in n.learnables))),
        "learnables": [(l.name, scalar_py(l.init)) for l in n.learnables], "learnable_names": learnables,
        "init": [(s.name, scalar_py(s.init)) for s in n.states],
        "charge": charge,
        "on_spike": [(a.target, f"{a.op} {snn(a.value)}") for a in n.on_spike],
        "soft": soft, "hard": hard,
        "tensors": sorted(tensors),
    }


# ------------------------------------------------------------------ networks
def _describe(info: NodeInfo) -> str:
    shapes = ", ".join(str(list(s)) for s in info.in_shapes)
    return f"{describe(info.layer.op)}: {shapes} -> {list(info.out_shape)}, {info.params} parameters"


def _network_context(graph: Graph, surrogates: _Surrogates, module: ir.Module) -> dict:
    net = graph.network
    ctx = EmitContext(lambda value: f"SURROGATE_{surrogates.add(surrogate_from_value(value))}")

    def emit(info: NodeInfo) -> str:
        code = kind_of(info.layer.op).emit(info.layer.op, list(info.in_shapes), ctx)
        return f"{code}  # {comment(_describe(info))} ({comment(_origin(info.layer, net.file))})"

    return {
        "name": net.name, "origin": _origin(net, net.file), "T": net.T, "input_shape": tuple(net.input_shape),
        "classes": graph.output.out_shape[0], "encoder": net.encoder,
        "readout": "mean" if net.readout == "rate" else net.readout, "step_mode": net.step_mode,
        "train": net.train.model_dump(), "output": graph.output.layer.name,
        "graph": rows(net), "loops": forward.loops(graph), "memory": memory.actions(graph, module),
        "modules": forward.modules(graph, emit), "seq": forward.forward_seq(graph), "step": forward.forward_step(graph),
        "rows": [comment(f"{name}: {_describe(info)}") for name, info in graph.nodes.items()],
    }


def render(checked: Checked) -> dict[str, str]:
    """All Python artifacts of a checked module: the package files, by file name.

    Neurons defined in the file itself are emitted, and imported ones only where a network uses them.
    """
    module = checked.module
    env = environment()
    neuron_surrogates, net_surrogates = _Surrogates(), _Surrogates()
    neurons = [_neuron_context(n, neuron_surrogates) for n in emitted_neurons(module)]
    networks = [_network_context(checked.graphs[net.name], net_surrogates, module) for net in module.networks]
    common = {"origin": module.file}
    return {
        "__init__.py": env.get_template("__init__.py.j2").render(
            neuron_names=[n["name"] for n in neurons], network_names=[n.name for n in module.networks], **common),
        "neurons.py": env.get_template("neurons.py.j2").render(
            neurons=neurons, surrogates=list(neuron_surrogates.items.values()), **common),
        "networks.py": env.get_template("networks.py.j2").render(
            networks=networks, surrogates=list(net_surrogates.items.values()), **common),
    }


def package_name(path: str) -> str:
    from pathlib import Path

    stem = re.sub(r"\W", "_", Path(path).stem, flags=re.ASCII)[:40] or "model"
    return stem if stem[0].isalpha() else f"snn_{stem}"


def module_json(module: ir.Module) -> str:
    return json.dumps(module.model_dump(mode="json"), indent=2)
