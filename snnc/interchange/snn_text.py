"""`.snn` text written from IR: neuron definitions, layer lines and networks (what `snnc import` writes).

Everything printed here is built from IR objects (`ir.Neuron`, layer ops, `ir.Value`s) through the
compiler's printers, so what comes back from a NIR file is always text the parser reads back to the same IR.
"""
from __future__ import annotations

import keyword
import re

from ..compiler import ir
from ..compiler.assemble import BUILTIN_PARAMS, DEFAULT_SURROGATE
from ..compiler.layers import call_text
from ..compiler.printers import SnnPrinter, value_text

_snn = SnnPrinter()
RESERVED = {"true", "false", "none", "not", "and", "or", "from", ir.INPUT}


def _builtin(p: ir.Param) -> bool:
    """Whether a parameter is one every neuron has, with its usual type and default (not printed)."""
    b = next((b for b in BUILTIN_PARAMS if b.name == p.name), None)
    return b is not None and (b.type, b.optional) == (p.type, p.optional) and (
        (b.default is None and p.default is None) or (
            b.default is not None and p.default is not None and ir.same_expr(b.default, p.default)))


def _param(p: ir.Param) -> str:
    default = "none" if p.default is None else _snn(p.default)
    typed = f": {p.type}?" if p.optional else ""
    return f"param {p.name}{typed} = {default}"


def _assigns(keyword_: str, assigns) -> list[str]:
    lines = [f"{a.target} {a.op} {_snn(a.value)}" for a in assigns]
    if len(lines) == 1:
        return [f"{keyword_} {lines[0]}"]
    return [f"{keyword_} {{", *(f"    {line}" for line in lines), "}"]


def _surrogate(s: ir.Surrogate) -> str:
    args = ", ".join(f"{k} = {v!r}" for k, v in s.args)
    if s.name == "custom":
        return f"surrogate grad = {_snn(s.grad)}" + (f" where {args}" if args else "")
    return f"surrogate {s.name}" + (f"({args})" if args else "")


def neuron_text(n: ir.Neuron) -> str:
    """A neuron definition that parses back to `n` (up to source positions)."""
    body = [_param(p) for p in n.params if not _builtin(p)]
    body += [f"learnable {l.name} = {_snn(l.init)}" for l in n.learnables]
    body += [f"state {s.name} = {_snn(s.init)}" for s in n.states]
    body += _assigns("charge", n.charge)
    if n.on_spike:
        body += _assigns("on_spike", n.on_spike)
    body += [f"require {_snn(r.cond)}" for r in n.requires]
    if n.surrogate.model_dump() != DEFAULT_SURROGATE.model_dump():
        body.append(_surrogate(n.surrogate))
    if n.output == "membrane":
        body.append("output membrane")
    return f"neuron {n.name} {{\n" + "".join(f"    {line}\n" for line in body) + "}"


def label(name: str, taken: set[str]) -> str:
    """A node name the grammar accepts (letters, digits, '_'; no leading digit or '_', no '__', no keyword),
    made from a NIR node name and unique among `taken` (which it joins)."""
    text = re.sub(r"_+", "_", re.sub(r"\W", "_", name, flags=re.ASCII)).strip("_") or "node"
    if text[0].isdigit():
        text = "n" + text
    if text in RESERVED or keyword.iskeyword(text):
        text += "_"
    out, k = text, 2
    while out in taken:
        out, k = f"{text}_{k}", k + 1
    taken.add(out)
    return out


def layer_call(op, inputs: tuple[str, ...]) -> str:
    """A node's layer as `.snn` text; merges name their inputs as arguments."""
    if isinstance(op, (ir.Merge, ir.Concat)):
        return f"{op.kind}({', '.join(inputs)})"
    return call_text(op)


def override(key: str, value) -> tuple[str, ir.Value]:
    return key, ir.Lit(value=value)


def value(v) -> str:
    return value_text(ir.Lit(value=v) if not isinstance(v, (ir.Lit, ir.ListValue, ir.CallValue)) else v)
