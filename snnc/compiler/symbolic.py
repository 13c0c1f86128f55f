"""IR expressions to SymPy and back, and differentiation.

SymPy does the calculus; the results come back as IR expressions so the same
printers print them to every target.
"""
from __future__ import annotations

import sympy as sp

from . import ir
from .exprs import fold, free_names, substitute  # noqa: F401 (re-exported)


class sigmoid(sp.Function):
    """Logistic function kept whole, so derivatives stay compact: s' = s (1 - s)."""

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)


_UNARY = {"exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs, "tanh": sp.tanh, "sigmoid": sigmoid,
          "atan": sp.atan, "erf": sp.erf, "sign": sp.sign}
_BACK_UNARY = {sp.exp: "exp", sp.log: "log", sp.Abs: "abs", sp.tanh: "tanh", sigmoid: "sigmoid", sp.atan: "atan",
               sp.erf: "erf", sp.sign: "sign"}
_REL = {"<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge, "==": sp.Eq, "!=": sp.Ne}
_BACK_REL = {sp.StrictLessThan: "<", sp.LessThan: "<=", sp.StrictGreaterThan: ">", sp.GreaterThan: ">=",
             sp.Equality: "==", sp.Unequality: "!="}


def symbol(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def to_sympy(e: ir.Expr, env: dict[str, sp.Expr] | None = None):
    """Convert; variables found in `env` are replaced by their SymPy value."""
    env = env or {}
    rec = lambda a: to_sympy(a, env)  # noqa: E731
    match e:
        case ir.Num(value=v):
            return sp.Integer(int(v)) if float(v).is_integer() and abs(v) < 2**53 else sp.Float(v)
        case ir.Bool(value=b):
            return sp.true if b else sp.false
        case ir.Var(name=n):
            return env[n] if n in env else symbol(n)
        case ir.Unary(op="-", operand=a):
            return -rec(a)
        case ir.Unary(op="not", operand=a):
            return sp.Not(rec(a))
        case ir.BinOp(op="+" | "-"):
            return sp.Add(*(rec(term) if sign > 0 else -rec(term) for sign, term in _summands(e)))
        case ir.BinOp(op=op, left=a, right=b):
            l, r = rec(a), rec(b)
            match op:
                case "*": return l * r
                case "/": return _real(l / r, e)
                case "^": return _real(l**r, e)
                case "and": return sp.And(l, r)
                case "or": return sp.Or(l, r)
            return _REL[op](l, r)
        case ir.Call(func=f, args=args):
            a = [rec(x) for x in args]
            if f in _UNARY:
                return _real(_UNARY[f](a[0]), e) if f in ("sqrt", "log") else _UNARY[f](a[0])
            match f:
                case "min": return sp.Min(a[0], a[1])
                case "max": return sp.Max(a[0], a[1])
                case "clamp": return sp.Min(sp.Max(a[0], a[1]), a[2])
                case "heaviside": return sp.Heaviside(a[0], 1)
                case "where":
                    return sp.Piecewise((a[1], a[0]), (a[2], True))
    raise TypeError(f"cannot convert {e!r}")


def _real(value, e: ir.Expr):
    """`value`, unless SymPy made it complex or undefined: sqrt(-1) is I and log(0) complex infinity there,
    where the kernels compute nan and -inf. SymPy can neither compare nor differentiate through those."""
    if value.has(sp.I, sp.zoo, sp.nan):
        from .printers import SnnPrinter

        raise NotDifferentiable(f"{SnnPrinter()(e)} has no real value (a square root or logarithm of a negative "
                                "number, a division by zero, or log(0))")
    return value


def _summands(e: ir.Expr) -> list[tuple[int, ir.Expr]]:
    """The terms of a chain of + and - with their signs, gathered without recursion: SymPy adds them at once
    (pairwise `+` re-sorts the whole sum each time: quadratic in a long sum)."""
    out, stack = [], [(1, e)]
    while stack:
        sign, node = stack.pop()
        if isinstance(node, ir.BinOp) and node.op in ("+", "-"):
            stack.append((sign if node.op == "+" else -sign, node.right))
            stack.append((sign, node.left))
        else:
            out.append((sign, node))
    return out


def diff(expr: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """Derivative with the generalised derivatives of steps (Dirac deltas) taken as zero, as autograd does.
    A sum is differentiated term by term, skipping the terms without `var` (a long sum over states stays
    linear in its length)."""
    if isinstance(expr, sp.Add):
        return sp.Add(*(diff(term, var) for term in expr.args if var in term.free_symbols))
    d = sp.diff(expr, var)
    return d.replace(lambda f: isinstance(f, sp.DiracDelta), lambda f: sp.Integer(0))


def _num(v) -> ir.Num:
    return ir.Num(value=float(v))


def _neg(e: ir.Expr) -> ir.Expr:
    return e.operand if isinstance(e, ir.Unary) and e.op == "-" else ir.Unary(op="-", operand=e)


_LONG = 16  # a longer sum or product (many states' terms in a derivative) becomes a balanced tree


def _balanced(op: str, items: list) -> ir.Expr:
    """`items` joined by `op` as a balanced tree: log2(n) levels deep, not n (the printers recurse on depth;
    short chains keep their left-to-right order, and so their rounding, exactly as written)."""
    while len(items) > 1:
        items = [ir.BinOp(op=op, left=items[i], right=items[i + 1]) if i + 1 < len(items) else items[i]
                 for i in range(0, len(items), 2)]
    return items[0]


def from_sympy(e) -> ir.Expr:
    """Convert back to IR, writing a*b^-1 as a/b and c*(-1) as -c."""
    if e is sp.true or e is sp.false:
        return ir.Bool(value=bool(e))
    if isinstance(e, sp.Symbol):
        return ir.Var(name=e.name)
    if e.is_Number or e in (sp.pi, sp.E):
        v = float(e)
        return _num(v) if v >= 0 else ir.Unary(op="-", operand=_num(-v))
    if isinstance(e, sp.Add):
        terms = list(e.as_ordered_terms())
        if len(terms) > _LONG:
            return _balanced("+", [from_sympy(t) for t in terms])
        out = from_sympy(terms[0])
        for t in terms[1:]:
            if t.could_extract_minus_sign():
                out = ir.BinOp(op="-", left=out, right=from_sympy(-t))
            else:
                out = ir.BinOp(op="+", left=out, right=from_sympy(t))
        return out
    if isinstance(e, sp.Mul):
        return _mul(e)
    if isinstance(e, sp.Pow):
        base, exp = e.args
        if exp == -1:
            return ir.BinOp(op="/", left=_num(1), right=from_sympy(base))
        if exp == sp.Rational(1, 2):
            return ir.Call(func="sqrt", args=(from_sympy(base),))
        if exp == sp.Rational(-1, 2):
            return ir.BinOp(op="/", left=_num(1), right=ir.Call(func="sqrt", args=(from_sympy(base),)))
        if exp.is_Integer and exp < 0:
            return ir.BinOp(op="/", left=_num(1), right=from_sympy(base ** (-exp)))
        return ir.BinOp(op="^", left=from_sympy(base), right=from_sympy(exp))
    if isinstance(e, sp.Piecewise):
        (val, cond), *rest = e.args
        if not rest or cond is sp.true:
            return from_sympy(val)
        return ir.Call(func="where", args=(from_sympy(cond), from_sympy(val), from_sympy(sp.Piecewise(*rest))))
    if isinstance(e, sp.Heaviside):
        return ir.Call(func="heaviside", args=(from_sympy(e.args[0]),))
    if isinstance(e, (sp.Min, sp.Max)):
        args = [from_sympy(a) for a in e.args]
        out = args[0]
        for a in args[1:]:
            out = ir.Call(func="min" if isinstance(e, sp.Min) else "max", args=(out, a))
        return out
    if type(e) in _BACK_REL:
        return ir.BinOp(op=_BACK_REL[type(e)], left=from_sympy(e.lhs), right=from_sympy(e.rhs))
    if isinstance(e, sp.And | sp.Or):
        args = [from_sympy(a) for a in e.args]
        if len(args) > _LONG:
            return _balanced("and" if isinstance(e, sp.And) else "or", args)
        out = args[0]
        for a in args[1:]:
            out = ir.BinOp(op="and" if isinstance(e, sp.And) else "or", left=out, right=a)
        return out
    if isinstance(e, sp.Not):
        return ir.Unary(op="not", operand=from_sympy(e.args[0]))
    if type(e) in _BACK_UNARY:
        return ir.Call(func=_BACK_UNARY[type(e)], args=(from_sympy(e.args[0]),))
    raise NotDifferentiable(f"cannot express {e} in the kernel language")


class NotDifferentiable(Exception):
    pass


def _mul(e: sp.Mul) -> ir.Expr:
    coeff, rest = e.as_coeff_Mul()
    num, den = [], []
    for f in sp.Mul.make_args(rest):
        if isinstance(f, sp.Pow) and f.args[1].is_Number and f.args[1] < 0:
            den.append(f.args[0] ** (-f.args[1]))
        else:
            num.append(f)
    negative = coeff < 0
    coeff = -coeff if negative else coeff
    factors = ([] if coeff == 1 else [_num(float(coeff))]) + [from_sympy(f) for f in num]
    if len(factors) + len(den) > _LONG:
        out = _balanced("*", factors or [_num(1)])
        if den:
            out = ir.BinOp(op="/", left=out, right=_balanced("*", [from_sympy(d) for d in den]))
        return _neg(out) if negative else out
    out = factors[0] if factors else _num(1)
    for f in factors[1:]:
        out = ir.BinOp(op="*", left=out, right=f)
    for d in den:
        out = ir.BinOp(op="/", left=out, right=from_sympy(d))
    return _neg(out) if negative else out
