"""The command line: the only place that prints or exits.

    snnc check MODEL.snn [--json]
    snnc build MODEL.snn [-o DIR]
    snnc train MODEL.snn [options]
    snnc eval MODEL.snn --checkpoint FILE
    snnc simulate MODEL.snn --neuron LIF --input 0.02 [-T 150] [--plot v.png]
    snnc verify MODEL.snn
    snnc export MODEL.snn --nir out.nir [--checkpoint best.pt] [--dt 1e-4]
    snnc import model.nir -o model.snn
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .compiler.source import SnncError


def _check(args) -> int:
    from .compiler.codegen import module_json
    from .compiler.derive import jacobian, reset_jacobian
    from .compiler.driver import compile_file
    from .compiler.derive import plan
    from .compiler.neuron import default_config, own_neurons
    from .compiler.printers import SnnPrinter
    from .compiler.surrogates import grad_expr

    compiled = compile_file(args.model)
    module = compiled.module
    if args.json:
        print(module_json(module))
        return 0
    snn = SnnPrinter()
    print(f"{module.file}: ok ({len(module.neurons)} neurons, {len(module.networks)} networks)")
    shown = module.neurons if args.all else own_neurons(module)
    for n in shown:
        p = compiled.plans.get((n.name, default_config(n))) or plan(n)
        params = ", ".join(f"{prm.name}={'none' if prm.default is None else snn(prm.default)}" for prm in n.params)
        print(f"\nneuron {n.name}  ({n.file}:{n.span.line if n.span else '?'})")
        print(f"  parameters: {params}")
        if n.learnables:
            print(f"  learnable:  {', '.join(f'{l.name} = {snn(l.init)}' for l in n.learnables)}")
        print(f"  states:     {', '.join(f'{s.name} = {snn(s.init)}' for s in n.states)}")
        for a in n.written_charge:
            op = f"d{a.target}/dt =" if a.op == "d/dt" else f"{a.target} {a.op}"
            print(f"  written:    {op} {snn(a.value)}")
        if n.written_charge:
            print(f"  integrated: {n.integrate}, one step of dt, x held over the step")
        for target, e in p.charge:
            print(f"  charge:     {target} = {snn(e)}")
        for a in n.on_spike:
            print(f"  on spike:   {a.target} {a.op} {snn(a.value)}")
        if n.output == "membrane":
            print("  output:     membrane potential (never fires)")
        else:
            sg_args = ", ".join(f"{k}={v!r}" for k, v in n.surrogate.args)
            print(f"  surrogate:  {n.surrogate.name}({sg_args}): dS/dz = {snn(grad_expr(n.surrogate)).replace('x', 'z')}"
                  ", z = H_v - v_threshold")
        print("  derivatives of the charge (V: state at t-1):")
        for h, z, e in jacobian(p):
            print(f"    d{h}/d{z} = {snn(e)}")
        print(f"  derivatives of the reset and on-spike updates ({'soft' if p.config.soft_reset else 'hard'} reset):")
        for v, z, e in reset_jacobian(p):
            print(f"    d{v}/d{z} = {snn(e)}")
    for net in module.networks:
        _print_graph(compiled.graphs[net.name])
    return 0


def _print_graph(graph) -> None:
    from .compiler.layers import call_text

    net = graph.network
    print(f"\nnetwork {net.name}  T={net.T}  encoder={net.encoder}  readout={net.readout}  input={list(net.input_shape)}")
    loops = {n: g for g in graph.schedule if g.loop for n in g.nodes}
    order = graph.order
    total = 0
    rows = []
    for name, info in graph.nodes.items():
        layer = call_text(info.layer.op)
        sources = []
        for s in info.layer.inputs:
            if s != "in" and order[s] >= order[name]:
                sources.append(f"{s}[t-1]" if graph.nodes[s].layer.op.kind == "neuron" else s)
            else:
                sources.append(s)
        total += info.params
        mark = " (loop)" if name in loops else ""
        rows.append((name, layer, ", ".join(sources), str(list(info.out_shape)), f"{info.params:,}", mark))
    widths = [max(len(r[i]) for r in rows + [("node", "layer", "from", "shape", "params", "")]) for i in range(5)]
    header = ("node", "layer", "from", "shape", "params")
    print("  " + "  ".join(h.ljust(w) if i < 4 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
    for r in rows:
        print("  " + "  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + r[5])
    print(f"  total {total:,} parameters")
    for g in graph.schedule:
        if g.loop:
            print(f"  loop over time: {', '.join(g.nodes)} (run step by step; feedback reads the previous step)")


def _build(args) -> int:
    from .runtime.loader import build

    target = build(args.model, args.out)
    files = sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file())
    print(f"wrote {target}/ ({len(files)} files)")
    for f in files:
        print(f"  {f}")
    return 0


def _options(args):
    from .train.runner import TrainOptions

    fields = {k: getattr(args, k) for k in TrainOptions.__dataclass_fields__ if hasattr(args, k)}
    return TrainOptions(**{k: v for k, v in fields.items() if v is not None})


def _experiment(args):
    import snnc

    from .train.experiment import from_library

    return from_library(snnc.load(args.model), args.network)


def _train(args) -> int:
    from .train.runner import train

    exp = _experiment(args)
    result = train(exp, _options(args))
    if result:
        print(json.dumps({k: v for k, v in result.items() if isinstance(v, (int, float, str))}, indent=None))
    return 0


def _eval(args) -> int:
    from .train.runner import evaluate

    exp = _experiment(args)
    result = evaluate(exp, args.checkpoint, _options(args))
    print(json.dumps(result))
    return 0


def _param_value(item: str):
    key, eq, text = item.partition("=")
    if not eq or not key:
        raise SnncError(f"--param {item!r} is not NAME=VALUE", hint="write e.g. --param tau=2.0 (or v_reset=none)")
    if text in ("none", "true", "false"):
        return key, {"none": None, "true": True, "false": False}[text]
    try:
        return key, float(text)
    except ValueError:
        raise SnncError(f"--param {key}={text}: {text!r} is not a number", hint="use a number, true, false or none") from None


def _plot_target(path: str | None):
    """A plot path that can be written: a PNG (or PDF/SVG) file in an existing folder."""
    if path is None:
        return None
    from pathlib import Path

    target = Path(path)
    if target.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise SnncError(f"--plot {path}: plots are written as .png, .pdf or .svg", hint=f"e.g. --plot {target.stem}.png")
    if not target.parent.is_dir():
        raise SnncError(f"--plot {path}: the folder {target.parent} does not exist", hint="create it, or plot elsewhere")
    return target


def _simulate(args) -> int:
    import torch

    import snnc

    from .train.plots import plot_neuron

    if args.T < 1:
        raise SnncError(f"-T must be at least 1, not {args.T}", hint="e.g. -T 50")
    target = _plot_target(args.plot)
    kwargs = dict(_param_value(item) for item in args.param or [])
    lib = snnc.load(args.model)
    if args.neuron not in lib.neurons:
        from .compiler.source import did_you_mean

        raise SnncError(f"no neuron '{args.neuron}' in {args.model}",
                        hint=did_you_mean(args.neuron, lib.neurons) or f"neurons: {', '.join(lib.neurons)}")
    try:
        cell = lib.neurons[args.neuron](**kwargs, step_mode="m", store_v_seq=True)
    except TypeError as exc:
        raise SnncError(f"cannot create {args.neuron}: {exc}",
                        hint="use --param NAME=VALUE with the neuron's parameters") from None
    x = torch.full((args.T, 1), float(args.input))
    with torch.no_grad():
        s = cell(x)[:, 0]
    v = cell.v_seq[:, 0]
    first = int(s.nonzero()[0]) if s.any() else "-"
    print(f"{args.neuron}: input {args.input} for T={args.T}: {int(s.sum())} spikes, first at t={first}; "
          f"final v={float(v[-1]):.4f}")
    if target is not None:
        threshold = getattr(cell, "v_threshold", None)
        threshold = threshold if isinstance(threshold, float) else None  # a state or learnable: no line
        try:
            path = plot_neuron(v, s, target, v_threshold=threshold, title=f"{args.neuron}, x = {args.input}")
        except OSError as exc:
            raise SnncError(f"cannot write {target}: {exc.strerror or exc}") from None
        print(f"wrote {path}")
    return 0


def _verify(args) -> int:
    from .compiler.driver import check_file
    from .runtime.verify import format_table, verify

    results = verify(check_file(args.model).module)
    failed = [r for r in results if r.failed]
    if not args.quiet:
        print(format_table(results))
    ok = sum(r.status == "ok" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    neurons = len({r.neuron for r in results})
    print(f"{args.model}: {ok} checks passed, {len(failed)} failed, {skipped} skipped (backend not here) "
          f"over {neurons} neurons", file=sys.stderr if failed else sys.stdout)
    for r in failed if args.quiet else ():
        print(f"  FAILED {r}", file=sys.stderr)
    return 1 if failed else 0


def _export(args) -> int:
    from .interchange.nir_export import export_file
    from .interchange.nir_text import summary

    graph = export_file(args.model, args.nir, args.network, args.checkpoint, args.dt, args.ties)
    print(f"wrote {args.nir}: {len(graph.nodes)} NIR nodes, {len(graph.edges)} edges, dt = {args.dt!r} s, "
          f"thresholds: {args.ties}")
    for line in summary(graph):
        print(line)
    return 0


def _import(args) -> int:
    from .interchange.nir_import import import_file

    imported, weights = import_file(args.graph, args.out, args.checkpoint, args.network, args.T, args.encoder,
                                    args.readout, args.dt, args.ties)
    print(f"wrote {args.out} (network {imported.network}, {len(imported.lines)} nodes) and {weights}")
    for node, layer in imported.neurons.items():
        print(f"  {node}: {layer}")
    return 0


def _backend_names() -> tuple[str, ...]:
    from .runtime.backends import names

    return names()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snnc", description="A declarative compiler for spiking neural networks.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="validate a .snn file; print neurons, derivatives and layer shapes")
    c.add_argument("model")
    c.add_argument("--json", action="store_true", help="print the checked IR as JSON")
    c.add_argument("--all", action="store_true", help="also list imported neurons")
    c.set_defaults(run=_check)

    b = sub.add_parser("build", help="emit a Python package (imports only torch) and kernel sources")
    b.add_argument("model")
    b.add_argument("-o", "--out", default="build")
    b.set_defaults(run=_build)

    for name, fn, help_ in (("train", _train, "train the file's network on MNIST / Fashion-MNIST"),
                            ("eval", _eval, "evaluate a checkpoint on the test set")):
        t = sub.add_parser(name, help=help_)
        t.add_argument("model")
        t.add_argument("--network", help="which network of the file (default: the first)")
        t.add_argument("-T", type=int, dest="T")
        t.add_argument("-b", "--batch-size", type=int, dest="batch_size")
        t.add_argument("--epochs", type=int)
        t.add_argument("--lr", type=float)
        t.add_argument("--opt", choices=("adam", "sgd"))
        t.add_argument("--momentum", type=float)
        t.add_argument("--weight-decay", type=float, dest="weight_decay")
        t.add_argument("--lr-schedule", choices=("none", "cosine"), dest="lr_schedule")
        t.add_argument("--loss", choices=("mse", "ce"))
        t.add_argument("--dataset", choices=("mnist", "fashion_mnist"))
        t.add_argument("--amp", action="store_true", default=None)
        t.add_argument("--device", default=None)
        t.add_argument("--backend", choices=_backend_names())
        t.add_argument("--data-dir", dest="data_dir", help="folder with the IDX files (or set SNNC_DATA_DIR)")
        t.add_argument("--out-dir", dest="out_dir")
        t.add_argument("--resume", help="checkpoint to resume from (e.g. OUT_DIR/last.pt)")
        t.add_argument("--seed", type=int)
        t.add_argument("--workers", type=int, help="CPU threads")
        t.add_argument("--val-split", type=float, dest="val_split",
                       help="fraction of the training images held out to choose best.pt (default 0.1)")
        t.add_argument("--subset", type=int, help="train on the first K images only")
        t.add_argument("--test-subset", type=int, dest="test_subset")
        t.add_argument("--nproc", type=int, help="processes for data-parallel training")
        t.add_argument("--download", action="store_true", default=None, help="allow downloading the dataset")
        t.add_argument("--quiet", action="store_true", default=None)
        t.add_argument("--no-plots", dest="plots", action="store_false", default=None,
                       help="write no accuracy.png, loss.png or output.png")
        t.add_argument("--no-fuse-input", dest="fuse_input", action="store_false", default=None,
                       help="encode to a spike tensor and run the first layer separately (slower; for comparison)")
        t.add_argument("--overwrite", action="store_true", default=None,
                       help="start afresh in an --out-dir that already holds a run")
        if name == "eval":
            t.add_argument("--checkpoint", required=True)
        t.set_defaults(run=fn)

    s = sub.add_parser("simulate", help="drive one neuron with a constant input and report / plot v and spikes")
    s.add_argument("model")
    s.add_argument("--neuron", required=True)
    s.add_argument("--input", type=float, default=0.5)
    s.add_argument("-T", type=int, dest="T", default=150)
    s.add_argument("--param", action="append", help="NAME=VALUE parameter override (repeatable)")
    s.add_argument("--plot", help="write a v/spike plot (PNG)")
    s.set_defaults(run=_simulate)

    v = sub.add_parser("verify", help="check the fused backends of every neuron against eager autograd")
    v.add_argument("model")
    v.add_argument("--quiet", "-q", action="store_true", help="print only the summary line (and any failures)")
    v.set_defaults(run=_verify)

    ties_help = ("how thresholds cross over (snnc fires at >=, NIR at >): 'nir' moves them one float32 down on "
                 "export (up on import), exact in float32; 'spikingjelly' copies them, exact against SpikingJelly's "
                 "nir_exchange")
    e = sub.add_parser("export", help="write a network (and its trained weights) as a NIR graph",
                       description="Export a network to NIR (neuromorphic intermediate representation), for "
                       "snnTorch, Norse, SpikingJelly, Sinabs, Lava and neuromorphic hardware. Each neuron layer "
                       "is mapped by its charge equation to NIR's LIF, IF, LI, I, CubaLIF, CubaLI or Threshold; "
                       "what NIR cannot express is an error at the offending layer.")
    e.add_argument("model")
    e.add_argument("--nir", required=True, metavar="OUT.nir", help="the NIR file to write (HDF5)")
    e.add_argument("--network", help="which network of the file (default: the first)")
    e.add_argument("--checkpoint", help="weights from a checkpoint of snnc train (default: the initial weights)")
    e.add_argument("--dt", type=float, default=1e-4, help="seconds per step, for NIR's time constants (1e-4)")
    e.add_argument("--ties", choices=("nir", "spikingjelly"), default="nir", help=ties_help + " (default: nir)")
    e.set_defaults(run=_export)

    i = sub.add_parser("import", help="turn a NIR graph into a .snn file and a checkpoint of its weights",
                       description="Import a NIR graph (from snnTorch, Norse, SpikingJelly, ... or snnc export) as "
                       "a readable .snn file and a checkpoint that snnc eval reads and snnc train --resume "
                       "continues from.")
    i.add_argument("graph", metavar="model.nir")
    i.add_argument("-o", "--out", required=True, metavar="MODEL.snn", help="the .snn file to write")
    i.add_argument("--checkpoint", help="where to write the weights (default: MODEL.pt next to MODEL.snn)")
    i.add_argument("--network", help="the network's name (default: from the graph, else the file name)")
    i.add_argument("-T", type=int, dest="T", help="steps per sample (default: from the graph, else 100)")
    i.add_argument("--encoder", help="the network's encoder (default: from the graph, else direct)")
    i.add_argument("--readout", help="the network's readout (default: from the graph, else rate or mean)")
    i.add_argument("--dt", type=float, help="seconds per step (default: from the graph, else 1e-4)")
    i.add_argument("--ties", choices=("nir", "spikingjelly"), help=ties_help + " (default: from the graph, else nir)")
    i.set_defaults(run=_import)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except SnncError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("snnc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = open(os.devnull, "w")
        return 0
    except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback unless asked to
        if os.environ.get("SNNC_DEBUG"):
            raise
        if type(exc).__name__ in ("ParameterError", "StateError", "BackendError", "ShapeError") or isinstance(exc, OSError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"snnc: internal error: {type(exc).__name__}: {exc}\n"
              "  = hint: this is a bug in snnc; rerun with SNNC_DEBUG=1 for the traceback and report it", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
