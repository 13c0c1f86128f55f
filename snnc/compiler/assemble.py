"""Parse-tree items to IR objects, and whole files with their imports to an `ir.Module`.

Structural problems (two charge blocks, an unknown layer) are collected per
file and raised together; semantic checks live in `check`.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import ir
from .source import Diagnostic, SnncError, Source, Span, did_you_mean

# Parameters every neuron has, with SpikingJelly's defaults. A neuron may redeclare one to change its default.
BUILTIN_PARAMS = (
    ir.Param(name="v_threshold", type="float", default=ir.Num(value=1.0)),
    ir.Param(name="v_reset", type="float", optional=True, default=ir.Num(value=0.0)),
    ir.Param(name="detach_reset", type="bool", default=ir.Bool(value=False)),
)
DEFAULT_SURROGATE = ir.Surrogate(name="sigmoid", args=(("alpha", 4.0),))

LAYER_KINDS = {
    "flatten": ir.Flatten, "linear": ir.Linear, "conv2d": ir.Conv2d, "maxpool2d": ir.MaxPool2d,
    "avgpool2d": ir.AvgPool2d, "batchnorm1d": ir.BatchNorm1d, "batchnorm2d": ir.BatchNorm2d, "dropout": ir.Dropout,
}
NETWORK_SETTINGS = ("input", "T", "encoder", "readout", "step_mode")


class _Collector:
    def __init__(self, source: Source):
        self.source = source
        self.diags: list[Diagnostic] = []

    def error(self, message: str, span: Span | None, hint: str | None = None) -> None:
        self.diags.append(Diagnostic(message, span, hint, self.source))

    def raise_if_any(self) -> None:
        if self.diags:
            raise SnncError(diagnostics=self.diags)


def to_value(node, source: Source) -> ir.Value:
    """An expression used as a setting or layer argument, as a plain value."""
    match node:
        case ir.Lit() | ir.ListValue() | ir.CallValue():
            return node
        case ir.Num(value=v):
            return ir.Lit(value=v, span=node.span)
        case ir.Unary(op="-", operand=ir.Num(value=v)):
            return ir.Lit(value=-v, span=node.span)
        case ir.Bool(value=v):
            return ir.Lit(value=v, span=node.span)
        case ir.Var(name=n):
            return ir.Lit(value=n, span=node.span)
        case ir.Call(func=f, args=args):
            return ir.CallValue(func=f, args=tuple(to_value(a, source) for a in args), span=node.span)
    raise SnncError("expected a number, a name, a list or a call here", node.span,
                    "settings and layer arguments are constants, not expressions", source)


def _constant(expr, source: Source) -> float | None:
    value = to_value(expr, source)
    if isinstance(value, ir.Lit) and isinstance(value.value, float) and not isinstance(value.value, bool):
        return value.value
    return None


def neuron_from_items(name: str, items: list, source: Source, span: Span, name_span: Span) -> ir.Neuron:
    out = _Collector(source)
    params: dict[str, ir.Param] = {}
    learnables, states, requires = [], [], []
    blocks: dict[str, tuple] = {}
    surrogate = None
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
    if "charge" not in blocks:
        out.error(f"neuron '{name}' has no charge equation", name_span,
                  "add e.g. 'charge v = v + (x - v) / tau' (H[t] = f(V[t-1], X[t]))")
    out.raise_if_any()
    all_params = [params.pop(p.name, p) for p in BUILTIN_PARAMS] + list(params.values())
    return ir.Neuron(
        name=name, file=source.name, params=tuple(all_params), learnables=tuple(learnables), states=tuple(states),
        charge=blocks["charge"], on_spike=blocks.get("on_spike", ()), requires=tuple(requires),
        surrogate=surrogate or DEFAULT_SURROGATE, span=span,
    )


def _surrogate_args(kwargs, out: _Collector) -> tuple[tuple[str, float], ...]:
    args = []
    for key, value, span in kwargs:
        number = _constant(value, out.source)
        if number is None:
            out.error(f"surrogate argument '{key}' must be a number", span, f"write e.g. {key}=2.0")
        else:
            args.append((key, number))
    return tuple(args)


def network_draft(name: str, items: list, source: Source, span: Span) -> dict:
    """Networks refer to neurons by name, which may come from imports: keep them raw until linking."""
    return {"name": name, "items": items, "source": source, "span": span}


def link_network(draft: dict, neurons: dict[str, ir.Neuron]) -> ir.Network:
    source: Source = draft["source"]
    out = _Collector(source)
    settings: dict = {}
    layers: list = []
    train: dict = {}
    seen_layers = False
    for item in draft["items"]:
        match item:
            case ("setting", key, value, sspan, key_span):
                if key not in NETWORK_SETTINGS:
                    out.error(f"unknown network setting '{key}'", key_span,
                              did_you_mean(key, NETWORK_SETTINGS) or f"settings are: {', '.join(NETWORK_SETTINGS)}")
                elif key in settings:
                    out.error(f"setting '{key}' is given twice", sspan)
                settings[key] = (to_value(value, source), sspan)
            case ("layers", layer_items, lspan):
                if seen_layers:
                    out.error("second 'layers' block", lspan, "list all layers in one block")
                seen_layers = True
                layers = [_layer(l, neurons, out) for l in layer_items]
            case ("train", train_items, _):
                for _, key, value, tspan, key_span in train_items:
                    train[key] = (to_value(value, source), tspan, key_span)
    net_span = draft["span"]
    for required in ("input", "T"):
        if required not in settings:
            out.error(f"network '{draft['name']}' has no '{required}' setting", net_span,
                      "add e.g. 'input = [1, 28, 28]'" if required == "input" else "add e.g. 'T = 100'")
    if not seen_layers:
        out.error(f"network '{draft['name']}' has no layers", net_span, "add a 'layers { ... }' block")
    out.raise_if_any()
    fields = {"name": draft["name"], "file": source.name, "span": net_span, "layers": tuple(l for l in layers if l)}
    for key, (value, vspan) in settings.items():
        fields["input_shape" if key == "input" else key] = _plain(value)
    fields["train"] = _train(train, out)
    out.raise_if_any()
    return _validated(ir.Network, fields, out, net_span)


def _plain(value: ir.Value):
    match value:
        case ir.Lit(value=v):
            return int(v) if isinstance(v, float) and v.is_integer() else v
        case ir.ListValue(items=items):
            return tuple(_plain(i) for i in items)
        case ir.CallValue():
            return value
    return value


def _validated(cls, fields: dict, out: _Collector, span: Span | None):
    from pydantic import ValidationError

    try:
        return cls(**fields)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or cls.__name__.lower()
            got = err.get("input")
            hint = None
            if err["type"] == "literal_error":
                hint = f"expected {err['ctx']['expected']}"
            out.error(f"invalid value {got!r} for '{where}': {err['msg'].lower()}", span, hint)
        out.raise_if_any()


def _train(train: dict, out: _Collector) -> ir.Train:
    known = set(ir.Train.model_fields) - {"span"}
    fields = {}
    for key, (value, tspan, key_span) in train.items():
        if key not in known:
            out.error(f"unknown training setting '{key}'", key_span, did_you_mean(key, known) or
                      f"training settings are: {', '.join(sorted(known))}")
            continue
        fields[key] = _plain(value)
    return _validated(ir.Train, fields, out, None) if not out.diags else ir.Train()


def _layer(item, neurons: dict[str, ir.Neuron], out: _Collector):
    _, name, args, span = item
    positional = [_plain(to_value(a, out.source)) for a in args if not isinstance(a, tuple)]
    named = {a[0]: a[1] for a in args if isinstance(a, tuple)}
    if name in LAYER_KINDS:
        cls = LAYER_KINDS[name]
        order = [f for f in cls.model_fields if f not in ("span", "kind")]
        if len(positional) > len(order):
            out.error(f"'{name}' takes at most {len(order)} positional argument(s)", span,
                      f"arguments are: {', '.join(order) or 'none'}")
            return None
        fields = dict(zip(order, positional))
        for key, value in named.items():
            if key not in order:
                out.error(f"'{name}' has no argument '{key}'", span,
                          did_you_mean(key, order) or f"arguments are: {', '.join(order) or 'none'}")
                return None
            fields[key] = _plain(to_value(value, out.source))
        fields["span"] = span
        n_before = len(out.diags)
        layer = _validated_soft(cls, fields, out, span, name)
        return layer if len(out.diags) == n_before else None
    if name in neurons:
        if positional:
            out.error(f"neuron layer '{name}' takes named arguments only", span, "write e.g. LIF(tau=2.0)")
            return None
        return ir.NeuronLayer(neuron=name, overrides=tuple((k, to_value(v, out.source)) for k, v in named.items()),
                              span=span)
    choices = list(LAYER_KINDS) + list(neurons)
    out.error(f"unknown layer or neuron '{name}'", span,
              did_you_mean(name, choices) or "define the neuron in this file or import a file that defines it")
    return None


def _validated_soft(cls, fields, out: _Collector, span, name):
    from pydantic import ValidationError

    try:
        return cls(**fields)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            out.error(f"invalid value {err.get('input')!r} for {name} argument '{where}'", span,
                      err["msg"].lower())
        return None


# ------------------------------------------------------------------ files and imports
def load_module(path: str | Path, text: str | None = None) -> tuple[ir.Module, dict[str, Source]]:
    """Parse a file and everything it imports. Returns the module and every source read (for diagnostics)."""
    from .parse import parse_source

    sources: dict[str, Source] = {}
    neurons: dict[str, ir.Neuron] = {}
    root = Source(str(path), text) if text is not None else Source.read(path)

    def visit(source: Source, stack: tuple[str, ...]):
        sources[source.name] = source
        items = parse_source(source)
        drafts = []
        for item in items:
            if isinstance(item, tuple) and item[0] == "import":
                _, rel, span = item
                # normalise 'a/../b' so a cycle through a parent directory is still seen as a cycle
                target = Path(os.path.normpath(Path(source.name).parent / rel))
                key = str(target)
                if key in stack:
                    raise SnncError(f"import cycle: {' -> '.join(stack + (key,))}", span,
                                    "remove one of the imports", source)
                if key in sources:
                    continue
                if not target.is_file():
                    raise SnncError(f"cannot import '{rel}': no such file {target}", span,
                                    "import paths are relative to the importing file", source)
                visit(Source.read(target), stack + (key,))
            elif isinstance(item, ir.Neuron):
                if item.name in neurons:
                    first = neurons[item.name]
                    raise SnncError(f"neuron '{item.name}' is defined twice", item.span,
                                    f"first defined at {first.span}; rename one of them", source)
                neurons[item.name] = item
            else:
                drafts.append(item)
        return drafts

    drafts = visit(root, (os.path.normpath(root.name),))
    networks = []
    names = set()
    for draft in drafts:
        net = link_network(draft, neurons)
        if net.name in names or net.name in neurons:
            raise SnncError(f"'{net.name}' is defined twice", net.span, "rename the network", root)
        names.add(net.name)
        networks.append(net)
    return ir.Module(file=root.name, neurons=tuple(neurons.values()), networks=tuple(networks)), sources
