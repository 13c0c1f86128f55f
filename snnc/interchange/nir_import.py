"""A NIR graph as a readable `.snn` file and a checkpoint: `snnc import model.nir -o model.snn`.

The graph becomes snnc's node list in `nir_graph` (sub-graphs inlined, cycles closed on a neuron's previous
output, several inputs summed by an `add`).
Neurons become a library neuron where SpikingJelly's convention fits (LIF, IF, LI, CUBALIF), else a NIR-shaped
neuron defined in the file (`NirLIF`, ...); either is proved by mapping it back onto the NIR node
(`nir_neurons.snnc_layer`). A graph `snnc export` wrote carries its network in its metadata: its neurons,
layer arguments, learnables and settings come back exactly, after the same proof.

The weights go into a checkpoint that `snnc eval` reads and `snnc train --resume` continues from (epoch 0,
a fresh optimizer): the imported model trains on snnc's kernels.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np

from .. import __version__
from ..compiler import ir
from ..compiler.datasets import steps_value
from ..compiler.encoders import ENCODERS
from ..compiler.neuron import layer_config
from ..compiler.printers import value_text
from ..compiler.source import Diagnostic, SnncError
from . import nir_graph
from .nir_export import FORMAT, META_KEY, check_options
from .nir_graph import Line
from .nir_neurons import (FIELDS, SPIKING, TIES, Form, NotNIR, inline_comment, ir_values, library_neurons, nir_form,
                          snnc_layer)
from .snn_text import layer_call, neuron_text

class _Skip(Exception):
    """A node snnc cannot run: the message names the reason."""


@dataclass
class Imported:
    text: str  # the .snn file
    network: str
    lines: list[Line]
    neurons: dict[str, str] = field(default_factory=dict)  # NIR node -> the snnc layer it became

    @property
    def names(self) -> dict[str, str]:
        """NIR node -> snnc node path."""
        return {l.nir: l.name for l in self.lines if l.nir}

    def weights(self) -> dict[str, dict]:
        """snnc node path -> {module attribute: array} (parameters, and learnables of neurons)."""
        return {l.name: l.weights for l in self.lines if l.weights}


# ------------------------------------------------------------------ public API
def import_file(path, out, checkpoint=None, network: str | None = None, T: int | None = None,
                encoder: str | None = None, readout: str | None = None, dt: float | None = None,
                ties: str | None = None, overwrite: bool = False) -> tuple[Imported, Path]:
    """Read a NIR file, write `out` (.snn) and its weights (`checkpoint`, default `out` with .pt); files
    already there are replaced only with `overwrite`."""
    from ..compiler.driver import check_file

    taken = [str(p) for p in (Path(out), Path(checkpoint) if checkpoint else Path(out).with_suffix(".pt"))
             if p.exists()]
    if taken and not overwrite:
        raise SnncError(f"{' and '.join(taken)} already exist{'s' if len(taken) == 1 else ''}; snnc import will not "
                        "replace {}".format("it" if len(taken) == 1 else "them"),
                        hint="pass --overwrite to replace, or choose another -o / --checkpoint")

    graph = read(path)
    imported = import_graph(graph, source=str(path), network=network, T=T, encoder=encoder, readout=readout,
                            dt=dt, ties=ties, weights_file=Path(checkpoint or Path(out).with_suffix(".pt")).name,
                            snn_file=Path(out).name)
    try:
        check_file(str(out), imported.text)
    except SnncError as exc:  # e.g. an output that is not flat: snnc's networks end in [classes]
        raise SnncError(f"snnc cannot run the network of {path} as it stands; checking the file it would write "
                        f"says:\n{exc.render()}", hint="if the graph should run, report it with the .nir file") from None
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(imported.text)
    except OSError as exc:
        raise SnncError(f"cannot write {out}: {exc.strerror or exc}") from None
    target = Path(checkpoint) if checkpoint else out.with_suffix(".pt")
    write_checkpoint(out, imported, target)
    return imported, target


def read(path):
    import nir

    try:
        return nir.read(str(path))
    except FileNotFoundError:
        raise SnncError(f"no such file: {path}") from None
    except Exception as exc:  # h5py and NIR raise many types for a file that is not a NIR graph
        raise SnncError(f"{path} is not a NIR graph NIR {nir.version} can read ({type(exc).__name__}: "
                        f"{str(exc)[:200]})", hint="write it with nir.write (NIR 1.0)") from None


def import_graph(graph, source: str = "graph", network: str | None = None, T: int | None = None,
                 encoder: str | None = None, readout: str | None = None, dt: float | None = None,
                 ties: str | None = None, weights_file: str = "model.pt", snn_file: str = "model.snn") -> Imported:
    """The `.snn` text (and the weights) of a NIR graph. A graph snnc cannot run is one `SnncError` listing
    every offending node."""
    import nir

    meta = _metadata(graph, source)
    dt = dt if dt is not None else float(meta.get("dt", 1e-4))
    ties = ties or meta.get("ties", "nir")
    check_options(dt, ties)
    problems: list[str] = []
    nodes, edges, inp, out = nir_graph.flatten(graph, problems)
    ctx = _Context(meta, dt, ties)
    lines: dict[str, Line] = {}
    for name, node in nodes.items():
        kind = type(node).__name__
        if name in (inp, out):
            continue
        unfit = _not_finite(node)
        if unfit:
            problems.append(f"node '{name}' ({kind}): {unfit} holds NaN or infinite values")
            continue
        try:
            convert = CONVERT.get(kind)
            if convert is None:
                raise _Skip(f"snnc knows no NIR node type '{kind}' (NIR {nir.version} has "
                            f"{', '.join(sorted(k for k in CONVERT))})")
            lines[name] = convert(ctx, name, node)
        except _Skip as exc:
            problems.append(f"node '{name}' ({kind}): {exc}")
    problems += nir_graph.dead_ends(nodes, edges, inp, out)
    ctx.rename_clashes(lines)
    if problems:
        raise SnncError(diagnostics=[Diagnostic(f"cannot import {source}: {len(problems)} node"
                                                f"{'s' if len(problems) > 1 else ''} snnc cannot run")] +
                        [Diagnostic(p) for p in problems])
    order = nir_graph.order(nodes, edges, inp, out, meta.get("order", []))
    written = nir_graph.wire(order, lines, edges, inp, out, meta.get("merges", {}))
    nir_graph.name(written)
    header = _header(meta, nodes, inp, out, edges, network, T, encoder, readout, source)
    text = _text(header, written, ctx, source, dt, ties, weights_file, snn_file)
    return Imported(text, header["name"], written, ctx.chosen)


_META = {  # what the exporter writes under each key of its metadata, and what a reader expects of it
    "dt": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0,
           "a positive finite time step"),
    "ties": (lambda v: isinstance(v, str), "a name"),
    "nodes": (lambda v: isinstance(v, dict) and all(isinstance(i, dict) for i in v.values()),
              "an object of node records"),
    "neurons": (lambda v: isinstance(v, dict) and all(isinstance(i, dict) for i in v.values()),
                "an object of neuron records"),
    "order": (lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v), "a list of node names"),
    "merges": (lambda v: isinstance(v, dict), "an object"),
    "network": (lambda v: isinstance(v, dict) and isinstance(v.get("train", {}), dict), "an object"),
}


def _metadata(graph, source: str = "graph") -> dict:
    """snnc's own metadata of a graph it exported ({} for any other graph), each key of the shape expected."""
    try:
        raw = graph.metadata.get(META_KEY)
    except AttributeError:
        return {}
    if raw is None:
        return {}
    try:
        meta = json.loads(str(raw))
    except ValueError:
        return {}  # not snnc's: another tool's use of the key
    except RecursionError:
        raise SnncError(f"{source}: the '{META_KEY}' metadata nests too deep to be snnc's",
                        hint="remove the key from the graph's metadata; the graph imports without it") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return {}
    for key, (ok, expected) in _META.items():
        if key in meta and not ok(meta[key]):
            raise SnncError(f"{source}: the '{META_KEY}' metadata's '{key}' is {json.dumps(meta[key])[:60]}, "
                            f"expected {expected}",
                            hint="remove the key from the graph's metadata; the graph imports without it")
    return meta


def _not_finite(node) -> str | None:
    """The first of a node's float arrays (weights, time constants, thresholds) holding NaN or infinity."""
    for key, value in vars(node).items():
        a = np.asarray(value) if isinstance(value, (np.ndarray, float)) else None
        if a is not None and a.dtype.kind == "f" and not np.isfinite(a).all():
            return key
    return None


# ------------------------------------------------------------------ nodes to layers
class _Context:
    """What converting a node needs: the exporter's metadata, dt, ties; it collects the neurons used."""

    def __init__(self, meta: dict, dt: float, ties: str):
        self.meta, self.dt, self.ties = meta, dt, ties
        self.inline: dict[str, ir.Neuron] = {}  # neurons the file defines, by name
        self.library = False  # whether the file imports snnc.neurons
        self.chosen: dict[str, str] = {}

    def use(self, neuron: ir.Neuron, library: bool) -> str:
        if library:
            self.library = True
        else:
            self.inline.setdefault(neuron.name, neuron)
        return neuron.name

    def rename_clashes(self, lines: dict[str, "Line"]) -> None:
        """A neuron the file defines, named like a library one (a graph's own 'LIF'), is renamed when the file
        imports the library too."""
        if not self.library:
            return
        for old in [n for n in self.inline if n in library_neurons()]:
            new = f"{old}Nir"
            self.inline[new] = self.inline.pop(old).model_copy(update={"name": new})
            for line in lines.values():
                if line.defined and line.op.neuron == old:
                    line.op = line.op.model_copy(update={"neuron": new})

    def restore(self, name: str, form: Form):
        """The layer the exporter recorded for node `name`, if it maps back onto `form` exactly."""
        info = self.meta.get("nodes", {}).get(name)
        if not info:
            return None
        spec = self.meta.get("neurons", {}).get(info.get("neuron"), {})
        try:
            neuron, overrides, library = _recorded(info, spec)
            values = {**ir_values(neuron, overrides), **{k: float(v) for k, v in info.get("learnables", {}).items()}}
            back = nir_form(neuron, layer_config(neuron, overrides), values, self.dt, self.ties)
        except (SnncError, NotNIR, KeyError, TypeError, ValueError, AttributeError):  # a record not as written
            return None
        if back != form:
            return None
        learned = {k: np.float32(v) for k, v in info.get("learnables", {}).items()}
        return neuron, overrides, library, learned


def _recorded(info: dict, spec: dict):
    """A recorded neuron and layer arguments, read back through the parser (the metadata is text from a file:
    it only ever becomes IR, never code)."""
    from ..compiler.assemble import load_module

    name = info["neuron"]
    library = bool(spec.get("library")) and name in library_neurons() and \
        neuron_text(library_neurons()[name]) == spec.get("text")
    head = "import snnc.neurons\n" if library else spec["text"] + "\n"
    args = ", ".join(info.get("arguments", []))
    layer = f"network N {{\n input = [1]\n T = 1\n layers {{\n  {name}({args})\n }}\n}}\n"
    module, _ = load_module("<nir metadata>", head + layer)
    if len(module.networks) != 1 or len(module.networks[0].layers) != 1:
        raise ValueError("not one layer")
    op = module.networks[0].layers[0].op
    if not isinstance(op, ir.NeuronLayer):
        raise ValueError("not a neuron layer")
    return module.neuron(name), op.overrides, library


def _array(node, key: str) -> np.ndarray:
    return np.asarray(getattr(node, key))


def _uniform(node, name: str, keys) -> dict[str, float]:
    """One value per parameter; per-neuron values that differ are a _Skip naming them (snnc's parameters are
    per layer)."""
    out, uneven = {}, []
    for k in keys:
        a = _array(node, k).astype(np.float64)
        if a.size and not np.all(a == a.flat[0]):
            uneven.append(f"{k} (from {float(a.min())!r} to {float(a.max())!r})")
        out[k] = float(a.flat[0]) if a.size else 0.0
    if uneven:
        raise _Skip(f"per-neuron parameters differ: {', '.join(uneven)}; snnc's neuron parameters are one value per "
                    "layer")
    return out


def _shape_text(a) -> str:
    return "x".join(str(d) for d in np.shape(a))


def _neuron(ctx: _Context, name: str, node) -> Line:
    kind = type(node).__name__
    values = _uniform(node, name, FIELDS[kind])
    form = Form(kind, tuple((k, values[k]) for k in FIELDS[kind]))
    single = any(_array(node, k).dtype == np.float32 for k in FIELDS[kind])
    restored = ctx.restore(name, form)
    learned = {}
    if restored:
        neuron, overrides, library, learned = restored
    else:
        try:
            neuron, args, library = snnc_layer(form, ctx.dt, ctx.ties, single)
        except NotNIR as exc:
            raise _Skip(exc.reason) from None
        overrides = tuple((k, ir.Lit(value=v)) for k, v in args.items())
    op = ir.NeuronLayer(neuron=ctx.use(neuron, library), overrides=overrides)
    shown = ", ".join(f"{k}={v:.9g}" for k, v in form.params)
    ctx.chosen[name] = f"{layer_call(op, ())}  <-  NIR {kind}({shown})"
    return Line(name, op, comment=f"NIR {kind} {_shape_text(_array(node, FIELDS[kind][0]))}: {shown}",
                weights=learned, defined=not library)


def _linear(ctx: _Context, name: str, node) -> Line:
    w = np.asarray(node.weight)
    if w.ndim != 2:
        raise _Skip(f"a weight of shape {list(w.shape)}; snnc's linear layer takes [out, in]")
    bias = type(node).__name__ == "Affine"
    weights = {"weight": w, **({"bias": np.asarray(node.bias)} if bias else {})}
    return Line(name, ir.Linear(out_features=w.shape[0], bias=bias), comment=f"NIR {type(node).__name__} "
                f"{w.shape[0]}x{w.shape[1]}", weights=weights)


def _pair(value, what: str) -> int:
    a = np.atleast_1d(np.asarray(value)).astype(np.int64)
    if a.size not in (1, 2) or (a.size == 2 and a[0] != a[1]):
        raise _Skip(f"{what} {a.tolist()} differs between height and width; snnc's layers take one value")
    return int(a[0])


def _padding(padding, k: int) -> int:
    if isinstance(padding, (str, bytes)):
        text = padding.decode() if isinstance(padding, bytes) else padding
        if text == "same" and k % 2 == 0:
            raise _Skip("padding 'same' with an even kernel (uneven padding)")
        if text not in ("valid", "same"):
            raise _Skip(f"padding '{text}'")
        return 0 if text == "valid" else (k - 1) // 2
    return _pair(padding, "padding")


def _conv(node, dims: int):
    """Kernel size, stride, padding and bias of a convolution snnc can run (square, no dilation, no groups)."""
    w = np.asarray(node.weight)
    if w.ndim != dims + 2 or len(set(w.shape[2:])) != 1:
        raise _Skip(f"a kernel of shape {list(w.shape[2:])}; snnc's conv{dims}d takes square kernels")
    dilation, groups = _pair(node.dilation, "dilation"), int(np.asarray(node.groups))
    if dilation != 1 or groups != 1:
        raise _Skip(f"dilation {dilation} and groups {groups}; snnc's convolutions have neither (both 1)")
    k = w.shape[2]
    b = np.asarray(node.bias)
    bias = bool(np.any(b != 0))  # snnc exports bias = false as zeros
    return w, k, _pair(node.stride, "stride"), _padding(node.padding, k), bias, b


def _convolution(dims: int, kind):
    def convert(ctx: _Context, name: str, node) -> Line:
        w, k, stride, padding, bias, b = _conv(node, dims)
        op = kind(out_channels=w.shape[0], kernel_size=k, stride=stride, padding=padding, bias=bias)
        weights = {"weight": w, **({"bias": b} if bias else {})}
        return Line(name, op, comment=f"NIR Conv{dims}d {_shape_text(w)}", weights=weights)
    return convert


def _scale(ctx: _Context, name: str, node) -> Line:
    scale = np.asarray(node.scale)
    return Line(name, ir.Scale(), comment=f"NIR Scale {_shape_text(scale)}", weights={"weight": scale})


def _flatten_op(ctx: _Context, name: str, node) -> Line:
    shape = node.input_type.get("input") if node.input_type else None
    ndim = None if shape is None else len(np.atleast_1d(shape))
    end = node.end_dim if node.end_dim >= 0 or ndim is None else ndim + node.end_dim
    start = node.start_dim if node.start_dim >= 0 or ndim is None else ndim + node.start_dim
    if start != 0 or (ndim is not None and end != ndim - 1) or (ndim is None and node.end_dim != -1):
        raise _Skip(f"flattens dimensions {node.start_dim}..{node.end_dim}; snnc's flatten joins all of them")
    return Line(name, ir.Flatten(), comment="NIR Flatten")


def _pool(kind):
    def convert(ctx: _Context, name: str, node) -> Line:
        if _pair(node.padding, "padding") != 0:
            raise _Skip(f"padding {np.asarray(node.padding).tolist()}; snnc's pooling has none")
        k, s = _pair(node.kernel_size, "kernel_size"), _pair(node.stride, "stride")
        return Line(name, kind(kernel_size=k, stride=None if s == k else s), comment=f"NIR {type(node).__name__}")
    return convert


def _delay(ctx: _Context, name: str, node) -> Line:
    d = np.asarray(node.delay, dtype=np.float64) / ctx.dt
    steps = np.rint(d)
    if d.size == 0 or not np.allclose(d, steps, rtol=0, atol=1e-6) or np.any(steps < 0):
        shown = ", ".join(f"{v:.6g}" for v in np.unique(d)[:4])
        raise _Skip(f"delays of {shown} steps of dt = {ctx.dt} s; snnc delays by whole steps (is dt right?)")
    steps = steps.astype(np.int64)
    if np.all(steps == steps.flat[0]):
        return Line(name, ir.Delay(steps=int(steps.flat[0])), comment=f"NIR Delay {_shape_text(d)}")
    per_channel = steps.reshape(steps.shape[0], -1)
    if not np.all(per_channel == per_channel[:, :1]):
        raise _Skip("delays that differ within a channel; snnc delays by one value per channel")
    return Line(name, ir.Delay(steps=tuple(int(v) for v in per_channel[:, 0])), comment=f"NIR Delay {_shape_text(d)}")


CONVERT = {"Linear": _linear, "Affine": _linear, "Conv1d": _convolution(1, ir.Conv1d),
           "Conv2d": _convolution(2, ir.Conv2d), "Flatten": _flatten_op,
           "AvgPool2d": _pool(ir.AvgPool2d), "SumPool2d": _pool(ir.SumPool2d), "Scale": _scale, "Delay": _delay,
           **{kind: _neuron for kind in FIELDS}}


# ------------------------------------------------------------------ the file
def _network_name(name: str) -> str:
    """A class name made of the given name's letters and digits ('model-2.nir' -> 'Model2')."""
    text = re.sub(r"\W", "_", name, flags=re.ASCII)
    text = "".join(p[:1].upper() + p[1:] for p in text.split("_") if p) or "Imported"
    return text if text[0].isalpha() else "Net" + text


def _setting(value, field: str, what: str):
    """A network setting from an option or the graph's metadata, checked against the IR or its table (never
    raw text)."""
    allowed = tuple(ENCODERS) if field == "encoder" else get_args(ir.Network.model_fields[field].annotation)
    if value not in allowed:
        raise SnncError(f"unknown {what} '{value}'", hint=f"use one of: {', '.join(allowed)}")
    return value


def _header(meta: dict, nodes, inp: str, out: str, edges, network, T, encoder, readout, source) -> dict:
    from pydantic import ValidationError

    net = meta.get("network", {}) if isinstance(meta.get("network"), dict) else {}
    shape = [int(d) for d in np.atleast_1d(nodes[inp].input_type["input"])]
    last = next((a for a, b in edges if b == out), None)
    spiking = last is not None and type(nodes.get(last)).__name__ in SPIKING
    steps = T or net.get("T") or 100
    if not isinstance(steps, int) or steps < 1 or not shape or min(shape) < 1:
        raise SnncError(f"T must be a positive whole number of steps and the input a shape, not {steps!r} and {shape}")
    try:
        train = ir.Train(**{k: v for k, v in net.get("train", {}).items() if k in ir.Train.model_fields})
    except (ValidationError, TypeError):
        train = ir.Train()
    return {
        "name": _network_name(str(network or net.get("name") or Path(source).stem)),
        "input": shape,
        "T": steps,
        "encoder": _setting(encoder or net.get("encoder") or "direct", "encoder", "encoder"),
        "readout": _setting(readout or net.get("readout") or ("rate" if spiking else "mean"), "readout", "readout"),
        "step_mode": _setting(net.get("step_mode", "m"), "step_mode", "step mode"),
        "train": train.model_dump(exclude={"span"}),
    }


def _text(header: dict, written: list[Line], ctx: _Context, source: str, dt: float, ties: str, weights_file: str,
          snn_file: str) -> str:
    import nir

    origin = re.sub(r"[\r\n]", " ", source)
    out = [f"# Imported by snnc {__version__} from {origin} (NIR {nir.version}); one step is dt = {dt!r} s.",
           f"# Thresholds ({ties}): {TIES[ties]}.",
           f"# Weights: {weights_file}  (snnc eval {snn_file} --checkpoint {weights_file}; "
           f"snnc train {snn_file} --resume {weights_file})."]
    if ctx.library:
        out.append("import snnc.neurons")
    used = [line.op.neuron for line in written if isinstance(line.op, ir.NeuronLayer)]
    for name in sorted(ctx.inline, key=used.index):
        comment = inline_comment(name)
        out += ["", *([comment] if comment else []), neuron_text(ctx.inline[name])]
    out += ["", f"network {header['name']} {{",
            f"    input = [{', '.join(map(str, header['input']))}]",
            f"    T = {header['T']}",
            f"    encoder = {header['encoder']}",
            f"    readout = {header['readout']}"]
    if header["step_mode"] != "m":
        out.append(f"    step_mode = {header['step_mode']}")
    out.append("    layers {")
    calls = []
    for i, line in enumerate(written):
        implicit = ir.INPUT if i == 0 else written[i - 1].name
        text = layer_call(line.op, line.inputs)
        if not isinstance(line.op, ir.Merge) and line.inputs != (implicit,):
            text += " from " + ", ".join(line.inputs)
        named = line.name != str(i)
        calls.append(((f"{line.name} = " if named else "") + text, line.comment))
    width = max(len(c) for c, _ in calls)
    out += [f"        {c.ljust(width)}  # {comment}" if comment else f"        {c}" for c, comment in calls]
    out.append("    }")
    train = _train_text(header["train"])
    if train:
        out.append(f"    train {{ {train} }}")
    out.append("}")
    return "\n".join(out) + "\n"


def _train_text(train: dict) -> str:
    defaults = ir.Train().model_dump()
    known = {k: v for k, v in train.items() if k in defaults and v != defaults[k]}

    def text(key, v):
        if key in ("frames", "transform", "augment"):
            return value_text(steps_value(v))
        if isinstance(v, (list, tuple)):  # delay_sigma = [start, end]
            return "[" + ", ".join(value_text(ir.Lit(value=float(i))) for i in v) + "]"
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else value_text(ir.Lit(value=v))

    return "  ".join(f"{k} = {text(k, v)}" for k, v in known.items())


# ------------------------------------------------------------------ the checkpoint
def write_checkpoint(snn: Path, imported: Imported, target: Path) -> None:
    """The imported weights as a checkpoint of the written network: what `snnc eval` reads, and a run at epoch 0
    (the optimizer, schedule and random state a fresh `snnc train` would start with) for `--resume`."""
    import torch

    import snnc
    from ..train import checkpoint as ckpt
    from ..train.experiment import from_library
    from ..train.runner import TrainOptions, _optimizer, _resolve, _scheduler

    lib = snnc.load(snn)
    exp = from_library(lib, imported.network)
    settings = _resolve(exp, TrainOptions(), None)
    rng = torch.get_rng_state()
    try:
        torch.manual_seed(settings["seed"])
        net = exp.make_net()
        run_rng = ckpt.rng_state()
    finally:
        torch.set_rng_state(rng)
    load_weights(net, imported.weights())
    trainable = any(p.requires_grad for p in net.parameters())  # else: a checkpoint for eval only
    optimizer = _optimizer(net, settings) if trainable else None
    scheduler = _scheduler(optimizer, settings) if trainable else None
    ckpt.save({
        "name": exp.name, "model_hash": exp.model_hash, "model": net.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer else None,
        "scheduler": scheduler.state_dict() if scheduler else None,
        "scaler": None, "epoch": 0, "batch": 0, "partial": None, "rng": run_rng, "metrics": [], "best_acc": -1.0,
        "settings": settings, "options": {}, "imported": True,
    }, target)


def load_weights(net, weights: dict[str, dict]) -> None:
    """Copy arrays into a generated network's modules (by node path and attribute)."""
    import torch

    for path, tensors in weights.items():
        module = net.node(path)
        for attr, value in tensors.items():
            param = getattr(module, attr)
            data = torch.as_tensor(np.asarray(value), dtype=param.dtype)
            if tuple(data.shape) != tuple(param.shape):
                data = data.reshape(param.shape) if data.numel() == param.numel() else data
            if tuple(data.shape) != tuple(param.shape):
                raise SnncError(f"node '{path}': {attr} of shape {list(data.shape)} does not fit {list(param.shape)}")
            with torch.no_grad():
                param.copy_(data)
