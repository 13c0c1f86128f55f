"""Which NIR neuron a snnc neuron layer is: proved from its charge equation, never guessed from its name.

NIR (1.0) states its neurons in continuous time; the simulators that read NIR integrate them with forward
Euler over a step dt, which makes each one a linear map between spikes:

    LIF        v[t] = v + dt/tau (v_leak - v + r x)            fire v > v_threshold, then v = v_reset
    IF         v[t] = v + dt r x                                (same fire and reset)
    LI, I      as LIF and IF, never firing (snnc: `output membrane`)
    CubaLIF    I[t] = I + dt/tau_syn (w_in x - I)
               v[t] = v + dt/tau_mem (v_leak - v + r I[t])      (CubaLI: never firing)
    Threshold  fire x > threshold                               (a neuron whose charge is v = x)

`nir_form` composes a layer's charge (the neuron's statements under the layer's configuration, in SymPy),
substitutes the layer's parameter values as exact rationals and reads the coefficients of
H_v = a v + b x + c: a = 1 - dt/tau, b = dt r/tau, c = dt v_leak/tau (and likewise for the current).
What fits none of these forms is a `NotNIR` with the reason; nothing is approximated.

Ties: snnc fires at H >= v_threshold, NIR at v > v_threshold. `TIES` lists the two conventions a threshold
can cross over with; every conversion of a threshold goes through `to_nir_threshold`/`from_nir_threshold`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from ..compiler import ir
from ..compiler.derive import _composed
from ..compiler.neuron import MEMBRANE, Config, charge_updates, layer_config, specialise
from ..compiler.printers import SnnPrinter
from ..compiler.symbolic import sigmoid, symbol

# NIR's parameters per neuron type, in its field order.
FIELDS: dict[str, tuple[str, ...]] = {
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "I": ("r",),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    "Threshold": ("threshold",),
}
SPIKING = ("LIF", "IF", "CubaLIF", "Threshold")

TIES = {
    "nir": "the NIR threshold is the float32 just below snnc's, so `v > threshold` fires exactly when snnc's "
           "`H >= v_threshold` does, in float32 (the precision snnc and the peers run in)",
    "spikingjelly": "thresholds are copied unchanged (SpikingJelly's nir_exchange convention; it also fires at "
                    ">=): exact against SpikingJelly; a simulator firing at > differs only when v equals the "
                    "threshold exactly",
}


class NotNIR(Exception):
    """A neuron layer NIR cannot express: `reason` says why (a clause: 'it ...'), `hint` what to change."""

    def __init__(self, reason: str, hint: str | None = None):
        super().__init__(reason)
        self.reason, self.hint = reason, hint


@dataclass(frozen=True)
class Form:
    """A NIR neuron: its type and its parameters (one value each; NIR repeats them per neuron)."""

    kind: str
    params: tuple[tuple[str, float], ...]  # in FIELDS order

    @property
    def values(self) -> dict[str, float]:
        return dict(self.params)

    def text(self) -> str:
        return f"{self.kind}(" + ", ".join(f"{k}={v!r}" for k, v in self.params) + ")"

    def close_to(self, other: "Form", rtol: float = 1e-6) -> bool:
        """Equal up to float32-level rounding (what a parameter computed two ways may differ by)."""
        return self.kind == other.kind and all(
            np.isclose(a, b, rtol=rtol, atol=1e-12) for (_, a), (_, b) in zip(self.params, other.params))


# ------------------------------------------------------------------ thresholds
def to_nir_threshold(theta: float, ties: str) -> float:
    if ties == "nir":
        return float(np.nextafter(np.float32(theta), np.float32(-np.inf)))
    return float(theta)


def from_nir_threshold(theta: float, ties: str) -> float:
    """snnc's threshold for a NIR one; under 'nir' the float32 just above, written in its shortest form."""
    if ties == "nir":
        return float(str(np.nextafter(np.float32(theta), np.float32(np.inf))))
    return float(theta)


# ------------------------------------------------------------------ snnc -> NIR
def exact(value: float) -> sp.Rational:
    """A float as the decimal it prints as (2.0 -> 2, 0.3 -> 3/10), so tau * dt / dt comes back as tau."""
    return sp.Rational(repr(float(value)))


def ir_values(neuron: ir.Neuron, overrides) -> dict[str, float]:
    """A layer's float parameters and learnables from the IR alone (defaults, then the layer's arguments;
    learnables at their initial value): what `check` knows before any weights exist."""
    from ..compiler.constants import constant_value, param_defaults

    env = dict(param_defaults(neuron))
    for key, value in overrides:
        if isinstance(value, ir.Lit) and isinstance(value.value, (int, float)) and not isinstance(value.value, bool):
            env[key] = float(value.value)
    for learnable in neuron.learnables:
        env[learnable.name] = constant_value(learnable.init, env)
    return {k: float(v) for k, v in env.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def nir_form(neuron: ir.Neuron, cfg: Config, values: dict[str, float], dt: float, ties: str = "nir") -> Form:
    """The NIR neuron a layer is (its neuron under `cfg`, parameters and learnables at `values`)."""
    spiking = neuron.output == "spike"
    _structure(neuron, cfg, spiking)
    states = tuple(s.name for s in neuron.states)
    charge = charge_updates(neuron, cfg)
    shown = "; ".join(f"{t} = {SnnPrinter()(e)}" for t, e in charge)
    env = {symbol(k): exact(v) for k, v in values.items() if k not in states and k != "x"}
    composed = _composed(states, charge)
    H = {s: composed[s].replace(sigmoid, lambda z: 1 / (1 + sp.exp(-z))).subs(env) for s in states}
    current = next((s for s in states if s != MEMBRANE), None)
    if current is None:
        kind, params = _one_state(H[MEMBRANE], spiking, exact(dt), shown)
    else:
        kind, params = _two_states(H[MEMBRANE], H[current], current, spiking, exact(dt), shown)
    out = {k: float(v) for k, v in params.items()}
    _initial(neuron, cfg, values, kind, out)
    if kind == "Threshold":
        out["threshold"] = to_nir_threshold(values["v_threshold"], ties)
    elif spiking:
        out["v_threshold"] = to_nir_threshold(values["v_threshold"], ties)
        out["v_reset"] = values["v_reset"]
    return Form(kind, tuple((f, out[f]) for f in FIELDS[kind]))


def _structure(neuron: ir.Neuron, cfg: Config, spiking: bool) -> None:
    if spiking and cfg.soft_reset:
        raise NotNIR("it uses soft reset (v_reset = none: v drops by the threshold at a spike); NIR's neurons set v "
                     "to v_reset", "give the layer a v_reset (e.g. v_reset = 0.0) to export it")
    if neuron.on_spike:
        a = neuron.on_spike[0]
        raise NotNIR(f"its on_spike update '{a.target} {a.op} {SnnPrinter()(a.value)}' changes a state at each spike; "
                     "NIR's neurons only reset v", "NIR has no adaptive neurons")
    if len(neuron.states) > 2:
        names = ", ".join(s.name for s in neuron.states)
        raise NotNIR(f"it has {len(neuron.states)} states ({names}); NIR's neurons have the membrane v and at "
                     "most one synaptic current")


def _affine(e: sp.Expr, gens: tuple[sp.Symbol, ...], what: str, shown: str):
    """Coefficients of e = sum(k_g g) + c, or NotNIR naming the variable e is not linear in."""
    coefficients = []
    for g in gens:
        k = sp.diff(e, g)
        if k.free_symbols:
            where = "" if what == MEMBRANE else f" (the update of {what})"
            raise NotNIR(f"its charge ({shown}) is not linear in {g}{where}; NIR's neurons are linear between "
                         "spikes (forward Euler: H = a*v + b*x + c)",
                         "NIR's neurons are LIF, IF, LI, I, CubaLIF, CubaLI and Threshold")
        coefficients.append(k)
    return coefficients, e.subs({g: 0 for g in gens})


def _is(e: sp.Expr, value) -> bool:
    d = sp.simplify(e - value)
    return d == 0 or bool(d.is_number and float(d) == 0.0)


def _num(e: sp.Expr) -> str:
    return repr(float(e))


def _one_state(Hv, spiking: bool, dt, shown: str):
    v, x = symbol(MEMBRANE), symbol("x")
    (a, b), c = _affine(Hv, (v, x), "v", shown)
    if _is(a, 1):
        if not _is(c, 0):
            raise NotNIR(f"its charge ({shown}) adds the constant {_num(c)} each step without a leak; NIR's "
                         f"{'IF' if spiking else 'I'} has no bias parameter",
                         "feed the constant through a linear layer's bias instead")
        return ("IF" if spiking else "I"), {"r": b / dt}
    if float(a) > 1:
        raise NotNIR(f"its membrane grows by the factor {_num(a)} > 1 each step ({shown}); NIR's time constants "
                     "are positive")
    if spiking and _is(a, 0) and _is(b, 1) and _is(c, 0):
        return "Threshold", {}
    k = 1 - a
    return ("LIF" if spiking else "LI"), {"tau": dt / k, "r": b / k, "v_leak": c / k}


def _two_states(Hv, Hc, current: str, spiking: bool, dt, shown: str):
    v, c, x = symbol(MEMBRANE), symbol(current), symbol("x")
    (cv, alpha, beta), gamma = _affine(Hc, (v, c, x), current, shown)
    if not _is(cv, 0):
        raise NotNIR(f"its current {current} reads the membrane v ({shown}); NIR's CubaLIF current is driven by "
                     "the input alone")
    if not _is(gamma, 0):
        raise NotNIR(f"its current {current} has the constant drive {_num(gamma)} ({shown}); NIR's CubaLIF has no "
                     "such parameter")
    if float(alpha) >= 1:
        raise NotNIR(f"its current {current} does not decay (factor {_num(alpha)} per step); NIR's tau_syn would be "
                     "infinite")
    (a, p, q), d = _affine(Hv, (v, c, x), "v", shown)
    k = p / alpha if not _is(alpha, 0) else (q / beta if not _is(beta, 0) else sp.Integer(0))
    if not (_is(p, k * alpha) and _is(q, k * beta)):
        raise NotNIR(f"its membrane is not charged by this step's current alone ({shown}); NIR's CubaLIF, as "
                     f"SpikingJelly and snnTorch integrate it, is v += dt/tau_mem (v_leak - v + r {current}[t]) "
                     f"with {current}[t] already updated", f"update {current} first, then charge v from it")
    if float(a) >= 1:
        raise NotNIR(f"its membrane does not leak (factor {_num(a)} per step); NIR's CubaLIF has a finite tau_mem")
    km, ks = 1 - a, 1 - alpha
    return ("CubaLIF" if spiking else "CubaLI"), {
        "tau_syn": dt / ks, "tau_mem": dt / km, "r": k / km, "v_leak": d / km, "w_in": beta / ks}


def _initial(neuron: ir.Neuron, cfg: Config, values: dict[str, float], kind: str, params: dict) -> None:
    """NIR graphs carry no initial state. snnc's convention (SpikingJelly's): a spiking neuron's v starts at
    v_reset, a non-spiking one's at v_leak, a current at 0. A neuron that starts elsewhere does not map."""
    from ..compiler.constants import constant_value

    if kind == "Threshold":  # no memory: the start is never read
        return
    for s in neuron.states:
        start = constant_value(specialise(s.init, cfg), values)
        if s.name != MEMBRANE:
            expected, what = 0.0, "0"
        elif kind in SPIKING:
            expected, what = values.get("v_reset", 0.0), "v_reset"
        else:
            expected, what = params.get("v_leak", 0.0), "v_leak"
        if start is None or float(start) != float(expected):
            raise NotNIR(f"its state {s.name} starts at {start!r}; NIR graphs carry no initial state, and the "
                         f"convention (SpikingJelly's) is {what} = {float(expected)!r}",
                         f"start {s.name} at {what}")


# ------------------------------------------------------------------ NIR -> snnc
NIR_LIBRARY = "snnc.nir"  # snnc/lib/nir.snn: NIR's neurons, one Nir<type> each


@lru_cache(maxsize=1)
def library_neurons() -> dict[str, ir.Neuron]:
    from ..compiler.assemble import load_module
    from ..compiler.resources import library

    module, _ = load_module(library()["snnc.neurons"])
    return {n.name: n for n in module.neurons}


@lru_cache(maxsize=1)
def _nir_library() -> tuple[dict[str, ir.Neuron], dict[str, str]]:
    """The NIR-shaped neurons by NIR type, and the comment above each in snnc/lib/nir.snn, by neuron name."""
    from ..compiler.assemble import load_module
    from ..compiler.resources import library

    module, sources = load_module(library()[NIR_LIBRARY])
    neurons = {n.name[len("Nir"):]: n for n in module.neurons}
    comments = {}
    for n in module.neurons:
        above = sources[n.span.file].text.splitlines()[:n.span.line - 1]
        lines = []
        while above and above[-1].startswith("#"):
            lines.insert(0, above.pop())
        comments[n.name] = "\n".join(lines)
    return neurons, comments


def inline_neurons() -> dict[str, ir.Neuron]:
    """The NIR-shaped neurons `snnc import` defines in the files it writes, by NIR type (snnc/lib/nir.snn)."""
    return _nir_library()[0]


def inline_comment(name: str) -> str:
    """The comment that explains a NIR-shaped neuron ('' for any other), for the files `snnc import` writes."""
    return _nir_library()[1].get(name, "")


def _tidy(x: float, single: bool) -> float:
    """A parameter computed from NIR's (tau / dt, 1 - dt / tau), written as the decimal a person wrote: to 12
    significant digits (0.0005 / 0.0001 -> 5.0, not 5.000000000000001), or, where the NIR file holds float32
    (snnTorch writes them), as the shortest decimal of the nearest float32 (0.00079999998 / 1e-4 -> 8.0). Either
    is within the precision the NIR numbers carry, and the choice is proved against them afterwards."""
    return float(str(np.float32(x))) if single else float(f"{x:.12g}")


def _library_arguments(form: Form, dt: float, ties: str, single: bool) -> tuple[str, dict[str, float]] | None:
    """SpikingJelly's convention, inverted: the library neuron and arguments a NIR neuron would come from."""
    p = form.values
    tidy = lambda x: _tidy(x, single)  # noqa: E731
    close = lambda a, b: bool(np.isclose(a, b, rtol=1e-6, atol=1e-12))  # noqa: E731
    if form.kind in ("LIF", "IF", "CubaLIF"):
        fire = {"v_threshold": from_nir_threshold(p["v_threshold"], ties), "v_reset": p["v_reset"]}
    if form.kind == "LIF":
        tau = tidy(p["tau"] / dt)
        if not close(p["v_leak"], p["v_reset"]):
            return None
        if close(p["r"], 1.0):
            return "LIF", {"tau": tau, **fire}
        if close(p["r"], tau):
            return "LIF", {"tau": tau, "decay_input": False, **fire}
        return None
    if form.kind == "IF":
        return ("IF", fire) if close(p["r"] * dt, 1.0) else None
    if form.kind == "LI":
        if close(p["r"], 1.0) and p["v_leak"] == 0.0:
            return "LI", {"tau": tidy(p["tau"] / dt)}
        return None
    if form.kind == "CubaLIF":
        if close(p["w_in"], p["tau_syn"] / dt) and close(p["r"], p["tau_mem"] / dt) and p["v_leak"] == 0.0:
            return "CUBALIF", {"c_decay": tidy(1.0 - dt / p["tau_syn"]), "v_decay": tidy(1.0 - dt / p["tau_mem"]),
                               **fire}
    return None


def _inline_arguments(form: Form, dt: float, ties: str) -> tuple[str, dict[str, float]]:
    p = dict(form.values)
    if "v_threshold" in p:
        p["v_threshold"] = from_nir_threshold(p["v_threshold"], ties)
    if form.kind == "Threshold":
        p = {"v_threshold": from_nir_threshold(p.pop("threshold"), ties)}
    elif form.kind not in ("Threshold",):
        p["dt"] = dt
    return inline_neurons()[form.kind].name, p


def snnc_layer(form: Form, dt: float, ties: str, single: bool = False) -> tuple[ir.Neuron, dict[str, object], bool]:
    """A snnc neuron and layer arguments for a NIR neuron: a library neuron where SpikingJelly's convention
    fits, else the inline NIR-shaped one. Either is proved by mapping it back (`nir_form`) onto `form` (to
    float32 precision). `single`: the NIR numbers are float32. Returns (neuron, arguments that differ from its
    defaults, whether it is a library neuron)."""
    from ..compiler.constants import param_defaults

    for library, choice in ((True, _library_arguments(form, dt, ties, single)),
                            (False, _inline_arguments(form, dt, ties))):
        if choice is None:
            continue
        name, args = choice
        neuron = library_neurons()[name] if library else next(
            n for n in inline_neurons().values() if n.name == name)
        defaults = param_defaults(neuron)
        args = {k: v for k, v in args.items() if defaults.get(k, object()) != v}
        overrides = tuple((k, ir.Lit(value=v)) for k, v in args.items())
        values = ir_values(neuron, overrides)
        if not _requirements_hold(neuron, values):
            continue
        try:
            back = nir_form(neuron, layer_config(neuron, overrides), values, dt, ties)
        except NotNIR:
            continue
        if back.close_to(form):
            return neuron, args, library
    raise NotNIR(f"no snnc neuron reproduces {form.text()}")


def _requirements_hold(neuron: ir.Neuron, values: dict[str, float]) -> bool:
    from ..compiler.constants import constant_value

    return all(constant_value(r.cond, values) is not False for r in neuron.requires)
