"""Parsing: operator precedence and associativity, round trips through the .snn printer, structure."""
from __future__ import annotations

import pytest

from snnc.compiler import ir
from snnc.compiler.parse import parse_expr, parse_source
from snnc.compiler.printers import SnnPrinter
from snnc.compiler.source import SnncError, Source

snn = SnnPrinter()


def tree(e):
    """A compact prefix form, ignoring spans."""
    match e:
        case ir.Num(value=v):
            return v
        case ir.Bool(value=b):
            return b
        case ir.Var(name=n):
            return n
        case ir.Unary(op=op, operand=a):
            return (op, tree(a))
        case ir.BinOp(op=op, left=a, right=b):
            return (op, tree(a), tree(b))
        case ir.Call(func=f, args=args):
            return (f, *map(tree, args))


@pytest.mark.parametrize("text, expected", [
    ("a - b - c", ("-", ("-", "a", "b"), "c")),
    ("a - (b - c)", ("-", "a", ("-", "b", "c"))),
    ("a / b / c", ("/", ("/", "a", "b"), "c")),
    ("a / (b / c)", ("/", "a", ("/", "b", "c"))),
    ("a + b * c", ("+", "a", ("*", "b", "c"))),
    ("(a + b) * c", ("*", ("+", "a", "b"), "c")),
    ("-x ^ 2", ("-", ("^", "x", 2.0))),
    ("(-x) ^ 2", ("^", ("-", "x"), 2.0)),
    ("2 ^ 3 ^ 2", ("^", 2.0, ("^", 3.0, 2.0))),
    ("(2 ^ 3) ^ 2", ("^", ("^", 2.0, 3.0), 2.0)),
    ("x ^ -y", ("^", "x", ("-", "y"))),
    ("--x", ("-", ("-", "x"))),
    ("a < b and c > d", ("and", ("<", "a", "b"), (">", "c", "d"))),
    ("a or b and c", ("or", "a", ("and", "b", "c"))),
    ("(a or b) and c", ("and", ("or", "a", "b"), "c")),
    ("not a and b", ("and", ("not", "a"), "b")),
    ("not (a and b)", ("not", ("and", "a", "b"))),
    ("not a < b", ("not", ("<", "a", "b"))),
    ("a + b < c * d", ("<", ("+", "a", "b"), ("*", "c", "d"))),
    ("where(a > 0.0, -b, c)", ("where", (">", "a", 0.0), ("-", "b"), "c")),
    ("clamp(x, 0.0, 1.0)", ("clamp", "x", 0.0, 1.0)),
    ("1e-3 + .5 + 2.", ("+", ("+", 1e-3, 0.5), 2.0)),
    ("true or false", ("or", True, False)),
])
def test_precedence(text, expected):
    assert tree(parse_expr(text)) == expected


@pytest.mark.parametrize("text", [
    "a - (b - c)", "a - b - c", "a / b / c", "a / (b / c)", "-x ^ 2", "(-x) ^ 2", "2 ^ 3 ^ 2", "(2 ^ 3) ^ 2",
    "not a", "not (a and b)", "a and b or c", "a and (b or c)", "(a or b) and c", "not a < b", "-(a + b)",
    "a * -b", "x ^ -y", "-(-x)", "a - -b", "(a < b) == (c < d)", "where(x >= 1.0, exp(-x), sigmoid(x) * 2.0)",
    "a + b * c - d / e ^ f",
])
def test_snn_printer_round_trip(text):
    e = parse_expr(text)
    again = parse_expr(snn(e))
    assert ir.same_expr(e, again), (text, snn(e))
    assert snn(again) == snn(e)


def test_printer_omits_redundant_parentheses():
    assert snn(parse_expr("(a - b) - c")) == "a - b - c"
    assert snn(parse_expr("a - (b - c)")) == "a - (b - c)"
    assert snn(parse_expr("(a * b) + c")) == "a * b + c"


def _neuron(src: Source) -> ir.Neuron:
    from snnc.compiler.assemble import load_module

    (n,) = load_module(src.name, text=src.text)[0].neurons
    return n


def test_comments_and_spans():
    src = Source("s.snn", "# header\nneuron A {  # a neuron\n    state v = 0.0\n    charge v = v + x  # H\n}\n")
    n = _neuron(src)
    assert n.name == "A"
    assert n.span.line == 2
    assert n.charge[0].span.line == 4 and n.charge[0].span.col == 12


def test_param_types_and_none():
    src = Source("s.snn", "neuron A {\n param a = 1.0\n param b = true\n param v_reset: float? = none\n"
                          " state v = 0.0\n charge v = v + x\n}\n")
    n = _neuron(src)
    assert n.param("a").type == "float"
    assert n.param("b").type == "bool"
    vr = n.param("v_reset")
    assert vr.optional and vr.default is None


def test_keywords_are_not_names():
    with pytest.raises(SnncError, match="syntax error"):
        parse_source(Source("s.snn", "neuron A {\n param and = 1.0\n}\n"))


def test_named_arguments_are_not_expressions():
    with pytest.raises(SnncError, match="named arguments"):
        parse_source(Source("s.snn", "neuron A {\n state v = 0.0\n charge v = v + exp(a = 1.0)\n}\n"))


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_files(text):
    assert parse_source(Source("s.snn", text)) == []


def test_charge_block_and_on_spike():
    src = Source("s.snn", "neuron A {\n state v = 0.0\n state w = 0.0\n charge {\n  v = v + x\n  w += 0.5\n }\n"
                          " on_spike w += 1.0\n}\n")
    n = _neuron(src)
    assert [(a.target, a.op) for a in n.charge] == [("v", "="), ("w", "+=")]
    assert [(a.target, a.op) for a in n.on_spike] == [("w", "+=")]


def test_statements_may_end_with_semicolons():
    from snnc.compiler.assemble import load_module

    with_semis = "neuron A {\n state v = 0.0\n state c = 0.0\n charge { c = c * 0.5 + x; v = v + c; }\n}\n"
    without = "neuron A {\n state v = 0.0\n state c = 0.0\n charge { c = c * 0.5 + x\n v = v + c }\n}\n"
    a = load_module("a.snn", text=with_semis)[0].neurons[0]
    b = load_module("b.snn", text=without)[0].neurons[0]
    assert [x.model_dump() for x in a.charge] == [x.model_dump() for x in b.charge]
