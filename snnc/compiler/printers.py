"""One printer family: expression trees to Python (torch), C++ and CUDA C.

`Printer` walks the expression union and handles precedence; each target
overrides the leaves and a table of calls. The per-element kernel body is the
same text for CUDA and host C++, so `CPrinter` serves both.
"""
from __future__ import annotations

from . import ir

# Binding strength: higher binds tighter.
PRECEDENCE = {
    "or": 1, "and": 2, "not": 3,
    "<": 4, "<=": 4, ">": 4, ">=": 4, "==": 4, "!=": 4,
    "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7, "^": 8,
}
ATOM = 10


def _prec(e: ir.Expr) -> int:
    match e:
        case ir.BinOp(op=op):
            return PRECEDENCE[op]
        case ir.Unary(op="-"):
            return PRECEDENCE["neg"]
        case ir.Unary(op="not"):
            return PRECEDENCE["not"]
    return ATOM


class Printer:
    """Target-independent walk. Subclasses set `OPS` and `CALLS` and the leaves."""

    OPS: dict[str, str] = {}
    CALLS: dict[str, str] = {}  # func -> format string over {0}, {1}, {2}

    def __call__(self, e: ir.Expr) -> str:
        return self.expr(e)

    def expr(self, e: ir.Expr) -> str:
        match e:
            case ir.Num(value=v):
                return self.num(v)
            case ir.Bool(value=b):
                return self.bool(b)
            case ir.Var(name=n):
                return self.var(n)
            case ir.Unary(op=op, operand=a):
                return self.unary(op, a)
            case ir.BinOp(op=op, left=a, right=b):
                return self.binop(op, a, b)
            case ir.Call(func=f, args=args):
                return self.call(f, args)
        raise TypeError(f"not an expression: {e!r}")

    def wrap(self, e: ir.Expr, min_prec: int) -> str:
        text = self.expr(e)
        return f"({text})" if _prec(e) < min_prec else text

    def unary(self, op: str, a: ir.Expr) -> str:
        p = PRECEDENCE["neg" if op == "-" else "not"]
        return f"{self.OPS[op]}{self.wrap(a, p + (op == '-'))}"

    def binop(self, op: str, a: ir.Expr, b: ir.Expr) -> str:
        p = PRECEDENCE[op]
        if op == "^":  # right-associative
            return self.power(a, b)
        # left-associative: the right operand needs parentheses at equal precedence
        right_min = p + 1
        left_min = p + 1 if p == 4 else p  # comparisons do not chain
        return f"{self.wrap(a, left_min)} {self.OPS[op]} {self.wrap(b, right_min)}"

    def power(self, a: ir.Expr, b: ir.Expr) -> str:
        return f"{self.wrap(a, ATOM)} {self.OPS['^']} {self.wrap(b, PRECEDENCE['^'])}"

    def call(self, f: str, args) -> str:
        return self.CALLS[f].format(*(self.expr(a) for a in args))

    def num(self, v: float) -> str:
        return repr(float(v))

    def bool(self, b: bool) -> str:
        return "True" if b else "False"

    def var(self, name: str) -> str:
        return name


class PythonPrinter(Printer):
    """Eager PyTorch. `tensors` names the variables that hold tensors; the rest are Python scalars."""

    OPS = {"+": "+", "-": "-", "*": "*", "/": "/", "^": "**", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
           "==": "==", "!=": "!=", "and": "and", "or": "or", "not": "not "}
    TENSOR_OPS = {"and": "&", "or": "|", "not": "~"}
    # Python floats with IEEE results where math would raise (rt: the runtime, snnc/runtime/support.py):
    # x / 0 is inf, exp overflows to inf, log(0) is -inf, sqrt(-1) and (-8) ^ 0.5 are nan, as in the kernels.
    SCALAR_CALLS = {
        "exp": "rt.exp({0})", "log": "rt.log({0})", "sqrt": "rt.sqrt({0})", "abs": "abs({0})",
        "tanh": "math.tanh({0})", "sigmoid": "rt.sigmoid({0})", "atan": "math.atan({0})",
        "erf": "math.erf({0})", "sign": "float(({0} > 0) - ({0} < 0))", "heaviside": "float({0} >= 0)",
        "min": "min({0}, {1})", "max": "max({0}, {1})", "clamp": "min(max({0}, {1}), {2})",
        "where": "({1} if {0} else {2})",
    }
    SCALAR_OPS = {"/": "rt.div({0}, {1})", "^": "rt.pow({0}, {1})"}
    CALLS = {
        "exp": "torch.exp({0})", "log": "torch.log({0})", "sqrt": "torch.sqrt({0})", "abs": "torch.abs({0})",
        "tanh": "torch.tanh({0})", "sigmoid": "torch.sigmoid({0})", "atan": "torch.atan({0})",
        "erf": "torch.erf({0})", "sign": "torch.sign({0})", "heaviside": "rt.heaviside({0})",
        "min": "torch.minimum({0}, {1})", "max": "torch.maximum({0}, {1})", "clamp": "torch.clamp({0}, {1}, {2})",
        "where": "torch.where({0}, {1}, {2})",
    }

    # Calls with a tensor and a Python number where torch would convert the number to the tensor's dtype (and
    # raise beyond its range, or refuse a number as the first argument): the runtime's IEEE versions.
    MIXED_CALLS = {"min": "rt.minimum({0}, {1})", "max": "rt.maximum({0}, {1})", "clamp": "rt.clamp({0}, {1}, {2})",
                   "where": "rt.where({0}, {1}, {2})"}

    def __init__(self, tensors: frozenset[str] | set[str] = frozenset()):
        self.tensors = frozenset(tensors)

    def num(self, v: float) -> str:
        v = float(v)
        if v != v:
            return "math.nan"
        if v in (float("inf"), float("-inf")):  # SymPy folds e.g. 1 / 1e-320 to infinity
            return "math.inf" if v > 0 else "(-math.inf)"
        return repr(v)

    def is_tensor(self, e: ir.Expr) -> bool:
        match e:
            case ir.Var(name=n):
                return n in self.tensors
            case ir.Unary(operand=a):
                return self.is_tensor(a)
            case ir.BinOp(left=a, right=b):
                return self.is_tensor(a) or self.is_tensor(b)
            case ir.Call(args=args):
                return any(self.is_tensor(a) for a in args)
        return False

    def tensor(self, e: ir.Expr, like: str, unshaped=()) -> str:
        """`e` as a tensor of `like`'s shape, for an assignment to a state: later code takes every state for a
        tensor of the input's shape, also where its equation reads neither the input nor a state (`charge v =
        0.5`, or only `unshaped` tensors such as a 0-d learnable)."""
        text = self.expr(e)
        shaped = self.tensors - set(unshaped)
        if any(isinstance(n, ir.Var) and n.name in shaped for n in ir.walk(e)):
            return text
        return f"rt.shaped({text}, {like})"

    def unary(self, op: str, a: ir.Expr) -> str:
        if op == "not" and self.is_tensor(a):
            return f"~{self.wrap(a, ATOM)}"
        return super().unary(op, a)

    def binop(self, op: str, a: ir.Expr, b: ir.Expr) -> str:
        tensor = self.is_tensor(a) or self.is_tensor(b)
        if op in self.TENSOR_OPS and tensor:
            return f"{self.wrap(a, ATOM)} {self.TENSOR_OPS[op]} {self.wrap(b, ATOM)}"
        if op in self.SCALAR_OPS and not tensor:
            return self.SCALAR_OPS[op].format(self.expr(a), self.expr(b))
        return super().binop(op, a, b)

    def call(self, f: str, args) -> str:
        texts = [self.expr(a) for a in args]
        tensor = [self.is_tensor(a) for a in args]
        if f == "where" and not tensor[0]:
            if tensor[1] != tensor[2]:  # a tensor either way, so enclosing torch calls get a tensor
                t = texts[1] if tensor[1] else texts[2]
                i = 2 if tensor[1] else 1
                texts[i] = f"rt.full_like({t}, {texts[i]})"
            return self.SCALAR_CALLS["where"].format(*texts)
        if not any(tensor):
            return self.SCALAR_CALLS[f].format(*texts)
        if f == "where" and not tensor[1] and not tensor[2]:  # two numbers: the result takes a tensor's dtype
            like = sorted(n.name for n in ir.walk(args[0]) if isinstance(n, ir.Var) and n.name in self.tensors)
            return f"rt.where({texts[0]}, {texts[1]}, {texts[2]}, {like[0]})"
        if f in self.MIXED_CALLS and not all(tensor[f == "where":]):  # a number where torch converts it
            return self.MIXED_CALLS[f].format(*texts)
        return self.CALLS[f].format(*texts)


def cname(name: str) -> str:
    """C identifier for an IR variable: user names get a trailing '_', internal ('_'-prefixed) ones stay."""
    return name if name.startswith("_") else f"{name}_"


class CPrinter(Printer):
    """Single-precision C, for host C++ and CUDA C alike (the kernel body is one text)."""

    OPS = {"+": "+", "-": "-", "*": "*", "/": "/", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
           "==": "==", "!=": "!=", "and": "&&", "or": "||", "not": "!"}
    CALLS = {
        "exp": "expf({0})", "log": "logf({0})", "sqrt": "sqrtf({0})", "abs": "fabsf({0})",
        "tanh": "tanhf({0})", "sigmoid": "(1.0f / (1.0f + expf(-({0}))))", "atan": "atanf({0})",
        "erf": "erff({0})", "sign": "(float)(({0} > 0.0f) - ({0} < 0.0f))",
        "heaviside": "({0} >= 0.0f ? 1.0f : 0.0f)",
        "min": "fminf({0}, {1})", "max": "fmaxf({0}, {1})", "clamp": "fminf(fmaxf({0}, {1}), {2})",
        "where": "({0} ? {1} : {2})",
    }

    def unary(self, op: str, a: ir.Expr) -> str:
        if op == "not":  # C's '!' binds tighter than comparisons
            return f"!{self.wrap(a, ATOM)}"
        return super().unary(op, a)

    def num(self, v: float) -> str:
        text = repr(float(v))
        if "inf" in text or "nan" in text:
            return {"inf": "INFINITY", "-inf": "(-INFINITY)", "nan": "NAN"}[text]
        return f"{text}f"

    def bool(self, b: bool) -> str:
        return "true" if b else "false"

    def power(self, a: ir.Expr, b: ir.Expr) -> str:
        if isinstance(b, ir.Num) and b.value == 2.0:
            base = self.wrap(a, ATOM)
            return f"({base} * {base})"
        return f"powf({self.expr(a)}, {self.expr(b)})"


class CudaPrinter(CPrinter):
    """CUDA C: identical to host C (kept as a name so templates state their target)."""


class CppPrinter(CPrinter):
    """Host C++: identical to CUDA C."""


class SnnPrinter(Printer):
    """Back to `.snn` syntax (for messages, docstrings and `snnc check`)."""

    OPS = {op: op for op in PRECEDENCE if op != "neg"} | {"not": "not "}
    CALLS = {f: f + "(" + ", ".join("{%d}" % i for i in range(n)) + ")" for f, n in ir.FUNCTIONS.items()}

    def bool(self, b: bool) -> str:
        return "true" if b else "false"

    def num(self, v: float) -> str:
        return repr(float(v)) if not float(v).is_integer() or abs(v) >= 1e16 else repr(float(v))


def value_text(v: ir.Value) -> str:
    """A setting or layer argument back in `.snn` syntax."""
    match v:
        case ir.Lit(value=None):
            return "none"
        case ir.Lit(value=bool(b)):
            return "true" if b else "false"
        case ir.Lit(value=float(x)):
            return repr(x)
        case ir.Lit(value=x):
            return str(x)
        case ir.ListValue(items=items):
            return "[" + ", ".join(value_text(i) for i in items) + "]"
        case ir.CallValue(func=f, args=args, kwargs=kwargs):
            parts = [value_text(a) for a in args] + [f"{k} = {value_text(x)}" for k, x in kwargs]
            return f"{f}({', '.join(parts)})"
    return str(v)
