"""`snnc export` and `snnc import`: networks to and from NIR (the neuromorphic intermediate representation)."""
from __future__ import annotations

from ..compiler.source import SnncError
from .common import Command, count, existing_file

TIES = ("how thresholds cross over (snnc fires at >=, NIR at >): 'nir' moves them one float32 down on export "
        "(up on import), exact in float32; 'spikingjelly' copies them, exact against SpikingJelly's nir_exchange")


def run_export(args) -> int:
    if args.checkpoint is None and not args.untrained:
        raise SnncError("snnc export without --checkpoint would write the network's untrained (initial) weights",
                        hint="pass --checkpoint runs/<network>/best.pt (a run of snnc train), or --untrained to "
                             "export the initial weights on purpose")
    from ..interchange.nir_export import export_file
    from ..interchange.nir_text import summary

    graph = export_file(args.model, args.nir, args.network, args.checkpoint, args.dt, args.ties)
    print(f"wrote {args.nir}: {len(graph.nodes)} NIR nodes, {len(graph.edges)} edges, dt = {args.dt!r} s, "
          f"thresholds: {args.ties}")
    for line in summary(graph):
        print(line)
    return 0


def run_import(args) -> int:
    from ..interchange.nir_import import import_file

    imported, weights = import_file(args.graph, args.out, args.checkpoint, args.network, args.T, args.encoder,
                                    args.readout, args.dt, args.ties, overwrite=args.overwrite)
    print(f"wrote {args.out} (network {imported.network}, {len(imported.lines)} nodes) and {weights}")
    for node, layer in imported.neurons.items():
        print(f"  {node}: {layer}")
    return 0


def _export_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL.snn", type=existing_file, help="the .snn file whose network to export")
    p.add_argument("--nir", required=True, metavar="OUT.nir", help="the NIR file to write (HDF5)")
    p.add_argument("--network", help="which network of the file (default: the first)")
    p.add_argument("--checkpoint", type=existing_file, help="the weights: a checkpoint of snnc train (required, "
                   "unless --untrained)")
    p.add_argument("--untrained", action="store_true", help="export the network's initial, untrained weights")
    p.add_argument("--dt", type=float, default=1e-4, help="seconds per step, for NIR's time constants (default: 1e-4)")
    p.add_argument("--ties", choices=("nir", "spikingjelly"), default="nir", help=TIES + " (default: nir)")


def _import_arguments(p) -> None:
    p.add_argument("graph", metavar="model.nir", type=existing_file, help="the NIR graph to import (HDF5)")
    p.add_argument("-o", "--out", required=True, metavar="MODEL.snn", help="the .snn file to write")
    p.add_argument("--checkpoint", help="where to write the weights (default: MODEL.pt next to MODEL.snn)")
    p.add_argument("--network", help="the network's name (default: from the graph, else the file name)")
    p.add_argument("-T", type=count, dest="T", help="steps per sample (default: from the graph, else 100)")
    p.add_argument("--encoder", help="the network's encoder (default: from the graph, else direct)")
    p.add_argument("--readout", help="the network's readout (default: from the graph, else rate or mean)")
    p.add_argument("--dt", type=float, help="seconds per step (default: from the graph, else 1e-4)")
    p.add_argument("--ties", choices=("nir", "spikingjelly"), help=TIES + " (default: from the graph, else nir)")
    p.add_argument("--overwrite", action="store_true", help="replace MODEL.snn and its checkpoint if they exist")


EXPORT = Command(
    "export", "write a network (and its trained weights) as a NIR graph",
    "Export a network to NIR, for snnTorch, Norse, SpikingJelly, Sinabs, Lava and neuromorphic hardware.\n"
    "Each neuron layer is mapped by its charge equation to NIR's LIF, IF, LI, I, CubaLIF, CubaLI or\n"
    "Threshold; what NIR cannot express is an error at the offending layer.",
    "  snnc export models/lif_fc_mnist.snn --nir lif_fc.nir --checkpoint runs/LifFcMnist/best.pt\n"
    "  snnc export models/lif_fc_mnist.snn --nir untrained.nir --untrained   # the initial weights",
    _export_arguments, run_export)

IMPORT = Command(
    "import", "turn a NIR graph into a .snn file and a checkpoint of its weights",
    "Import a NIR graph (from snnTorch, Norse, SpikingJelly, ... or snnc export) as a readable .snn file and\n"
    "a checkpoint that snnc eval reads and snnc train --resume continues from.",
    "  snnc import lif_fc.nir -o imported.snn\n"
    "  snnc eval imported.snn --checkpoint imported.pt",
    _import_arguments, run_import)
