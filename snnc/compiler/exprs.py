"""Walks over IR expressions that need no algebra: free names, substitution, folding of constant conditions.

Kept apart from `symbolic` (SymPy) so that checking a file never imports SymPy.
"""
from __future__ import annotations

from . import ir


def free_names(e: ir.Expr) -> set[str]:
    match e:
        case ir.Var(name=n):
            return {n}
        case ir.Unary(operand=a):
            return free_names(a)
        case ir.BinOp(left=a, right=b):
            return free_names(a) | free_names(b)
        case ir.Call(args=args):
            return set().union(*(free_names(a) for a in args)) if args else set()
    return set()


def substitute(e: ir.Expr, env: dict[str, ir.Expr]) -> ir.Expr:
    """Replace variables by expressions (IR-level, no SymPy round trip)."""
    match e:
        case ir.Var(name=n) if n in env:
            return env[n]
        case ir.Unary(op=op, operand=a):
            return ir.Unary(op=op, operand=substitute(a, env), span=e.span)
        case ir.BinOp(op=op, left=a, right=b):
            return ir.BinOp(op=op, left=substitute(a, env), right=substitute(b, env), span=e.span)
        case ir.Call(func=f, args=args):
            return ir.Call(func=f, args=tuple(substitute(a, env) for a in args), span=e.span)
    return e


def fold(e: ir.Expr) -> ir.Expr:
    """Fold compile-time booleans: where(true, a, b) -> a, not true -> false, true and c -> c."""
    match e:
        case ir.Unary(op="not", operand=a):
            a = fold(a)
            return ir.Bool(value=not a.value) if isinstance(a, ir.Bool) else ir.Unary(op="not", operand=a, span=e.span)
        case ir.Unary(op=op, operand=a):
            return ir.Unary(op=op, operand=fold(a), span=e.span)
        case ir.BinOp(op="and" | "or", left=a, right=b):
            a, b = fold(a), fold(b)
            for x, y in ((a, b), (b, a)):
                if isinstance(x, ir.Bool):
                    if e.op == "and":
                        return y if x.value else ir.Bool(value=False)
                    return ir.Bool(value=True) if x.value else y
            return ir.BinOp(op=e.op, left=a, right=b, span=e.span)
        case ir.BinOp(op=op, left=a, right=b):
            return ir.BinOp(op=op, left=fold(a), right=fold(b), span=e.span)
        case ir.Call(func="where", args=(c, a, b)):
            c = fold(c)
            if isinstance(c, ir.Bool):
                return fold(a if c.value else b)
            return ir.Call(func="where", args=(c, fold(a), fold(b)), span=e.span)
        case ir.Call(func=f, args=args):
            return ir.Call(func=f, args=tuple(fold(a) for a in args), span=e.span)
    return e
