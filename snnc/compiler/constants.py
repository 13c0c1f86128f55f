"""Constant expressions of parameters, evaluated at compile time (defaults, requirements, overrides)."""
from __future__ import annotations

import math

from . import ir


def constant_value(e: ir.Expr, env: dict[str, object]):
    """Evaluate a constant expression of parameters (None if it cannot be)."""
    import operator as op

    fns = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt, "abs": abs, "tanh": math.tanh, "atan": math.atan,
           "erf": math.erf, "sigmoid": lambda z: 1.0 / (1.0 + math.exp(-z)), "min": min, "max": max,
           "clamp": lambda a, lo, hi: min(max(a, lo), hi), "sign": lambda z: float((z > 0) - (z < 0)),
           "heaviside": lambda z: float(z >= 0), "where": lambda c, a, b: a if c else b}
    ops = {"+": op.add, "-": op.sub, "*": op.mul, "/": op.truediv, "^": op.pow, "<": op.lt, "<=": op.le,
           ">": op.gt, ">=": op.ge, "==": op.eq, "!=": op.ne, "and": lambda a, b: a and b, "or": lambda a, b: a or b}
    try:
        match e:
            case ir.Num(value=v) | ir.Bool(value=v):
                return v
            case ir.Var(name=n):
                return env.get(n)
            case ir.Unary(op="-", operand=a):
                return -constant_value(a, env)
            case ir.Unary(op="not", operand=a):
                return not constant_value(a, env)
            case ir.BinOp(op=o, left=a, right=b):
                return ops[o](constant_value(a, env), constant_value(b, env))
            case ir.Call(func=f, args=args):
                return fns[f](*(constant_value(a, env) for a in args))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, KeyError):
        return None
    return None


def param_defaults(n: ir.Neuron) -> dict[str, object]:
    env: dict[str, object] = {}
    for prm in n.params:
        env[prm.name] = None if prm.default is None else constant_value(prm.default, env)
    if env.get("v_reset") is None:
        env["v_reset"] = 0.0
    return env
