"""`snnc simulate`: one neuron driven by a constant input, reported and plotted."""
from __future__ import annotations

from ..compiler.source import SnncError
from .common import Command, count, existing_file


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
    """A plot path that can be written: a PNG (or PDF/SVG) file; its folder is created."""
    if path is None:
        return None
    from pathlib import Path

    target = Path(path)
    if target.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise SnncError(f"--plot {path}: plots are written as .png, .pdf or .svg", hint=f"e.g. --plot {target.stem}.png")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SnncError(f"--plot {path}: cannot create the folder {target.parent}: {exc.strerror or exc}",
                        hint="plot into a folder you can write") from None
    return target


def run(args) -> int:
    import torch

    import snnc

    if args.T < 1:
        raise SnncError(f"-T must be at least 1, not {args.T}", hint="e.g. -T 50")
    target = _plot_target(args.plot)
    kwargs = dict(_param_value(item) for item in args.param or [])
    lib = snnc.load(args.model)
    if args.neuron not in lib.neurons:
        from ..compiler.source import did_you_mean

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
        from ..train.plots import plot_neuron

        threshold = getattr(cell, "v_threshold", None)
        threshold = threshold if isinstance(threshold, float) else None  # a state or learnable: no line
        try:
            path = plot_neuron(v, s, target, v_threshold=threshold, title=f"{args.neuron}, x = {args.input}")
        except OSError as exc:
            raise SnncError(f"cannot write {target}: {exc.strerror or exc}") from None
        print(f"wrote {path}")
    return 0


def _arguments(p) -> None:
    p.add_argument("model", metavar="MODEL.snn", type=existing_file, help="a .snn file that defines or imports the neuron")
    p.add_argument("--neuron", required=True, help="the neuron's name, e.g. LIF")
    p.add_argument("--input", type=float, default=0.5, metavar="X", help="the constant input x (default: 0.5)")
    p.add_argument("-T", type=count, dest="T", default=150, help="time steps (default: 150)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="a parameter's value, e.g. tau=10 or v_reset=none (repeatable; default: the neuron's)")
    p.add_argument("--plot", metavar="FILE", help="write v over time with the spikes (.png, .pdf or .svg)")


SIMULATE = Command(
    "simulate", "drive one neuron with a constant input; report its spikes and plot its membrane",
    "Run one neuron of a .snn file for T steps of a constant input x and print its spike count, first\n"
    "spike and final membrane potential; --plot draws v over time with the threshold and the spikes.",
    "  snnc simulate models/neurons.snn --neuron LIF --input 1.5 --plot runs/lif.png\n"
    "  snnc simulate models/neurons.snn --neuron Izhikevich --input 10 --param a=0.02 -T 300",
    _arguments, run)
