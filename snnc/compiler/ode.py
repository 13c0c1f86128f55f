"""Differential equations to difference equations: the `ode` stage, between `check` and `derive`.

A neuron's charge may contain differential equations (`dv/dt = f(v, x, ...)`) beside difference equations.
Statements run in order; each run of consecutive differential equations is one coupled system, integrated
over one step of the parameter `dt` with the input x and every state outside the system held for the step
(zero-order hold), by the neuron's `integrate` method:

* `euler`: y + dt f(y). Built as IR without algebra, so the published LIF (eq. 1 of the seed, dt = 1) steps
  exactly as the hand-discretised one (eq. 2).
* `rk2`: the explicit midpoint method, y + dt f(y + dt/2 f(y)).
* `exponential_euler`: per state, f = a y + n(...) with a the coefficient of the terms linear in y; then
  y e^(a dt) + n (e^(a dt) - 1) / a (dt n where a = 0). Exact for linear f, stable for stiff leaks;
  other states of the system are held.
* `exact`: the system is affine, dy/dt = A y + b, with A free of the states and of x, and triangular (its
  states feed one another without a loop: CUBA-LIF, spike-triggered adaptation, chains of compartments);
  the step is the matrix exponential of [[A, b], [0, 0]] dt in closed form over the parameters (SymPy, once),
  which the kernels evaluate once per call. A coefficient that depends on a state is an error naming the
  term; a loop (v and w feeding each other) is an error naming the states: its closed form needs the
  eigenvalues of a general block. A closed form that divides by a parameter combination (tau_m - tau_s)
  adds the requirement that it is not zero.

The result is an `ir.Neuron` whose charge holds only `=` statements (intermediate values under internal
names `_odenew_...`, `_odek1_...`, `_odemid_...`) and whose `written_charge` keeps the equations as the user wrote them.
"""
from __future__ import annotations

from . import ir
from .constants import constant_value, param_defaults
from .exprs import substitute
from .printers import SnnPrinter
from .source import Diagnostics, SnncError, Source


def has_odes(n: ir.Neuron) -> bool:
    return any(a.op == "d/dt" for a in n.charge)


def lower_module(module: ir.Module, sources: dict[str, Source]) -> ir.Module:
    """The module with every neuron's differential equations turned into difference equations."""
    if not any(has_odes(n) for n in module.neurons):
        return module
    neurons, diags = [], Diagnostics(sources)
    for n in module.neurons:
        try:
            neurons.append(lower(n) if has_odes(n) else n)
        except SnncError as exc:
            diags.extend(exc)
    for n, old in zip(neurons, module.neurons):
        for r in n.requires[len(old.requires):]:  # what a closed form added must hold for the defaults too
            if constant_value(r.cond, param_defaults(n)) is False:
                diags.error(f"the exact solution of neuron '{n.name}' divides by {SnnPrinter()(r.cond.left)}, which "
                            "is 0 for the default parameters", r, "change the defaults, or use integrate = "
                            "exponential_euler")
    diags.raise_if_any()
    return module.model_copy(update={"neurons": tuple(neurons)})


def lower(n: ir.Neuron) -> ir.Neuron:
    states = [s.name for s in n.states]
    out: list[ir.Assign] = []
    requires: list[ir.Require] = []
    group: list[ir.Assign] = []

    def flush():
        if group:
            statements, extra = _integrate(n, list(group), states)
            out.extend(statements)
            requires.extend(extra)
            group.clear()

    for a in n.charge:
        if a.op == "d/dt":
            group.append(a)
        else:
            flush()
            out.append(a)
    flush()
    return n.model_copy(update={"charge": tuple(out), "written_charge": n.charge,
                                "requires": (*n.requires, *requires)})


def _integrate(n: ir.Neuron, odes: list[ir.Assign], states: list[str]):
    from .symbolic import NotDifferentiable

    try:
        return _integrate_by(n, odes, states)
    except (NotDifferentiable, NotImplementedError) as exc:  # log(0.0): SymPy's complex infinity, no closed form
        raise SnncError(f"integrate = {n.integrate} cannot step these differential equations: {exc}",
                        odes[0].span, "an infinite or undefined constant (log(0), 1 / 0) has no step; "
                        "change the equation") from None


def _integrate_by(n: ir.Neuron, odes: list[ir.Assign], states: list[str]):
    if n.integrate == "euler":
        return _euler(odes), []
    if n.integrate == "rk2":
        return _rk2(odes), []
    if n.integrate == "exponential_euler":
        return _exponential_euler(odes), []
    return _exact(n, odes)


def _assign(target: str, value: ir.Expr, span) -> ir.Assign:
    return ir.Assign(target=target, op="=", value=value, span=span)


def _bin(op: str, a: ir.Expr, b: ir.Expr) -> ir.Expr:
    return ir.BinOp(op=op, left=a, right=b)


DT = ir.Var(name="dt")


def _simultaneous(odes: list[ir.Assign], values: dict[str, ir.Expr]) -> list[ir.Assign]:
    """Set every state of a system from its old values: via `_odenew_<s>` when another statement still reads it.
    (Internal names use prefixes none of which starts another, so no state name can make two of them equal.)"""
    if len(odes) == 1:
        a = odes[0]
        return [_assign(a.target, values[a.target], a.span)]
    temps = [_assign(f"_odenew_{a.target}", values[a.target], a.span) for a in odes]
    return temps + [_assign(a.target, ir.Var(name=f"_odenew_{a.target}"), a.span) for a in odes]


def _euler(odes: list[ir.Assign]) -> list[ir.Assign]:
    """y + dt * f(y): the right-hand side exactly as written, so that dt = 1 reproduces a hand discretisation."""
    return _simultaneous(odes, {a.target: _bin("+", ir.Var(name=a.target), _bin("*", DT, a.value)) for a in odes})


def _rk2(odes: list[ir.Assign]) -> list[ir.Assign]:
    """The midpoint method: k1 = f(y); y + dt * f(y + dt/2 * k1)."""
    half = _bin("*", ir.Num(value=0.5), DT)
    k1 = [_assign(f"_odek1_{a.target}", a.value, a.span) for a in odes]
    mid = {a.target: _bin("+", ir.Var(name=a.target), _bin("*", half, ir.Var(name=f"_odek1_{a.target}")))
           for a in odes}
    mids = [_assign(f"_odemid_{a.target}", mid[a.target], a.span) for a in odes]
    at_mid = {a.target: ir.Var(name=f"_odemid_{a.target}") for a in odes}
    values = {a.target: _bin("+", ir.Var(name=a.target), _bin("*", DT, substitute(a.value, at_mid))) for a in odes}
    return k1 + mids + _simultaneous(odes, values)


def _split_linear(f, y):
    """f = a * y + rest, a collecting the terms that are linear in y (their y-derivative is free of y)."""
    import sympy as sp

    a = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(f)):
        d = sp.diff(term, y)
        if d != 0 and y not in d.free_symbols:
            a += d
    return sp.simplify(a), sp.simplify(f - a * y)


def _exponential_euler(odes: list[ir.Assign]) -> list[ir.Assign]:
    import sympy as sp

    from .symbolic import from_sympy, symbol, to_sympy

    dt = symbol("dt")
    values = {}
    for a in odes:
        y = symbol(a.target)
        f = to_sympy(a.value)
        coeff, rest = _split_linear(f, y)
        if coeff == 0:
            new = y + dt * f
        else:
            growth = sp.exp(coeff * dt)
            new = y * growth + rest * (growth - 1) / coeff
        values[a.target] = from_sympy(new)
    return _simultaneous(odes, values)


def _exact(n: ir.Neuron, odes: list[ir.Assign]):
    import sympy as sp

    from .symbolic import from_sympy, symbol, to_sympy

    ys = [symbol(a.target) for a in odes]
    fs = [sp.expand(to_sympy(a.value)) for a in odes]
    held = {s.name for s in n.states} | {"x"}  # what may change from step to step: not a coefficient
    A = sp.zeros(len(ys), len(ys))
    problems = []
    for i, (a, f) in enumerate(zip(odes, fs)):
        for j, y in enumerate(ys):
            A[i, j] = sp.diff(f, y)
        for term in sp.Add.make_args(f):
            grads = [sp.diff(term, y) for y in ys]
            if any(str(s) in held for g in grads for s in g.free_symbols):
                varying = {str(s) for g in grads for s in g.free_symbols if str(s) in held}
                problems.append((a, term, varying))
    diags = Diagnostics()
    for a, term, varying in problems:
        diags.error(f"integrate = exact needs d{a.target}/dt linear in the states with constant coefficients, but "
                    f"its term {SnnPrinter()(from_sympy(term))} is not: its factor {', '.join(sorted(varying))} "
                    "changes from step to step", a, "use integrate = exponential_euler (or rk2, euler) for a "
                    "nonlinear system")
    diags.raise_if_any()
    cycle = _coupling_cycle([a.target for a in odes], A)
    if cycle:
        names = " -> ".join(cycle + cycle[:1])
        raise SnncError(
            f"integrate = exact steps systems whose states feed one another without a loop (a triangular system); "
            f"here {names} feed each other, and the exact step would need the eigenvalues of that block",
            odes[0].span, "use integrate = rk2 or exponential_euler, or drop the term that closes the loop")
    b = sp.Matrix([sp.expand(f - sum((A[i, j] * y for j, y in enumerate(ys)), sp.Integer(0)))
                   for i, f in enumerate(fs)])
    size = len(ys)
    M = sp.zeros(size + 1, size + 1)
    M[:size, :size] = A
    M[:size, size] = b
    E = (M * symbol("dt")).exp()
    if E.has(sp.nan, sp.zoo, sp.I):  # e.g. a coefficient whose branches SymPy's matrix exponential cannot keep apart
        from .symbolic import NotDifferentiable

        raise NotDifferentiable("SymPy's matrix exponential of this system comes out undefined (NaN or complex); "
                                "integrate = exponential_euler or rk2 step it without one")
    values, requires = {}, []
    for i, a in enumerate(odes):
        new = sum((_tidy(E[i, j]) * ys[j] for j in range(size)), sp.Integer(0)) + _tidy(E[i, size])
        values[a.target] = from_sympy(new)
        requires += _nonzero_denominators(new, held, a.span)
    unique = {}
    for r in requires:
        unique.setdefault(str(r.cond.model_dump()), r)
    return _simultaneous(odes, values), list(unique.values())


def _coupling_cycle(names: list[str], A) -> list[str]:
    """States that feed one another in a loop (A[i, j] != 0: state i reads state j), or []."""
    reads = {names[i]: [names[j] for j in range(len(names)) if j != i and A[i, j] != 0] for i in range(len(names))}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(n):
        state[n] = 1
        path.append(n)
        for m in reads[n]:
            if state.get(m) == 1:
                return path[path.index(m):]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        state[n] = 2
        path.pop()
        return []

    for n in names:
        if n not in state:
            found = visit(n)
            if found:
                return found
    return []


def _tidy(e):
    """A propagator entry as a sum of decaying exponentials with parameter coefficients.

    The matrix exponential comes out with exp(+dt/tau) in denominators and products like exp(a) exp(-a):
    each exponential is written over decay factors z = exp(-c) (c a positive-looking part of the exponent),
    the entry simplified as a rational function of them, and written back, so that no term can overflow.
    """
    import sympy as sp

    e = sp.expand(e)
    decays: dict = {}

    def over_decays(arg):
        out = sp.Integer(1)
        for part in sp.Add.make_args(sp.expand(arg)):
            negative = part.could_extract_minus_sign()
            z = decays.setdefault(-part if negative else part, sp.Dummy("z"))
            out *= z if negative else 1 / z
        return out

    dt = next((s for s in e.free_symbols if s.name == "dt"), None)
    e = e.replace(lambda term: isinstance(term, sp.exp) and dt in term.args[0].free_symbols,
                  lambda term: over_decays(term.args[0]))
    zs = list(decays.values())
    num, den = sp.fraction(sp.cancel(sp.together(e)))
    back = {z: sp.exp(-key) for key, z in decays.items()}
    if not zs or den.free_symbols & set(zs):
        return sp.simplify(e.subs(back, simultaneous=True))
    terms = [sp.factor(c / den) * sp.Mul(*(z ** p for z, p in zip(zs, powers)))
             for powers, c in sp.Poly(num, *zs).terms()]
    return sp.Add(*terms).subs(back, simultaneous=True)


def _nonzero_denominators(e, held: set[str], span) -> list[ir.Require]:
    """`require d != 0.0` for each factor of a denominator that is a combination of parameters (tau_m - tau_s)."""
    import sympy as sp

    from .symbolic import from_sympy

    out = []
    for term in sp.preorder_traversal(e):
        if isinstance(term, sp.Pow) and term.exp.is_negative and term.base.free_symbols:
            base = sp.factor(term.base)
            for factor in sp.Mul.make_args(base):
                if factor.is_Symbol or factor.is_Number or not factor.free_symbols:
                    continue
                if any(str(s) in held for s in factor.free_symbols):
                    continue
                out.append(ir.Require(cond=ir.BinOp(op="!=", left=from_sympy(factor), right=ir.Num(value=0.0)),
                                      span=span))
    return out


__all__ = ["has_odes", "lower", "lower_module"]
