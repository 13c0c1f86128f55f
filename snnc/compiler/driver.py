"""The compiler driver: source -> parse -> assemble -> check -> derive -> render, in that order.

Each stage hands plain values to the next: `assemble` an `ir.Module` (with the sources it read, for
messages), `check` a `Checked` (the module and each network's analysed graph), `derive` the neuron plans,
`render` the generated files as `{name: text}`. Nothing here writes files or imports generated code: that
is `runtime`'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import ir
from .assemble import load_module
from .check import Checked, check_module
from .graph import Graph
from .source import Source


@dataclass(frozen=True)
class Compiled:
    checked: Checked
    plans: dict  # (neuron name, Config) -> Plan

    @property
    def module(self) -> ir.Module:
        return self.checked.module

    @property
    def sources(self) -> dict[str, Source]:
        return self.checked.sources

    @property
    def graphs(self) -> dict[str, Graph]:
        return self.checked.graphs


def check_file(path: str | Path, text: str | None = None) -> Checked:
    """Parse, assemble and check: everything that needs no algebra."""
    module, sources = load_module(path, text)
    return check_module(module, sources)


def compile_file(path: str | Path, text: str | None = None) -> Compiled:
    """The whole front end: check, then derive every neuron plan the file's neurons and networks need."""
    from .derive import derive

    checked = check_file(path, text)
    return Compiled(checked, derive(checked.module, checked.sources))


def render_package(checked: Checked) -> dict[str, str]:
    """The generated Python package of a checked file."""
    from .codegen import render

    return render(checked)


def render_kernels(compiled: Compiled, renderers) -> dict[str, str]:
    """The kernel sources `snnc build` ships: every plan's, from each renderer that ships files
    (kernels/<Neuron>-<config><suffix>: .cpp, .fwd.cu, .bwd.cu for the backends of `snnc.runtime.backends`),
    and the Poisson encoder fused with the first layer where a network's training uses it
    (kernels/poisson_linear.cpp)."""
    from .graph import input_head, rows
    from .renderers import render_files
    from .templating import render

    files = {}
    for (name, cfg), p in sorted(compiled.plans.items(), key=lambda kv: (kv[0][0], kv[0][1].key())):
        for fname, text in render_files(p, renderers).items():
            files[f"kernels/{fname}"] = text
    if any(net.encoder == "poisson" and input_head(rows(net)) for net in compiled.module.networks):
        files["kernels/poisson_linear.cpp"] = render("poisson_linear.cpp.j2")
    return files
