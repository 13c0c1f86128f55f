"""SymPy round trips and derivatives: symbolic.diff, printed back to Python, against central differences."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import assume, given, settings, strategies as st

from snnc.runtime import support
from snnc.compiler import ir
from snnc.compiler.parse import parse_expr
from snnc.compiler.printers import PythonPrinter
from snnc.compiler.symbolic import diff, fold, free_names, from_sympy, substitute, symbol, to_sympy

py = PythonPrinter()
V, X = symbol("v"), symbol("x")


def evaluate(e: ir.Expr, env: dict) -> float:
    return float(eval(py(e), {"math": math, "rt": support}, dict(env)))


def d_ir(e: ir.Expr, var: str) -> ir.Expr:
    return from_sympy(diff(to_sympy(e), symbol(var)))


# ------------------------------------------------------------------ random smooth expressions over v and x
leaf = st.one_of(
    st.sampled_from(["v", "x"]).map(lambda n: ir.Var(name=n)),
    st.floats(0.1, 3.0, allow_nan=False).map(lambda c: ir.Num(value=round(c, 2))),
)


def _grow(children):
    def call(f):
        return children.map(lambda a: ir.Call(func=f, args=(a,)))

    return st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*"]), children, children).map(
            lambda t: ir.BinOp(op=t[0], left=t[1], right=t[2])),
        # division by something bounded away from zero
        st.tuples(children, children).map(lambda t: ir.BinOp(
            op="/", left=t[0], right=ir.BinOp(op="+", left=ir.Num(value=2.0), right=ir.Call(func="tanh", args=(t[1],))))),
        children.map(lambda a: ir.Unary(op="-", operand=a)),
        call("tanh"), call("sigmoid"), call("atan"), call("erf"),
        # exp / log / sqrt of bounded or positive arguments
        children.map(lambda a: ir.Call(func="exp", args=(ir.Call(func="tanh", args=(a,)),))),
        children.map(lambda a: ir.Call(func="log", args=(ir.BinOp(op="+", left=ir.Num(value=1.0),
                                                                  right=ir.BinOp(op="^", left=a, right=ir.Num(value=2.0))),))),
        children.map(lambda a: ir.Call(func="sqrt", args=(ir.BinOp(op="+", left=ir.Num(value=1.0),
                                                                   right=ir.BinOp(op="*", left=a, right=a)),))),
        st.tuples(children, st.integers(2, 3)).map(lambda t: ir.BinOp(op="^", left=t[0], right=ir.Num(value=float(t[1])))),
    )


smooth = st.recursive(leaf, _grow, max_leaves=6)
points = st.floats(-1.5, 1.5, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(smooth, points, points, st.sampled_from(["v", "x"]))
def test_derivative_matches_central_difference(e, v, x, var):
    env = {"v": v, "x": x}
    try:
        f0 = evaluate(e, env)
    except (OverflowError, ValueError, ZeroDivisionError):
        assume(False)
    assume(math.isfinite(f0) and abs(f0) < 1e6)
    d = d_ir(e, var)
    assert free_names(d) <= {"v", "x"}
    got = evaluate(d, env)
    h = 1e-5
    plus, minus = dict(env), dict(env)
    plus[var] += h
    minus[var] -= h
    fd = (evaluate(e, plus) - evaluate(e, minus)) / (2 * h)
    # central differences are accurate to O(h^2 f''') plus rounding O(eps f / h)
    tol = 1e-5 * max(1.0, abs(fd), abs(f0))
    assert got == pytest.approx(fd, abs=tol), (py(e), py(d))


@settings(max_examples=150, deadline=None)
@given(smooth, points, points)
def test_sympy_round_trip_preserves_value(e, v, x):
    env = {"v": v, "x": x}
    try:
        want = evaluate(e, env)
    except (OverflowError, ValueError, ZeroDivisionError):
        assume(False)
    assume(math.isfinite(want))
    got = evaluate(from_sympy(to_sympy(e)), env)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("text, var, expected", [
    ("v + x", "x", "1"),
    ("v * x", "v", "x"),
    ("x ^ 2", "x", "2*x"),
    ("sigmoid(v)", "v", "sigmoid(v)*(1 - sigmoid(v))"),
    ("v + (x - (v - v_reset)) / tau", "v", "1 - 1/tau"),
])
def test_known_derivatives(text, var, expected):
    got = diff(to_sympy(parse_expr(text)), symbol(var))
    from snnc.compiler.symbolic import sigmoid

    want = sp.sympify(expected, locals={"sigmoid": sigmoid, **{n: symbol(n) for n in ("v", "x", "tau", "v_reset")}})
    assert sp.simplify(got - want) == 0


def test_steps_have_zero_derivative():
    # autograd treats heaviside and where-conditions as constant: no Dirac deltas
    d = diff(to_sympy(parse_expr("heaviside(v - 1.0) * x")), V)
    assert not d.has(sp.DiracDelta)
    assert d == 0
    d = from_sympy(diff(to_sympy(parse_expr("where(v > 0.0, v * x, -v)")), V))
    assert evaluate(d, {"v": 0.5, "x": 3.0}) == 3.0
    assert evaluate(d, {"v": -0.5, "x": 3.0}) == -1.0


def test_min_max_clamp_derivatives():
    d = from_sympy(diff(to_sympy(parse_expr("clamp(v, 0.0, 1.0)")), V))
    assert evaluate(d, {"v": 0.5}) == 1.0
    assert evaluate(d, {"v": 1.5}) == 0.0
    assert evaluate(d, {"v": -0.5}) == 0.0


def test_substitute_and_fold():
    e = parse_expr("where(decay_input, v + x / tau, v - v / tau + x)")
    folded = fold(substitute(e, {"decay_input": ir.Bool(value=True)}))
    assert ir.same_expr(folded, parse_expr("v + x / tau"))
    assert ir.same_expr(fold(parse_expr("not true or a > b")), parse_expr("a > b"))
    assert ir.same_expr(fold(parse_expr("false and a > b")), ir.Bool(value=False))


def test_from_sympy_prints_division_and_negation():
    e = from_sympy(to_sympy(parse_expr("(x - v) / tau")))
    assert "tau ** -1" not in py(e) and "rt.div(-v + x, tau)" == py(e)
    e = from_sympy(to_sympy(parse_expr("-v * 2.0")))
    assert py(e).startswith("-")


def test_printed_jacobians_of_library_neurons():
    from snnc.compiler.assemble import load_module
    from snnc.compiler.derive import jacobian, plan, reset_jacobian
    from snnc.compiler.printers import SnnPrinter

    module, _ = load_module(Path(__file__).resolve().parents[1] / "models" / "neurons.snn")
    snn = SnnPrinter()
    lif = {(h, z): snn(e) for h, z, e in jacobian(plan(module.neuron("LIF")))}
    assert lif == {("H_v", "V_v"): "1.0 - 1.0 / tau", ("H_v", "x"): "1.0 / tau"}
    izh = plan(module.neuron("Izhikevich"))
    assert ("H_w", "V_v") in {(h, z) for h, z, _ in jacobian(izh)}  # w's charge reads the charged v
    reset = {(v, z): snn(e) for v, z, e in reset_jacobian(izh)}
    assert reset[("V_v", "S")] == "-H_v + v_reset" and reset[("V_w", "S")] == "b"
    plif = {(h, z) for h, z, _ in jacobian(plan(module.neuron("PLIF")))}
    assert ("H_v", "w") in plif  # the learnable's derivative
