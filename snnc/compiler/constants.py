"""Constant expressions of parameters, evaluated at compile time (defaults, requirements, layer arguments).

`evaluate` walks an expression without recursion and either returns its value or says, at the offending
subexpression, why it has none: a name without a value, a division by zero, an overflow, a logarithm or
square root outside its domain. `check` turns those into located errors, so that whatever it accepts can be
constructed with its defaults and arguments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import ir


@dataclass(frozen=True)
class Failure:
    """Why an expression has no value: `message` about the subexpression `node`."""

    message: str
    node: ir.Node


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


_CALLS = {
    "exp": math.exp, "log": math.log, "sqrt": math.sqrt, "abs": abs, "tanh": math.tanh, "atan": math.atan,
    "erf": math.erf, "sigmoid": _sigmoid, "min": min, "max": max, "clamp": lambda a, lo, hi: min(max(a, lo), hi),
    "sign": lambda z: float((z > 0) - (z < 0)), "heaviside": lambda z: float(z >= 0),
}
_OPS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
    "^": lambda a, b: a ** b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "and": lambda a, b: a and b, "or": lambda a, b: a or b,
}
_WHY = {ZeroDivisionError: "divides by zero", OverflowError: "overflows a 64-bit float"}


def evaluate(e: ir.Expr, env: dict[str, object]):
    """The value of a constant expression under `env` (name -> number or bool), or a `Failure`."""
    values: dict[int, object] = {}
    stack: list[tuple[ir.Expr, bool]] = [(e, False)]
    while stack:
        node, ready = stack.pop()
        children = _children(node)
        if not ready and children:
            stack.append((node, True))
            stack.extend((c, False) for c in children)
            continue
        args = [values[id(c)] for c in children]
        failed = next((a for a in args if isinstance(a, Failure)), None)
        values[id(node)] = failed if failed is not None else _apply(node, args, env)
    return values[id(e)]


def _children(node: ir.Expr) -> list[ir.Expr]:
    match node:
        case ir.Unary(operand=a):
            return [a]
        case ir.BinOp(left=a, right=b):
            return [a, b]
        case ir.Call(func="where"):
            return [node.args[0]]  # the branches are evaluated once the condition is known
        case ir.Call(args=args):
            return list(args)
    return []


def _apply(node: ir.Expr, args: list, env: dict):
    try:
        match node:
            case ir.Num(value=v) | ir.Bool(value=v):
                return v
            case ir.Var(name=n):
                value = env.get(n)
                return Failure(f"'{n}' has no value here", node) if value is None else value
            case ir.Unary(op="-"):
                return -args[0]
            case ir.Unary(op="not"):
                return not args[0]
            case ir.BinOp(op=op):
                value = _OPS[op](*args)
                if isinstance(value, complex):
                    return Failure("raises a negative number to a fractional power", node)
                return _finite(value, node)
            case ir.Call(func="where", args=(_, a, b)):
                return evaluate(a if args[0] else b, env)
            case ir.Call(func=f):
                return _finite(_CALLS[f](*args), node)
    except (ZeroDivisionError, OverflowError) as exc:
        return Failure(_WHY[type(exc)], node)
    except ValueError:
        return Failure("is outside its function's domain (a log or square root of a negative number?)", node)
    except (TypeError, KeyError):
        return Failure("mixes a condition and a number", node)
    return Failure("cannot be evaluated", node)


def _finite(value, node):
    if isinstance(value, float) and not math.isfinite(value):
        return Failure("is not finite" if value == value else "is not a number", node)
    return value


def constant_value(e: ir.Expr, env: dict[str, object]):
    """The value of a constant expression, or None where it has none (see `evaluate` for why)."""
    value = evaluate(e, env)
    return None if isinstance(value, Failure) else value


def param_defaults(n: ir.Neuron) -> dict[str, object]:
    """A neuron's parameters at their defaults (in declaration order: a default may read earlier ones);
    `v_reset` reads as 0 under soft reset (none)."""
    env: dict[str, object] = {}
    for prm in n.params:
        env[prm.name] = None if prm.default is None else constant_value(prm.default, env)
    if env.get("v_reset") is None:
        env["v_reset"] = 0.0
    return env
