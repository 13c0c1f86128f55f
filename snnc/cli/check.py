"""`snnc check`, `snnc build`, `snnc verify`: the compiler's commands (no training, no data)."""
from __future__ import annotations

import sys
import textwrap

from .common import Command, count, existing_file


# ----------------------------------------------------------------------------- check
def run_check(args) -> int:
    from ..compiler.codegen import module_json
    from ..compiler.driver import compile_file

    compiled = compile_file(args.model)
    module = compiled.module
    if args.json:
        print(module_json(module))
        return 0
    from ..compiler.neuron import own_neurons

    own = len(own_neurons(module))
    imported = f", {len(module.neurons) - own} imported" if len(module.neurons) > own else ""
    nets = len(module.networks)
    print(f"{module.file}: ok ({own} neuron{'s' * (own != 1)}{imported}, {nets} network{'s' * (nets != 1)})")

    for n in module.neurons if args.all else own_neurons(module):
        _print_neuron(n, compiled)
    for net in module.networks:
        _print_graph(compiled.graphs[net.name])
        _print_memory(compiled.graphs[net.name], module)
    return 0


def _print_neuron(n, compiled) -> None:
    from ..compiler.derive import jacobian, plan, reset_jacobian
    from ..compiler.neuron import default_config
    from ..compiler.printers import SnnPrinter
    from ..compiler.surrogates import grad_expr

    snn = SnnPrinter()
    cfg = default_config(n)
    p = compiled.plans.get((n.name, cfg)) or plan(n)
    params = ", ".join(f"{prm.name}={'none' if prm.default is None else snn(prm.default)}" for prm in n.params)
    print(f"\nneuron {n.name}  ({n.file}:{n.span.line if n.span else '?'})")
    print(f"  parameters: {params}")
    if n.learnables:
        print(f"  learnable:  {', '.join(f'{l.name} = {snn(l.init)}' for l in n.learnables)}")
    print(f"  states:     {', '.join(f'{s.name} = {snn(s.init)}' for s in n.states)}")
    written = []
    for a in n.written_charge or n.charge:
        op = f"d{a.target}/dt =" if a.op == "d/dt" else f"{a.target} {a.op}"
        written.append(f"{op} {snn(a.value)}")
        print(f"  charge:     {written[-1]}")
    folded = [f"{target} = {snn(e)}" for target, e in p.charge]
    if n.written_charge:
        print(f"  integrated: {n.integrate}, one step of dt, x held over the step:")
    elif folded != written:
        given = ", ".join(f"{b} = {str(v).lower()}" for b, v in cfg.bools) or "the defaults"
        print(f"  with {given}:")
    if n.written_charge or folded != written:
        for line in folded:
            print(f"              {line}")
    for a in n.on_spike:
        print(f"  on spike:   {a.target} {a.op} {snn(a.value)}")
    if n.output == "membrane":
        print("  output:     membrane potential (never fires)")
    else:
        sg_args = ", ".join(f"{k}={v!r}" for k, v in n.surrogate.args)
        dz = snn(grad_expr(n.surrogate)).replace("x", "z")
        print(f"  surrogate:  {n.surrogate.name}({sg_args}): dS/dz = {dz}, z = H_v - v_threshold")
    print("  derivatives of the charge (V: state at t-1, H: charged state at t, x: input at t):")
    for h, z, e in jacobian(p):
        print(f"    d{h}/d{z} = {snn(e)}")
    print(f"  derivatives of the reset and on-spike updates ({'soft' if p.config.soft_reset else 'hard'} reset; "
          f"S: spike at t):")
    for v, z, e in reset_jacobian(p):
        print(f"    d{v}/d{z} = {snn(e)}")


WIDTH = 100  # the columns `snnc check` prints at most (a table's long cells wrap onto lines of their own)
_WRAPPED = (1, 2)  # the layer and "from" columns wrap; node, shape and params do not


def _print_table(header: tuple, rows: list) -> None:
    """Rows of five cells (and a mark after the last) in columns that fit WIDTH: the layer and "from" cells
    share what the others leave, and wrap after a comma where they do not fit."""
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(5)]
    mark = max((len(r[5]) for r in rows if len(r) > 5), default=0)
    room = WIDTH - 2 - 2 * 4 - mark - sum(w for i, w in enumerate(widths) if i not in _WRAPPED)
    layer = min(widths[1], max(len(header[1]), room - min(widths[2], room // 3)))
    widths[1], widths[2] = layer, max(len(header[2]), min(widths[2], room - layer))
    for r in [header, *rows]:
        wrapped = [textwrap.wrap(c, widths[i], break_on_hyphens=False) or [""] if i in _WRAPPED else [c]
                   for i, c in enumerate(r[:5])]
        for k in range(max(map(len, wrapped))):
            cells = [(col[k] if k < len(col) else "") for col in wrapped]
            text = "  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
            print(("  " + text + (r[5] if len(r) > 5 and k == 0 else "")).rstrip())


def _print_graph(graph) -> None:
    from ..compiler.layers import call_text, delay_report

    net = graph.network
    from ..compiler.datasets import describe

    print(f"\nnetwork {net.name}  T={net.T}  encoder={net.encoder}  readout={net.readout}  input={list(net.input_shape)}")
    data = describe(net)
    if data:
        print(textwrap.fill(f"data: {data}", WIDTH, initial_indent="  ", subsequent_indent="        "))
    loops = {n: g for g in graph.schedule if g.loop for n in g.nodes}
    order = graph.order
    total = 0
    rows = []
    for name, info in graph.nodes.items():
        sources = []
        for s in info.layer.inputs:
            if s != "in" and order[s] >= order[name]:
                sources.append(f"{s}[t-1]" if graph.nodes[s].layer.op.kind == "neuron" else s)
            else:
                sources.append(s)
        total += info.params
        mark = " (loop)" if name in loops else ""
        rows.append((name, call_text(info.layer.op), ", ".join(sources), str(list(info.out_shape)),
                     f"{info.params:,}", mark))
    _print_table(("node", "layer (with its arguments)", "from", "shape", "params"), rows)
    print(f"  total {total:,} parameters")
    for name, info in graph.nodes.items():
        line = delay_report(info.layer.op, list(info.in_shapes), net.T)
        if line:
            print(textwrap.fill(f"delay {name}: {line}", WIDTH, initial_indent="  ", subsequent_indent="    "))
    for g in graph.schedule:
        if g.loop:
            print(textwrap.fill(f"loop over time: {', '.join(g.nodes)} (run step by step; feedback reads the "
                                "previous step)", WIDTH, initial_indent="  ", subsequent_indent="    "))


def _print_memory(graph, module) -> None:
    from ..compiler.memory import POLICIES, plan

    plans = {p: plan(graph, module, p) for p in POLICIES}
    chosen = graph.network.train.memory
    rows = [(r.name, *(f"{q[i].kept} {_size(q[i].bytes_per_sample)}" for q in plans.values()))
            for i, r in enumerate(plans["fast"]) if any(q[i].kept != "-" for q in plans.values())]
    totals = ("total", *(_size(sum(r.bytes_per_sample for r in q)) for q in plans.values()))
    header = ("node", *(f"{p}{' (train)' if p == chosen else ''}" for p in POLICIES))
    print(textwrap.fill(f"memory plan: node outputs kept for backward, per sample (all {graph.network.T} steps; "
                        "neurons' own per-step values not counted):", WIDTH, initial_indent="  ",
                        subsequent_indent="    "))
    widths = [max(len(r[i]) for r in [header, *rows, totals]) for i in range(len(header))]
    for r in [header, *rows, totals]:
        print("    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _size(n: int) -> str:
    for unit, scale in (("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _check_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL.snn", type=existing_file, help="the .snn file to check")
    p.add_argument("--json", action="store_true", help="print the checked IR as JSON instead")
    p.add_argument("--all", action="store_true", help="also list the neurons the file imports")


CHECK = Command(
    "check", "check a .snn file; print its neurons, their derivatives and its networks' layer tables",
    "Parse and check a .snn file. Errors are reported at their line and column, with a hint, and exit 1.\n"
    "For each neuron the file defines: parameters, states, the charge as written and as compiled (boolean\n"
    "parameters folded, differential equations integrated), the surrogate and the derivatives the backward\n"
    "pass uses. For each network: its layers with their arguments, inputs, shapes and parameter counts.",
    "  snnc check models/fc2_mnist.snn\n"
    "  snnc check models/neurons.snn --all         # the library's neurons too\n"
    "  snnc check my_model.snn --json > ir.json",
    _check_arguments, run_check)


# ----------------------------------------------------------------------------- build
def run_build(args) -> int:
    from ..runtime.loader import build

    target = build(args.model, args.out)
    files = sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file())
    print(f"wrote {target}/ ({len(files)} files)")
    for f in files:
        print(f"  {f}")
    return 0


def _build_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL.snn", type=existing_file, help="the .snn file to build")
    p.add_argument("-o", "--out", default="build", metavar="DIR",
                   help="folder to write the package into (default: build)")


BUILD = Command(
    "build", "write the generated PyTorch package and kernel sources to a folder",
    "Write the Python package snnc generates for a .snn file (it imports only torch: neuron modules, network\n"
    "modules, the fused-kernel runtime) and the C++ and CUDA sources of its kernels, to read or ship.\n"
    "`snnc.load(MODEL.snn)` does the same into snnc's cache and imports it.",
    "  snnc build models/fc2_mnist.snn -o build/",
    _build_arguments, run_build)


# ----------------------------------------------------------------------------- verify
def run_verify(args) -> int:
    from ..compiler.driver import check_file
    from ..runtime.verify import format_table, verify

    results = verify(check_file(args.model).module, neurons=args.neuron)
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


def _verify_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL.snn", type=existing_file, help="the .snn file whose neurons to verify")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the summary line (and any failures)")
    p.add_argument("--neuron", action="append", metavar="NAME",
                   help="verify only this neuron (repeat for more; default: every neuron the file emits)")


VERIFY = Command(
    "verify", "check every neuron's fused kernels against eager PyTorch autograd",
    "Run each neuron of the file (hard and soft reset, detach_reset, its output modes) on every backend\n"
    "available here and compare spikes (exactly), states and gradients (within derived bounds) with\n"
    "PyTorch autograd through the eager module. Exits 1 if any check fails.",
    "  snnc verify models/neurons.snn -q\n"
    "  snnc verify models/neurons.snn --neuron LIF --neuron PLIF",
    _verify_arguments, run_verify)
