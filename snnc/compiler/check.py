"""Semantic checks: pure functions from IR to diagnostics.

Each pass collects every error it finds; `check_module` raises them together
as one `SnncError`. Passes run in order and stop after the first pass with
errors, so later passes can rely on earlier ones (names resolve, shapes exist).
"""
from __future__ import annotations

import keyword
import math
import os
from dataclasses import dataclass

from . import ir
from .constants import Failure, evaluate
from .datasets import data_problems
from .assemble import MAX_INT
from .graph import Graph, analyse
from .ode import lower_module
from .parse import MAX_DEPTH
from .printers import SnnPrinter
from .surrogates import grad_expr, surrogate_from_value
from .exprs import free_names
from .source import Diagnostics, SnncError, Source, did_you_mean

C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
    "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
    "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "bool",
    "class", "delete", "new", "namespace", "template", "this", "throw", "try", "catch", "using", "virtual",
    "private", "public", "protected", "operator", "friend", "true", "false", "nullptr", "half", "threadIdx",
    "blockIdx", "blockDim", "gridDim", "warpSize", "asm", "typename", "explicit", "mutable", "export",
}
RESERVED_NAMES = {"x", "t", "self", "torch", "math", "spike", "N", "T", "main"} | set(ir.FUNCTIONS)
# Names the generated Python itself uses: module aliases, builtins it calls, and the attributes and
# constructor arguments of a generated neuron module (a parameter named 'rt' or 'super' would shadow them).
GENERATED_NAMES = {
    "rt", "nn", "neurons", "networks", "super", "float", "bool", "int", "len", "range", "abs", "min", "max",
    "tuple", "dict", "list", "str", "type", "object", "print", "getattr", "setattr", "isinstance", "eval", "exec",
    "NEURONS", "NETWORKS", "detach_net", "reset_net", "set_backend", "set_step_mode",
}
MODULE_ATTRIBUTES = {
    "surrogate_function", "step_mode", "backend", "store_v_seq", "training", "forward", "reset", "detach",
    "single_step", "multi_step", "initial_states", "v_seq", "parameters", "state_dict", "load_state_dict", "to",
    "cuda", "cpu", "train", "eval", "apply", "modules", "children", "buffers", "double", "half", "zero_grad",
    "extra_repr", "snnc_neuron", "snnc_config", "scalar_values", "snnc_stateful", "register_buffer",
    "register_parameter", "named_parameters", "requires_grad_", "STATES", "FLOAT_PARAMS", "BOOL_PARAMS", "SPEC_JSON",
}


MAX_STATES = 64  # states of one neuron: each is a pointer argument (two, for the backward) of every fused kernel
MAX_SUBSTITUTED = MAX_DEPTH  # levels of a state's new value once the charge's earlier assignments are substituted
MAX_NAME = 64  # generated file and folder names are built from names: keep them well under 255 bytes


def reserved_reason(name: str) -> str | None:
    if len(name) > MAX_NAME:
        return f"it is longer than {MAX_NAME} characters"
    if name.startswith("_"):
        return "names starting with '_' are reserved for generated code"
    if keyword.iskeyword(name) or name in ("None", "True", "False"):
        return "it is a Python keyword"
    if name in C_KEYWORDS:
        return "it is a C++/CUDA keyword"
    if name in RESERVED_NAMES:
        return "it is reserved ('x' is the input, 't' the time step; function names cannot be redefined)"
    if name in GENERATED_NAMES or name.startswith("SURROGATE_"):
        return "the generated Python code uses this name itself"
    if name in MODULE_ATTRIBUTES:
        return "it is an attribute or argument of every generated neuron module"
    return None


def _reserved_type_name(name: str) -> str | None:
    """Neuron and network names become class names in generated modules."""
    if len(name) > MAX_NAME or name.startswith("_") or keyword.iskeyword(name) or name in ("None", "True", "False"):
        return reserved_reason(name)
    if name in GENERATED_NAMES or name in ("torch", "math") or name.startswith("SURROGATE_"):
        return "the generated Python code uses this name itself"
    return None


@dataclass(frozen=True)
class Checked:
    """What `check` hands the next stages: the module and each network's analysed graph."""

    module: ir.Module
    sources: dict[str, Source]
    graphs: dict[str, Graph]


def check_module(module: ir.Module, sources: dict[str, Source]) -> Checked:
    """Run every pass; raise SnncError with all diagnostics of the first failing pass.

    Between the neuron passes and the network pass, differential equations are lowered to difference
    equations (`ode`), so that a network's layers are checked against the neurons as they will run (a closed
    form's requirements included). The `Checked` module is the lowered one."""
    for run in (_declarations, _expressions):
        p = Diagnostics(sources)
        run(module, p)
        p.raise_if_any()
    module = lower_module(module, sources)
    p = Diagnostics(sources)
    for n in module.neurons:
        _substituted(n, p)
    p.raise_if_any()
    graphs = _networks(module, p)
    p.raise_if_any()
    return Checked(module, sources, graphs)


# ------------------------------------------------------------------ pass 1: declarations
def _declarations(module: ir.Module, p: Diagnostics) -> None:
    for net in module.networks:
        reason = _reserved_type_name(net.name)
        if reason:
            p.error(f"network name '{net.name}' is reserved: {reason}", net, "rename the network")
    for n in module.neurons:
        reason = _reserved_type_name(n.name)
        if reason:
            p.error(f"neuron name '{n.name}' is reserved: {reason}", n, "rename the neuron")
        seen: dict[str, ir.Node] = {}
        for decl in (*n.params, *n.learnables, *n.states):
            if decl.span is None:  # a built-in parameter the neuron did not redeclare
                seen.setdefault(decl.name, decl)
                continue
            reason = reserved_reason(decl.name)
            if reason:
                p.error(f"'{decl.name}' cannot be used as a name: {reason}", decl, f"rename it, e.g. '{decl.name}_'")
            if decl.name in seen and seen[decl.name].span is not None:
                p.error(f"'{decl.name}' is declared twice in neuron '{n.name}'", decl,
                        f"first declared at {seen[decl.name].span}")
            seen[decl.name] = decl
        for decl in (*n.states, *n.learnables):
            if decl.name in ("v_reset", "detach_reset"):
                what = "state" if isinstance(decl, ir.State) else "learnable"
                p.error(f"'{decl.name}' is a built-in parameter and cannot be a {what}", decl,
                        "only v_threshold may be a state (an adaptive threshold) or learnable; "
                        f"name this {what} otherwise")
        builtin = {"v_threshold": "float", "v_reset": "float", "detach_reset": "bool"}
        for prm in n.params:
            if prm.name in builtin and prm.type != builtin[prm.name]:
                p.error(f"'{prm.name}' must be a {builtin[prm.name]}", prm, "it is a built-in neuron parameter")
            if prm.default is None and not prm.optional:
                p.error(f"parameter '{prm.name}' is none but its type is not optional", prm,
                        f"write 'param {prm.name}: float? = none'")
            if prm.optional and prm.name != "v_reset":
                p.error(f"only v_reset may be none (soft reset), not '{prm.name}'", prm, "give it a number")
        if len(n.states) > MAX_STATES:
            p.error(f"neuron '{n.name}' has {len(n.states)} states, more than snnc's limit of {MAX_STATES}",
                    n.states[MAX_STATES], "every state is an argument of each fused kernel (a GPU kernel's "
                    "arguments are limited): split the neuron into several layers")
        names = {s.name for s in n.states}
        if "v" not in names:
            p.error(f"neuron '{n.name}' has no membrane state 'v'", n,
                    "declare 'state v = v_reset'; the threshold and reset act on v")
        for a in n.charge:
            _check_target(n, a, p, "charge")
        _check_odes(n, p)
        for a in n.on_spike:
            _check_target(n, a, p, "on_spike")
            if a.target == "v":
                p.error("on_spike cannot change 'v'", a, "v is reset by the reset rule (v_reset, or soft reset)")
        if not any(a.target == "v" for a in n.charge):
            p.error(f"the charge of neuron '{n.name}' does not update 'v'", n.charge[0] if n.charge else n,
                    "write e.g. 'charge v = v + x'")


def _substituted(n: ir.Neuron, p: Diagnostics) -> None:
    """Each assignment's value nests at most MAX_SUBSTITUTED levels once the earlier ones (of the charge as it
    runs, differential equations lowered) are substituted into it, as the derivation does: a chain of states,
    each one level on the last, nests as deep as it is long."""
    levels: dict[str, int] = {}
    for a in (*n.charge, *n.on_spike):
        levels[a.target] = _levels(a.value, levels) + (a.op == "+=")
        if levels[a.target] > MAX_SUBSTITUTED:
            p.error(f"the new value of '{a.target}' in neuron '{n.name}' nests {levels[a.target]} levels deep once "
                    f"the assignments before it are substituted, more than snnc's limit of {MAX_SUBSTITUTED}", a,
                    "make fewer states depend on each other in one step (a state may use another's old value "
                    "by being assigned first)")
            return


def _levels(e: ir.Expr, levels: dict[str, int]) -> int:
    """Levels of operators and calls in `e`, a name counting as the levels of its value (without recursion)."""
    done: dict[int, int] = {}
    stack = [(e, False)]
    while stack:
        node, ready = stack.pop()
        kids = [node.operand] if isinstance(node, ir.Unary) else [node.left, node.right] \
            if isinstance(node, ir.BinOp) else list(node.args) if isinstance(node, ir.Call) else []
        if not ready and kids:
            stack.append((node, True))
            stack.extend((k, False) for k in kids)
            continue
        done[id(node)] = (1 + max(done[id(k)] for k in kids) if kids else
                          levels.get(node.name, 0) if isinstance(node, ir.Var) else 0)
    return done[id(e)]


def _check_odes(n: ir.Neuron, p: Diagnostics) -> None:
    """A state has at most one differential equation (difference equations may also act on it, in order: a
    jump `i += x` before its decay `di/dt = -i / tau`)."""
    odes = {}
    for a in n.charge:
        if a.op == "d/dt":
            if a.target in odes:
                p.error(f"state '{a.target}' has two differential equations", a,
                        f"the first is at {odes[a.target].span}; write one d{a.target}/dt")
            odes.setdefault(a.target, a)



def _check_target(n: ir.Neuron, a: ir.Assign, p: Diagnostics, block: str) -> None:
    if any(s.name == a.target for s in n.states):
        return
    if a.op == "d/dt":
        hint = did_you_mean(a.target, [s.name for s in n.states]) or f"declare it: 'state {a.target} = 0.0'"
        p.error(f"differential equation for undeclared state '{a.target}'", a, hint)
        return
    if n.param(a.target) is not None or any(l.name == a.target for l in n.learnables):
        p.error(f"cannot assign to parameter '{a.target}' in {block}", a,
                f"parameters are constant during a run; declare 'state {a.target} = ...' to make it a state variable")
    else:
        hint = did_you_mean(a.target, [s.name for s in n.states]) or f"declare it: 'state {a.target} = 0.0'"
        p.error(f"assignment to undefined state '{a.target}'", a, hint)


# ------------------------------------------------------------------ pass 2: expressions
def _kind(e: ir.Expr, types: dict[str, str]) -> str:
    """'bool' or 'float'."""
    match e:
        case ir.Bool():
            return "bool"
        case ir.Var(name=name):
            return types.get(name, "float")
        case ir.Unary(op="not") | ir.BinOp(op="<" | "<=" | ">" | ">=" | "==" | "!=" | "and" | "or"):
            return "bool"
        case ir.Call(func="where", args=(_, a, _)):
            return _kind(a, types)
    return "float"


def _check_expr(e: ir.Expr, scope: dict[str, str], p: Diagnostics, where: str) -> None:
    for node in ir.walk(e):
        match node:
            case ir.Var(name=name) if name not in scope:
                hint = did_you_mean(name, scope) or f"known names here: {', '.join(sorted(scope))}"
                p.error(f"unknown name '{name}' in {where}", node, hint)
            case ir.Call(func=f, args=args):
                if f not in ir.FUNCTIONS:
                    p.error(f"unknown function '{f}'", node, did_you_mean(f, ir.FUNCTIONS) or
                            f"functions: {', '.join(sorted(ir.FUNCTIONS))}")
                elif len(args) != ir.FUNCTIONS[f]:
                    shape = ", ".join("abc"[i] for i in range(ir.FUNCTIONS[f]))
                    p.error(f"'{f}' takes {ir.FUNCTIONS[f]} argument(s), not {len(args)}", node, f"call it as {f}({shape})")
                elif f == "where" and _kind(args[0], scope) != "bool":
                    p.error("the first argument of where() must be a condition", args[0],
                            "compare something, e.g. where(v > 0.0, a, b), or use a bool parameter")
                elif f != "where" and any(_kind(a, scope) == "bool" for a in args):
                    p.error(f"'{f}' takes numbers, not conditions", node, "use where(cond, a, b) to choose a value")
            case ir.BinOp(op="+" | "-" | "*" | "/" | "^", left=a, right=b):
                if "bool" in (_kind(a, scope), _kind(b, scope)):
                    p.error(f"arithmetic '{node.op}' on a condition", node, "use where(cond, 1.0, 0.0) to turn it into a number")
            case ir.BinOp(op="and" | "or", left=a, right=b):
                if "float" in (_kind(a, scope), _kind(b, scope)):
                    p.error(f"'{node.op}' needs conditions on both sides", node, "compare the number, e.g. a > 0.0")
            case ir.Unary(op="not", operand=a) if _kind(a, scope) == "float":
                p.error("'not' needs a condition, not a number", node, "compare the number, e.g. not (v > 0.0)")
            case ir.Unary(op="-", operand=a) if _kind(a, scope) == "bool":
                p.error("'-' on a condition", node, "use not for a condition, or where(cond, -1.0, 0.0) for a number")
            case ir.BinOp(op="<" | "<=" | ">" | ">=", left=a, right=b):
                if "bool" in (_kind(a, scope), _kind(b, scope)):
                    p.error(f"'{node.op}' compares numbers, not conditions", node,
                            "compare conditions with == or !=")


def _expressions(module: ir.Module, p: Diagnostics) -> None:
    from .surrogates import grad_expr

    for n in module.neurons:
        params = {prm.name: prm.type for prm in n.params}
        consts = {**params, **{l.name: "float" for l in n.learnables}}
        dynamic = {**consts, **{s.name: "float" for s in n.states}}
        for prm in n.params:
            if prm.default is not None:
                _check_expr(prm.default, {}, p, f"the default of '{prm.name}'")
        for l in n.learnables:
            _check_expr(l.init, params, p, f"the initial value of learnable '{l.name}'")
        for s in n.states:
            _check_expr(s.init, params, p, f"the initial value of state '{s.name}'")
        for a in n.charge:
            _check_expr(a.value, {**dynamic, "x": "float"}, p, "the charge equation")
        for a in n.on_spike:
            _check_expr(a.value, dynamic, p, "on_spike")
        for r in n.requires:
            _check_expr(r.cond, params, p, "require")
            if _kind(r.cond, params) != "bool":
                p.error("require needs a condition", r, "e.g. 'require tau > 1.0'")
        if not p.diags:
            check_values(n, p)
        try:
            g = grad_expr(n.surrogate)
            _check_expr(g, {"x": "float"}, p, "the surrogate gradient")
        except SnncError as exc:  # attach the source so the offending line is shown
            p.extend(exc)


def check_values(n: ir.Neuron, p: Diagnostics, given: dict | None = None, layer: ir.Layer | None = None) -> None:
    """Everything a neuron computes from its parameters when it is built — the defaults themselves (in
    order), the requirements, the initial values of its learnables and states — has a finite value and the
    requirements hold: with the defaults, or (`given`, `layer`) with a network layer's arguments."""
    snn = SnnPrinter()
    env: dict[str, object] = {}

    def fail(what: str, failure: Failure, expr: ir.Expr) -> None:
        if layer is None:
            p.error(f"{what} of neuron '{n.name}' {failure.message}: {snn(failure.node)}", failure.node,
                    "change the expression or the parameters it reads")
        else:
            p.error(f"with this layer's arguments, {what} of {n.name} {failure.message}: {snn(expr)}", layer,
                    "change the layer's arguments")

    for prm in n.params:
        if given and prm.name in given:
            env[prm.name] = given[prm.name]
            continue
        if prm.default is None:
            env[prm.name] = None
            continue
        value = evaluate(prm.default, env)
        env[prm.name] = None
        if isinstance(value, Failure):
            if layer is None:
                fail(f"the default of '{prm.name}'", value, prm.default)
        elif (prm.type == "bool") != isinstance(value, bool):
            if layer is None:
                p.error(f"the default of '{prm.name}' is {'a condition' if isinstance(value, bool) else 'a number'},"
                        f" but the parameter is a {prm.type}", prm, f"declare it 'param {prm.name}: "
                        f"{'bool' if isinstance(value, bool) else 'float'} = ...'")
        else:
            env[prm.name] = value
    if env.get("v_reset") is None:
        env["v_reset"] = 0.0
    for r in n.requires:
        value = evaluate(r.cond, env)
        if isinstance(value, Failure):
            fail(f"the requirement '{snn(r.cond)}'", value, r.cond)
        elif value is False:
            shown = ", ".join(f"{k} = {env[k]!r}" for k in sorted(free_names(r.cond)) if k in env)
            if layer is None:
                p.error(f"the default parameters of neuron '{n.name}' break its requirement '{snn(r.cond)}' "
                        f"({shown})", r, "change the defaults so the requirement holds")
            else:
                p.error(f"this {n.name} layer breaks its requirement '{snn(r.cond)}' ({shown})", layer,
                        f"change the layer's arguments so that {snn(r.cond)}")
    for what, decl, expr in (*(("the initial value of learnable", l, l.init) for l in n.learnables),
                             *(("the initial value of state", s, s.init) for s in n.states)):
        value = evaluate(expr, env)
        if isinstance(value, Failure):
            fail(f"{what} '{decl.name}'", value, expr)


# ------------------------------------------------------------------ pass 3: networks
def _networks(module: ir.Module, p: Diagnostics) -> dict[str, Graph]:
    graphs = {}
    learnables = {n.name: len(n.learnables) for n in module.neurons}
    for net in module.networks:
        if net.T < 1:
            p.error(f"T must be at least 1, not {net.T}", net, "set e.g. 'T = 100'")
        if not net.input_shape or any(not isinstance(d, int) or d < 1 for d in net.input_shape):
            p.error(f"input must be a list of positive sizes, not {list(net.input_shape)}", net,
                    "e.g. 'input = [1, 28, 28]' for MNIST")
            continue
        for layer in net.layers:
            if layer.label is not None and layer.label.startswith("_"):
                p.error(f"node name '{layer.label}' starts with '_', which is reserved for generated code", layer,
                        f"rename it, e.g. '{layer.label.lstrip('_')}'")
            elif layer.label is not None and len(layer.label) > MAX_NAME:
                p.error(f"node name '{layer.label[:20]}...' is longer than {MAX_NAME} characters", layer,
                        "use a shorter name")
            if isinstance(layer.op, ir.NeuronLayer):
                _check_neuron_layer(layer, module.neuron(layer.op.neuron), p)
        graph, problems = analyse(net, learnables)
        for problem in problems:
            p.error(problem.message, problem.node, problem.hint)
        if graph is None:
            continue
        if math.prod(net.input_shape) > MAX_INT:
            p.error(f"the input {list(net.input_shape)} has {math.prod(net.input_shape)} values per sample, beyond "
                    f"snnc's limit of {MAX_INT} (2^31 - 1)", net, "use a smaller input")
            continue
        for info in graph.nodes.values():  # what constructing and running it allocates stays indexable
            size = math.prod(info.out_shape)
            if size > MAX_INT or info.params > MAX_INT:
                what = f"{info.params} parameters" if info.params > MAX_INT else f"an output of {size} values per sample"
                p.error(f"this layer has {what}, beyond snnc's limit of {MAX_INT} (2^31 - 1)", info.layer,
                        "use smaller sizes")
                break  # the layers after it only grow from it
        out = graph.output
        if len(out.out_shape) != 1:
            p.error(f"the network's output must be flat [classes], but it is {list(out.out_shape)}", out.layer,
                    "end with flatten, linear(classes) and a neuron layer")
        if net.readout == "membrane" and not isinstance(out.layer.op, ir.NeuronLayer):
            p.error("readout = membrane reads the membrane potential of the output node, which is not a neuron",
                    net, "end the network with a neuron layer, or use readout = mean")
        _memory(net, graph, p)
        _data(net, graph, p)
        graphs[net.name] = graph
    return graphs


MEMORY_OVERRIDE = "SNNC_ALLOW_LARGE"  # =1: build a network whatever the estimate says (a bigger machine will run it)


def _memory(net: ir.Network, graph: Graph, p: Diagnostics) -> None:
    """Refuse, before anything is allocated, a network that cannot train in this machine's memory: 16 bytes a
    parameter (weights, gradients, Adam's two moments, fp32) and, for one sample, every layer's output at every
    step kept for the backward pass (4 bytes each, twice: outputs and states)."""
    params = sum(info.params for info in graph.nodes.values())
    values = sum(math.prod(info.out_shape) for info in graph.nodes.values()) * net.T
    need, ram = 16 * params + 8 * values, machine_memory()
    if ram is None or need <= ram or os.environ.get(MEMORY_OVERRIDE) == "1":
        return
    p.error(f"network '{net.name}' needs about {_bytes(need)} to train ({params:,} parameters at 16 bytes, "
            f"{values:,} values a sample over its {net.T} steps at 8 bytes), more than this machine's "
            f"{_bytes(ram)}", net, f"use smaller layers or a smaller input, or set {MEMORY_OVERRIDE}=1 to "
            "build it anyway (for a machine with more memory)")


def _bytes(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def machine_memory() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _data(net: ir.Network, graph: Graph, p: Diagnostics) -> None:
    """The network's dataset, binned, transformed and encoded as its train block says, gives what it takes.
    A network whose train block names no dataset may be fed anything (from Python); `snnc train` checks the
    dataset it is given then."""
    t = net.train
    if t.dataset is None:
        if t.frames is not None or t.transform or t.augment:
            p.error("data steps (frames, transform, augment) need the dataset they act on", net,
                    "name it in the train block, e.g. dataset = nmnist")
        return
    out = graph.output
    classes = out.out_shape[0] if len(out.out_shape) == 1 else None
    spans = dict(net.setting_spans)
    spans["input"] = spans.get("input_shape")
    for key in ("dataset", "frames", "transform", "augment"):
        spans[key] = spans.get(f"train.{key}")
    for problem in data_problems(t.dataset, t.frames, t.transform, t.augment, net.encoder, net.T,
                                 net.input_shape, classes):
        item = spans.get(f"train.{problem.where}.{problem.index}") if problem.index is not None else None
        where = out.layer if problem.where == "output" else item or spans.get(problem.where) or \
            spans.get("dataset") or net
        p.error(problem.message, where, problem.hint)


def _check_neuron_layer(layer: ir.Layer, n: ir.Neuron, p: Diagnostics) -> None:
    """Overrides of a neuron layer: known parameters of the right type, a valid surrogate, requirements hold."""
    op: ir.NeuronLayer = layer.op
    known = {prm.name: prm for prm in n.params}
    given: dict[str, object] = {}
    spans = op.override_spans or (None,) * len(op.overrides)
    for (key, value), span in zip(op.overrides, spans):
        at = span or value.span or layer.span
        if key == "surrogate":
            try:
                grad_expr(surrogate_from_value(value))
            except SnncError as exc:
                d = exc.diagnostics[0]
                p.error(d.message, d.span or at, d.hint)
            continue
        if key in ("step_mode", "backend"):
            p.error(f"'{key}' is chosen for the whole network, not per layer", at,
                    "pass --backend to snnc train, or call snnc.functional.set_backend(net, ...) / set_step_mode")
            continue
        if key not in known:
            p.error(f"neuron '{n.name}' has no parameter '{key}'", at,
                    did_you_mean(key, known) or f"parameters: {', '.join(known)}, surrogate")
            continue
        v = value.value if isinstance(value, ir.Lit) else value
        prm = known[key]
        ok = (v is None and prm.optional) or (prm.type == "bool" and isinstance(v, bool)) or (
            prm.type == "float" and isinstance(v, float) and not isinstance(v, bool))
        if not ok:
            shown = v if not isinstance(v, ir.Node) else "a list or call"
            p.error(f"'{key}' of {n.name} must be a {prm.type}{' or none' if prm.optional else ''}, not {shown!r}",
                    at)
            continue
        given[key] = v
    check_values(n, p, given, layer)
