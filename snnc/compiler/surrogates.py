"""Surrogate gradients: d Θ(x) / dx for the backward pass, x = H - V_th.

The spike is always the Heaviside step Θ(x) (1 for x >= 0). A surrogate only
says what the backward pass uses for its derivative. Each built-in formula
exists once, as text in the expression language, over `x` and the surrogate's
parameters (and the constant `pi`); `grad_expr` parses it, substitutes the
parameter values as numbers and hands back an expression of `x` alone, which
the printers turn into torch, C++ and CUDA.

The table follows SpikingJelly 2.0.0 (`spikingjelly.activation_based.surrogate`,
spiking=True): the same backward formulas, the same defaults. SpikingJelly's
class names (`ATan`, `PiecewiseLeakyReLU`, ...) are accepted as aliases.
Not here, because they do not fit "Heaviside forward, closed-form gradient in
the expression language": `SquarewaveFourierSeries` (a sum of n-1 cosines, and
the language has no cos), `PoissonPass` (Bernoulli forward) and
`MultiLevelSpikeCount` (multi-level, not binary, spikes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from . import ir
from .parse import parse_expr
from .source import SnncError, did_you_mean
from .exprs import free_names, substitute

PI = math.pi


@dataclass(frozen=True)
class SurrogateDef:
    params: tuple[tuple[str, float], ...]  # (name, SpikingJelly's default), in its argument order
    grad: str  # d spike / d x, an expression of `x`, the params and `pi`
    doc: str  # one line
    require: str = ""  # condition on the params (no `x`) that the values must meet, "" for none


BUILTIN: dict[str, SurrogateDef] = {
    "sigmoid": SurrogateDef(
        (("alpha", 4.0),),
        "alpha * sigmoid(alpha * x) * (1 - sigmoid(alpha * x))",
        "derivative of sigmoid(alpha * x)",
    ),
    "atan": SurrogateDef(
        (("alpha", 2.0),),
        "alpha / 2 / (1 + (pi / 2 * alpha * x)^2)",
        "derivative of atan(pi / 2 * alpha * x) / pi + 1/2",
    ),
    "piecewise_quadratic": SurrogateDef(
        (("alpha", 1.0),),
        "where(abs(x) > 1 / alpha, 0, alpha - alpha^2 * abs(x))",
        "triangle of height alpha on |x| <= 1/alpha, zero outside",
        "alpha != 0",
    ),
    "piecewise_exp": SurrogateDef(
        (("alpha", 1.0),),
        "alpha / 2 * exp(-alpha * abs(x))",
        "Laplace-shaped: alpha / 2 * exp(-alpha |x|)",
    ),
    "soft_sign": SurrogateDef(
        (("alpha", 2.0),),
        "1 / (2 * alpha * (1 / alpha + abs(x))^2)",
        "derivative of (softsign(alpha * x) + 1) / 2",
        "alpha > 0",
    ),
    "erf": SurrogateDef(
        (("alpha", 2.0),),
        "alpha / sqrt(pi) * exp(-(alpha * x)^2)",
        "Gaussian: derivative of erfc(-alpha * x) / 2",
    ),
    "super_spike": SurrogateDef(
        (("alpha", 1.0),),
        "alpha / (abs(x) + 1)^2",
        "SuperSpike (Zenke & Ganguli 2018): alpha / (|x| + 1)^2",
    ),
    "piecewise_leaky_relu": SurrogateDef(
        (("w", 1.0), ("c", 0.01)),
        "where(abs(x) < w, 1 / (2 * w), c)",
        "1 / (2 w) on |x| < w, leak c outside",
        "w > 0",
    ),
    "s2nn": SurrogateDef(
        (("alpha", 4.0), ("beta", 1.0)),
        "where(x < 0, alpha * sigmoid(alpha * x) * (1 - sigmoid(alpha * x)), beta / (x + 1))",
        "S2NN: sigmoid derivative for x < 0, beta / (x + 1) for x >= 0",
    ),
    "q_pseudo_spike": SurrogateDef(
        (("alpha", 2.0),),
        "(1 + 2 / (alpha - 1) * abs(x))^(-alpha)",
        "q-PseudoSpike: heavy-tailed (1 + 2 |x| / (alpha - 1))^-alpha",
        "alpha != 1",
    ),
    "leaky_k_relu": SurrogateDef(
        (("leak", 0.0), ("k", 1.0)),
        "where(x >= 0, k, leak)",
        "k for x >= 0, leak below",
    ),
    "fake_numerical_gradient": SurrogateDef(
        (("alpha", 0.3),),
        "min((2 * heaviside(x) - 1) / x, alpha)",
        "fake numerical gradient sign(x) / x, capped at alpha",
    ),
    "log_tailed_relu": SurrogateDef(
        (("alpha", 0.0),),
        "where(x > 1, 1 / x, where(x <= 0, alpha, 1))",
        "log-tailed ReLU derivative: alpha for x <= 0, 1 up to 1, 1/x beyond",
    ),
    "nonzero_sign_log_abs": SurrogateDef(
        (("alpha", 1.0),),
        "1 / (1 / alpha + abs(x))",
        "derivative of sign(x) log(alpha |x| + 1): 1 / (1/alpha + |x|)",
        "alpha != 0",
    ),
    "rect": SurrogateDef(
        (("alpha", 1.0),),
        "where(abs(x) < 0.5 / alpha, alpha, 0)",
        "rectangle of height alpha on |x| < 1 / (2 alpha)",
        "alpha != 0",
    ),
    "deterministic_pass": SurrogateDef(
        (),
        "1",
        "straight-through: gradient 1 everywhere",
    ),
}

# SpikingJelly 2.0.0 class names, for users migrating from it.
_CLASS_NAMES = {
    "Sigmoid": "sigmoid", "ATan": "atan", "PiecewiseQuadratic": "piecewise_quadratic",
    "PiecewiseExp": "piecewise_exp", "SoftSign": "soft_sign", "Erf": "erf", "SuperSpike": "super_spike",
    "PiecewiseLeakyReLU": "piecewise_leaky_relu", "S2NN": "s2nn", "QPseudoSpike": "q_pseudo_spike",
    "LeakyKReLU": "leaky_k_relu", "FakeNumericalGradient": "fake_numerical_gradient",
    "LogTailedReLU": "log_tailed_relu", "NonzeroSignLogAbs": "nonzero_sign_log_abs", "Rect": "rect",
    "DeterministicPass": "deterministic_pass",
}
ALIASES: dict[str, str] = {
    **_CLASS_NAMES,
    **{k.lower(): v for k, v in _CLASS_NAMES.items() if k.lower() not in BUILTIN},
}

# Constants a formula may use without declaring them.
CONSTANTS: dict[str, float] = {"pi": PI}


def names() -> list[str]:
    """The built-in surrogate names (snake_case), sorted."""
    return sorted(BUILTIN)


def canonical(name: str) -> str | None:
    """The BUILTIN key for a name or alias, or None."""
    if name in BUILTIN:
        return name
    return ALIASES.get(name)


@lru_cache(maxsize=None)
def _parsed(name: str) -> ir.Expr:
    return parse_expr(BUILTIN[name].grad, name=f"<surrogate {name}>")


def _num_env(values: dict[str, float]) -> dict[str, ir.Expr]:
    return {k: ir.Num(value=float(v)) for k, v in values.items()}


def _check_require(name: str, d: SurrogateDef, values: dict[str, float], span) -> None:
    if not d.require:
        return
    from .constants import constant_value

    cond = substitute(parse_expr(d.require), _num_env(values))
    if constant_value(cond, {}) is not True:
        shown = ", ".join(f"{k} = {v:g}" for k, v in values.items())
        raise SnncError(f"surrogate '{name}' needs {d.require} (got {shown})", span)


def grad_expr(s: ir.Surrogate) -> ir.Expr:
    """d spike / d x for `s`, with its arguments (defaults filled in) substituted: only `x` stays free."""
    if s.name == "custom":
        return _custom(s)
    key = canonical(s.name)
    if key is None:
        raise SnncError(
            f"unknown surrogate '{s.name}'",
            s.span,
            hint=did_you_mean(s.name, [*BUILTIN, *ALIASES, "custom"])
            or "built-in surrogates: " + ", ".join(names()) + " (or `surrogate grad = ...` for a custom one)",
        )
    d = BUILTIN[key]
    values = dict(d.params)
    seen: set[str] = set()
    for arg, v in s.args:
        if arg not in values:
            valid = ", ".join(p for p, _ in d.params) or "none"
            hint = did_you_mean(arg, values)
            raise SnncError(
                f"surrogate '{s.name}' has no argument '{arg}' (its arguments: {valid})",
                s.span,
                hint=hint,
            )
        if arg in seen:
            raise SnncError(f"surrogate '{s.name}' is given '{arg}' twice", s.span)
        seen.add(arg)
        values[arg] = float(v)
    _check_require(key, d, values, s.span)
    return substitute(_parsed(key), _num_env({**CONSTANTS, **values}))


def _custom(s: ir.Surrogate) -> ir.Expr:
    if s.grad is None:
        raise SnncError("custom surrogate has no gradient formula", s.span, hint="write `surrogate grad = <expr of x>`")
    declared = dict(CONSTANTS)
    for arg, v in s.args:
        if arg == "x":
            raise SnncError("a custom surrogate cannot declare 'x': it is the formula's variable", s.span)
        declared[arg] = float(v)
    stray = sorted(free_names(s.grad) - {"x"} - set(declared))
    if stray:
        allowed = ["x", *(a for a, _ in s.args), *CONSTANTS]
        hint = did_you_mean(stray[0], allowed) or "declare it with `where " + stray[0] + " = ...`"
        raise SnncError(
            f"custom surrogate uses undeclared name{'s' if len(stray) > 1 else ''} "
            + ", ".join(f"'{n}'" for n in stray)
            + f" (it may use: {', '.join(allowed)})",
            s.grad.span or s.span,
            hint=hint,
        )
    return substitute(s.grad, _num_env(declared))


def surrogate_from_value(value: ir.Value) -> ir.Surrogate:
    """A layer's `surrogate = name(arg = number, ...)` override as a surrogate; SnncError if it is not one."""
    if not isinstance(value, ir.CallValue):
        name = value.value if isinstance(value, ir.Lit) and isinstance(value.value, str) else None
        if name is None:
            raise SnncError("surrogate must be given as a call, e.g. surrogate = atan(alpha = 2.0)", value.span)
        value = ir.CallValue(func=name, span=value.span)
    if value.args:
        raise SnncError(f"surrogate arguments are named: {value.func}(alpha = ...)", value.span,
                        "write e.g. atan(alpha = 2.0)")
    args = []
    for k, v in value.kwargs:
        if not (isinstance(v, ir.Lit) and isinstance(v.value, float) and not isinstance(v.value, bool)):
            raise SnncError(f"surrogate argument '{k}' must be a number", v.span or value.span,
                            f"write e.g. {k} = 2.0")
        args.append((k, float(v.value)))
    return ir.Surrogate(name=canonical(value.func) or value.func, args=tuple(args), span=value.span)
