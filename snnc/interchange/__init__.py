"""Interchange with other SNN tools. Imports the compiler and the runtime; neither imports this package.

`nir_neurons`: which NIR neuron a snnc neuron layer is, proved from its charge equation (and back).
`nir_export`:  a checked network (and its weights) -> a NIR graph (`snnc export MODEL.snn --nir out.nir`).
`nir_import`:  a NIR graph -> a readable `.snn` file and a checkpoint (`snnc import model.nir -o model.snn`).
`nir_graph`:   a NIR graph as snnc's node list (sub-graphs inlined, ordered, inputs summed, named), for import.
`nir_text`:    a canonical text dump of a NIR graph (golden files) and the CLI's summary.
`snn_text`:    `.snn` text written from IR (neuron definitions, layer lines), for `nir_import`.
"""
