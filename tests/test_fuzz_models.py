"""Generated and mutated models through the whole pipeline: check => build => load => construct => run.

A Hypothesis strategy writes `.snn` files from the language's parts — neurons with random parameters,
learnables and states, charge equations (difference or differential) over + - * / ^ and the built-in
functions, conditions, requirements, thresholds as parameters, states or learnables, hard and soft reset,
built-in and custom surrogates — and networks of random layer stacks from the layer table, with residual
merges, recurrent feedback, per-channel delays and blocks. Others mutate those files or the shipped models
token by token. For every file:

* the front end raises nothing but `SnncError`, and every diagnostic is located (file:line:col inside the
  file it names);
* a file that checks also derives and renders its kernels, loads, and every network in it constructs and
  runs forward (multi-step) and backward on the `torch` backend, and single-step through the generated
  Python; a deterministic subset runs on the `cpp` backend too (a C++ compile each).

About 3,000 files per run (the `ci` profile makes them the same every run); see `test_counts`.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import snnc
from snnc.compiler.driver import compile_file, render_kernels, render_package
from snnc.compiler.layers import KINDS
from snnc.compiler.source import SnncError
from snnc.compiler.surrogates import BUILTIN
from snnc.runtime.backends import renderers
from snnc.runtime.loader import build

from conftest import HAS_CXX, MODELS

pytestmark = pytest.mark.filterwarnings("ignore")

COUNTS = {"checked": 0, "rejected": 0, "built": 0, "ran": 0, "cpp": 0}
TIMES = {"check": 0.0, "build": 0.0, "run": 0.0}
_BUILT_IR: set[str] = set()  # modules already built and run (a mutant that changes only a comment is the same model)


# ------------------------------------------------------------------ the property
def assert_located(exc: SnncError, text: str) -> None:
    lines = text.splitlines() or [""]
    for d in exc.diagnostics:
        assert d.message, exc.render()
        assert d.span is not None, f"an unlocated error:\n{exc.render()}\n--- for ---\n{text}"
        assert d.span.line >= 1 and d.span.col >= 1, exc.render()
        if d.source is not None and d.source.text == text:
            assert d.span.line <= len(lines) + 1, exc.render()
        assert "Traceback" not in exc.render()


def pipeline(folder: Path, text: str, cpp: bool = False, name: str = "fuzz.snn") -> bool:
    """`snnc check` on `text` as folder/name; if it passes, build, load, construct and run every network in it
    (and for `cpp`, render every kernel and run on the cpp backend too). Whether it checked."""
    path = folder / name
    start = time.perf_counter()
    try:
        compiled = compile_file(path, text)  # what `snnc check` does: check, then derive every plan
    except SnncError as exc:
        COUNTS["rejected"] += 1
        assert_located(exc, text)
        return False
    finally:
        TIMES["check"] += time.perf_counter() - start
    COUNTS["checked"] += 1
    key = compiled.module.model_dump_json()
    if key in _BUILT_IR and not cpp:
        return True
    start = time.perf_counter()
    path.write_text(text)
    render_package(compiled.checked)  # what `snnc build` writes: the package, and the kernels' sources
    if cpp:
        render_kernels(compiled, renderers())
        run_built(build(path, folder / "built"))
    lib = snnc.load(path)
    COUNTS["built"] += 1
    TIMES["build"] += time.perf_counter() - start
    start = time.perf_counter()
    for name_ in lib.networks:
        run_network(lib, name_, "torch", double=_cpp_subset(text, 3))
        if cpp and HAS_CXX:
            run_network(lib, name_, "cpp")
            COUNTS["cpp"] += 1
    TIMES["run"] += time.perf_counter() - start
    _BUILT_IR.add(key)  # only once it passed: a failing model fails again when Hypothesis replays it
    return True


def run_network(lib, name: str, backend: str, double: bool = False) -> None:
    """Forward and backward over T steps at once; with the torch backend, also single steps (the generated
    Python), and for `double` the whole network in float64."""
    torch.manual_seed(0)
    net = lib.network(name, step_mode="m")
    snnc.functional.set_backend(net, backend)
    T = min(int(net.T), 3)
    x = torch.rand(T, 2, *net.INPUT_SHAPE) * 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dtype in (torch.float32, *([torch.float64] if double else [])):
            xd = x.to(dtype).requires_grad_(True)
            y = net.to(dtype)(xd)
            assert y.shape == (T, 2, net.NUM_CLASSES) and y.dtype == dtype
            y.sum().backward()  # nan/inf may appear (IEEE arithmetic), exceptions may not
        if backend == "torch":  # single steps through the generated Python
            net.eval()
            snnc.functional.set_step_mode(net, "s")
            snnc.functional.reset_net(net)
            with torch.no_grad():
                for t in range(T):
                    assert net(xd[t].detach()).shape == (2, net.NUM_CLASSES)
    COUNTS["ran"] += 1


def run_built(package: Path) -> None:
    """A package `snnc build` wrote (its own copy of the runtime, no snnc): import it, run every network."""
    name = f"fuzz_built_{COUNTS['built']}"
    spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        for net_name in module.NETWORKS:
            net = getattr(module.networks, net_name)(step_mode="m")
            x = torch.rand(min(int(net.T), 3), 2, *net.INPUT_SHAPE, requires_grad=True)
            y = net(x)
            assert y.shape == (x.shape[0], 2, net.NUM_CLASSES)
            if y.requires_grad:  # not where the output reads neither the input nor a parameter
                y.sum().backward()
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def _cpp_subset(text: str, every: int) -> bool:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % every == 0


# ------------------------------------------------------------------ expressions
NUMBERS = ["0.0", "1.0", "2.0", "0.5", "0.25", "3.0", "10.0", "1e-3", "0.9", "4", "1.5", "2.5", "0.1"]
HOSTILE = ["0.0", "-1.0", "1e308", "-0.0", "1e-320", "1e30", "700.0", "-1e9", "1e39", "88.0"]
FUNCS1 = ["exp", "log", "sqrt", "abs", "tanh", "sigmoid", "atan", "erf", "sign", "heaviside"]
FUNCS2 = ["min", "max"]


def number(draw, hostile: float = 0.05) -> str:
    if draw(st.floats(0, 1)) < hostile:
        return draw(st.sampled_from(HOSTILE))
    return draw(st.sampled_from(NUMBERS))


@st.composite
def expression(draw, names: list[str], bools: list[str] = (), depth: int = 3, hostile: float = 0.05):
    """A numeric expression over `names` (numbers) and `bools` (conditions, inside where())."""
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        if names and draw(st.booleans()):
            return draw(st.sampled_from(names))
        return number(draw, hostile)
    sub = lambda: draw(expression(names, bools, depth - 1, hostile))  # noqa: E731
    kind = draw(st.sampled_from(["bin", "bin", "bin", "neg", "f1", "f1", "f2", "clamp", "where", "paren"]))
    if kind == "bin":
        op = draw(st.sampled_from(["+", "-", "*", "/", "^", "+", "*"]))
        if op == "^":  # small integer or simple powers keep most models finite
            return f"{sub()} ^ {draw(st.sampled_from(['2', '2.0', '3', '0.5', '-1', sub()]))}"
        return f"{sub()} {op} {sub()}"
    if kind == "neg":
        return f"-{sub()}"
    if kind == "f1":
        return f"{draw(st.sampled_from(FUNCS1))}({sub()})"
    if kind == "f2":
        return f"{draw(st.sampled_from(FUNCS2))}({sub()}, {sub()})"
    if kind == "clamp":
        return f"clamp({sub()}, -1.0, 1.0)"
    if kind == "where":
        return f"where({draw(condition(names, bools, depth - 1))}, {sub()}, {sub()})"
    return f"({sub()})"


@st.composite
def condition(draw, names: list[str], bools: list[str] = (), depth: int = 2):
    kind = draw(st.sampled_from(["cmp", "cmp", "cmp", "bool", "and", "not"]))
    if kind == "bool" and bools:
        return draw(st.sampled_from(bools))
    if kind in ("and",) and depth > 0:
        return f"{draw(condition(names, bools, depth - 1))} {draw(st.sampled_from(['and', 'or']))} " \
               f"{draw(condition(names, bools, depth - 1))}"
    if kind == "not" and depth > 0:
        return f"not ({draw(condition(names, bools, depth - 1))})"
    op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
    return f"{draw(expression(names, (), 1))} {op} {draw(expression(names, (), 1))}"


# ------------------------------------------------------------------ neurons
def _surrogate(draw) -> str:
    if draw(st.integers(0, 4)) == 0:
        return ""
    if draw(st.integers(0, 5)) == 0:
        grad = draw(expression(["x", "alpha"], (), 2))
        return f"    surrogate grad = {grad} where alpha = {draw(st.sampled_from(['1.0', '2.0', '0.5']))}\n"
    name = draw(st.sampled_from(sorted(BUILTIN)))
    args = []
    for arg, default in BUILTIN[name].params:
        if draw(st.booleans()):
            args.append(f"{arg} = {draw(st.sampled_from(['1.0', '2.0', '0.5', '4.0', repr(default)]))}")
    return f"    surrogate {name}({', '.join(args)})\n"


@st.composite
def neuron(draw, name: str):
    lines: list[str] = []
    floats: list[str] = []
    bools: list[str] = []
    for i in range(draw(st.integers(0, 4))):
        if draw(st.integers(0, 5)) == 0:
            bools.append(f"b{i}")
            lines.append(f"    param b{i} = {draw(st.sampled_from(['true', 'false']))}")
        else:
            default = draw(expression([], (), 1, 0.02))  # a constant: defaults read no other parameter
            floats.append(f"p{i}")
            lines.append(f"    param p{i} = {default}")
    threshold = draw(st.sampled_from(["param", "param", "param", "state", "learnable", "default"]))
    if threshold == "param":
        lines.append(f"    param v_threshold = {draw(st.sampled_from(['0.5', '1.0', '0.3', '2.0']))}")
    if draw(st.integers(0, 3)) == 0:
        lines.append(f"    param v_reset: float? = {draw(st.sampled_from(['none', '0.0', '-0.1', 'none']))}")
    if draw(st.integers(0, 3)) == 0:
        lines.append(f"    param detach_reset = {draw(st.sampled_from(['true', 'false']))}")
    for _ in range(draw(st.integers(0, 2))):
        if floats:  # mostly a requirement the defaults meet
            lines.append(f"    require {draw(st.sampled_from(floats))} {draw(st.sampled_from(['>', '>=', '!=']))} "
                         f"{draw(st.sampled_from(['-1e9', '-1e9', '-1.0', '0.0', '1e9']))}")
    params = floats + ["v_threshold", "v_reset"] if threshold in ("param", "default") else floats + ["v_reset"]
    learnables = []
    for i in range(draw(st.integers(0, 2))):
        learnables.append(f"w{i}")
        lines.append(f"    learnable w{i} = {draw(expression(floats, (), 1))}")
    if threshold == "learnable":
        learnables.append("v_threshold")
        lines.append(f"    learnable v_threshold = {draw(st.sampled_from(['0.5', '0.8', '1.0']))}")
    states = ["v"]
    lines.append(f"    state v = {draw(st.sampled_from(['v_reset', '0.0', 'v_reset', '0.1']))}")
    for i in range(draw(st.integers(0, 2))):
        states.append(f"s{i}")
        lines.append(f"    state s{i} = {draw(expression(floats, (), 1))}")
    if threshold == "state":
        states.append("v_threshold")
        lines.append("    state v_threshold = 0.5")
    dynamic = ["x", *floats, *learnables, *states]
    ode = draw(st.integers(0, 4)) == 0
    charge = []
    order = draw(st.permutations(states))
    for s in order:
        if s != "v" and draw(st.integers(0, 3)) == 0:
            continue
        value = draw(expression(dynamic, bools, 3, 0.02))
        if ode and draw(st.booleans()):
            charge.append(f"d{s}/dt = {value}")
        else:
            op = "=" if s == "v_threshold" or draw(st.booleans()) else "+="
            charge.append(f"{s} {op} {value if op == '=' else value}")
    if len(charge) == 1 and draw(st.booleans()):
        lines.append(f"    charge {charge[0]}")
    else:
        lines.append("    charge {\n" + "".join(f"        {c}\n" for c in charge) + "    }")
    if ode and any("/dt" in c for c in charge):
        lines.append(f"    integrate = {draw(st.sampled_from(['euler', 'rk2', 'exponential_euler', 'exact']))}")
    others = [s for s in states if s != "v"]
    spikes = []
    for s in others:
        if draw(st.booleans()):
            spikes.append(f"{s} {draw(st.sampled_from(['+=', '=']))} {draw(expression([*floats, *states], (), 1))}")
    if spikes:
        lines.append("    on_spike {\n" + "".join(f"        {c}\n" for c in spikes) + "    }")
    if draw(st.integers(0, 9)) == 0:
        lines.append("    output membrane")
    body = "\n".join(lines) + "\n" + _surrogate(draw)
    return f"neuron {name} {{\n{body}}}\n", params + bools


# ------------------------------------------------------------------ networks
LIBRARY = ["IF", "LIF", "PLIF", "QIF", "EIF", "Izhikevich", "CUBALIF", "AdaptiveLIF", "LI"]


class _Net:
    def __init__(self, draw, neurons: dict[str, list[str]]):
        self.draw, self.neurons = draw, neurons
        self.lines: list[str] = []
        self.blocks: list[str] = []
        self.count = 0

    def name(self) -> str:
        self.count += 1
        return f"n{self.count}"

    def neuron(self) -> str:
        d = self.draw
        name = d(st.sampled_from(sorted(self.neurons)))
        args = []
        params = self.neurons[name]
        if params and d(st.integers(0, 2)) == 0:
            p = d(st.sampled_from(params))
            value = (d(st.sampled_from(["none", "0.0", "-0.5"])) if p == "v_reset" else
                     d(st.sampled_from(["true", "false"])) if re.fullmatch(r"b\d+", p) else number(d, 0.1))
            args.append(f"{p} = {value}")
        if d(st.integers(0, 3)) == 0:
            sg = d(st.sampled_from(sorted(BUILTIN)))
            argnames = [a for a, _ in BUILTIN[sg].params]
            inner = f"{argnames[0]} = {d(st.sampled_from(['1.0', '2.0', '0.5']))}" if argnames else ""
            args.append(f"surrogate = {sg}({inner})")
        if d(st.integers(0, 5)) == 0:
            args.append(f"detach_reset = {d(st.sampled_from(['true', 'false']))}")
        if d(st.integers(0, 40)) == 0:  # a name that may be no parameter of this neuron: a state, 'dt', ...
            args.append(f"{d(st.sampled_from(['v', 'v_threshold', 's0', 'w0', 'dt', 'x']))} = 1.0")
        return f"{name}({', '.join(args)})" if args else name

    def add(self, text: str, label: str | None = None) -> str:
        label = label or self.name()
        self.lines.append(f"        {label} = {text}")
        return label

    def image_stage(self, shape):
        d = self.draw
        c, h, w = shape
        for _ in range(d(st.integers(0, 4))):
            kind = d(st.sampled_from(["conv", "conv", "pool", "bn", "neuron", "neuron", "dropout", "delay", "scale",
                                      "residual", "concat"]))
            if kind == "conv":
                k = d(st.integers(1, min(3, h, w)))
                pad = d(st.integers(0, k // 2 + (1 if k > 1 else 0)))
                out = d(st.integers(1, 4))
                stride = d(st.sampled_from([1, 1, 2]))
                self.add(f"conv2d({out}, {k}, stride = {stride}, padding = {pad}, bias = "
                         f"{d(st.sampled_from(['true', 'false']))})")
                c, h, w = out, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
            elif kind == "pool" and min(h, w) >= 2:
                k = d(st.integers(1, 2))
                self.add(f"{d(st.sampled_from(['maxpool2d', 'avgpool2d', 'sumpool2d']))}({k})")
                h, w = h // k, w // k
            elif kind == "bn":
                self.add("batchnorm2d")
            elif kind == "neuron":
                self.add(self.neuron())
            elif kind == "dropout":
                self.add(f"dropout({d(st.sampled_from(['0.0', '0.2', '0.5']))})")
            elif kind == "delay":
                if d(st.booleans()):
                    self.add(f"delay({d(st.integers(0, 3))})")
                else:
                    self.add(f"delay([{', '.join(str(d(st.integers(0, 3))) for _ in range(c))}])")
            elif kind == "scale":
                self.add("scale")
            elif kind == "residual":
                a = self.add(self.neuron())
                self.add(f"conv2d({c}, 3, padding = 1)")
                b = self.add(self.neuron())
                self.add(f"{d(st.sampled_from(['add', 'mul', 'and', 'iand']))}({a}, {b})")
            elif kind == "concat":
                a = self.add(self.neuron())
                b = self.add(f"conv2d({c}, 1) from {a}")
                self.add(f"concat({a}, {b})")
                c = 2 * c
        return c, h, w

    def sequence_stage(self, shape):
        d = self.draw
        c, length = shape
        for _ in range(d(st.integers(0, 3))):
            kind = d(st.sampled_from(["conv", "conv", "neuron", "scale", "delay"]))
            if kind == "conv" and length >= 1:
                k = d(st.integers(1, min(3, length)))
                out, stride, pad = d(st.integers(1, 3)), d(st.sampled_from([1, 2])), d(st.integers(0, 1))
                self.add(f"conv1d({out}, {k}, stride = {stride}, padding = {pad})")
                c, length = out, (length + 2 * pad - k) // stride + 1
            elif kind == "neuron":
                self.add(self.neuron())
            elif kind == "scale":
                self.add("scale")
            else:
                self.add(f"delay([{', '.join(str(d(st.integers(0, 2))) for _ in range(c))}])")
        return c, length

    def block(self, n: int) -> tuple[str, int]:
        """A block definition (a linear layer and a neuron, with an optional shortcut) and one use of it."""
        d = self.draw
        width = d(st.integers(1, 6))
        neuron = self.neuron()
        body = ["        h = linear(width)", "        s = neuron()"]
        if d(st.booleans()) and width == n:
            body.append(f"        {d(st.sampled_from(['add', 'mul', 'iand']))}(in, s)")
        self.blocks.append(f"block Layer{len(self.blocks)}(width, neuron = {neuron}) {{\n" + "\n".join(body)
                           + "\n}\n")
        self.add(f"Layer{len(self.blocks) - 1}({width})")
        return width

    def flat_stage(self, n: int) -> int:
        d = self.draw
        for _ in range(d(st.integers(0, 4))):
            kind = d(st.sampled_from(["linear", "linear", "neuron", "neuron", "bn", "dropout", "delay", "scale",
                                      "recurrent", "residual", "delayed_loop", "block"]))
            if kind == "linear":
                n = d(st.integers(1, 8))
                self.add(f"linear({n}, bias = {d(st.sampled_from(['true', 'false']))})")
            elif kind == "neuron":
                self.add(self.neuron())
            elif kind == "bn":
                self.add("batchnorm1d")
            elif kind == "dropout":
                self.add(f"dropout({d(st.sampled_from(['0.0', '0.3']))})")
            elif kind == "delay":
                self.add(f"delay({d(st.integers(0, 4))})")
            elif kind == "scale":
                self.add("scale")
            elif kind == "recurrent":  # the layer's own spikes of the previous step, through a linear layer
                n = d(st.integers(1, 8))
                spikes = f"r{self.count + 1}"
                a = self.add(f"linear({n})")
                b = self.add(f"linear({n}, bias = false) from {spikes}")
                self.add(f"add({a}, {b})")
                self.add(self.neuron(), spikes)
                self.count += 1
            elif kind == "residual":
                a = self.add(self.neuron())
                self.add(f"linear({n})")
                b = self.add(self.neuron())
                self.add(f"{d(st.sampled_from(['add', 'mul', 'and', 'iand']))}({a}, {b})")
            elif kind == "block":
                n = self.block(n)
            elif kind == "delayed_loop":  # feedback through a delay of at least one step
                late = f"r{self.count + 1}"
                self.count += 1
                a = self.add(f"linear({n})")
                self.add(f"add({a}, {late})")
                s = self.add(self.neuron())
                self.add(f"delay({d(st.integers(1, 3))}) from {s}", late)
        return n


@st.composite
def model(draw) -> str:
    """A file of 1-2 neurons and a network over them (and sometimes snnc's library)."""
    parts, neurons = [], {}
    for i in range(draw(st.integers(1, 2))):
        text, params = draw(neuron(f"N{i}"))
        parts.append(text)
        neurons[f"N{i}"] = params
    if draw(st.integers(0, 3)) == 0:
        parts.insert(0, "import snnc.neurons\n")
        for n in draw(st.lists(st.sampled_from(LIBRARY), min_size=1, max_size=2, unique=True)):
            neurons[n] = {"LIF": ["tau"], "PLIF": ["init_tau"], "IF": [], "QIF": ["tau", "a0"], "EIF": ["tau"],
                          "Izhikevich": ["tau", "a", "b"], "CUBALIF": ["c_decay"], "AdaptiveLIF": ["tau", "b"],
                          "LI": ["tau"]}[n]
    net = _Net(draw, neurons)
    kind = draw(st.sampled_from(["image", "image", "flat", "flat", "sequence"]))
    if kind == "image":
        shape = (draw(st.integers(1, 2)), draw(st.integers(3, 6)), draw(st.integers(3, 6)))
        c, h, w = net.image_stage(shape)
        net.add("flatten")
        n = net.flat_stage(c * h * w)
    elif kind == "sequence":
        shape = (draw(st.integers(1, 3)), draw(st.integers(2, 6)))
        c, length = net.sequence_stage(shape)
        net.add("flatten")
        n = net.flat_stage(c * length)
    else:
        shape = (draw(st.integers(1, 6)),)
        n = net.flat_stage(shape[0])
    classes = draw(st.integers(1, 4))
    net.add(f"linear({classes})")
    spiking_out = draw(st.integers(0, 3)) != 0
    if spiking_out:
        net.add(net.neuron())
    settings_ = [f"    input = [{', '.join(map(str, shape))}]", f"    T = {draw(st.integers(1, 4))}"]
    if draw(st.booleans()):
        readouts = ["rate", "mean", "max", "last", *(["membrane"] if spiking_out else [])]
        settings_.append(f"    readout = {draw(st.sampled_from(readouts))}")
    if draw(st.integers(0, 5)) == 0:
        settings_.append("    step_mode = s")
    if draw(st.integers(0, 4)) == 0:
        settings_.append(f"    encoder = {draw(st.sampled_from(['poisson', 'direct', 'latency']))}")
    if draw(st.integers(0, 5)) == 0:
        settings_.append(f"    dt = {draw(st.sampled_from(['0.5', '1.0', '2.0']))}")
    if draw(st.integers(0, 4)) == 0:
        settings_.append("    train { epochs = 2  batch_size = 8  lr = 1e-2  loss = ce }")
    layers = "\n".join(net.lines)
    parts += net.blocks
    parts.append("network Fuzz {\n" + "\n".join(settings_) + f"\n    layers {{\n{layers}\n    }}\n}}\n")
    return "\n".join(parts)


# ------------------------------------------------------------------ mutations
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+\.\d*(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?|\+=|[<>=!]=|[^\s\w]|\n")
REPLACEMENTS = sorted({
    *HOSTILE, *NUMBERS, "1e999", "1e-400", "x", "v", "t", "none", "true", "false", "not", "and", "or", "where", "exp", "log", "(", ")",
    "[", "]", "{", "}", ",", "=", "+=", "-", "^", "/", "*", "from", "in", "add", "concat", "delay", "linear", "LIF",
    "IF", "v_threshold", "v_reset", "detach_reset", "state", "param", "learnable", "require", "surrogate",
    "on_spike", "charge", "output", "membrane", "integrate", "exact", "dv/dt", "T", "input", "readout", "flatten",
    "conv2d", "maxpool2d", "stride", "padding", "-2", "0", "1e-400", "foo", "foo(1)", "a" * 70,
})


@st.composite
def mutated(draw, text: str):
    """`text` with 1-3 token-level edits: delete, duplicate, replace, insert, swap or copy a line."""
    tokens = TOKEN.findall(text)
    spaced = []
    for _ in range(draw(st.integers(1, 3))):
        if not tokens:
            break
        i = draw(st.integers(0, len(tokens) - 1))
        kind = draw(st.sampled_from(["delete", "replace", "replace", "insert", "duplicate", "swap", "line",
                                     "number", "number", "name"]))
        numbers = [j for j, t in enumerate(tokens) if t[0].isdigit()]
        names = sorted({t for t in tokens if t[0].isalpha() or t[0] == "_"})
        if kind == "number" and numbers:  # a value changed: mostly still a model, often a strange one
            tokens[draw(st.sampled_from(numbers))] = draw(st.sampled_from(
                [*HOSTILE, *NUMBERS, "1e999", "1e-400", "0", "1", "2", "3.5", "2147483648"]))
        elif kind == "name" and names:  # a name for another of the file's names
            tokens[i] = draw(st.sampled_from(names))
        elif kind == "delete":
            del tokens[i]
        elif kind == "replace":
            tokens[i] = draw(st.sampled_from(REPLACEMENTS))
        elif kind == "insert":
            tokens.insert(i, draw(st.sampled_from(REPLACEMENTS)))
        elif kind == "duplicate":
            tokens.insert(i, tokens[i])
        elif kind == "swap" and i + 1 < len(tokens):
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        elif kind == "line":
            lines = "".join(t if t == "\n" else t + " " for t in tokens).split("\n")
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines.insert(b, lines[a])
            tokens = TOKEN.findall("\n".join(lines))
    for t in tokens:
        spaced.append(t if t == "\n" else t + " ")
    return "".join(spaced)


SHIPPED = {p.name: p.read_text() for p in sorted(MODELS.glob("*.snn"))}
# the library's neurons and blocks too (not neurons_ode.snn: each of its closed forms takes SymPy a second)
LIB = {p.name: p.read_text() for p in sorted((MODELS.parent / "snnc" / "lib").glob("*.snn")) if "ode" not in p.name}


@st.composite
def shipped_mutant(draw):
    corpus = {**SHIPPED, **{f"lib_{k}": v for k, v in LIB.items()}}
    name = draw(st.sampled_from(sorted(corpus)))
    return name, draw(mutated(corpus[name]))


# ------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_models")
    for name, text in SHIPPED.items():  # imports between the shipped models resolve next to the mutants
        (d / name).write_text(text)
    return d


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SNNC_CACHE_DIR", str(tmp_path_factory.mktemp("fuzz_cache")))
    yield
    mp.undo()


FAST = dict(deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.slow
@settings(max_examples=800, **FAST)
@given(text=model())
def test_generated_models(folder, text):
    pipeline(folder, text, cpp=_cpp_subset(text, 40))


@pytest.mark.slow
@settings(max_examples=1200, **FAST)
@given(data=st.data())
def test_mutated_generated_models(folder, data):
    text = data.draw(model())
    pipeline(folder, data.draw(mutated(text)))


@pytest.mark.slow
@settings(max_examples=1200, **FAST)
@given(case=shipped_mutant())
def test_mutated_shipped_models(folder, case):
    name, text = case
    pipeline(folder, text, name=name.replace("lib_", "mut_"))


@st.composite
def near_the_limits(draw) -> str:
    """A neuron with calls nested around the 100-level limit and around the 64-state limit, feeding layers
    from small to huge: each either is a located error at check or builds, loads and runs."""
    depth, states, width = draw(st.integers(95, 105)), draw(st.integers(60, 68)), draw(st.sampled_from(
        [3, 1000, 200_000]))
    func = draw(st.sampled_from(["tanh", "sigmoid", "atan", "abs"]))
    extra = "".join(f"    state s{i} = 0.0\n" for i in range(1, states))
    body = "".join(f"        s{i} = s{i} * 0.5 + x\n" for i in range(1, states))
    charge = "v + " + f"{func}(" * (depth - 1) + "x" + ")" * (depth - 1)
    return (f"neuron Edge {{\n    state v = 0.0\n{extra}    charge {{\n{body}        v = {charge}\n    }}\n}}\n"
            f"network Net {{\n    input = [4]\n    T = 2\n    layers {{\n        linear({width})\n        Edge\n"
            f"        linear(3)\n        Edge\n    }}\n}}\n")


@pytest.mark.slow
@settings(max_examples=6, **FAST)
@given(text=near_the_limits())
def test_models_near_the_limits(folder, text):
    pipeline(folder, text, name="edge.snn")


def test_counts():
    """What the runs above did (printed with -s; asserted where the property needs it)."""
    print(f"\nfuzz_models: {COUNTS}, seconds: { {k: round(v, 1) for k, v in TIMES.items()} }")
    if COUNTS["checked"] + COUNTS["rejected"]:
        assert COUNTS["checked"] == 0 or COUNTS["built"] > 0
