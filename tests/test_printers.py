"""Printers: Python (scalar and torch), C, and .snn; precedence in every target, and numeric agreement."""
from __future__ import annotations

import math
import shutil
import subprocess

import pytest
import torch
from hypothesis import given, settings, strategies as st

from snnc.compiler import ir
from snnc.compiler.parse import parse_expr
from snnc.compiler.printers import CPrinter, PythonPrinter, SnnPrinter
from snnc.runtime import support

py = PythonPrinter()
pyt = PythonPrinter({"x", "v"})
c = CPrinter()
snn = SnnPrinter()


@pytest.mark.parametrize("text, python, ctext", [
    ("a - (b - c)", "a - (b - c)", "a - (b - c)"),
    ("a - b - c", "a - b - c", "a - b - c"),
    ("a / b / c", "rt.div(rt.div(a, b), c)", "a / b / c"),
    ("a / (b * c)", "rt.div(a, b * c)", "a / (b * c)"),
    ("-x ^ 2", "-rt.pow(x, 2.0)", "-(x * x)"),
    ("(-x) ^ 2", "rt.pow(-x, 2.0)", "((-x) * (-x))"),
    ("2 ^ 3 ^ 2", "rt.pow(2.0, rt.pow(3.0, 2.0))", "powf(2.0f, (3.0f * 3.0f))"),
    ("(2 ^ 3) ^ 2", "rt.pow(rt.pow(2.0, 3.0), 2.0)", "((powf(2.0f, 3.0f)) * (powf(2.0f, 3.0f)))"),
    ("not a and b", "not a and b", "!a && b"),
    ("not (a or b)", "not (a or b)", "!(a || b)"),
    ("a < b or c >= d", "a < b or c >= d", "a < b || c >= d"),
    ("exp(-x) * 2.5", "rt.exp(-x) * 2.5", "expf(-x) * 2.5f"),
    ("1.0 / 0.0 + log(0.0)", "rt.div(1.0, 0.0) + rt.log(0.0)", "1.0f / 0.0f + logf(0.0f)"),
    ("where(a > 1.0, b, c)", "(b if a > 1.0 else c)", "(a > 1.0f ? b : c)"),
])
def test_scalar_python_and_c(text, python, ctext):
    e = parse_expr(text)
    assert py(e) == python
    assert c(e) == ctext


def test_python_tensor_calls():
    assert pyt(parse_expr("exp(x) + sigmoid(v)")) == "torch.exp(x) + torch.sigmoid(v)"
    assert pyt(parse_expr("where(x > 0.0, x, v)")) == "torch.where(x > 0.0, x, v)"
    assert pyt(parse_expr("x > 0.0 and v < 1.0")) == "(x > 0.0) & (v < 1.0)"
    assert pyt(parse_expr("not x > 0.0")) == "~(x > 0.0)"
    # a Python number meeting a tensor goes through the runtime, which rounds it to the tensor's dtype as IEEE
    # arithmetic would (torch raises for 1e300 as a float32 bound), and takes a number as the first argument
    assert pyt(parse_expr("min(x, 1.0)")) == "rt.minimum(x, 1.0)"
    assert pyt(parse_expr("max(1.0, x)")) == "rt.maximum(1.0, x)"
    assert pyt(parse_expr("clamp(0.5, x, 1.0)")) == "rt.clamp(0.5, x, 1.0)"
    assert pyt(parse_expr("where(x > 0.0, x, 1e300)")) == "rt.where(x > 0.0, x, 1e+300)"
    assert pyt(parse_expr("where(v > x, 1.0, 0.0)")) == "rt.where(v > x, 1.0, 0.0, v)"  # in v's dtype, not float32
    assert pyt(parse_expr("min(x, v)")) == "torch.minimum(x, v)"
    assert pyt(parse_expr("clamp(x, v, v)")) == "torch.clamp(x, v, v)"
    # a scalar condition chooses between tensors in Python, not torch.where
    assert pyt(parse_expr("where(b, x, v)")) == "(x if b else v)"


def test_c_special_numbers():
    assert c(ir.Num(value=float("inf"))) == "INFINITY"
    assert c(ir.Num(value=1e-30)) == "1e-30f"
    assert c(ir.Bool(value=True)) == "true"


def test_snn_numbers_round_trip_exactly():
    for v in (0.1, 1e-7, 123456789.125, 2.0 ** -40, 1e300):
        assert float(snn(ir.Num(value=v))) == v


# ------------------------------------------------------------------ numeric agreement on random expressions
NAMES = ("a", "b", "v", "x")
leaf = st.one_of(st.sampled_from(NAMES).map(lambda n: ir.Var(name=n)),
                 st.floats(0.0, 4.0, allow_nan=False).map(lambda v: ir.Num(value=round(v, 3))))


def _extend(children):
    return st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*"]), children, children).map(
            lambda t: ir.BinOp(op=t[0], left=t[1], right=t[2])),
        children.map(lambda a: ir.Unary(op="-", operand=a)),
        children.map(lambda a: ir.Call(func="tanh", args=(a,))),
        children.map(lambda a: ir.Call(func="sigmoid", args=(a,))),
        children.map(lambda a: ir.BinOp(op="^", left=ir.Call(func="sigmoid", args=(a,)), right=ir.Num(value=2.0))),
        st.tuples(children, children).map(lambda t: ir.Call(func="max", args=t)),
        st.tuples(children, children, children).map(
            lambda t: ir.Call(func="where", args=(ir.BinOp(op=">", left=t[0], right=t[1]), t[1], t[2]))),
    )


exprs = st.recursive(leaf, _extend, max_leaves=8)
ENV = {"a": 0.7, "b": -1.3, "v": 0.25, "x": 2.0}


def _eval_py(text: str, env: dict):
    return eval(text, {"math": math, "torch": torch, "rt": support},
                dict(env))


@settings(max_examples=150, deadline=None)
@given(exprs)
def test_python_printers_agree_with_snn_reparse(e):
    scalar = _eval_py(py(e), ENV)
    tensors = {k: torch.tensor(v, dtype=torch.float64) for k, v in ENV.items()}
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torch.where over two Python scalars takes the default dtype
    try:
        tensor = _eval_py(PythonPrinter(set(NAMES))(e), tensors)
    finally:
        torch.set_default_dtype(default)
    again = _eval_py(py(parse_expr(snn(e))), ENV)
    if math.isfinite(scalar):
        assert float(tensor) == pytest.approx(scalar, rel=1e-9, abs=1e-9)
        assert again == pytest.approx(scalar, rel=1e-12, abs=1e-12)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_c_printer_compiles_and_agrees(tmp_path):
    cases = ["a - (b - c)", "a / b / c", "-x ^ 2", "2 ^ 3 ^ 2", "(2 ^ 3) ^ 2", "sigmoid(a) * tanh(b) - atan(c)",
             "where(a > b and not (c < 0.0), clamp(x, -1.0, 1.0), max(a, c))", "exp(-(x - a) ^ 2 / 2.0)"]
    env = {"a": 0.7, "b": -1.3, "c": 0.25, "x": 2.0}
    body = "\n".join(f'    printf("%.9g\\n", (double)({c(parse_expr(t))}));' for t in cases)
    decl = " ".join(f"float {k} = {v!r}f;" for k, v in env.items())
    (tmp_path / "t.c").write_text(f"#include <math.h>\n#include <stdio.h>\n#include <stdbool.h>\n"
                                  f"int main(void) {{ {decl}\n{body}\n return 0; }}\n")
    subprocess.run(["cc", "-o", str(tmp_path / "t"), str(tmp_path / "t.c"), "-lm"], check=True)
    out = subprocess.run([str(tmp_path / "t")], check=True, capture_output=True, text=True).stdout.split()
    for text, got in zip(cases, out):
        want = _eval_py(py(parse_expr(text)), env)
        assert float(got) == pytest.approx(float(want), rel=1e-5, abs=1e-6), text
