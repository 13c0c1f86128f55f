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

import jinja2

from .. import __version__
from . import ir
from .check import infer_shapes
from .derive import Config, _reset
from .printers import PythonPrinter, SnnPrinter
from .resources import resource_dir
from .surrogates import canonical, grad_expr
from .symbolic import free_names

RUNTIME_FILE = "_snnc_runtime.py"


def comment(text: object) -> str:
    """Make text safe inside a comment or docstring: printable ASCII only, no quotes or backslashes."""
    return re.sub(r"[^A-Za-z0-9 _.,:;=+\-*/()\[\]<>^#@%&|!?{}~]", "?", str(text))


def _py(tensors):
    return lambda e, extra=(): PythonPrinter(set(tensors) | set(extra))(e)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["py"] = lambda e, tensors=(): PythonPrinter(set(tensors))(e)
    env.filters["text"] = SnnPrinter()
    env.filters["pyrepr"] = repr
    env.filters["comment"] = comment
    env.globals["version"] = __version__
    return env


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


def surrogate_from_call(value: ir.CallValue) -> ir.Surrogate:
    name = canonical(value.func) or value.func
    args = tuple((k, float(v.value)) for k, v in value.kwargs if isinstance(v, ir.Lit))
    return ir.Surrogate(name=name, args=args, span=value.span)


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
    tensors = {"x", *states, *learnables, *(f"_h_{s}" for s in states), "_spike", "_spike_r"}
    charge = [(a.target, a.value if a.op == "=" else ir.BinOp(op="+", left=ir.Var(name=a.target), right=a.value))
              for a in n.charge]
    soft, hard = _reset(n, Config(soft_reset=True)), _reset(n, Config(soft_reset=False))
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
        "states": states, "float_params": float_params, "bool_params": bool_params,
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
def _value_py(v: ir.Value) -> str:
    match v:
        case ir.Lit(value=x):
            return repr(x)
        case ir.ListValue(items=items):
            return "(" + "".join(_value_py(i) + ", " for i in items) + ")"
    raise ValueError(v)


def _layer_code(info, module: ir.Module, surrogates: _Surrogates) -> str:
    layer, shape = info.layer, info.in_shape
    match layer:
        case ir.Flatten():
            return "rt.Flatten()"
        case ir.Linear(out_features=o, bias=b):
            return f"rt.Linear({shape[0]}, {o}, bias={b})"
        case ir.Conv2d(out_channels=o, kernel_size=k, stride=s, padding=p, bias=b):
            return f"rt.Conv2d({shape[0]}, {o}, kernel_size={k}, stride={s}, padding={p}, bias={b})"
        case ir.MaxPool2d(kernel_size=k, stride=s):
            return f"rt.MaxPool2d({k}, stride={s or k})"
        case ir.AvgPool2d(kernel_size=k, stride=s):
            return f"rt.AvgPool2d({k}, stride={s or k})"
        case ir.BatchNorm1d():
            return f"rt.BatchNorm1d({shape[0]})"
        case ir.BatchNorm2d():
            return f"rt.BatchNorm2d({shape[0]})"
        case ir.Dropout(p=p):
            return f"rt.Dropout({p!r})"
        case ir.NeuronLayer(neuron=name, overrides=overrides):
            args = []
            for key, value in overrides:
                if key == "surrogate":
                    args.append(f"surrogate_function=SURROGATE_{surrogates.add(surrogate_from_call(value))}")
                else:
                    args.append(f"{key}={_value_py(value)}")
            return f"neurons.{name}({', '.join(args)})"
    raise ValueError(layer)


def _describe(info) -> str:
    layer = info.layer
    name = layer.neuron if isinstance(layer, ir.NeuronLayer) else layer.kind
    return f"{name}: {list(info.in_shape)} -> {list(info.out_shape)}, {info.params} parameters"


def _network_context(net: ir.Network, module: ir.Module, surrogates: _Surrogates) -> dict:
    infos = infer_shapes(net, module)
    layers = [{"code": _layer_code(i, module, surrogates),
               "comment": f"{_describe(i)} ({_origin(i.layer, net.file)})"} for i in infos]
    return {
        "name": net.name, "origin": _origin(net, net.file), "T": net.T, "input_shape": tuple(net.input_shape),
        "classes": infos[-1].out_shape[0] if infos else 0, "encoder": net.encoder, "readout": net.readout,
        "step_mode": net.step_mode, "train": net.train.model_dump(), "layers": layers,
        "rows": [comment(_describe(i)) for i in infos],
    }


def emitted_neurons(module: ir.Module) -> list[ir.Neuron]:
    """The file's own neurons, and the imported ones its networks use."""
    used = {l.neuron for net in module.networks for l in net.layers if isinstance(l, ir.NeuronLayer)}
    return [n for n in module.neurons if n.file == module.file or n.name in used]


def render(module: ir.Module) -> dict[str, str]:
    """All Python artifacts of a module: the package files, by file name.

    Neurons defined in the file itself are emitted, and imported ones only where a network uses them.
    """
    env = environment()
    neuron_surrogates, net_surrogates = _Surrogates(), _Surrogates()
    neurons = [_neuron_context(n, neuron_surrogates) for n in emitted_neurons(module)]
    networks = [_network_context(net, module, net_surrogates) for net in module.networks]
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

    stem = re.sub(r"\W", "_", Path(path).stem, flags=re.ASCII) or "model"
    return stem if stem[0].isalpha() else f"snn_{stem}"


def module_json(module: ir.Module) -> str:
    return json.dumps(module.model_dump(mode="json"), indent=2)
