"""Parsed items to IR: files and their imports, neurons, blocks and networks as graphs.

`load_module` reads a file and everything it imports (`parse` turns each into plain items) and builds one
`ir.Module`. Structural problems (two charge blocks, an unknown layer, a reference to no node) are
collected per file and raised together; semantic checks (shapes, loops, types) live in `check`.

A network's `layers { ... }` is a list of nodes. Each node may be named (`fc = linear(10)`) and reads the
node before it unless it says otherwise (`linear(10) from fc`, `add(a, b)`). Blocks (`block Name(params)
{ nodes }`) are expanded in place: their nodes get the instance's name as a path prefix (`b1.conv`), and the
instance's name stands for the block's last node.
"""
from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from . import ir
from .datasets import DATASETS, DEFAULT as DEFAULT_DATASET
from .layers import KINDS, NOT_YET
from .parse import MAX_NEURONS, TOO_MANY_NEURONS, parse_source, to_value
from .printers import value_text
from .resources import library, library_module_of
from .source import Diagnostics, SnncError, Source, Span, did_you_mean

MAX_PATH = 4096  # bytes in an import path (Linux's PATH_MAX)
MAX_NESTING = 100  # blocks inside blocks, files importing files: as deep as the expressions may nest

# Parameters every neuron has, with SpikingJelly's defaults. A neuron may redeclare one to change its default.
BUILTIN_PARAMS = (
    ir.Param(name="v_threshold", type="float", default=ir.Num(value=1.0)),
    ir.Param(name="v_reset", type="float", optional=True, default=ir.Num(value=0.0)),
    ir.Param(name="detach_reset", type="bool", default=ir.Bool(value=False)),
)
DEFAULT_SURROGATE = ir.Surrogate(name="sigmoid", args=(("alpha", 4.0),))
NETWORK_SETTINGS = ("input", "T", "encoder", "readout", "step_mode", "dt")
OUTPUTS = ("spike", "membrane")
INTEGRATORS = ("euler", "rk2", "exponential_euler", "exact")


def _constant(expr, source: Source) -> float | None:
    value = to_value(expr, source)
    if isinstance(value, ir.Lit) and isinstance(value.value, float) and not isinstance(value.value, bool):
        return value.value
    return None


# ------------------------------------------------------------------ neurons
def neuron_from_items(name: str, items: list, source: Source, span: Span, name_span: Span) -> ir.Neuron:
    out = Diagnostics(source)
    params: dict[str, ir.Param] = {}
    learnables, states, requires = [], [], []
    blocks: dict[str, tuple] = {}
    surrogate = None
    output = None
    integrate = None
    for item in items:
        match item:
            case ir.Param():
                if item.name in params:
                    out.error(f"parameter '{item.name}' is declared twice", item.span, "remove one declaration")
                params[item.name] = item
            case ir.Learnable():
                learnables.append(item)
            case ir.State():
                states.append(item)
            case ir.Require():
                requires.append(item)
            case ("charge" | "on_spike", assigns, block_span):
                if item[0] in blocks:
                    out.error(f"second '{item[0]}' block in neuron '{name}'", block_span,
                              f"put all {item[0]} equations in one block")
                blocks[item[0]] = assigns
            case ("surrogate", sg_name, kwargs, sg_span):
                if surrogate is not None:
                    out.error("second surrogate declaration", sg_span, "a neuron has one surrogate gradient")
                surrogate = ir.Surrogate(name=sg_name, args=_surrogate_args(kwargs, out), span=sg_span)
            case ("custom_surrogate", grad, kwargs, sg_span):
                if surrogate is not None:
                    out.error("second surrogate declaration", sg_span, "a neuron has one surrogate gradient")
                surrogate = ir.Surrogate(name="custom", args=_surrogate_args(kwargs, out), grad=grad, span=sg_span)
            case ("integrate", method, int_span):
                if integrate is not None:
                    out.error("second integrate declaration", int_span, "a neuron has one integration method")
                if method not in INTEGRATORS:
                    out.error(f"unknown integration method '{method}'", int_span,
                              did_you_mean(method, INTEGRATORS) or f"methods: {', '.join(INTEGRATORS)}")
                integrate = (method, int_span)
            case ("output", what, out_span):
                if output is not None:
                    out.error("second output declaration", out_span, "a neuron has one output")
                if what not in OUTPUTS:
                    out.error(f"unknown output '{what}'", out_span,
                              "write 'output membrane' for a non-spiking neuron (default: 'output spike')")
                output = what
    if "charge" not in blocks:
        out.error(f"neuron '{name}' has no charge equation", name_span,
                  "add e.g. 'charge v = v + (x - v) / tau' (H[t] = f(V[t-1], X[t]))")
    odes = [a for a in blocks["charge"] if a.op == "d/dt"] if "charge" in blocks else []
    if integrate is not None and not odes:
        out.error(f"neuron '{name}' says how to integrate but has no differential equation", integrate[1],
                  "write the charge as e.g. 'charge dv/dt = (-(v - v_reset) + x) / tau'")
    out.raise_if_any()
    dynamic = {s.name for s in states} | {l.name for l in learnables}
    all_params = [params.pop(p.name, p) for p in BUILTIN_PARAMS if p.name not in dynamic or p.name in params]
    all_params += list(params.values())
    if odes:  # a time step: declared, or the built-in dt = 1.0; positive either way
        if not any(p.name == "dt" for p in all_params):
            all_params.append(ir.Param(name="dt", type="float", default=ir.Num(value=1.0)))
        dt_param = next(p for p in all_params if p.name == "dt")
        requires.append(ir.Require(cond=ir.BinOp(op=">", left=ir.Var(name="dt"), right=ir.Num(value=0.0)),
                                   span=dt_param.span or odes[0].span))
    return ir.Neuron(
        name=name, file=source.name, params=tuple(all_params), learnables=tuple(learnables), states=tuple(states),
        charge=blocks["charge"], on_spike=blocks.get("on_spike", ()), requires=tuple(requires),
        surrogate=surrogate or DEFAULT_SURROGATE, output=output or "spike",
        integrate=integrate[0] if integrate else "euler", span=span,
    )


def _surrogate_args(kwargs, out: Diagnostics) -> tuple[tuple[str, float], ...]:
    args = []
    for key, value, span in kwargs:
        number = _constant(value, out.sources)
        if number is None:
            out.error(f"surrogate argument '{key}' must be a number", span, f"write e.g. {key}=2.0")
        else:
            args.append((key, number))
    return tuple(args)


# ------------------------------------------------------------------ blocks and graphs
@dataclass(frozen=True)
class Block:
    """A reusable group of nodes with parameters, expanded wherever it is used."""

    name: str
    params: tuple[tuple[str, ir.Value | None, Span], ...]
    nodes: tuple
    source: Source
    span: Span
    name_span: Span


@dataclass(frozen=True)
class _Ref:
    """A node name to resolve once its scope is complete."""

    scope: "_Scope"
    name: str
    span: Span | None
    source: Source

    def __hash__(self):
        return id(self)


@dataclass(eq=False)
class _Scope:
    prefix: str  # '' at the top, 'b1.' inside block instance b1
    input: object  # what 'in' means here: 'in' at the top, else the instance's input (_Ref or path)
    args: dict[str, ir.Value]  # block arguments by parameter name
    stack: tuple[str, ...] = ()  # the blocks being expanded (recursion check)
    names: dict[str, object] = field(default_factory=dict)  # label -> path or _Ref (a block instance's output)


class _Graph:
    """Expands a network's nodes (and the blocks they use) into `ir.Layer`s with resolved inputs."""

    def __init__(self, neurons: dict[str, ir.Neuron], blocks: dict[str, Block], out: Diagnostics):
        self.neurons, self.blocks, self.out = neurons, blocks, out
        self.layers: list[dict] = []  # name, op, inputs (refs), label, span; inputs resolved at the end

    def expand(self, nodes, scope: _Scope, source: Source) -> object:
        """Add the scope's nodes; returns what the scope's output is (a path or a _Ref)."""
        last: object = scope.input
        for index, (_, label, layer, refs, span) in enumerate(nodes):
            key = label[0] if label else str(index)
            if label:
                self._declare(scope, label, source)
            last = self._node(scope, key, label, layer, refs, span, last, source)
            scope.names.setdefault(key, last)
        return last

    def _declare(self, scope: _Scope, label, source: Source) -> None:
        name, span = label
        if name == ir.INPUT:
            self.out.error(f"'{ir.INPUT}' names the input of the network (or block); a node cannot take it", span,
                           "choose another name", source)
        elif name in scope.names:
            self.out.error(f"node '{name}' is defined twice", span, "node names are unique in a network or block",
                           source)
        elif "__" in name:
            self.out.error(f"node name '{name}' contains '__', which generated code uses to join block paths",
                           span, "use a single '_'", source)

    def _node(self, scope: _Scope, key: str, label, layer, refs, span, previous, source: Source) -> object:
        lname, args, lname_span, lspan = layer
        lname, args = self._substitute_call(scope, lname, args, lname_span, source)
        positional = [a for a in args if not isinstance(a, tuple)]
        named = {a[0]: (a[1], a[2]) for a in args if isinstance(a, tuple)}
        path = scope.prefix + key
        if lname in KINDS and lname != "neuron":
            kind = KINDS[lname]
            if kind.arity[0] > 1:  # a merge: its inputs are its positional arguments
                if refs:
                    self.out.error(f"{lname} takes its inputs as arguments, not with 'from'", refs[0][1],
                                   f"write {lname}(a, b)", source)
                inputs = []
                for a in positional:
                    if isinstance(a, ir.Lit) and isinstance(a.value, str):
                        inputs.append(_Ref(scope, a.value, a.span, source))
                    else:
                        self.out.error(f"{lname} takes the names of the nodes it merges", a.span or lspan,
                                       f"write e.g. {lname}(a, b) with a and b names of earlier nodes", source)
                if named and not kind.arguments:
                    self.out.error(f"{lname} has no named arguments", lspan, f"write {lname}(a, b)", source)
                    named = {}
                if len(inputs) == len(positional) and not (kind.arity[0] <= len(inputs) <= (kind.arity[1] or len(inputs))):
                    want = f"exactly {kind.arity[0]}" if kind.arity[0] == kind.arity[1] else f"at least {kind.arity[0]}"
                    self.out.error(f"{lname} merges {want} inputs, not {len(positional)}", lspan,
                                   f"write {lname}(a, b)", source)
                op = self._op(kind, [], named, lspan, source)  # its options by name: matmul(q, k, scale = 0.125)
            else:
                inputs = [_Ref(scope, n, s, source) for n, s in refs] or [previous]
                op = self._op(kind, positional, named, lspan, source)
            return self._add(path, op, inputs, label, lspan, source)
        inputs = [_Ref(scope, n, s, source) for n, s in refs] or [previous]
        if lname in self.neurons:
            if positional:
                self.out.error(f"neuron layer '{lname}' takes named arguments only", lspan,
                               "write e.g. LIF(tau = 2.0)", source)
            overrides = tuple((k, v) for k, (v, _) in named.items())
            spans = tuple(s for _, (_, s) in named.items())
            op = ir.NeuronLayer(neuron=lname, overrides=overrides, override_spans=spans, span=lspan)
            return self._add(path, op, inputs, label, lspan, source)
        if lname in self.blocks:
            if len(inputs) != 1:
                self.out.error(f"block '{lname}' takes one input, not {len(inputs)}", lspan,
                               "merge the inputs first, e.g. with add(a, b) or concat(a, b)", source)
            return self._instance(scope, self.blocks[lname], path, positional, named, inputs[0], lspan, source)
        self.out.error(f"unknown layer, neuron or block '{lname}'", lname_span, self._unknown_hint(lname), source)
        return previous

    def _unknown_hint(self, lname: str) -> str:
        """What to write instead of an unknown layer name: a layer still to come, a library neuron or block
        not imported, or the closest known name."""
        if lname.lower() in NOT_YET:
            return NOT_YET[lname.lower()]
        module = library_module_of(lname)
        if module is not None:
            return f"'{lname}' is in snnc's library: add 'import {module}' at the top of the file"
        choices = [k for k in KINDS if k != "neuron"] + list(self.neurons) + list(self.blocks)
        return did_you_mean(lname, choices) or "define it in this file or import a file that defines it"

    def _substitute_call(self, scope: _Scope, lname: str, args: list, span, source: Source):
        """Inside a block: a layer named by a parameter (`neuron(...)`) and arguments that are parameters."""
        args = [(a[0], self._value(scope, to_value(a[1], source)), a[2]) if isinstance(a, tuple)
                else self._value(scope, to_value(a, source)) for a in args]
        if lname in scope.args:
            value = scope.args[lname]
            match value:
                case ir.Lit(value=str(name)):
                    return name, args
                case ir.CallValue(func=name, args=extra_pos, kwargs=extra_kw):
                    given = {a[0] for a in args if isinstance(a, tuple)}
                    extra = [(k, v, span) for k, v in extra_kw if k not in given]
                    return name, [*extra_pos, *extra, *args]
            self.out.error(f"block parameter '{lname}' is used as a layer, but its value is not a layer name",
                           span, "pass a layer, neuron or block name, e.g. neuron = LIF", source)
        return lname, args

    def _value(self, scope: _Scope, value: ir.Value) -> ir.Value:
        match value:
            case ir.Lit(value=str(name)) if name in scope.args:
                return scope.args[name]
            case ir.ListValue(items=items):
                return ir.ListValue(items=tuple(self._value(scope, i) for i in items), span=value.span)
            case ir.CallValue(func=f, args=a, kwargs=kw):
                return ir.CallValue(func=f, args=tuple(self._value(scope, i) for i in a),
                                    kwargs=tuple((k, self._value(scope, v)) for k, v in kw), span=value.span)
        return value

    def _op(self, kind, positional, named, span, source: Source):
        order = kind.arguments
        if len(positional) > len(order):
            self.out.error(f"'{kind.name}' takes at most {len(order)} positional argument(s)", span,
                           f"arguments are: {', '.join(order) or 'none'}", source)
            return None
        fields = dict(zip(order, (plain(v) for v in positional)))
        for key, (value, kspan) in named.items():
            if key not in order:
                self.out.error(f"'{kind.name}' has no argument '{key}'", kspan or span,
                               did_you_mean(key, order) or f"arguments are: {', '.join(order) or 'none'}", source)
                return None
            if key in fields:
                self.out.error(f"argument '{key}' of '{kind.name}' is given twice", kspan or span, None, source)
                return None
            fields[key] = plain(value)
        return validated(kind.ir_class, {**fields, **kind.fixed, "span": span}, self.out, span, kind.name, source)

    def _instance(self, scope: _Scope, block: Block, path: str, positional, named, input_, span, source):
        if len(scope.stack) >= MAX_NESTING:
            self.out.error(f"blocks nested more than {MAX_NESTING} deep: {' -> '.join(scope.stack[:3])} -> ... -> "
                           f"{block.name}", span, "use fewer levels of blocks inside blocks", source)
            return input_
        if block.name in scope.stack:
            chain = " -> ".join((*scope.stack[scope.stack.index(block.name):], block.name))
            self.out.error(f"recursion between blocks: {chain}", span,
                           "a block cannot contain itself, directly or through other blocks", source)
            return input_
        names = [p for p, _, _ in block.params]
        args: dict[str, ir.Value] = {}
        if len(positional) > len(names):
            self.out.error(f"block '{block.name}' takes at most {len(names)} argument(s), not {len(positional)}",
                           span, f"its parameters are: {', '.join(names) or 'none'}", source)
        args.update(zip(names, positional))
        for key, (value, kspan) in named.items():
            if key not in names:
                self.out.error(f"block '{block.name}' has no parameter '{key}'", kspan or span,
                               did_you_mean(key, names) or f"its parameters are: {', '.join(names) or 'none'}",
                               source)
            elif key in args:
                self.out.error(f"block parameter '{key}' is given twice", kspan or span, None, source)
            else:
                args[key] = value
        for name, default, _ in block.params:
            if name not in args:
                if default is None:
                    self.out.error(f"block '{block.name}' needs a value for its parameter '{name}'", span,
                                   f"write e.g. {block.name}({', '.join(names)}) or {block.name}({name} = ...)",
                                   source)
                    return input_
                args[name] = default
        inner = _Scope(prefix=path + ".", input=input_, args=args, stack=(*scope.stack, block.name))
        if not block.nodes:
            self.out.error(f"block '{block.name}' has no nodes", block.span, "add layers to it", block.source)
            return input_
        return self.expand(block.nodes, inner, block.source)

    def _add(self, path, op, inputs, label, span, source):
        if op is not None:
            self.layers.append({"name": path, "op": op, "inputs": inputs, "label": label[0] if label else None,
                                "span": span, "source": source})
        return path

    # ----- resolution
    def resolve(self, ref) -> str | None:
        seen = set()
        while isinstance(ref, _Ref):
            if ref in seen:
                return None
            seen.add(ref)
            if ref.name == ir.INPUT:
                ref = ref.scope.input
            elif ref.name in ref.scope.names:
                ref = ref.scope.names[ref.name]
            else:
                known = [n for n in ref.scope.names if not n.isdigit()] + [ir.INPUT]
                self.out.error(f"no node named '{ref.name}'", ref.span,
                               did_you_mean(ref.name, known) or f"nodes here: {', '.join(known)}", ref.source)
                return None
        return ref

    def finish(self) -> list[ir.Layer]:
        layers = []
        for item in self.layers:
            inputs = [self.resolve(r) for r in item["inputs"]]
            if any(i is None for i in inputs):
                continue
            layers.append(ir.Layer(name=item["name"], op=item["op"], inputs=tuple(inputs), label=item["label"],
                                   span=item["span"]))
        return layers


# ------------------------------------------------------------------ networks
def plain(value: ir.Value):
    match value:
        case ir.Lit(value=v):
            return int(v) if isinstance(v, float) and v.is_integer() else v
        case ir.ListValue(items=items):
            return tuple(plain(i) for i in items)
    return value


MAX_INT = 2**31 - 1  # sizes, steps and counts: what torch indexes with 32-bit integers, and far beyond any model


def validated(cls, fields: dict, out: Diagnostics, span: Span | None, what: str, source: Source | None = None,
              spans: dict | None = None):
    """An IR object, or None with the validation errors reported at the field's span (else `span`).
    Whole numbers (sizes, strides, steps, counts) must lie within +-MAX_INT."""
    from pydantic import ValidationError

    try:
        obj = cls(**fields)
    except ValidationError as exc:
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else ""
            hint = f"expected {err['ctx']['expected']}" if err["type"] == "literal_error" else err["msg"].lower()
            got = err.get("input")
            shown = got if not isinstance(got, ir.Node) else "a call"
            out.error(f"invalid value {shown!r} for {what} argument '{key}'", (spans or {}).get(key, span), hint,
                      source)
        return None
    for key in type(obj).model_fields:
        value = getattr(obj, key)
        numbers = value if isinstance(value, tuple) else (value,)
        big = next((v for v in numbers if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT), None)
        if big is not None:
            shown = f"{big:.3g}" if abs(big) >= 1e15 else str(big)
            out.error(f"{what} argument '{key}' is {shown}, beyond snnc's limit of {MAX_INT} (2^31 - 1)",
                      (spans or {}).get(key, span), "sizes, steps and counts must be whole numbers below 2^31",
                      source)
            return None
    return obj


def link_network(draft: tuple, neurons: dict[str, ir.Neuron], blocks: dict[str, Block], source: Source) -> ir.Network:
    _, name, items, net_span, _ = draft
    out = Diagnostics(source)
    settings: dict = {}
    train: dict = {}
    graph = _Graph(neurons, blocks, out)
    seen_layers = False
    for item in items:
        match item:
            case ("setting", key, value, sspan, key_span):
                if key not in NETWORK_SETTINGS:
                    out.error(f"unknown network setting '{key}'", key_span,
                              did_you_mean(key, NETWORK_SETTINGS) or f"settings are: {', '.join(NETWORK_SETTINGS)}")
                elif key in settings:
                    out.error(f"setting '{key}' is given twice", sspan)
                settings[key] = (to_value(value, source), sspan)
            case ("layers", nodes, lspan):
                if seen_layers:
                    out.error("second 'layers' block", lspan, "list all layers in one block")
                seen_layers = True
                graph.expand(nodes, _Scope(prefix="", input=ir.INPUT, args={}), source)
            case ("train", train_items, _):
                for _, key, value, tspan, key_span in train_items:
                    if key in train:
                        out.error(f"training setting '{key}' is given twice", key_span)
                    train[key] = (to_value(value, source), tspan, key_span)
    for required in ("input", "T"):
        if required not in settings:
            out.error(f"network '{name}' has no '{required}' setting", net_span,
                      "add e.g. 'input = [1, 28, 28]'" if required == "input" else "add e.g. 'T = 100'")
    if not seen_layers or not graph.layers:
        out.error(f"network '{name}' has no layers", net_span, "add a 'layers { ... }' block")
    layers = graph.finish()
    out.raise_if_any()
    if "dt" in settings:  # the network's time step, for every layer of a neuron with one that sets none itself
        value, dt_span = settings["dt"]
        dt = value.value if isinstance(value, ir.Lit) else None
        if not isinstance(dt, float) or isinstance(dt, bool) or not dt > 0:
            out.error(f"the time step dt must be a positive number, not {value_text(value)}", dt_span,
                      "e.g. dt = 0.5 (it sets the parameter dt of every neuron layer that has one)")
            out.raise_if_any()
        value, _ = settings.pop("dt")
        layers = [_with_dt(l, value, neurons) for l in layers]
    fields = {"name": name, "file": source.name, "span": net_span, "layers": tuple(layers)}
    spans = {}
    for key, (value, vspan) in settings.items():
        field_name = "input_shape" if key == "input" else key
        fields[field_name] = plain(value)
        spans[field_name] = vspan
    fields["train"], train_spans = _train(train, out, source)
    out.raise_if_any()
    if "encoder" not in fields:  # the dataset's own encoder (check reports an unknown dataset)
        data = DATASETS.get(fields["train"].dataset or DEFAULT_DATASET)
        fields["encoder"] = data.encoder if data is not None else ir.Network.model_fields["encoder"].default
    fields["setting_spans"] = (*spans.items(), *((f"train.{k}", v) for k, v in train_spans.items()))
    net = validated(ir.Network, fields, out, net_span, "network", source, spans)
    out.raise_if_any()
    return net


def _with_dt(layer: ir.Layer, value: ir.Value, neurons: dict[str, ir.Neuron]) -> ir.Layer:
    op = layer.op
    if not isinstance(op, ir.NeuronLayer) or neurons[op.neuron].param("dt") is None or "dt" in dict(op.overrides):
        return layer
    spans = (*(op.override_spans or (None,) * len(op.overrides)), value.span)
    new_op = op.model_copy(update={"overrides": (*op.overrides, ("dt", value)), "override_spans": spans})
    return layer.model_copy(update={"op": new_op})


def _train(train: dict, out: Diagnostics, source: Source) -> tuple[ir.Train, dict]:
    """The train block, and where each of its settings (and data steps: 'augment.1') was written."""
    known = set(ir.Train.model_fields) - {"span"}
    fields, spans = {}, {}
    for key, (value, tspan, key_span) in train.items():
        if key not in known:
            out.error(f"unknown training setting '{key}'", key_span, did_you_mean(key, known) or
                      f"training settings are: {', '.join(sorted(known))}")
            continue
        spans[key] = tspan
        if key in DATA_STEPS:
            fields[key] = _steps(key, value, tspan, out, spans)
        else:
            fields[key] = plain(value)
    if out.diags:
        return ir.Train(), spans
    train = validated(ir.Train, fields, out, None, "training", source, spans)
    if train is None:
        return ir.Train(), spans
    problems = {  # what the optimiser and the data split accept (the runner refuses the rest, without a place)
        "epochs": (train.epochs >= 1, "a positive whole number of epochs"),
        "batch_size": (train.batch_size >= 1, "a positive whole number of images"),
        "lr": (math.isfinite(train.lr) and train.lr > 0, "a positive number"),
        "momentum": (math.isfinite(train.momentum) and train.momentum >= 0, "a number >= 0"),
        "weight_decay": (math.isfinite(train.weight_decay) and train.weight_decay >= 0, "a number >= 0"),
        "val_split": (0.0 <= train.val_split < 1.0, "a fraction in [0, 1): the share of training images held out"),
        "seed": (train.seed >= 0, "a whole number >= 0"),
        "delay_sigma": (len(train.delay_sigma) in (0, 2) and all(math.isfinite(v) and v >= 0 for v in train.delay_sigma),
                        "[start, end]: two kernel widths >= 0 in steps, e.g. [12.5, 0.5]"),
        "delay_epochs": (train.delay_epochs is None or train.delay_epochs >= 0, "a whole number of epochs >= 0"),
        "delay_lr": (train.delay_lr is None or (math.isfinite(train.delay_lr) and train.delay_lr > 0),
                     "a positive number"),
    }
    for key, (ok, want) in problems.items():
        if not ok:
            out.error(f"training setting '{key}' is {getattr(train, key)!r}; it must be {want}", spans.get(key),
                      f"e.g. {key} = {getattr(ir.Train(), key)!r}")
    return train, spans


DATA_STEPS = {"frames": False, "transform": True, "augment": True}  # train settings naming data steps: a list?


def _steps(key: str, value: ir.Value, span: Span | None, out: Diagnostics, spans: dict):
    """`frames = time_window(us = 10000)`, `augment = [crop(4), flip]`: the train block's data steps as IR
    (`frames` one step, the others a list; `spans` gains where each item was written, as 'augment.1').
    Whether the names and arguments exist is `check`'s."""
    items = value.items if isinstance(value, ir.ListValue) else (value,)
    if isinstance(value, ir.ListValue) and not DATA_STEPS[key]:
        out.error(f"'{key}' takes one binning, not a list", span, "e.g. frames = time_bins(10)")
        return None
    steps = []
    for item in items:
        step = _step(item, key, out)
        if step is not None:
            if DATA_STEPS[key] and item.span is not None:
                spans[f"{key}.{len(steps)}"] = item.span
            steps.append(step)
    return tuple(steps) if DATA_STEPS[key] else (steps[0] if steps else None)


def _number(v) -> float | tuple[float, ...] | None:
    """A step argument: a number or a list of numbers, as floats; None for anything else."""
    real = lambda n: isinstance(n, (int, float)) and not isinstance(n, bool)  # noqa: E731
    if isinstance(v, tuple):
        return tuple(float(n) for n in v) if all(real(n) for n in v) else None
    return float(v) if real(v) else None


def _step(item: ir.Value, key: str, out: Diagnostics) -> ir.Step | None:
    from .datasets import TABLES

    match item:
        case ir.Lit(value=str(name)):
            return ir.Step(name=name)
        case ir.CallValue(func=name, args=positional, kwargs=named):
            kind = TABLES[key].get(name)
            order = [a.name for a in kind.args] if kind is not None else []
            if len(positional) > len(order):
                out.error(f"'{name}' takes at most {len(order)} positional argument(s)", item.span,
                          f"its arguments: {', '.join(order) or 'none'}" if kind else None)
                return None
            args = []
            for arg_name, v in (*zip(order, positional), *named):
                number = _number(plain(v))
                if number is None:
                    out.error(f"argument '{arg_name}' of '{name}' must be a number (or a list of numbers)",
                              v.span or item.span)
                    return None
                args.append((arg_name, number))
            return ir.Step(name=name, args=tuple(args))
    out.error(f"'{key}' takes {'a list of ' if DATA_STEPS[key] else ''}names or calls such as "
              f"{'[flip, crop(4)]' if DATA_STEPS[key] else 'time_bins(10)'}", item.span)
    return None


# ------------------------------------------------------------------ files and imports
def load_module(path: str | Path, text: str | None = None) -> tuple[ir.Module, dict[str, Source]]:
    """Parse a file and everything it imports. Returns the module and every source read (for diagnostics)."""
    sources: dict[str, Source] = {}
    neurons: dict[str, ir.Neuron] = {}
    blocks: dict[str, Block] = {}
    root = Source(str(path), text) if text is not None else Source.read(path)

    visited: set[str] = set()

    def visit(source: Source, stack: tuple[str, ...]):
        sources[source.name] = source
        visited.add(stack[-1])
        drafts = []
        for item in parse_source(source):
            kind = item[0]
            if kind in ("import", "library"):
                _, rel, span = item
                if kind == "library":
                    known = library()
                    if rel not in known:
                        raise SnncError(f"no library module '{rel}'", span, did_you_mean(rel, known) or
                                        f"the library has: {', '.join(known)}", source)
                    target = known[rel]
                else:  # normalise 'a/../b' so a cycle through a parent directory is still seen as a cycle
                    target = Path(os.path.normpath(Path(source.name).parent / rel))
                key = str(target)
                if key in stack:
                    raise SnncError(f"import cycle: {' -> '.join(stack + (key,))}", span,
                                    "remove one of the imports", source)
                if key in visited:
                    continue
                if len(stack) > MAX_NESTING:
                    raise SnncError(f"imports nested more than {MAX_NESTING} files deep", span,
                                    "import the files you need from fewer levels", source)
                if len(os.fsencode(key)) > MAX_PATH or any(len(os.fsencode(p)) > 255 for p in target.parts):
                    raise SnncError(f"cannot import '{rel[:80]}{'...' if len(rel) > 80 else ''}': the path is too "
                                    "long", span, f"file names have at most 255 bytes, paths {MAX_PATH}", source)
                try:
                    found = target.is_file()
                except OSError as exc:
                    raise SnncError(f"cannot import '{rel}': {exc.strerror or exc}", span, None, source) from None
                if not found and target.exists():
                    raise SnncError(f"cannot import '{rel}': it is not a regular file", span,
                                    "an import names a .snn text file", source)
                if not found:
                    raise SnncError(f"cannot import '{rel}': no such file {target}", span,
                                    "import paths are relative to the importing file", source)
                problem = _not_snn(target) if kind == "import" else None
                try:
                    source_read = Source.read(target) if problem is None else None
                except SnncError as exc:  # not UTF-8, unreadable: said at the import that reads it
                    raise SnncError(f"cannot import '{rel}': {exc.diagnostics[0].message}", span,
                                    exc.diagnostics[0].hint, source) from None
                if problem is None and _CONTROL.search(source_read.text):
                    problem = "it is not text (it holds control characters)"
                if problem is not None:  # refused before anything of it is shown
                    raise SnncError(f"cannot import '{rel}': {problem}", span,
                                    "an import names a .snn text file", source)
                if kind == "library":  # reported as snnc/lib/<name>.snn, wherever the package is installed
                    source_read = Source(f"snnc/lib/{target.name}", source_read.text)
                visit(source_read, stack + (key,))
            elif kind == "neuron":
                _, name, items, span, name_span = item
                _unique(name, span, neurons, blocks, source, "a neuron")
                if len(neurons) >= MAX_NEURONS:
                    raise SnncError(f"more than {MAX_NEURONS} neurons (imports included)", name_span or span,
                                    TOO_MANY_NEURONS, source)
                neurons[name] = neuron_from_items(name, items, source, span, name_span)
            elif kind == "block":
                _, name, params, nodes, span, name_span = item
                _unique(name, name_span, neurons, blocks, source, "a block")
                blocks[name] = Block(name, tuple(params), tuple(nodes), source, span, name_span)
            else:
                drafts.append(item)
        return drafts

    drafts = visit(root, (os.path.normpath(root.name),))
    networks = []
    names = set()
    for draft in drafts:
        net = link_network(draft, neurons, blocks, root)
        if net.name in names or net.name in neurons or net.name in blocks:
            raise SnncError(f"'{net.name}' is defined twice", draft[4], "rename the network", root)
        names.add(net.name)
        networks.append(net)
    return ir.Module(file=root.name, neurons=tuple(neurons.values()), networks=tuple(networks)), sources


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # what no text has (tabs, newlines, form feeds aside)


def _not_snn(target: Path) -> str | None:
    """Why an imported path is not a .snn text file snnc may read (and then show lines of), or None: the file
    `snnc check` reads may be untrusted text, and its imports must not make snnc echo other files."""
    if target.suffix != ".snn":
        return "it is not a .snn file"
    try:
        real = target.resolve(strict=True)
        info = real.stat()
    except (OSError, RuntimeError) as exc:
        return f"it cannot be read ({getattr(exc, 'strerror', None) or exc})"
    if real.suffix != ".snn":
        return "it links to a file that is not a .snn file"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    return None


def _unique(name: str, span, neurons: dict, blocks: dict, source: Source, what: str = "") -> None:
    if name in KINDS and name != "neuron":  # a layer written `name(...)` would be the built-in one, not this
        raise SnncError(f"{what or 'a definition'} cannot be named '{name}': it is a built-in layer", span,
                        f"rename it, e.g. '{name.capitalize()}' (layers are called by name)", source)
    first = neurons.get(name) or blocks.get(name)
    if first is not None:
        what = "neuron" if name in neurons else "block"
        raise SnncError(f"{what} '{name}' is defined twice", span,
                        f"first defined at {first.span}; rename one of them", source)
