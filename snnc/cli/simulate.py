"""`snnc simulate`: one neuron driven by an input over time (constant, step, pulse, sine, Poisson), its states
reported and plotted."""
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


INPUTS = {  # kind: (its arguments, what it is)
    "step": (("amplitude", "start"), "0 before step `start`, then `amplitude`"),
    "pulse": (("amplitude", "start", "width"), "`amplitude` for `width` steps from `start`, else 0"),
    "sine": (("amplitude", "period"), "amplitude * sin(2 pi t / period)"),
    "poisson": (("rate",), "spikes (1.0) with probability `rate` per step (seed 0)"),
}
INPUT_HELP = ("the input x over time: a number (constant), or " +
              ", ".join(f"{k}:{':'.join(a)} ({doc})" for k, (a, doc) in INPUTS.items()) + " (default: 0.5)")


def input_signal(text: str, T: int):
    """The input x [T] that `--input` describes."""
    import torch

    try:
        return torch.full((T,), float(text))
    except ValueError:
        pass
    kind, *args = text.split(":")
    if kind not in INPUTS:
        from ..compiler.source import did_you_mean

        raise SnncError(f"--input {text}: not a number nor an input kind",
                        hint=did_you_mean(kind, INPUTS) or "e.g. --input 1.5, --input step:1.5:20, --input "
                                                           "pulse:3.0:10:5, --input sine:2.0:40, --input poisson:0.2")
    names = INPUTS[kind][0]
    try:
        values = [float(a) for a in args]
    except ValueError:
        values = []
    if len(values) != len(names):
        raise SnncError(f"--input {text}: {kind} takes {len(names)} numbers, {':'.join(names)}",
                        hint=f"e.g. --input {kind}:" + ":".join({"amplitude": "1.5", "start": "20", "width": "5",
                                                                  "period": "40", "rate": "0.2"}[n] for n in names))
    t = torch.arange(T, dtype=torch.float32)
    if kind == "step":
        return torch.where(t >= values[1], values[0], 0.0)
    if kind == "pulse":
        return torch.where((t >= values[1]) & (t < values[1] + values[2]), values[0], 0.0)
    if kind == "sine":
        return values[0] * torch.sin(2 * torch.pi * t / values[1])
    return (torch.rand(T, generator=torch.Generator().manual_seed(0)) < values[0]).float()


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

    target = _plot_target(args.plot)
    kwargs = dict(_param_value(item) for item in args.param or [])
    lib = snnc.load(args.model)
    if args.neuron not in lib.neurons:
        from ..compiler.source import did_you_mean

        raise SnncError(f"no neuron '{args.neuron}' in {args.model}",
                        hint=did_you_mean(args.neuron, lib.neurons) or f"neurons: {', '.join(lib.neurons)}")
    try:
        cell = lib.neurons[args.neuron](**kwargs, step_mode="s")
    except TypeError as exc:
        raise SnncError(f"cannot create {args.neuron}: {exc}",
                        hint="use --param NAME=VALUE with the neuron's parameters") from None
    names = args.state or [cell.STATES[cell.MEMBRANE]]
    for name in names:
        if name not in cell.STATES:
            from ..compiler.source import did_you_mean

            raise SnncError(f"{args.neuron} has no state '{name}'",
                            hint=did_you_mean(name, cell.STATES) or f"its states: {', '.join(cell.STATES)}")
    x = input_signal(args.input, args.T)[:, None]
    traces = {name: [] for name in names}
    spikes = []
    with torch.no_grad():
        for t in range(args.T):
            spikes.append(cell(x[t])[0])
            for name in names:
                traces[name].append(float(cell.state(name)[0]))
    s = torch.stack(spikes)
    first = int(s.nonzero()[0]) if s.any() else "-"
    finals = ", ".join(f"{name}={values[-1]:.4f}" for name, values in traces.items())
    print(f"{args.neuron}: input {args.input} for T={args.T}: {int(s.sum())} spikes, first at t={first}; "
          f"final {finals}")
    if target is not None:
        from ..train.plots import plot_neuron

        threshold = getattr(cell, "v_threshold", None)
        threshold = threshold if isinstance(threshold, float) else None  # a state or learnable: no line
        try:
            path = plot_neuron(traces, s, target, v_threshold=threshold, title=f"{args.neuron}, x = {args.input}")
        except OSError as exc:
            raise SnncError(f"cannot write {target}: {exc.strerror or exc}") from None
        print(f"wrote {path}")
    return 0


def _arguments(p) -> None:
    p.add_argument("model", metavar="MODEL.snn", type=existing_file, help="a .snn file that defines or imports the neuron")
    p.add_argument("--neuron", required=True, help="the neuron's name, e.g. LIF")
    p.add_argument("--input", default="0.5", metavar="X", help=INPUT_HELP)
    p.add_argument("--state", action="append", metavar="NAME",
                   help="a state to report and plot (repeat for more; default: the membrane potential v)")
    p.add_argument("-T", type=count, dest="T", default=150, help="time steps (default: 150)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="a parameter's value, e.g. tau=10 or v_reset=none (repeatable; default: the neuron's)")
    p.add_argument("--plot", metavar="FILE", help="write v over time with the spikes (.png, .pdf or .svg)")


SIMULATE = Command(
    "simulate", "drive one neuron with an input over time; report its spikes and plot its states",
    "Run one neuron of a .snn file for T steps of an input x (a constant, a step, a pulse, a sine or\n"
    "Poisson spikes) and print its spike count, first spike and final states; --plot draws the states\n"
    "(--state, default v) over time with the threshold and the spikes.",
    "  snnc simulate models/neurons.snn --neuron LIF --input 1.5 --plot runs/lif.png\n"
    "  snnc simulate models/neurons.snn --neuron AdaptiveLIF --input pulse:3.0:10:40 --state v --state w "
    "--plot runs/alif.png\n"
    "  snnc simulate models/neurons.snn --neuron Izhikevich --input 10 --param a=0.02 -T 300",
    _arguments, run)
