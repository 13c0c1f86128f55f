"""From a checked neuron to a per-element step plan: forward statements, reset,
surrogate, and the BPTT backward derived symbolically.

A plan is specialised for one `Config` (hard/soft reset, detach_reset, the
values of boolean parameters, the surrogate): boolean parameters are folded at
compile time, float parameters stay runtime scalars. Internal names start with
'_' (user names never do; `check` enforces it).
"""
from __future__ import annotations

import sympy as sp

from . import ir
from .surrogates import grad_expr
from .exprs import free_names, substitute
from .neuron import (MEMBRANE, Config, Plan, charge_updates, default_config, layer_config, own_neurons,  # noqa: F401
                     reset_updates, specialise, threshold)
from .source import Diagnostics
from .symbolic import NotDifferentiable, diff, from_sympy, symbol, to_sympy


def derive(module: ir.Module, sources: dict) -> dict[tuple[str, Config], Plan]:
    """The derive stage: plans for the neurons a module emits, in their default configuration and in every
    configuration a network layer uses. A charge SymPy cannot differentiate is a located error."""
    wanted: list[tuple[ir.Neuron, Config]] = [(n, default_config(n)) for n in own_neurons(module)]
    for net in module.networks:
        for layer in net.layers:
            if isinstance(layer.op, ir.NeuronLayer):
                n = module.neuron(layer.op.neuron)
                wanted.append((n, layer_config(n, layer.op.overrides)))
    plans: dict[tuple[str, Config], Plan] = {}
    diags, failed = Diagnostics(sources), set()
    for n, cfg in wanted:
        if (n.name, cfg) in plans or n.name in failed:
            continue
        try:
            plans[(n.name, cfg)] = plan(n, cfg)
        except (NotDifferentiable, TypeError, ValueError, ArithmeticError, NotImplementedError) as exc:
            # NotDifferentiable: what the kernel language cannot express; the others: SymPy giving up
            failed.add(n.name)
            diags.error(f"the charge of neuron '{n.name}' is not differentiable for training: {exc}",
                        n.charge[0].span if n.charge else n.span,
                        "use smooth functions, or where(...) / min / max whose pieces are differentiable")
    diags.raise_if_any()
    return plans


def plan(neuron: ir.Neuron, cfg: Config | None = None) -> Plan:
    cfg = cfg or default_config(neuron)
    states = tuple(s.name for s in neuron.states)
    learnables = tuple(l.name for l in neuron.learnables)
    charge = charge_updates(neuron, cfg)
    reset = reset_updates(neuron, cfg)
    thr = threshold(neuron)
    sg = substitute(grad_expr(cfg.surrogate or neuron.surrogate),
                    {"x": ir.BinOp(op="-", left=ir.Var(name=f"_h_{MEMBRANE}"), right=thr)})
    backward = _backward(states, learnables, charge, reset, cfg, thr)
    used = set().union(*(free_names(e) for _, e in backward), *(free_names(e) for _, e in charge),
                       *(free_names(e) for _, e in reset), free_names(sg))
    backward_reads = used_in(backward, skip_targets=True)
    needs_prev = [s for s in states if s in backward_reads]
    prev = tuple((s, substitute(dict(reset)[s], {**{f"_h_{k}": ir.Var(name=f"_hp_{k}") for k in states},
                                                  "_spike": ir.Var(name="_sp"), "_spike_r": ir.Var(name="_sp")}))
                 for s in needs_prev)
    h_used = (backward_reads | set().union(set(), *(free_names(e) for _, e in prev))
              | free_names(thr) | free_names(sg))  # the backward recomputes the spike from H and the threshold
    saved = tuple(s for s in states if s == MEMBRANE or f"_h_{s}" in h_used or f"_hp_{s}" in h_used)
    param_names = {p.name for p in neuron.params if p.type == "float"}
    init_names = set().union(set(), *(free_names(s.init) for s in neuron.states))
    scalars = tuple(p.name for p in neuron.params
                    if p.name in (used | init_names | free_names(thr)) and p.name in param_names
                    and not (cfg.soft_reset and p.name == "v_reset"))
    init = tuple((s.name, specialise(s.init, cfg)) for s in neuron.states)
    return Plan(neuron, cfg, states, scalars, learnables, charge, reset, sg, backward, saved, prev,
                "x" in backward_reads, init, thr)


def used_in(assigns, skip_targets: bool = False) -> set[str]:
    names = set().union(set(), *(free_names(e) for _, e in assigns))
    return names - {t for t, _ in assigns} if skip_targets else names


def _composed(states, charge) -> dict[str, sp.Expr]:
    """The charge as one map (state[t-1], x) -> H[t], statements substituted in order."""
    env: dict[str, sp.Expr] = {}
    for target, e in charge:
        env[target] = to_sympy(e, env)
    return {s: env.get(s, symbol(s)) for s in states}


def jacobian(p: Plan) -> list[tuple[str, str, ir.Expr]]:
    """Nonzero partial derivatives dH_j/dz of the charge, z over the previous states, x and the learnables."""
    F = _composed(p.states, p.charge)
    previous = {s: ir.Var(name=f"V_{s}") for s in p.states}
    out = []
    for j in p.states:
        for z in _in_order(F[j], (*p.states, "x", *p.learnables)):
            d = diff(F[j], symbol(z))
            if d != 0:
                wrt = "x" if z == "x" else (z if z in p.learnables else f"V_{z}")
                out.append((f"H_{j}", wrt, substitute(from_sympy(d), previous)))
    return out


def reset_jacobian(p: Plan) -> list[tuple[str, str, ir.Expr]]:
    """Nonzero partial derivatives of the reset and on-spike updates: dV_k/dH_j and dV_k/dS."""
    rename = {f"_h_{s}": ir.Var(name=f"H_{s}") for s in p.states} | {"_spike": ir.Var(name="S"),
                                                                     "_spike_r": ir.Var(name="S")}
    out = []
    for k, e in p.reset:
        r = to_sympy(substitute(e, rename))
        for z in _in_order(r, (*(f"H_{j}" for j in p.states), "S")):
            d = diff(r, symbol(z))
            if d != 0:
                out.append((f"V_{k}", z, from_sympy(d)))
    return out


def _in_order(e, names: tuple[str, ...]) -> list[str]:
    """The names an expression depends on, in the given order. Deriving only by these keeps a neuron with S
    states at the cost of its couplings, not S^2 calls of `diff`."""
    free = {s.name for s in e.free_symbols}
    return [n for n in names if n in free]


def _readers(exprs: dict[str, object]) -> dict[str, list[str]]:
    """name -> the keys of `exprs` whose expression depends on it (in key order)."""
    out: dict[str, list[str]] = {}
    for key, e in exprs.items():
        for s in e.free_symbols:
            out.setdefault(s.name, []).append(key)
    return out


def _backward(states, learnables, charge, reset, cfg: Config, thr: ir.Expr) -> tuple[tuple[str, ir.Expr], ...]:
    """Reverse-mode step: from dL/dS[t] (_g_spike) and dL/dV[t] (_g_<k>) to dL/dV[t-1], dL/dX[t], dL/dθ."""
    sym = symbol
    F = _composed(states, charge)
    R = {s: to_sympy(e) for s, e in reset}
    F_readers, R_readers = _readers(F), _readers(R)
    S, S_r, sg = sym("_spike"), sym("_spike_r"), sym("_sg")
    g = {s: sym(f"_g_{s}") for s in states}
    g_h = {s: sym(f"_gh_{s}") for s in states}

    def through_reset(name):  # sum over the reset updates that read `name`: dL/dV_k * dV_k/d name
        return [g[k] * diff(R[k], sym(name)) for k in R_readers.get(name, ())]

    def through_charge(name):  # sum over the charged values that read `name`: dL/dH_j * dH_j/d name
        return [g_h[j] * diff(F[j], sym(name)) for j in F_readers.get(name, ())]

    g_spike = sp.Add(sym("_g_spike"), *through_reset("_spike"))
    if not cfg.detach_reset:
        g_spike += sp.Add(*through_reset("_spike_r"))
    z = sym(f"_h_{MEMBRANE}") - to_sympy(thr)  # the spike is heaviside(z): dS/dz = sg
    out: list[tuple[str, sp.Expr]] = []
    for j in states:
        e = sp.Add(*through_reset(f"_h_{j}")) + g_spike * sg * diff(z, sym(f"_h_{j}"))
        out.append((f"_gh_{j}", e.subs(S_r, S)))
    for i in states:
        out.append((f"_gp_{i}", sp.Add(*through_charge(i))))
    out.append(("_g_x", sp.Add(*through_charge("x"))))
    for l in learnables:
        e = sp.Add(*through_charge(l), *through_reset(l)) + g_spike * sg * diff(z, sym(l))  # z: a learned threshold
        out.append((f"_gl_{l}", e.subs(S_r, S)))
    return tuple((name, from_sympy(sp.sympify(e))) for name, e in out)  # NotDifferentiable reaches `check`
