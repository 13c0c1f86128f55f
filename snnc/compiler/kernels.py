"""Fused kernels from a step plan: host C++ (OpenMP + SIMD) and CUDA (a few neurons per thread).

Both targets share one per-element step body (`templates/_step.j2`); only the
loop nest around it differs. Everything neuron-specific comes from the `Plan`
as IR expressions, printed here:

* User names are printed with a trailing underscore (`tau` -> `tau_`), so a
  parameter called `int` or `expf` cannot break the C; internal names (they
  start with '_') are printed as they are.
* Loop invariants are hoisted into a prologue. A subtree of only scalar
  parameters and numbers is evaluated in double and rounded to float once,
  exactly as eager PyTorch evaluates it (Python floats, then the cast to the
  tensor's dtype); a subtree that involves learnables is evaluated in float,
  as PyTorch does on the 0-dim parameter.
* The forward keeps the IEEE order of the printed expression (compiled without
  contraction or fast-math); `python_scalar / tensor` is printed as
  `(1 / tensor) * scalar`, which is what `Tensor.__rtruediv__` computes. Where
  eager PyTorch differs between CPU and CUDA the body prints a macro each
  template defines: SNNC_DIVS(a, b) for tensor / Python scalar (CPU: a / b;
  CUDA: a * (1 / b), ATen's div_true) and SNNC_RSQRT for x^-0.5.
  The backward prints `exp` as `SNNC_EXPF`, which the host target maps to a
  vectorisable polynomial (about 1 ulp) and CUDA to `expf`.

Kernel signatures and the runtime's call arguments come from one parameter
list (`KernelSpec.forward_params` / `backward_params`), whose dialect (I/O type, an OpenMP thread count,
learnable gradients as per-thread partial sums) is the renderer's (`renderers.CKernels`). The renderers
render the templates; this module makes what they print.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import ir
from .neuron import MEMBRANE, Plan
from .printers import CPrinter, PRECEDENCE, cname
from .source import SnncError
from .exprs import free_names

__all__ = ["KernelParam", "KernelSpec", "spec", "filters", "origin_comment", "HOST_FLAGS"]

# Forward exactness: no contraction into FMAs, no fast-math. -fno-trapping-math (IEEE results unchanged, only
# exception flags) and -fno-thread-jumps let GCC if-convert the step body so `omp simd` vectorises it.
HOST_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-fno-thread-jumps",
              "-ffp-contract=off", "-shared", "-fPIC", "-std=c++17")
COMPARISONS = {"<", "<=", ">", ">=", "==", "!="}


# ------------------------------------------------------------------ printers
def float_literal(v: float) -> str:
    """A C float literal equal to float32(v) (the cast PyTorch applies to a Python scalar)."""
    v = float(v)
    if v != v:
        return "(0.0f / 0.0f)"
    if v in (float("inf"), float("-inf")):
        return "(1.0f / 0.0f)" if v > 0 else "(-1.0f / 0.0f)"
    with np.errstate(over="ignore"):
        f = np.float32(v)
        text = repr(v)
        if not np.isfinite(f):  # beyond float's range: the infinity the cast gives
            return "(1.0f / 0.0f)" if v > 0 else "(-1.0f / 0.0f)"
        if np.float32(text) != f:  # decimal -> float would round differently from decimal -> double -> float
            text = repr(float(f))
    return f"{text}f"


def double_literal(v: float) -> str:
    v = float(v)
    if v != v:
        return "(0.0 / 0.0)"
    if v in (float("inf"), float("-inf")):
        return "(1.0 / 0.0)" if v > 0 else "(-1.0 / 0.0)"
    return repr(v)


class KernelPrinter(CPrinter):
    """Single-precision C for the kernel bodies (host and CUDA alike).

    `scalars`: names whose value is a Python float in eager PyTorch (scalar
    parameters, hoisted double constants); used to print `scalar / tensor` the
    way PyTorch evaluates it. `fast` (the backward, where about 1 ulp is fine): print exp as SNNC_EXPF and
    divide by a loop invariant (`invariants`: names that do not change per element) as a multiplication by
    its reciprocal, which the compiler hoists out of the loop.
    """

    def __init__(self, scalars=frozenset(), fast: bool = False, invariants=frozenset()):
        self.scalars = scalars  # may be a live set (the hoister adds its constants)
        self.fast = fast
        self.invariants = frozenset(invariants)
        if fast:
            self.CALLS = {**CPrinter.CALLS, "exp": "SNNC_EXPF({0})",
                          "sigmoid": "(1.0f / (1.0f + SNNC_EXPF(-({0}))))"}

    def var(self, name: str) -> str:
        return cname(name)

    def num(self, v: float) -> str:
        return float_literal(v)

    def _is_python_scalar(self, e: ir.Expr) -> bool:
        return isinstance(e, (ir.Num, ir.Bool)) or (bool(free_names(e)) and free_names(e) <= self.scalars) or (
            isinstance(e, ir.Unary) and isinstance(e.operand, ir.Num))

    def binop(self, op: str, a: ir.Expr, b: ir.Expr) -> str:
        if self.fast and op == "/" and free_names(b) <= self.invariants and not self._is_python_scalar(a):
            return f"{self.wrap(a, PRECEDENCE['*'])} * (1.0f / {self.wrap(b, PRECEDENCE['/'] + 1)})"
        if op == "/" and self._is_python_scalar(b) and not self._is_python_scalar(a) and not self.fast:
            # tensor / Python scalar: a true division on the CPU, a * (1 / b) on CUDA (ATen's div_true)
            return f"SNNC_DIVS({self.expr(a)}, {self.expr(b)})"
        if op == "/" and self._is_python_scalar(a) and not self._is_python_scalar(b):
            # Tensor.__rtruediv__: reciprocal(b) * a
            if isinstance(a, ir.Num) and a.value == 1.0:
                return f"1.0f / {self.wrap(b, PRECEDENCE['/'] + 1)}"
            return f"(1.0f / {self.wrap(b, PRECEDENCE['/'] + 1)}) * {self.wrap(a, PRECEDENCE['*'] + 1)}"
        return super().binop(op, a, b)

    def power(self, a: ir.Expr, b: ir.Expr) -> str:
        # torch.pow(tensor, scalar) special cases, so the forward stays bit-identical
        if isinstance(b, (ir.Num, ir.Unary)):
            value = b.value if isinstance(b, ir.Num) else (
                -b.operand.value if b.op == "-" and isinstance(b.operand, ir.Num) else None)
            base = self.wrap(a, 10)
            special = {2.0: f"({base} * {base})", 3.0: f"({base} * {base} * {base})",
                       -2.0: f"(1.0f / ({base} * {base}))", -1.0: f"(1.0f / {base})",
                       0.5: f"sqrtf({self.expr(a)})", -0.5: f"SNNC_RSQRT({self.expr(a)})", 1.0: f"({base})"}
            if value in special:
                return special[value]
        return f"powf({self.expr(a)}, {self.expr(b)})"


class DoublePrinter(CPrinter):
    """Double-precision C over the kernel's double scalar arguments (`_p_<name>`): Python's arithmetic."""

    CALLS = {
        "exp": "exp({0})", "log": "log({0})", "sqrt": "sqrt({0})", "abs": "fabs({0})",
        "tanh": "tanh({0})", "sigmoid": "(1.0 / (1.0 + exp(-({0}))))", "atan": "atan({0})",
        "erf": "erf({0})", "sign": "(double)(({0} > 0.0) - ({0} < 0.0))",
        "heaviside": "({0} >= 0.0 ? 1.0 : 0.0)",
        "min": "fmin({0}, {1})", "max": "fmax({0}, {1})", "clamp": "fmin(fmax({0}, {1}), {2})",
        "where": "({0} ? {1} : {2})",
    }

    def var(self, name: str) -> str:
        return f"_p_{name}"

    def num(self, v: float) -> str:
        return double_literal(v)

    def power(self, a: ir.Expr, b: ir.Expr) -> str:
        return f"pow({self.expr(a)}, {self.expr(b)})"


# ------------------------------------------------------------------ hoisting
def _is_bool(e: ir.Expr) -> bool:
    return (isinstance(e, ir.Bool) or (isinstance(e, ir.BinOp) and e.op in COMPARISONS | {"and", "or"})
            or (isinstance(e, ir.Unary) and e.op == "not"))


def _trivial(e: ir.Expr) -> bool:
    return isinstance(e, (ir.Num, ir.Bool, ir.Var)) or (isinstance(e, ir.Unary) and isinstance(e.operand, ir.Num))


@dataclass(frozen=True)
class Constant:
    name: str  # _c<i>
    ctype: str  # "float" | "bool"
    text: str  # C expression over the prologue's names
    python: bool  # evaluated in double, as Python evaluates scalar arithmetic (else float, from learnables)


class _Hoister:
    def __init__(self, scalars: set[str], learnables: set[str]):
        self.scalars, self.learnables = scalars, learnables
        self.constants: list[Constant] = []
        self._index: dict[str, str] = {}
        self.python_names: set[str] = set(scalars)  # Python floats in eager PyTorch
        self._float = KernelPrinter(self.python_names)
        self._double = DoublePrinter()

    def _const(self, e: ir.Expr, text: str, python: bool) -> ir.Var:
        if text not in self._index:
            name = f"_c{len(self.constants)}"
            self.constants.append(Constant(name, "bool" if _is_bool(e) else "float", text, python))
            self._index[text] = name
            if python:
                self.python_names.add(name)
        return ir.Var(name=self._index[text])

    def __call__(self, e: ir.Expr) -> ir.Expr:
        names = free_names(e)
        if names <= self.scalars and not _trivial(e):
            text = self._double(e)
            return self._const(e, f"(bool)({text})" if _is_bool(e) else f"(float)({text})", True)
        if names and names <= self.scalars | self.learnables and not _trivial(e):
            inner = self._children(e)
            return self._const(inner, self._float(inner), False)
        return self._children(e)

    def _children(self, e: ir.Expr) -> ir.Expr:
        match e:
            case ir.Unary(op=op, operand=a):
                return ir.Unary(op=op, operand=self(a))
            case ir.BinOp(op=op, left=a, right=b):
                return ir.BinOp(op=op, left=self(a), right=self(b))
            case ir.Call(func=f, args=args):
                return ir.Call(func=f, args=tuple(self(a) for a in args))
        return e


# ------------------------------------------------------------------ the spec a template renders
@dataclass(frozen=True)
class KernelParam:
    """One kernel argument. role: x, init, learnable, scalar, spike, final, saved, gspike, gfinal, gx, ginit,
    glearn, T, N, nthreads; key: the state, scalar or learnable it belongs to."""

    name: str
    base: str  # float, scalar_t (the I/O dtype), double, int64, int
    role: str
    key: str | None = None
    pointer: bool = True
    const: bool = True

    def decl(self, target: str) -> str:
        base = {"int64": "long long"}.get(self.base, self.base)
        if not self.pointer:
            return f"const {base} {self.name}"
        restrict = "__restrict__" if target == "cuda" else "__restrict"
        if self.role == "learnable":
            restrict = ""
        return f"{'const ' if self.const else ''}{base}* {restrict} {self.name}".replace("  ", " ")


@dataclass(frozen=True)
class KernelSpec:
    plan: Plan
    header: str
    states: tuple[str, ...]
    saved: tuple[str, ...]
    prev: tuple[tuple[str, ir.Expr], ...]
    prev_states: tuple[str, ...]
    scalars: tuple[str, ...]
    learnables: tuple[str, ...]
    constants: tuple[Constant, ...]
    charge: tuple[tuple[str, ir.Expr], ...]
    fire: ir.Expr
    fire_prev: ir.Expr
    reset: tuple[tuple[str, ir.Expr], ...]
    uses_spike_r: bool
    surrogate: ir.Expr
    backward: tuple[tuple[str, ir.Expr], ...]
    needs_x: bool
    output: str  # "spike", or "v": the layer emits its membrane potential after the reset
    forward_params: tuple[KernelParam, ...]
    backward_params: tuple[KernelParam, ...]

    @property
    def membrane(self) -> str:
        return MEMBRANE


def _sanitise(text: str) -> str:
    """Text that goes into a // comment: one line, no comment terminator."""
    return " ".join(str(text).replace("*/", "* /").replace("/*", "/ *").split())


def origin_comment(p: Plan) -> str:
    n = p.neuron
    file = os.path.basename(n.span.file if n.span is not None else n.file)
    line = n.span.line if n.span is not None else 0
    return _sanitise(f"// generated by snnc from {file}:{line} (neuron {n.name}, config {p.config.key()}) "
                     f"\u2014 do not edit")


def _params(p: Plan, prev_states: tuple[str, ...], r) -> tuple[tuple[KernelParam, ...], ...]:
    io = r.io
    learn = [KernelParam(f"_p_{l}", "float", "learnable", l) for l in p.learnables]
    scal = [KernelParam(f"_p_{s}", "double", "scalar", s, pointer=False) for s in p.scalars]
    sizes = [KernelParam("_T", "int64", "T", pointer=False), KernelParam("_N", "int64", "N", pointer=False)]
    if r.threads_argument:
        sizes.append(KernelParam("_nthreads", "int", "nthreads", pointer=False))
    fwd = [KernelParam("_x", io, "x"),
           *(KernelParam(f"_init_{s}", "float", "init", s) for s in p.states),
           *learn, *scal,
           KernelParam("_spike_out", io, "spike", const=False),
           *(KernelParam(f"_final_{s}", "float", "final", s, const=False) for s in p.states),
           *(KernelParam(f"_H_{s}", "float", "saved", s, const=False) for s in p.saved),
           *sizes]
    bwd = [KernelParam("_gspike", io, "gspike"),
           *(KernelParam(f"_gfinal_{s}", "float", "gfinal", s) for s in p.states),
           *(KernelParam(f"_H_{s}", "float", "saved", s) for s in p.saved),
           *([KernelParam("_x", io, "x")] if p.needs_x else []),
           *(KernelParam(f"_init_{s}", "float", "init", s) for s in prev_states),
           *learn, *scal,
           KernelParam("_gx", io, "gx", const=False),
           *(KernelParam(f"_ginit_{s}", "float", "ginit", s, const=False) for s in p.states),
           # the gradient itself (host), or one double partial sum per launched thread, reduced by the runtime (CUDA)
           *(KernelParam(f"_gpart_{l}", "double", "glearn", l, const=False) if r.partial_sums else
             KernelParam(f"_glearn_{l}", "float", "glearn", l, const=False) for l in p.learnables),
           *sizes]
    return tuple(fwd), tuple(bwd)


def _check_names(p: Plan) -> None:
    """Every name the plan's expressions read must be something the kernel defines."""
    s = p.states
    known = {"x", *s, *p.scalars, *p.learnables, "_spike", "_spike_r", "_sg", "_g_spike", "_sp",
             *(f"_h_{k}" for k in s), *(f"_hp_{k}" for k in s), *(f"_g_{k}" for k in s)}
    groups = [("charge", p.charge), ("reset", p.reset), ("backward", p.backward), ("prev", p.prev),
              ("surrogate", (("_sg", p.surrogate_grad),))]
    for what, assigns in groups:
        defined = set(known)
        for target, e in assigns:
            unknown = free_names(e) - defined
            if unknown:
                raise SnncError(
                    f"neuron '{p.neuron.name}': the {what} step of the fused kernel reads "
                    f"{', '.join(sorted(unknown))}, which the kernel does not define",
                    hint="boolean parameters must be fixed by the configuration; this is likely a bug in snnc",
                )
            defined.add(target)


def spec(p: Plan, renderer) -> KernelSpec:
    """What a C-family renderer's templates print for a plan, in its dialect (`renderer`: a
    `renderers.CKernels`, read for its `io`, `threads_argument` and `partial_sums`)."""
    _check_names(p)
    hoist = _Hoister(set(p.scalars), set(p.learnables))
    h = lambda items: tuple((t, hoist(e)) for t, e in items)  # noqa: E731
    charge = h(p.charge)
    reset = h(p.reset)
    fire = ir.Call(func="where", args=(ir.BinOp(op=">=", left=ir.Var(name=f"_h_{MEMBRANE}"), right=hoist(p.threshold)),
                                        ir.Num(value=1.0), ir.Num(value=0.0)))
    fire_prev = ir.Call(func="where", args=(ir.BinOp(op=">=", left=ir.Var(name=f"_hp_{MEMBRANE}"),
                                                     right=hoist(p.threshold_prev)),
                                             ir.Num(value=1.0), ir.Num(value=0.0)))
    surrogate = hoist(p.surrogate_grad)
    backward = h(p.backward)
    prev = h(p.prev)
    prev_states = tuple(s for s, _ in p.prev)
    fwd, bwd = _params(p, prev_states, renderer)
    return KernelSpec(
        plan=p, header=origin_comment(p), states=p.states, saved=p.saved, prev=prev, prev_states=prev_states,
        scalars=p.scalars, learnables=p.learnables, constants=tuple(hoist.constants), charge=charge, fire=fire,
        fire_prev=fire_prev, reset=reset, uses_spike_r=any("_spike_r" in free_names(e) for _, e in reset),
        surrogate=surrogate, backward=backward, needs_x=p.needs_x, output=p.config.output, forward_params=fwd,
        backward_params=bwd,
    )


# ------------------------------------------------------------------ printers as template filters
def filters(k: KernelSpec) -> dict:
    """`c` (the forward's exact single precision) and `cb` (the backward's) for one kernel: the printers are per
    plan, since they know which names are Python scalars and which are loop invariants."""
    python_scalars = frozenset(k.scalars) | {c.name for c in k.constants if c.python}
    invariants = python_scalars | frozenset(k.learnables) | {c.name for c in k.constants}
    return {"c": KernelPrinter(python_scalars), "cb": KernelPrinter(python_scalars, True, invariants)}
